# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lab's topology file: validated as a whole, then turned into what each host builds.

Pure: no kernel access. ``validate`` lists every problem of a topology at once, by the
key's path: every key any module will receive, its type, range and form, with the
modules' own parsers and vocabularies (nslab_cgroup_values, nslab_sources, nslab_init), and
the host's own addresses as the caller read them; ``compile_lab`` turns a valid one into
the object lists the modules converge (namespaces, bridges, veths, jails, cgroups,
containers), so a lab costs a fixed number of module runs per host whatever its size;
``removal_plan`` is what state=absent removes, from what a host has of the lab alone.

Addresses are sticky: an address a node already has (``current``, read from the hosts) is
kept while it is still valid, so adding or removing a node never renumbers the others.
New nodes take the lowest free address, in the order of the file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import (
    IO_LIMITS, block_device, parse_limits, parse_size)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_vocab import (
    KEYS as CGROUP_KEYS)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import TopologyError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jail_vocab import (
    MIRROR_RE, PACKAGE_RE, SOURCE_OPTIONS, SOURCES, SUITE_RE, VARIANTS)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import CAPABILITIES
from ansible_collections.nslab.lab.plugins.module_utils.nslab_netem import (
    DEFAULT_KINDS, netem_problems)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import (
    CACHE_ROOT, DATA_ROOT, INIT_MOUNTS, STATE_ROOT, inside, netns_name, under)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_publish import (
    lab_clash_problems, parse_port, port_problems)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_sysctls import sysctl_problem
from ansible_collections.nslab.lab.plugins.module_utils.nslab_tunnels import MAX_VNI, OVERHEAD
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
    IFNAMSIZ, abspath_problem, hostname_problem, ifname_problem, lab_problem, mtu_problem)

TOP_KEYS = {"lab", "description", "defaults", "networks", "nodes", "links"}
DEFAULT_KEYS = {"jail", "limits", "command", "env", "cap_add", "cap_drop", "disk"}
NETWORK_KEYS = {"subnet", "mtu", "nat", "ipv6", "vni", "isolate_host", "antispoof"}
NETWORK_BOOLS = ("nat", "ipv6", "isolate_host", "antispoof")
NODE_KEYS = {"networks", "jail", "limits", "command", "env", "hostname", "cap_add", "cap_drop",
             "host", "disk"}
# What a node has inside and how it runs (files, binds, sysctls, exec, userns, privileged):
# checked by _node_content, compiled by _compile_node_content.
NODE_CONTENT_KEYS = {"files", "binds", "sysctls", "exec", "userns", "privileged"}
NODE_KEYS = NODE_KEYS | NODE_CONTENT_KEYS
LINK_KEYS = {"endpoints", "subnet", "mtu", "vni"}
NODE_KEYS |= {"routes"}                         # network keys (see _netkeys_problems)
NODE_KEYS |= {"ports"}                          # see ports_problems
LINK_KEYS |= {"netem", "state"}
LIMIT_KEYS = set(CGROUP_KEYS)
IO_KEYS = {"device"} | set(IO_LIMITS)
JAIL_SOURCES = set(SOURCES)
# What a topology's jail may hold, per source: nslab_jail's own options of that source,
# ``overlay``, and ``keep_setuid`` for the sources that bring someone else's files.
JAIL_COMMON_KEYS = ("source", "overlay")
JAIL_SETUID_SOURCES = ("tarball", "directory")
JAIL_KEYS = dict((source, set(JAIL_COMMON_KEYS) | set(SOURCE_OPTIONS[source])
                  | ({"keep_setuid"} if source in JAIL_SETUID_SOURCES else set()))
                 for source in SOURCES)
# The options a source cannot do without (nslab_sources asks for them too, later).
SOURCE_REQUIRED = {
    "host": {"binaries": "binaries, the commands to copy, like [sh, ls]"},
    "debootstrap": {"suite": "suite, a Debian suite like bookworm"},
    "tarball": {"path": "path, the absolute path of a root filesystem archive"},
    "directory": {"path": "path, the absolute path of a root filesystem tree"},
}
# Matched with fullmatch: '$' alone would let a trailing newline through.
NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?")
IFNAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}")
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Subnets a lab must never take: the host routes them itself, or they are not unicast.
HOST_CRITICAL = [(ipaddress.ip_network(n), why) for n, why in (
    ("0.0.0.0/8", "'this network' (and a /0 is every address)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (and broadcast)"),
    ("::/8", "unspecified, loopback and IPv4-mapped (and a /0 is every address)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)]


def short_ifname(*parts):
    """``a-b-c`` when it fits in 15 bytes, else a readable head and a stable hash."""
    name = "-".join(parts)
    if len(name.encode()) < IFNAMSIZ:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:6]
    return "%s-%s" % (name[:IFNAMSIZ - 1 - 7], digest)


def bridge_name(lab, network):
    return short_ifname(lab, network)


def host_end_name(lab, node, index):
    return short_ifname(lab, node, str(index))


def vxlan_name(lab, network):
    return short_ifname(lab, network, "vx")


def _kind(value):
    """What a YAML value is, in a user's words."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                       (str, "a string"), (list, "a list"), (dict, "a mapping")):
        if isinstance(value, kind):
            return name
    return "a %s" % type(value).__name__


def _show(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong(where, value, expected):
    return "%s: %s is %s; expected %s" % (where, _show(value), _kind(value), expected)


def _mapping(where, value, problems, expected):
    if isinstance(value, dict):
        return True
    problems.append(_wrong(where, value, expected))
    return False


def _section(where, value, problems, expected):
    """A top-level mapping that may be left out (or null): {} then."""
    if value is None:
        return {}
    return value if _mapping(where, value, problems, expected) else {}


def _unknown(where, data, allowed, problems):
    for key in sorted(set(data) - set(allowed), key=str):
        problems.append("%s: unknown key %s; expected one of %s" % (
            where, _show(key), ", ".join(sorted(allowed))))


def _bool(where, value, problems):
    if not isinstance(value, bool):
        problems.append(_wrong(where, value, "true or false (a YAML boolean, not quoted)"))


def _string_list(where, value, problems, expected, allow_empty=True):
    if (not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            or not (value or allow_empty)):
        problems.append(_wrong(where, value, expected))
        return False
    return True


def _name(where, kind, name, problems):
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        problems.append("%s: %s name %s is invalid; expected 1-32 characters of a-z, 0-9 and "
                        "'-', starting and ending with a letter or digit"
                        % (where, kind, _show(name)))
        return False
    return True


def _network(where, value, problems):
    if not isinstance(value, str):
        problems.append(_wrong(where, value, "a network in CIDR form like 10.213.1.0/24"))
        return None
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        problems.append("%s: '%s' is not a network in CIDR form with its host bits zero; "
                        "expected e.g. 10.213.1.0/24" % (where, value))
        return None
    if net.num_addresses < 4:
        problems.append("%s: %s is too small; expected room for a gateway and hosts (/30 or "
                        "larger)" % (where, net))
        return None
    return net


def _subnet(where, value, problems, host_addresses):
    """A lab subnet: a private-use range that neither the host's own routing nor any
    special range (loopback, link-local, multicast, reserved, 'this network') meets."""
    net = _network(where, value, problems)
    if net is None:
        return None
    for critical, why in HOST_CRITICAL:
        if critical.version == net.version and net.overlaps(critical):
            problems.append("%s: %s overlaps %s (%s); expected a private range the host does "
                            "not route itself, such as 10.213.1.0/24" % (where, net, critical,
                                                                         why))
            return None
    for ifname, address in host_addresses:
        iface = ipaddress.ip_interface(address)
        if iface.version == net.version and not iface.ip.is_loopback and (
                iface.ip in net or net.overlaps(iface.network)):
            problems.append("%s: %s overlaps the host's own address %s on %s; expected a "
                            "subnet that no interface of the host uses" % (
                                where, net, address, ifname))
            return None
    return net


def _argv(where, value, problems):
    if not _string_list(where, value, problems, "a list of strings (an argv) like "
                        "[httpd, -f, -p, \"80\"]"):
        return
    for index, arg in enumerate(value):
        if "\0" in arg:
            problems.append("%s[%d]: %s holds a NUL byte; expected text without one" % (
                where, index, _show(arg)))


def _env(where, env, problems):
    if not _mapping(where, env, problems, "a mapping of NAME: value, like {LANG: C.UTF-8}"):
        return
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_KEY_RE.fullmatch(key):
            problems.append("%s: variable name %s is invalid; expected letters, digits and "
                            "'_', not starting with a digit (no '=', space or newline)" % (
                                where, _show(key)))
        elif not isinstance(value, str):
            # execve takes strings; a number would kill the container's start.
            problems.append(_wrong("%s.%s" % (where, key), value,
                                   "a string (quote numbers and booleans, like \"80\")"))
        elif "\0" in value:
            problems.append("%s.%s: %s holds a NUL byte; expected text without one "
                            "(newlines are fine)" % (where, key, _show(value)))


def _capabilities(where, value, problems):
    if not _string_list(where, value, problems, "a list of capability names like "
                        "[NET_ADMIN, CAP_NET_RAW]"):
        return
    for index, cap in enumerate(value):
        name = cap.upper()
        name = name[4:] if name.startswith("CAP_") else name
        if name not in CAPABILITIES:
            problems.append("%s[%d]: %s is not a capability; expected a name of "
                            "capabilities(7), with or without CAP_, like NET_ADMIN or "
                            "CAP_SYS_TIME" % (where, index, _show(cap)))


# The types nslab_cgroup's parsers take for each limit; what each parser then says about
# the value is the module's own rule (parse_limits).
LIMIT_TYPES = {
    "memory": ((int, str), "a size like 64M or 1.5G, or 'max'"),
    "memory_high": ((int, str), "a size like 64M or 1.5G, or 'max'"),
    "swap": ((int, str), "a size like 64M or 1.5G, or 'max'"),
    "cpus": ((int, float, str), "a number of CPUs like 0.5 or 2, or 'max'"),
    "cpu_weight": ((int,), "an integer from 1 to 10000"),
    "io_weight": ((int,), "an integer from 1 to 10000"),
    "pids": ((int, str), "an integer from 1 to %d, or 'max'" % 4194304),
    "cpuset": ((int, str), "a list of CPUs like 0-1,3"),
    "cpuset_mems": ((int, str), "a list of memory nodes like 0"),
    "io": ((list,), "a list of {device: 8:0, read_bps: 10M, ...}"),
}


def _limits(where, limits, problems, resolve):
    if not _mapping(where, limits, problems, "a mapping like {memory: 64M, cpus: 0.5, "
                    "pids: 64}"):
        return
    _unknown(where, limits, LIMIT_KEYS, problems)
    typed = {}
    for key, value in limits.items():
        if key not in LIMIT_TYPES or value is None:
            continue
        types, expected = LIMIT_TYPES[key]
        if isinstance(value, bool) or not isinstance(value, types):
            problems.append(_wrong("%s.%s" % (where, key), value, expected))
            continue
        if key == "io":
            entries = []
            for index, entry in enumerate(value):
                at = "%s.io[%d]" % (where, index)
                if not _mapping(at, entry, problems, "a mapping like {device: 8:0, "
                                "read_bps: 10M}"):
                    continue
                _unknown(at, entry, IO_KEYS, problems)
                if not isinstance(entry.get("device"), str):
                    problems.append(_wrong(at + ".device", entry.get("device"),
                                           "a whole disk as MAJOR:MINOR like 8:0 or a /dev "
                                           "path"))
                    continue
                bad = [k for k in IO_LIMITS if isinstance(entry.get(k), (bool, list, dict))]
                problems.extend(_wrong("%s.%s" % (at, k), entry[k], "a size like 10M or a "
                                       "count, or 'max'") for k in bad)
                if not bad:
                    entries.append(dict((k, v) for k, v in entry.items() if k in IO_KEYS))
            value = entries
        typed[key] = value
    for key, value in typed.items():
        try:
            problems.extend(parse_limits({key: value}, where + ".", resolve)[1])
        except (ValueError, OverflowError):
            # nan, inf or a number too large for a float: the parsers cannot take it
            problems.append(_wrong("%s.%s" % (where, key), value,
                                   LIMIT_TYPES[key][1] + ", a finite number"))


def _disk(where, value, problems):
    try:
        bad = isinstance(value, (bool, float)) or value == "max" or parse_size(where, value)[1]
    except (ValueError, OverflowError):           # a number too large for a float
        bad = True
    if bad:
        problems.append(_wrong(where, value, "a size like 512M or 2G (K, M, G, T: powers of "
                               "1024)"))


def _node_settings(where, spec, problems, resolve):
    """What defaults and nodes share: jail (its shape; its keys per source are checked on
    each node's merged jail), limits, command, env, capabilities, disk."""
    if "jail" in spec:
        _mapping(where + ".jail", spec["jail"], problems, "a mapping like {source: busybox}")
    if "limits" in spec:
        _limits(where + ".limits", spec["limits"], problems, resolve)
    if "command" in spec:
        _argv(where + ".command", spec["command"], problems)
    if "env" in spec:
        _env(where + ".env", spec["env"], problems)
    for key in ("cap_add", "cap_drop"):
        if key in spec:
            _capabilities("%s.%s" % (where, key), spec[key], problems)
    if "disk" in spec:
        _disk(where + ".disk", spec["disk"], problems)


def _jail_value_problem(where, source, key, value):
    if key in ("overlay", "keep_setuid"):
        if not isinstance(value, bool):
            return _wrong(where, value, "true or false (a YAML boolean, not quoted)")
    elif key == "path":
        problem = abspath_problem(where, value)
        if problem:
            return problem
        if source == "directory" and (value == "/" or any(
                inside(value, root) or inside(root, value) for root in (DATA_ROOT, CACHE_ROOT))):
            return ("%s: '%s' is (or holds, or is inside) the host's root or nslab's own "
                    "directories; expected a separate tree" % (where, value))
    elif key == "binaries":
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) and v and "\0" not in v for v in value)):
            return _wrong(where, value, "a list of commands or absolute paths like [sh, ls]")
    elif key == "include":
        if not isinstance(value, list) or not all(
                isinstance(v, str) and PACKAGE_RE.fullmatch(v) for v in value):
            return _wrong(where, value, "a list of Debian package names like [iproute2]")
    elif key == "suite":
        if not isinstance(value, str) or not SUITE_RE.fullmatch(value):
            return _wrong(where, value, "a Debian suite name like bookworm")
    elif key == "mirror":
        if not isinstance(value, str) or not MIRROR_RE.fullmatch(value):
            return _wrong(where, value, "a mirror URL like http://deb.debian.org/debian")
    elif key == "variant":
        if value not in VARIANTS:
            return _wrong(where, value, "one of %s" % ", ".join(VARIANTS))
    return None


def _jail(node_where, defaults_jail, node_jail, problems):
    """A node's jail as nslab_jail will get it: defaults.jail with the node's on top. Each
    problem names the file's key it comes from (the node's, or defaults.jail)."""
    jail = dict(defaults_jail)
    jail.update(node_jail)

    def where(key):
        return "%s.jail.%s" % (node_where, key) if key in node_jail else "defaults.jail.%s" % key

    if not jail:
        return
    source = jail.get("source")
    if not isinstance(source, str) or source not in JAIL_SOURCES:
        problems.append("%s: %s is not a jail source; expected one of %s" % (
            where("source"), _show(source), ", ".join(SOURCES)))
        return
    for key in sorted(jail, key=str):
        if key == "command":
            problems.append("%s: a jail's command runs as the host's root in a plain chroot, "
                            "outside the container's namespaces; not allowed in a topology. "
                            "Expected the node's own command (nodes.<name>.command), which "
                            "runs in the container" % where(key))
        elif key not in JAIL_KEYS[source]:
            others = [s for s in SOURCES if key in JAIL_KEYS[s]]
            if others:
                problems.append("%s: only used with source %s (source is '%s')" % (
                    where(key), " or ".join("'%s'" % s for s in others), source))
            else:
                problems.append("%s: unknown key %s; expected one of %s" % (
                    where(key).rsplit(".", 1)[0], _show(key),
                    ", ".join(sorted(JAIL_KEYS[source]))))
        else:
            problems.append(_jail_value_problem(where(key), source, key, jail[key]))
    for key in SOURCE_REQUIRED.get(source, ()):
        if key not in jail:
            problems.append("%s: source '%s' needs %s" % (
                node_where + ".jail" if node_jail else "defaults.jail", source,
                SOURCE_REQUIRED[source][key]))


def _node_networks_problems(where, value, subnets, networks, used, problems):
    """The node's networks: a list of names, or a mapping name: address (or null)."""
    if isinstance(value, list):
        if not all(isinstance(n, str) for n in value):
            problems.append(_wrong(where, value, "a list of network names or a mapping "
                                   "network: address"))
            return
        pairs = [(n, None) for n in value]
        for name in sorted(set(n for n in value if value.count(n) > 1)):
            problems.append("%s: network '%s' is listed twice; expected each once" % (
                where, name))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        problems.append(_wrong(where, value, "a list of network names or a mapping "
                               "network: address"))
        return
    for net_name, address in pairs:
        if networks is None:            # the networks section itself is wrong: said so
            continue
        if net_name not in networks:
            problems.append("%s: unknown network %s; expected one of %s" % (
                where, _show(net_name), ", ".join(sorted(map(str, networks))) or "(none)"))
            continue
        at = "%s.%s" % (where, net_name)
        if isinstance(address, dict):   # the attachment's options (see _netkeys_problems)
            address, at = address.get("address"), at + ".address"
        if address is None or net_name not in subnets:
            continue
        if not isinstance(address, str):
            problems.append(_wrong(at, address, "an address of %s like %s" % (
                subnets[net_name], lowest_free(subnets[net_name], set()))))
            continue
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            problems.append("%s: '%s' is not an IP address; expected one of %s" % (
                at, address, subnets[net_name]))
            continue
        subnet = subnets[net_name]
        if ip not in subnet:
            problems.append("%s: %s is outside %s" % (at, ip, subnet))
        elif ip in _reserved(subnet):
            problems.append("%s: %s is reserved in %s (network, broadcast or the host's "
                            "address %s)" % (at, ip, subnet, gateway(subnet)))
        elif (net_name, ip) in used:
            problems.append("%s: %s is already used by node %s" % (
                at, ip, used[(net_name, ip)]))
        else:
            used[(net_name, ip)] = where.split(".")[1]
    return list(dict((n, None) for n, _a in pairs))


def _node_networks(node):
    """{network: address or None} of a (valid) node, in the order the file gives."""
    networks = node.get("networks") or []
    if isinstance(networks, list):
        return dict((n, None) for n in networks)
    return dict((n, a.get("address") if isinstance(a, dict) else a) for n, a in networks.items())


def _endpoint(value):
    node, _sep, ifname = str(value).partition(":")
    return node, ifname


def _link_endpoints(link):
    return link.get("endpoints") if isinstance(link, dict) else link


def _dedupe(problems):
    seen, out = set(), []
    for problem in problems:
        if problem and problem not in seen:
            seen.add(problem)
            out.append(problem)
    return out


# Network keys: an attachment's options, a node's routes, a link's netem and state.
ATTACHMENT_KEYS = {"address", "gateway", "netem", "state"}
LINK_STATES = ("up", "down")
ROUTE_KEYS = {"to", "via"}


def _netem(where, value, problems):
    problems.extend(netem_problems(where, value))


def _link_state(where, value, problems):
    if value not in LINK_STATES:
        problems.append(_wrong(where, value, "up or down (both ends of the veth)"))


def _attached_subnets(name, node, subnets, links):
    """{subnet: where it comes from} of the networks and addressed links a node is on."""
    attached = {}
    networks = node.get("networks")
    for net in (networks if isinstance(networks, (list, dict)) else []):
        if isinstance(net, str) and net in subnets:
            attached[subnets[net]] = "network %s" % net
    for index, link in enumerate(links):
        ends = _link_endpoints(link) if isinstance(link, (dict, list)) else None
        if not isinstance(ends, list) or not all(isinstance(e, str) for e in ends):
            continue
        if name in [_endpoint(e)[0] for e in ends] and isinstance(link, dict):
            try:
                attached[ipaddress.ip_network(str(link.get("subnet")))] = "links[%d]" % index
            except ValueError:
                pass
    return attached


def _gateway_problem(where, value, subnet):
    if not isinstance(value, str):
        return _wrong(where, value, "an address of %s like %s" % (subnet, gateway(subnet)))
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return "%s: '%s' is not an IP address; expected one of %s like %s" % (
            where, value, subnet, gateway(subnet))
    if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
        return "%s: %s is not a host address of %s; expected one like %s" % (
            where, ip, subnet, gateway(subnet))
    return None


def _route_problems(where, route, attached):
    """Problems of one route {to, via}; (family, destination) when it is valid."""
    if not isinstance(route, dict):
        return [_wrong(where, route, "a mapping like {to: default, via: 10.213.1.1}")], None
    problems = []
    _unknown(where, route, ROUTE_KEYS, problems)
    for key in sorted(ROUTE_KEYS - set(route)):
        problems.append("%s.%s: missing; expected %s" % (where, key, (
            "default or a network in CIDR form like 10.9.0.0/16" if key == "to" else
            "the gateway's address, on a subnet the node is attached to")))
    if problems:
        return problems, None
    via, to = route["via"], route["to"]
    try:
        via = ipaddress.ip_address(via if isinstance(via, str) else "?")
    except ValueError:
        return [_wrong(where + ".via", route["via"], "an IP address like 10.213.1.1")], None
    if to == "default":
        family, dest = via.version, "default"
    else:
        try:
            net = ipaddress.ip_network(to if isinstance(to, str) else "?", strict=True)
        except ValueError:
            return [_wrong(where + ".to", to, "default or a network in CIDR form with its host "
                           "bits zero, like 10.9.0.0/16")], None
        family, dest = net.version, "default" if net.prefixlen == 0 else str(net)
        if family != via.version:
            return ["%s.via: %s is IPv%d but to %s is IPv%d; expected one family" % (
                where, via, via.version, to, family)], None
    on = [s for s in attached if s.version == via.version and via in s]
    if not on:
        return ["%s.via: %s is on no subnet the node is attached to (%s); expected an address "
                "of one of them" % (where, via, ", ".join(
                    "%s: %s" % (w, s) for s, w in attached.items()) or "none")], None
    if via in (on[0].network_address, on[0].broadcast_address):
        return ["%s.via: %s is not a host address of %s; expected one like %s" % (
            where, via, on[0], gateway(on[0]))], None
    return [], (family, dest)


def _netkeys_problems(topology, subnets):
    """Problems of the network keys: attachments' gateway, netem and state (their address
    is checked with the networks), nodes' routes (each via on a subnet the node is on,
    one route per destination, a gateway counting as a default route), links' netem and
    state."""
    problems = []
    nodes = topology.get("nodes") if isinstance(topology.get("nodes"), dict) else {}
    links = topology.get("links") if isinstance(topology.get("links"), list) else []
    for name, node in nodes.items():
        if not isinstance(node, dict):
            continue
        where = "nodes.%s" % name
        attached = _attached_subnets(name, node, subnets, links)
        defaults = {}             # family -> where a default route comes from
        networks = node.get("networks")
        for net, options in (networks.items() if isinstance(networks, dict) else ()):
            if not isinstance(options, dict):
                continue
            at = "%s.networks.%s" % (where, net)
            _unknown(at, options, ATTACHMENT_KEYS, problems)
            if "netem" in options:
                _netem(at + ".netem", options["netem"], problems)
            if "state" in options:
                _link_state(at + ".state", options["state"], problems)
            if "gateway" in options and net in subnets:
                problem = _gateway_problem(at + ".gateway", options["gateway"], subnets[net])
                problems.append(problem)
                if problem is None:
                    family = subnets[net].version
                    if family in defaults:
                        problems.append("%s.gateway: a second IPv%d default route (%s has "
                                        "one); expected one per family" % (
                                            at, family, defaults[family]))
                    defaults.setdefault(family, at + ".gateway")
        routes = node.get("routes")
        if routes is None:
            continue
        if not isinstance(routes, list):
            problems.append(_wrong(where + ".routes", routes, "a list of routes like "
                                   "[{to: default, via: 10.213.1.1}]"))
            continue
        seen = {}
        for index, route in enumerate(routes):
            at = "%s.routes[%d]" % (where, index)
            found, key = _route_problems(at, route, attached)
            problems.extend(found)
            if key is None:
                continue
            if key[1] == "default" and key[0] in defaults:
                problems.append("%s: a second IPv%d default route (%s has one); expected one "
                                "per family" % (at, key[0], defaults[key[0]]))
            elif key in seen:
                problems.append("%s.to: %s is already routed by %s; expected each destination "
                                "once" % (at, key[1], seen[key]))
            seen.setdefault(key, at)
            if key[1] == "default":
                defaults.setdefault(key[0], at)
    for index, link in enumerate(links):
        if isinstance(link, dict):
            if "netem" in link:
                _netem("links[%d].netem" % index, link["netem"], problems)
            if "state" in link:
                _link_state("links[%d].state" % index, link["state"], problems)
    return problems


def ports_problems(nodes, subnets):
    """The ``ports`` of every node: syntax and ranges (nslab_publish's parser), a node with
    ports but no IPv4 address to lead them to (its first network's), and a
    HOST_IP:HOST_PORT/proto published twice in the lab."""
    problems, published = [], []
    for name, node in nodes.items():
        if not isinstance(node, dict) or node.get("ports") in (None, []):
            continue
        where = "nodes.%s.ports" % name
        found = port_problems(where, node["ports"])
        problems += found
        if not isinstance(node["ports"], list):
            continue
        first = next(iter(_node_networks(node)), None) if isinstance(
            node.get("networks"), (list, dict)) else None
        if first is None:
            problems.append("%s: node %s has ports but no network; expected the node on a "
                            "network (its first network's address receives the ports)" % (
                                where, name))
        elif first in subnets and subnets[first].version != 4:
            problems.append("%s: node %s's first network %s is %s, not IPv4; expected an "
                            "IPv4 network first (ports are published to its address)" % (
                                where, name, first, subnets[first]))
        for index, entry in enumerate(node["ports"]):
            try:
                published.append(("%s[%d]" % (where, index), parse_port(entry)))
            except ValueError:
                pass            # said by port_problems
    return problems + lab_clash_problems(published)


def ports_idle(current):
    """True when the host holds none of the lab's published ports or loopback guards, as
    nslab_info's read of this run reports them. With no port in the file either, lab.yml
    then leaves nslab_ports out (``ports`` is null): it would read the table to change
    nothing (issue #12). Without that read (an older nslab_info), it runs."""
    return "ports" in current and not current["ports"] and not current.get("port_guards")


def compile_ports(lab, nodes, compiled, host):
    """nslab_ports' ``ports`` for the nodes built on ``host``: each entry leads to the
    node's address on its first network."""
    ports = []
    for name, node in nodes.items():
        if not node.get("ports") or compiled["nodes"][name]["host"] != host:
            continue
        first = compiled["nodes"][name]["interfaces"][0]
        for entry in node["ports"]:
            ports.append({"node": name, "port": str(entry),
                          "address": first["address"].split("/")[0],
                          "bridge": bridge_name(lab, first["network"])})
    return ports


def validate(topology, host_addresses=(), resolve=block_device):
    """Every problem of a topology, as sentences naming the key's path, the bad value and
    what was expected; [] when it is valid.

    ``host_addresses``: (interface, address/prefix) of the host's own addresses on
    interfaces nslab does not own; a lab subnet that meets one is refused. ``resolve``
    turns an io limit's device into MAJOR:MINOR on this host (nslab_cgroup's own)."""
    if not isinstance(topology, dict):
        return [_wrong("topology", topology, "a mapping with lab, networks, nodes and links")]
    problems = []
    segments = []          # (where, subnet) of every network and link with a subnet
    defaults_jail = _validate_top(topology, problems, resolve)
    networks, subnets = _validate_networks(topology, problems, host_addresses, segments)
    nodes, ifnames = _validate_nodes(topology, problems, resolve, defaults_jail, networks,
                                     subnets)
    links = _validate_links(topology, problems, host_addresses, nodes, ifnames, segments)
    _validate_overlaps(segments, problems)
    _validate_vnis(networks, links, problems)
    problems.extend(_netkeys_problems(topology, subnets))
    problems += ports_problems(nodes, subnets)
    return _dedupe(problems)


def _validate_top(topology, problems, resolve):
    """The top-level keys, lab, description and defaults; returns the defaults' jail."""
    _unknown("topology", topology, TOP_KEYS, problems)
    problems.append(lab_problem("lab", topology.get("lab")))
    if "description" in topology and not isinstance(topology["description"], str):
        problems.append(_wrong("description", topology["description"], "a string"))
    defaults = _section("defaults", topology.get("defaults"), problems,
                        "a mapping of what every node gets unless it says otherwise")
    _unknown("defaults", defaults, DEFAULT_KEYS, problems)
    _node_settings("defaults", defaults, problems, resolve)
    return defaults.get("jail") if isinstance(defaults.get("jail"), dict) else {}


def _validate_networks(topology, problems, host_addresses, segments):
    """The networks section; returns it (a mapping, {} if it is not one) and the valid
    subnets by network name, and adds each subnet to ``segments``."""
    networks = _section("networks", topology.get("networks"), problems,
                        "a mapping of network name to {subnet: 10.213.1.0/24}")
    subnets = {}
    for name, net in networks.items():
        where = "networks.%s" % name
        _name(where, "network", name, problems)
        if not _mapping(where, net, problems, "a mapping like {subnet: 10.213.1.0/24}"):
            continue
        _unknown(where, net, NETWORK_KEYS, problems)
        if net.get("subnet") is None:
            problems.append("%s.subnet: missing; expected a network in CIDR form like "
                            "10.213.1.0/24" % where)
        else:
            subnet = _subnet(where + ".subnet", net["subnet"], problems, host_addresses)
            if subnet is not None:
                subnets[name] = subnet
                segments.append((where, subnet))
        for key in NETWORK_BOOLS:
            if key in net:
                _bool("%s.%s" % (where, key), net[key], problems)
        problems.append(mtu_problem(where + ".mtu", net.get("mtu")))
    return networks, subnets


def _validate_nodes(topology, problems, resolve, defaults_jail, networks, subnets):
    """The nodes section; returns it and the interface names each node already has."""
    nodes = _section("nodes", topology.get("nodes"), problems,
                     "a mapping of node name to its settings")
    if not nodes and isinstance(topology.get("nodes"), (dict, type(None))):
        problems.append("nodes: the lab has no nodes; expected at least one")
    # A section that is not a mapping is one problem, not one more per reference to it.
    networks_known = isinstance(topology.get("networks"), (dict, type(None)))
    used = {}    # (network, ip) -> node
    ifnames = {}
    for name, node in nodes.items():
        where = "nodes.%s" % name
        _name(where, "node", name, problems)
        node = {} if node is None else node
        if not _mapping(where, node, problems, "a mapping like {networks: [lan]}"):
            continue
        _unknown(where, node, NODE_KEYS, problems)
        _node_settings(where, node, problems, resolve)
        _node_content(where, node, problems)
        if "hostname" in node:
            problems.append(hostname_problem(where + ".hostname", node["hostname"]))
        if "host" in node and (not isinstance(node["host"], str) or not node["host"]):
            problems.append(_wrong(where + ".host", node["host"], "an inventory host name"))
        node_jail = node.get("jail") if isinstance(node.get("jail"), dict) else {}
        _jail(where, defaults_jail, node_jail, problems)
        joined = _node_networks_problems(where + ".networks", node.get("networks") or [],
                                         subnets, networks if networks_known else None,
                                         used, problems)
        ifnames[name] = set(["lo"] + ["eth%d" % i for i in range(len(joined or []))])
    return nodes, ifnames


def _validate_links(topology, problems, host_addresses, nodes, ifnames, segments):
    """The links section; returns it (a list, [] if it is not one), adds each link's
    subnet to ``segments`` and each endpoint's interface to ``ifnames``."""
    links = topology.get("links")
    if links is None:
        return []
    if not isinstance(links, list):
        problems.append(_wrong("links", links, "a list of links like [a:eth1, b:eth1]"))
        return []
    nodes_known = isinstance(topology.get("nodes"), (dict, type(None)))
    for index, link in enumerate(links):
        _validate_link("links[%d]" % index, link, problems, host_addresses, nodes,
                       nodes_known, ifnames, segments)
    return links


def _validate_link(where, link, problems, host_addresses, nodes, nodes_known, ifnames,
                   segments):
    if isinstance(link, dict):
        _unknown(where, link, LINK_KEYS, problems)
        if link.get("subnet") is not None:
            subnet = _subnet(where + ".subnet", link["subnet"], problems, host_addresses)
            if subnet is not None:
                segments.append((where, subnet))
        problems.append(mtu_problem(where + ".mtu", link.get("mtu")))
        ends, ends_where = link.get("endpoints"), where + ".endpoints"
    elif isinstance(link, list):
        ends, ends_where = link, where
    else:
        problems.append(_wrong(where, link, "two endpoints like [a:eth1, b:eth1] or "
                               "{endpoints: [a:eth1, b:eth1], subnet: 10.213.9.0/30}"))
        return
    if (not isinstance(ends, list) or len(ends) != 2
            or not all(isinstance(e, str) for e in ends)):
        problems.append(_wrong(ends_where, ends, "two endpoints like [node1:eth1, "
                               "node2:eth1]"))
        return
    for end in ends:
        _validate_endpoint(where, end, problems, nodes, nodes_known, ifnames)
    if ends[0].partition(":")[0] == ends[1].partition(":")[0]:
        problems.append("%s: both ends are on node %s; expected two different nodes" % (
            where, ends[0].partition(":")[0]))


def _validate_endpoint(where, end, problems, nodes, nodes_known, ifnames):
    node, sep, ifname = end.partition(":")
    if not sep:
        problems.append("%s: '%s' has no interface; expected node:ifname like "
                        "a:eth1" % (where, end))
    elif node not in nodes:
        if nodes_known:
            problems.append("%s: unknown node '%s' in '%s'" % (where, node, end))
    elif ifname_problem(where, ifname) or not IFNAME_RE.fullmatch(ifname):
        problems.append("%s: interface '%s' in '%s' is invalid; expected node:ifname "
                        "with 1-15 characters of A-Z, a-z, 0-9, '_', '.' and '-'" % (
                            where, ifname, end))
    elif ifname in ifnames.get(node, set()):
        problems.append("%s: interface %s of node %s is already used" % (
            where, ifname, node))
    else:
        ifnames.setdefault(node, set()).add(ifname)


def _validate_overlaps(segments, problems):
    """No two subnets of one family may overlap."""
    for position, (where, subnet) in enumerate(segments):
        for other, other_subnet in segments[:position]:
            if subnet.version == other_subnet.version and subnet.overlaps(other_subnet):
                problems.append("%s.subnet: %s overlaps %s (%s); expected subnets of their "
                                "own" % (where, subnet, other, other_subnet))


def _validate_vnis(networks, links, problems):
    """Explicit VNIs: in range, each used once."""
    vnis = [("networks.%s.vni" % n, v.get("vni")) for n, v in networks.items()
            if isinstance(v, dict)]
    vnis += [("links[%d].vni" % i, l.get("vni")) for i, l in enumerate(links)
             if isinstance(l, dict)]
    seen = {}
    for where, vni in vnis:
        if vni is None:
            continue
        if not isinstance(vni, int) or isinstance(vni, bool) or not 1 <= vni <= MAX_VNI:
            problems.append("%s: %r is not a VXLAN network identifier; expected 1-%d" % (
                where, vni, MAX_VNI))
        elif vni in seen:
            problems.append("%s: VNI %d is already used by %s" % (where, vni, seen[vni]))
        else:
            seen[vni] = where


def gateway(subnet):
    """The host's address on a network of a one-host lab: its first address."""
    return subnet.network_address + 1


def _reserved(subnet):
    return {subnet.network_address, subnet.broadcast_address, gateway(subnet)}


def keep_current(subnet, taken, current=()):
    """The first of ``current`` (addresses an object has now) that is in ``subnet`` and still
    free, else None."""
    for address in current:
        ip = ipaddress.ip_address(address.split("/")[0])
        if ip in subnet and ip not in _reserved(subnet) and ip not in taken:
            return ip
    return None


def lowest_free(subnet, taken, start=None):
    """The lowest free address of ``subnet`` from ``start`` on (its first host when None):
    a caller that only ever adds to ``taken`` passes the last one found, so giving N nodes
    their addresses reads each address once, not N times."""
    reserved = _reserved(subnet)
    ip = max(start, subnet.network_address + 1) if start is not None else \
        subnet.network_address + 1
    while ip < subnet.broadcast_address or (subnet.num_addresses <= 2 and ip in subnet):
        if ip not in reserved and ip not in taken:
            return ip
        ip += 1
    return None


def highest_free(subnet, taken):
    ip = subnet.broadcast_address - 1
    while ip > subnet.network_address:
        if ip not in _reserved(subnet) and ip not in taken:
            return ip
        ip -= 1
    return None


def _merge(defaults, node, key):
    value = dict(defaults.get(key) or {})
    value.update(node.get(key) or {})
    return value


def derive_vni(lab, key, used):
    """A VNI from a hash of the lab and the segment's key, the next free one on a clash."""
    vni = int(hashlib.sha1(("%s/%s" % (lab, key)).encode()).hexdigest()[:6], 16) % MAX_VNI + 1
    while vni in used:
        vni = vni % MAX_VNI + 1
    return vni


def link_key(link):
    return "link/" + "|".join(sorted(str(e) for e in _link_endpoints(link)))


def segment_vnis(topology):
    """{("network", name) or ("link", index): VNI}: explicit ones as given, the others
    derived (``derive_vni``) in the order of their keys, so every host computes the same."""
    lab = topology["lab"]
    keys = dict((("network", n), "network/" + n) for n in topology.get("networks") or {})
    specs = dict((("network", n), v or {}) for n, v in (topology.get("networks") or {}).items())
    for index, link in enumerate(topology.get("links") or []):
        keys[("link", index)] = link_key(link)
        specs[("link", index)] = link if isinstance(link, dict) else {}
    vnis = dict((k, specs[k]["vni"]) for k in keys if specs[k].get("vni"))
    used = set(vnis.values())
    for segment in sorted((k for k in keys if k not in vnis), key=lambda k: keys[k]):
        vnis[segment] = derive_vni(lab, keys[segment], used)
        used.add(vnis[segment])
    return vnis


def running_hosts(fleet):
    """{("netns" or "node", name): (index, host)} of the first host of the fleet where each
    namespace and container is now. One pass over the fleet, so placing N nodes reads each
    host's view once. An unreachable host's state is unknown: nothing is found there."""
    found = {}
    for index, member in enumerate(fleet):
        current = member.get("current") or {}
        for kind, items in (("netns", current.get("namespaces")),
                            ("node", current.get("containers"))):
            for item in items or []:
                found.setdefault((kind, item.get("name")), (index, member["name"]))
    return found


def running_host(lab, name, found):
    """The first host of the fleet where node ``name`` runs now (its namespace or container
    is there), from ``running_hosts``, or None."""
    seen = [f for f in (found.get(("netns", netns_name(lab, name))), found.get(("node", name)))
            if f]
    return min(seen)[1] if seen else None


def place(topology, fleet, record=None):
    """{node: host}. A node's ``host:`` wins; a node that runs on a host of the fleet stays
    there; a node the lab's ``record`` (the plan of the last build) places on a host of the
    fleet stays there, whether that host is unreachable or lost its nodes; every other node
    goes, in the order of the file, to the reachable host with the fewest nodes so far (the
    first in the fleet's order on a tie). So adding a host moves nothing that is placed, a
    host down or restarted moves nothing, and removing a host moves only its nodes."""
    hosts = [m["name"] for m in fleet]
    reachable = [m["name"] for m in fleet if not m.get("unreachable")]
    recorded = dict((n, v.get("host")) for n, v in ((record or {}).get("nodes") or {}).items())
    lab, nodes = topology["lab"], topology["nodes"]
    placement, load = {}, dict((h, 0) for h in hosts)
    problems, running = [], running_hosts(fleet)
    for name, node in nodes.items():
        wanted = (node or {}).get("host")
        if wanted is not None and wanted not in load:
            problems.append("nodes.%s.host: '%s' is not one of the lab's hosts (%s)" % (
                name, wanted, ", ".join(hosts)))
            continue
        where = wanted or running_host(lab, name, running)
        if where is None and recorded.get(name) in load:
            where = recorded[name]
        if where is not None:
            placement[name] = where
            load[where] += 1
    if problems:
        raise TopologyError(problems)
    for name in nodes:
        if name not in placement:
            where = min(reachable, key=lambda h: (load[h], hosts.index(h)))
            placement[name] = where
            load[where] += 1
    return dict((name, placement[name]) for name in nodes)


def underlay_mtu(fleet):
    """The MTU every stretched segment gets: the smallest underlay MTU of the fleet minus
    what VXLAN adds (50 bytes over IPv4, 70 over IPv6). Raises TopologyError naming every
    host whose underlay is unknown."""
    problems, mtus, families = [], [], set()
    for member in fleet:
        underlay = member.get("underlay") or {}
        try:
            family = ipaddress.ip_address(str(underlay.get("address"))).version
        except ValueError:
            problems.append("fleet.%s.underlay: %r is not an IP address; expected the address "
                            "the other hosts reach it at (set nslab_underlay or ansible_host "
                            "for this host)" % (member["name"], underlay.get("address")))
            continue
        if not underlay.get("mtu"):
            problems.append("fleet.%s.underlay: no interface of the host holds %s; expected "
                            "the host's own address on the underlay" % (
                                member["name"], underlay.get("address")))
            continue
        families.add(family)
        mtus.append(underlay["mtu"] - OVERHEAD[family])
    if len(families) > 1:
        problems.append("fleet: the hosts' underlay addresses mix IPv4 and IPv6; expected "
                        "one family")
    if problems:
        raise TopologyError(problems)
    return min(mtus)


def newest_record(fleet):
    """The lab's record (the plan of its last build, kept on every host) with the highest
    generation among the reachable hosts, or None."""
    records = [m["record"] for m in fleet if not m.get("unreachable") and m.get("record")]
    return max(records, key=lambda r: r.get("generation", 0)) if records else None


def with_recorded_underlays(fleet, record):
    """The fleet with each unreachable host's state unknown (nothing of it is read) and its
    underlay taken from ``record``. Raises TopologyError naming every unreachable host that no
    record knows: its nodes and addresses could be anywhere."""
    known = (record or {}).get("hosts") or {}
    members, problems = [], []
    for member in fleet:
        if member.get("unreachable"):
            if member["name"] not in known:
                problems.append("fleet.%s: unreachable, and no reachable host has a record of "
                                "the lab that names it; expected the host back, or the lab "
                                "built once with it" % member["name"])
                continue
            member = dict(member, current={}, underlay=known[member["name"]])
        members.append(member)
    if problems:
        raise TopologyError(problems)
    return members


def plan_record(compiled, fleet, previous):
    """What each host keeps of a lab over several hosts once built: where every node runs,
    its addresses, each host's underlay and bridge addresses, the VNIs. Its generation
    grows by one when the plan differs from ``previous`` (the newest record), so every
    host writes the same record and a rerun that changes nothing rewrites nothing."""
    plan = {
        "hosts": dict((m["name"], dict((k, (m.get("underlay") or {}).get(k))
                                       for k in ("address", "mtu"))) for m in fleet),
        "nodes": dict((name, {"host": node["host"],
                              "addresses": dict((i["network"], i["address"])
                                                for i in node["interfaces"] if "network" in i)})
                      for name, node in compiled["nodes"].items()),
        "networks": dict((name, {"vni": net["vni"], "bridge_addresses": net["bridge_addresses"]})
                         for name, net in compiled["networks"].items()),
        "links": [{"endpoints": link["endpoints"], "vni": link.get("vni")}
                  for link in compiled["links"]],
    }
    previous = previous or {}
    generation = previous.get("generation", 0)
    if dict((key, previous.get(key)) for key in plan) != plan:
        generation += 1
    return dict(plan, generation=generation)


class LabBuild:
    """What compiling a lab for one host works from: the topology's sections, the fleet,
    where every node runs (``placement``), the stretched MTU and the VNIs. Built once by
    ``compile_lab``, read by each of its steps."""

    def __init__(self, topology, current, fleet, host):
        placed_here = not fleet        # no fleet: every node is built on this one host
        self.record = newest_record(fleet or [])
        if fleet:
            fleet = with_recorded_underlays(fleet, self.record)
            names = [m["name"] for m in fleet]
            if host not in names:
                raise TopologyError("host: '%s' is not one of the lab's hosts (%s)" % (
                    host, ", ".join(names)))
            current = next(m for m in fleet if m["name"] == host).get("current") or {}
        else:
            fleet = [{"name": host, "current": current or {}}]
        self.topology, self.host, self.fleet = topology, host, fleet
        self.current = current or {}
        self.multi = len(fleet) > 1
        self.lab = topology["lab"]
        self.defaults = topology.get("defaults") or {}
        self.networks = dict((n, v or {}) for n, v in (topology.get("networks") or {}).items())
        self.subnets = dict((n, ipaddress.ip_network(str(v["subnet"])))
                            for n, v in self.networks.items())
        self.nodes = dict((n, v or {}) for n, v in topology["nodes"].items())
        self.placement = (dict((n, host) for n in self.nodes) if placed_here
                          else place(topology, fleet, self.record))
        self.underlay = dict((m["name"], (m.get("underlay") or {}).get("address"))
                             for m in fleet)
        self.stretched_mtu = underlay_mtu(fleet) if self.multi else None
        self.vnis = segment_vnis(topology) if self.multi else {}
        self.bridge_hosts = self._bridge_hosts()

    def _bridge_hosts(self):
        """Bridges of a lab over several hosts: one per host that has a member of the
        network (each gets an address of its own from the top of the subnet)."""
        if not self.multi:
            return dict((n, [self.host]) for n in self.networks)
        return dict((n, [m["name"] for m in self.fleet if any(
            self.placement[x] == m["name"] and n in _node_networks(self.nodes[x])
            for x in self.nodes)]) for n in self.networks)

    def mtu(self, spec, where):
        """A segment's MTU: as given, or the stretched one in a lab over several hosts."""
        stretched = self.stretched_mtu
        if stretched and spec.get("mtu") and spec["mtu"] > stretched:
            raise TopologyError("%s.mtu: %d does not fit in VXLAN over the hosts' underlay; "
                                "expected at most %d" % (where, spec["mtu"], stretched))
        return spec.get("mtu") or stretched

    def current_addresses(self, name):
        """Node ``name``'s addresses where it runs now (its host first): kept, sticky."""
        netns = netns_name(self.lab, name)
        ordered = sorted(self.fleet, key=lambda m: m["name"] != self.placement[name])
        for member in ordered:
            found = ((member.get("current") or {}).get("netns_addresses") or {}).get(netns)
            if found:
                return found
        return ()


class AddressPlan:
    """Every node's address on each of its networks and, over several hosts, every
    bridge's, lab-wide: given ones, then kept ones (current, then recorded), then new
    ones, so nobody's address goes to a newcomer."""

    def __init__(self, build):
        self.build = build
        self.taken = dict((n, set()) for n in build.subnets)
        self.nodes = {}       # (node, net) -> ip
        self.bridges = {}     # (host, net) -> ip
        self._given()
        self._node_kept(lambda name, net: build.current_addresses(name))
        self._node_kept(self._recorded)
        if build.multi:
            self._bridges_kept()
        self._node_new()
        if build.multi:
            self._bridges_new()

    def _take(self, table, key, ip):
        table[key] = ip
        self.taken[key[1]].add(ip)

    def _given(self):
        for name, node in self.build.nodes.items():
            for net, address in _node_networks(node).items():
                if address is not None:
                    self._take(self.nodes, (name, net), ipaddress.ip_address(str(address)))

    def _recorded(self, name, net):
        """A node whose host is unreachable, or lost it, keeps its recorded address."""
        recorded = (self.build.record or {}).get("nodes") or {}
        have = ((recorded.get(name) or {}).get("addresses") or {}).get(net)
        return [have] if have else []

    def _node_kept(self, candidates):
        subnets = self.build.subnets
        for name, node in self.build.nodes.items():
            for net in _node_networks(node):
                if (name, net) in self.nodes:
                    continue
                ip = keep_current(subnets[net], self.taken[net], candidates(name, net))
                if ip is not None:
                    self._take(self.nodes, (name, net), ip)

    def _bridges_kept(self):
        build = self.build
        recorded_networks = (build.record or {}).get("networks") or {}
        for net in build.networks:
            for member in build.fleet:
                if member["name"] not in build.bridge_hosts[net]:
                    continue
                have = [a for b in (member.get("current") or {}).get("bridges") or []
                        if b.get("name") == bridge_name(build.lab, net)
                        for a in b.get("addresses")]
                recorded_bridge = recorded_networks.get(net, {}).get("bridge_addresses") or {}
                if member["name"] in recorded_bridge:    # after the one it has, if any
                    have.append(recorded_bridge[member["name"]])
                ip = keep_current(build.subnets[net], self.taken[net], have)
                if ip is not None:
                    self._take(self.bridges, (member["name"], net), ip)

    def _node_new(self):
        subnets = self.build.subnets
        found = {}      # net -> the last address given: nothing below it is free
        for name, node in self.build.nodes.items():
            for net in _node_networks(node):
                if (name, net) not in self.nodes:
                    ip = lowest_free(subnets[net], self.taken[net], found.get(net))
                    found[net] = ip
                    if ip is None:
                        raise TopologyError("networks.%s: %s has no free address left for "
                                            "node %s" % (net, subnets[net], name))
                    self._take(self.nodes, (name, net), ip)

    def _bridges_new(self):
        subnets = self.build.subnets
        for net in self.build.networks:
            for where in self.build.bridge_hosts[net]:
                if (where, net) not in self.bridges:
                    ip = highest_free(subnets[net], self.taken[net])
                    if ip is None:
                        raise TopologyError("networks.%s: %s has no free address left for "
                                            "the bridge on host %s" % (net, subnets[net], where))
                    self._take(self.bridges, (where, net), ip)


def compile_lab(topology, current=None, fleet=None, host=None):
    """The objects each module converges for a valid topology, on one host.

    ``current``: what the lab has now on the host, as nslab_info reports it: its
    ``netns_addresses`` keep addresses sticky, and whatever it has that the topology no
    longer names is listed in ``remove``.
    ``fleet``: for a lab over several hosts, every host of the lab in a fixed order, each
    ``{name, underlay: {address, mtu}, current}`` (``current`` as above, for that host);
    ``host`` names the one to compile for. Every host compiles the same lab-wide plan
    (placement, addresses, VNIs, MTUs) from the same inputs and gets its own share.
    A member marked ``unreachable`` is a host that could not be read: its state is
    unknown, so the newest ``record`` among the reachable members (each member's
    nslab_info ``record``) keeps its nodes placed on it with their addresses, and gives
    its underlay; it is never given new nodes.
    Returns a dict with ``lab``, ``nodes`` (per node: its host, netns, interfaces and
    addresses), ``networks`` and ``links`` (where they are, VNI, MTU), and this host's
    ``namespaces``, ``bridges``, ``veths``, ``vxlans``, ``containers``, ``jails``,
    ``cgroups``, ``hosts`` (name -> address, lab-wide, for /etc/hosts) and ``remove``;
    over several hosts also ``record`` (``plan_record``), for each host to keep.
    """
    build = LabBuild(topology, current, fleet, host)
    addresses = AddressPlan(build)
    result = {"lab": build.lab, "nodes": {}, "networks": {}, "links": [], "namespaces": [],
              "bridges": [], "veths": [], "vxlans": [], "containers": [], "jails": [],
              "cgroups": [], "hosts": {}}
    net_mtus = _compile_networks(result, build, addresses)
    for name, node in build.nodes.items():
        _compile_node(result, build, addresses, net_mtus, name, node)
    for index, link in enumerate(topology.get("links") or []):
        _compile_link(result, build, index, link)
    _compile_netkeys(result, topology, build.subnets, build.placement, host, build.current)
    result["ports"] = compile_ports(build.lab, build.nodes, result, host)
    if not result["ports"] and ports_idle(build.current):
        result["ports"] = None
    result["remove"] = removals(result, build.current)
    if build.multi:
        result["record"] = plan_record(result, build.fleet, build.record)
    return result


def _compile_networks(result, build, addresses):
    """Each network's report, and this host's bridge (and VXLAN over several hosts) for
    it; returns each network's MTU."""
    lab, host, multi = build.lab, build.host, build.multi
    peers = [build.underlay[m["name"]] for m in build.fleet if m["name"] != host]
    net_mtus = {}
    for net, spec in build.networks.items():
        subnet = build.subnets[net]
        net_mtus[net] = build.mtu(spec, "networks.%s" % net)
        report = {"hosts": build.bridge_hosts[net], "bridge": bridge_name(lab, net)}
        if multi:
            report.update(vni=build.vnis[("network", net)], mtu=net_mtus[net],
                          vxlan=vxlan_name(lab, net),
                          bridge_addresses=dict(("%s" % h, "%s/%d" % (
                              addresses.bridges[(h, net)], subnet.prefixlen))
                              for h in build.bridge_hosts[net]))
        result["networks"][net] = report
        if host not in build.bridge_hosts[net]:
            continue
        address = addresses.bridges[(host, net)] if multi else gateway(subnet)
        bridge = {"name": bridge_name(lab, net),
                  "addresses": ["%s/%d" % (address, subnet.prefixlen)],
                  "nat": bool(spec.get("nat")), "ipv6": bool(spec.get("ipv6"))}
        if net_mtus[net]:
            bridge["mtu"] = net_mtus[net]
        # Passed on only when the file sets it: nslab_bridge's default is the topology's.
        if "isolate_host" in spec:
            bridge["isolate_host"] = spec["isolate_host"]
        result["bridges"].append(bridge)
        if multi:
            # Every other host is a peer, whether it has members of the network or not: a
            # node added on any host then needs no change on the others.
            result["vxlans"].append({"name": vxlan_name(lab, net),
                                     "vni": build.vnis[("network", net)],
                                     "local": build.underlay[host], "peers": peers,
                                     "bridge": bridge_name(lab, net), "mtu": net_mtus[net]})
    return net_mtus


def _compile_node(result, build, addresses, net_mtus, name, node):
    """Node ``name``'s report and /etc/hosts entry; on its host, its veths to the
    bridges, namespace, container, jail and cgroup."""
    lab = build.lab
    netns = netns_name(lab, name)
    here = build.placement[name] == build.host
    interfaces = []
    for index, net in enumerate(_node_networks(node)):
        subnet, ip = build.subnets[net], addresses.nodes[(name, net)]
        ifname = "eth%d" % index
        interfaces.append({"name": ifname, "network": net,
                           "address": "%s/%d" % (ip, subnet.prefixlen)})
        result["hosts"].setdefault(name, str(ip))
        if not here:
            continue
        veth = {"name": host_end_name(lab, name, index), "bridge": bridge_name(lab, net),
                "peer": {"name": ifname, "netns": netns,
                         "addresses": ["%s/%d" % (ip, subnet.prefixlen)]}}
        if net_mtus[net]:
            veth["mtu"] = net_mtus[net]
        # As given only: nslab_veth's default (on) is the topology's.
        if "antispoof" in build.networks[net]:
            veth["antispoof"] = build.networks[net]["antispoof"]
        result["veths"].append(veth)
    result["nodes"][name] = {"netns": netns, "interfaces": interfaces,
                             "host": build.placement[name]}
    if here:
        _compile_container(result, build.defaults, name, node, netns)


def _compile_container(result, defaults, name, node, netns):
    """A node built on this host: its namespace, container, jail and cgroup (the last
    three carry its name)."""
    result["namespaces"].append({"name": netns, "types": ["net"]})
    container = {"name": name, "netns": netns, "jail": name, "cgroup": name,
                 "hostname": node.get("hostname") or name,
                 "command": node.get("command", defaults.get("command", [])),
                 "env": _merge(defaults, node, "env"),
                 "cap_add": node.get("cap_add", defaults.get("cap_add", [])),
                 "cap_drop": node.get("cap_drop", defaults.get("cap_drop", []))}
    result["containers"].append(container)
    jail = dict(_merge(defaults, node, "jail") or {"source": "busybox"}, name=name)
    disk = node.get("disk", defaults.get("disk"))
    if disk is not None:
        jail["disk"] = disk
    result["jails"].append(jail)
    result["cgroups"].append(dict(_merge(defaults, node, "limits"), name=name))
    _compile_node_content(result, container, node)


def _compile_link(result, build, index, link):
    """Link ``index``: its ends' interfaces and report; a veth when both ends are on this
    host, a VXLAN for this host's end of a link between hosts."""
    lab, host = build.lab, build.host
    ends = [_endpoint(e) for e in _link_endpoints(link)]
    spec = link if isinstance(link, dict) else {}
    end_hosts = [build.placement[n] for n, _ifname in ends]
    tunnel = end_hosts[0] != end_hosts[1]
    end_addresses = [None, None]
    if spec.get("subnet"):
        subnet = ipaddress.ip_network(str(spec["subnet"]))
        hosts = list(subnet.hosts())
        end_addresses = ["%s/%d" % (hosts[i], subnet.prefixlen) for i in (0, 1)]
    for (node, ifname), address in zip(ends, end_addresses):
        result["nodes"][node]["interfaces"].append({
            "name": ifname, "link": index, "address": address})
    mtu = build.mtu(spec, "links[%d]" % index) if tunnel else spec.get("mtu")
    report = {"endpoints": ["%s:%s" % e for e in ends], "hosts": end_hosts,
              "tunnel": tunnel}
    if tunnel:
        report.update(vni=build.vnis[("link", index)], mtu=mtu)
    result["links"].append(report)
    if not tunnel and end_hosts[0] == host:
        veth = {"name": ends[0][1], "netns": netns_name(lab, ends[0][0]),
                "peer": {"name": ends[1][1], "netns": netns_name(lab, ends[1][0])}}
        if mtu:
            veth["mtu"] = mtu
        if end_addresses[0]:
            veth["addresses"] = [end_addresses[0]]
            veth["peer"]["addresses"] = [end_addresses[1]]
        result["veths"].append(veth)
    for side, ((node, ifname), address) in enumerate(zip(ends, end_addresses)):
        if tunnel and end_hosts[side] == host:
            result["vxlans"].append({
                "name": ifname, "netns": netns_name(lab, node),
                "vni": build.vnis[("link", index)], "local": build.underlay[host],
                "peers": [build.underlay[end_hosts[1 - side]]], "mtu": mtu,
                "addresses": [address] if address else []})


def _canonical_route(route):
    via = ipaddress.ip_address(str(route["via"]))
    to = route["to"]
    if to != "default":
        net = ipaddress.ip_network(str(to))
        to = "default" if net.prefixlen == 0 else str(net)
    return {"to": to, "via": str(via)}, via.version


def node_routes(node, networks, subnets, bridge_address):
    """A (valid) node's routes as nslab_route takes them: its ``routes``, a default route
    per attachment ``gateway``, then one via the bridge of its first ``nat`` network of a
    family it has no default route for. ``bridge_address(net)``: the bridge's address on
    the node's host, or None."""
    routes, defaults = [], set()
    attachments = node.get("networks") if isinstance(node.get("networks"), dict) else {}
    explicit = [_canonical_route(r) for r in node.get("routes") or []]
    explicit += [_canonical_route({"to": "default", "via": o["gateway"]})
                 for o in attachments.values() if isinstance(o, dict) and o.get("gateway")]
    for route, family in explicit:
        routes.append(route)
        if route["to"] == "default":
            defaults.add(family)
    for net in _node_networks(node):
        address = bridge_address(net)
        if networks[net].get("nat") and address and subnets[net].version not in defaults:
            routes.append({"to": "default", "via": address})
            defaults.add(subnets[net].version)
    return routes


def _link_conditions(topology, placement, host, tunnels):
    """nslab_link's ``links`` on this host: every attachment of a node here and every
    point-to-point link whose first endpoint is here (its veth), with its netem (None:
    none) and state (up unless said), so a key taken out of the file is undone too.
    ``tunnels``: indexes of links across hosts (VXLAN, not veths: left out)."""
    conditions = []
    for name, node in topology["nodes"].items():
        if placement[name] != host:
            continue
        networks = (node or {}).get("networks") or []
        for index, net in enumerate(networks):
            options = networks[net] if isinstance(networks, dict) else None
            options = options if isinstance(options, dict) else {}
            conditions.append({"node": name, "interface": "eth%d" % index,
                               "netem": options.get("netem"),
                               "state": options.get("state", "up")})
    for index, link in enumerate(topology.get("links") or []):
        node, ifname = _endpoint(_link_endpoints(link)[0])
        if placement[node] != host or index in tunnels:
            continue
        spec = link if isinstance(link, dict) else {}
        conditions.append({"node": node, "interface": ifname, "netem": spec.get("netem"),
                           "state": spec.get("state", "up")})
    return conditions


def nothing_to_undo(conditions, routes, current):
    """(links, routes): True where nslab_link or nslab_route would find nothing to do -
    the file asks no netem, no link down and no route, and what the host has now (nslab_info's
    read of this run: each veth end's root qdisc and state, each namespace's proto-213
    routes) holds nothing of theirs to undo. Then lab.yml skips that module: it would read
    every namespace again to change nothing (issue #12)."""
    veths = current.get("veths") or []
    links = (all(c.get("netem") is None and c.get("state", "up") == "up" for c in conditions)
             and all(v.get("up", True) and v.get("qdisc") in (None,) + DEFAULT_KINDS
                     for v in veths))
    quiet = (not any(n["routes"] for n in routes)
             and not any((current.get("netns_routes") or {}).values()))
    # Without this run's read (an older nslab_info reports no routes), both modules run.
    known = "netns_routes" in current and all("qdisc" in v for v in veths)
    return known and links, known and quiet


def _compile_netkeys(result, topology, subnets, placement, host, current):
    """Adds ``routes`` (nslab_route's ``nodes``: every node on this host, with all of its
    routes, so a route taken out of the file is removed) and ``conditions`` (nslab_link's
    ``links``) to a compiled lab; each empty when there is nothing to do (see
    ``nothing_to_undo``)."""
    lab = topology["lab"]
    result["conditions"] = _link_conditions(
        topology, placement, host,
        set(i for i, link in enumerate(result["links"]) if link["tunnel"]))
    # A veth kept down by nslab_link: nslab_veth must not bring it back up on each run.
    down = set((netns_name(lab, c["node"]), c["interface"]) for c in result["conditions"]
               if c["state"] == "down")
    for veth in result["veths"]:
        if set([(veth.get("netns"), veth["name"]),
                (veth["peer"].get("netns"), veth["peer"]["name"])]) & down:
            veth["keep_state"] = True
    networks = dict((n, v or {}) for n, v in (topology.get("networks") or {}).items())
    bridges = dict((b["name"], b["addresses"][0].split("/")[0]) for b in result["bridges"])
    result["routes"] = [
        {"netns": netns_name(lab, name),
         "routes": node_routes(node or {}, networks, subnets,
                               lambda net: bridges.get(bridge_name(lab, net)))}
        for name, node in topology["nodes"].items() if placement[name] == host]
    idle_links, idle_routes = nothing_to_undo(result["conditions"], result["routes"], current)
    if idle_links:
        result["conditions"] = []
    if idle_routes:
        result["routes"] = []


def removal_plan(lab, current):
    """What ``state=absent`` removes on a host: everything ``current`` (nslab_info's view
    of the lab there) has, as ``remove``, in the shape ``compile_lab`` returns. It needs
    nothing of the topology but the lab's name, so a file that no longer validates (or
    never did) still removes what was built."""
    current = current or {}
    empty = {"lab": lab, "nodes": {}, "networks": {}, "links": [], "namespaces": [],
             "bridges": [], "veths": [], "vxlans": [], "containers": [], "jails": [],
             "cgroups": [], "hosts": {}}
    # ports: null when the host holds none of the lab's, record: the lab-wide plan the
    # host keeps (null: none); either null, lab.yml leaves its module out (issue #12).
    return dict(empty, remove=removals(empty, current),
                ports=None if ports_idle(current) else [], record=current.get("record"))


def removals(lab, current):
    """What ``current`` (nslab_info's view of the lab) has that the compiled ``lab`` does
    not: removed nodes, networks and links, as items the modules take with state=absent."""
    def names(items):
        return set(i["name"] for i in items)

    def missing(kind, keep):
        return [{"name": n} for n in sorted(names(current.get(kind, [])) - keep)]

    nodes = set(c["name"] for c in lab["containers"])
    namespaces = names(lab["namespaces"])
    veth_ends = set((v.get("netns"), v["name"]) for v in lab["veths"])
    veth_ends |= set((v["peer"].get("netns"), v["peer"]["name"]) for v in lab["veths"])
    tunnels = set((v.get("netns"), v["name"]) for v in lab.get("vxlans", []))
    return {
        "containers": missing("containers", nodes),
        "namespaces": missing("namespaces", namespaces),
        "bridges": missing("bridges", names(lab["bridges"])),
        # Ends inside removed namespaces go with them; only surviving ones are listed.
        "veths": sorted(({"name": v["name"], "netns": v["netns"]}
                         for v in current.get("veths", [])
                         if (v["netns"], v["name"]) not in veth_ends
                         and (v["netns"] is None or v["netns"] in namespaces)),
                        key=lambda v: (v["netns"] or "", v["name"])),
        "jails": missing("jails", nodes),
        "cgroups": missing("cgroups", nodes),
        "vxlans": sorted(({"name": v["name"], "netns": v["netns"]}
                          for v in current.get("vxlans", [])
                          if (v["netns"], v["name"]) not in tunnels
                          and (v["netns"] is None or v["netns"] in namespaces)),
                         key=lambda v: (v["netns"] or "", v["name"])),
    }


def fleet_view(results):
    """One view of each lab over its hosts, from nslab_info's results on every host
    (registered from a loop over the hosts: each names its host by ``item``)."""
    view = {}
    unreachable = [r.get("item", r.get("name")) for r in results if r.get("unreachable")]
    for result in results:
        host = result.get("item", result.get("name"))
        for lab, info in (result.get("labs") or {}).items():
            merged = view.setdefault(lab, {"nodes": {}, "hosts": {}})
            for container in info.get("containers") or []:
                merged["nodes"][container["name"]] = {
                    "host": host, "state": container.get("state"),
                    "pid": container.get("pid"), "addresses": container.get("addresses", [])}
            merged["hosts"][host] = {
                "bridges": [dict((k, b.get(k)) for k in ("name", "addresses", "mtu"))
                            for b in info.get("bridges") or []],
                "vxlans": [dict((k, v.get(k)) for k in ("name", "netns", "vni", "peers", "mtu"))
                           for v in info.get("vxlans") or []],
                "leftovers": info.get("leftovers") or []}
    # What is on an unreachable host is unknown; the newest record says what should be.
    for lab, merged in view.items():
        record = newest_record([{"record": ((r.get("labs") or {}).get(lab) or {}).get("record")}
                                for r in results if not r.get("unreachable")]) or {}
        for host in unreachable:
            merged["hosts"][host] = {"unreachable": True}
            for name, node in (record.get("nodes") or {}).items():
                if node.get("host") == host:
                    merged["nodes"][name] = {
                        "host": host, "state": "unknown", "pid": None,
                        "addresses": sorted((node.get("addresses") or {}).values())}
    return view


# --- A node's content and privileges: files, binds, sysctls, exec, userns, privileged ---

FILE_KEYS = {"path", "content", "template", "mode"}
BIND_KEYS = {"path", "source", "readonly"}
FILE_MAX = 1024 * 1024          # nslab_container's limit for one file
MODE_RE = re.compile(r"0?[0-7]{3}")


def _inside_path(where, value, problems, what):
    """An absolute path inside a node: normal form, not /, not where the init mounts."""
    if not isinstance(value, str):
        problems.append(_wrong(where, value, "an absolute path inside the node like %s" % what))
        return False
    problem = abspath_problem(where, value)
    if problem:
        problems.append(problem)
        return False
    if value == "/" or under(value, INIT_MOUNTS):
        problems.append("%s: '%s' is not allowed; expected an absolute path like %s, not / "
                        "and outside /proc, /sys and /dev" % (where, value, what))
        return False
    return True


def _files(where, value, problems):
    if not isinstance(value, list):
        problems.append(_wrong(where, value, "a list like [{path: /etc/motd, content: "
                               "\"hello\\n\"}, {path: /etc/frr/frr.conf, template: "
                               "templates/frr.conf.j2, mode: \"0640\"}]"))
        return
    seen = {}
    for index, entry in enumerate(value):
        at = "%s[%d]" % (where, index)
        if not _mapping(at, entry, problems, "a mapping like {path: /etc/motd, content: "
                        "\"hello\\n\"}"):
            continue
        _unknown(at, entry, FILE_KEYS, problems)
        if "path" not in entry:
            problems.append("%s.path: missing; expected the file's absolute path inside the "
                            "node like /etc/motd" % at)
        elif _inside_path(at + ".path", entry["path"], problems, "/etc/motd"):
            if entry["path"] in seen:
                problems.append("%s.path: '%s' is already written by %s[%d]; expected each "
                                "path once" % (at, entry["path"], where, seen[entry["path"]]))
            seen.setdefault(entry["path"], index)
        if ("content" in entry) == ("template" in entry):
            problems.append("%s: %s; expected exactly one of content (the text) or template "
                            "(a Jinja2 file, relative to the topology file)" % (
                                at, "both content and template are given"
                                if "content" in entry else "neither content nor template"))
        if "content" in entry:
            content = entry["content"]
            if not isinstance(content, str):
                problems.append(_wrong(at + ".content", content, "a string (quote numbers)"))
            elif "\0" in content or len(content.encode("utf-8")) > FILE_MAX:
                problems.append("%s.content: expected text without NUL bytes, at most %d "
                                "bytes" % (at, FILE_MAX))
        if "template" in entry:
            template = entry["template"]
            if not isinstance(template, str) or not template or "\0" in template:
                problems.append(_wrong(at + ".template", template, "the path of a Jinja2 "
                                       "template, relative to the topology file's directory, "
                                       "like templates/frr.conf.j2"))
        if "mode" in entry:
            mode = entry["mode"]
            if not isinstance(mode, str) or not MODE_RE.fullmatch(mode):
                problems.append(_wrong(at + ".mode", mode, "permission bits as a quoted "
                                       "octal string from \"0000\" to \"0777\", like \"0640\""))


def _binds(where, value, problems):
    if not isinstance(value, list):
        problems.append(_wrong(where, value, "a list like [{path: /data, source: /srv/data, "
                               "readonly: true}]"))
        return
    seen = set()
    for index, entry in enumerate(value):
        at = "%s[%d]" % (where, index)
        if not _mapping(at, entry, problems, "a mapping like {path: /data, source: "
                        "/srv/data}"):
            continue
        _unknown(at, entry, BIND_KEYS, problems)
        if "path" not in entry:
            problems.append("%s.path: missing; expected the absolute path inside the node "
                            "like /data" % at)
        elif _inside_path(at + ".path", entry["path"], problems, "/data"):
            if entry["path"] in seen:
                problems.append("%s.path: '%s' is bound twice; expected each path once" % (
                    at, entry["path"]))
            seen.add(entry["path"])
        if entry.get("source") is not None:
            source = entry["source"]
            problem = abspath_problem(at + ".source", source)
            if problem:
                problems.append(problem)
            elif source == "/" or under(source, INIT_MOUNTS + (STATE_ROOT,)):
                problems.append("%s.source: '%s' is not allowed; expected a host directory "
                                "other than /, outside /proc, /sys, /dev and %s" % (
                                    at, source, STATE_ROOT))
        if "readonly" in entry:
            _bool(at + ".readonly", entry["readonly"], problems)


def _sysctls(where, value, problems):
    if not _mapping(where, value, problems, "a mapping like {net.ipv4.ip_forward: 1}"):
        return
    for name, setting in value.items():
        problem = sysctl_problem("%s.%s" % (where, name), name)
        if problem:
            problems.append(problem)
        elif isinstance(setting, bool) or not isinstance(setting, (int, str)) or \
                not str(setting).strip() or "\n" in str(setting) or "\0" in str(setting):
            problems.append(_wrong("%s.%s" % (where, name), setting,
                                   "an integer or a one-line string like \"4096 87380\""))


def _exec(where, value, problems):
    if not _string_list(where, value, problems, "a list of shell commands like "
                        "[\"ip route\", \"vtysh -c 'show version'\"]"):
        return
    for index, command in enumerate(value):
        if not command.strip() or "\0" in command:
            problems.append("%s[%d]: %s is empty or holds a NUL byte; expected a shell "
                            "command" % (where, index, _show(command)))


def _node_content(where, node, problems):
    """files, binds, sysctls, exec, userns and privileged of a node."""
    if "files" in node:
        _files(where + ".files", node["files"], problems)
    if "binds" in node:
        _binds(where + ".binds", node["binds"], problems)
    if "sysctls" in node:
        _sysctls(where + ".sysctls", node["sysctls"], problems)
    if "exec" in node:
        _exec(where + ".exec", node["exec"], problems)
    for key in ("userns", "privileged"):
        if key in node:
            _bool("%s.%s" % (where, key), node[key], problems)
    if node.get("userns") is True and node.get("privileged") is True:
        problems.append("%s: userns and privileged are both true; expected at most one (a "
                        "privileged node keeps the host's root)" % where)


def _compile_node_content(result, container, node):
    """A valid node's content keys: files, binds, userns, privileged go to its container
    (nslab_container); sysctls to ``sysctls`` (nslab_sysctl, on its netns); exec to
    ``execs`` (nslab_exec, after it starts). A file's ``template`` is rendered on the
    controller by the nslab_lab role (lookup nslab_node_files) into ``content``; every file
    of the topology restarts its node when it changes (``restart``)."""
    files = {}
    for entry in node.get("files") or []:
        spec = {"mode": entry.get("mode", "0644"), "restart": True}
        if "template" in entry:
            spec["template"] = entry["template"]
        else:
            spec["content"] = entry["content"]
        files[entry["path"]] = spec
    if files:
        container["files"] = files
    if node.get("binds"):
        container["binds"] = [dict((k, b[k]) for k in ("path", "source", "readonly") if k in b)
                              for b in node["binds"]]
    for key in ("userns", "privileged"):
        if key in node:
            container[key] = node[key]
    sysctls = result.setdefault("sysctls", [])
    if node.get("sysctls"):
        sysctls.append({"netns": container["netns"], "sysctls": dict(
            (k, str(v)) for k, v in node["sysctls"].items())})
    execs = result.setdefault("execs", [])
    if node.get("exec"):
        execs.append({"name": container["name"], "commands": list(node["exec"])})

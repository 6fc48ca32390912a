# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lab's topology file: validated as a whole, then turned into what each host builds.

Pure: no kernel access. ``validate`` lists every problem of a topology at once;
``compile_lab`` turns a valid one into the object lists the modules converge
(namespaces, bridges, veths, jails, cgroups, containers), so a lab costs a fixed number
of module runs per host whatever its size.

Addresses are sticky: an address a node already has (``current``, read from the hosts) is
kept while it is still valid, so adding or removing a node never renumbers the others.
New nodes take the lowest free address, in the order of the file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from ansible.module_utils.nslab_validate import IFNAMSIZ, lab_problem

TOP_KEYS = {"lab", "description", "defaults", "networks", "nodes", "links"}
DEFAULT_KEYS = {"jail", "limits", "command", "env", "cap_add", "cap_drop"}
NETWORK_KEYS = {"subnet", "mtu", "nat", "ipv6"}
NODE_KEYS = {"networks", "jail", "limits", "command", "env", "hostname", "cap_add", "cap_drop",
             "host"}
LINK_KEYS = {"endpoints", "subnet", "mtu"}
LIMIT_KEYS = {"memory", "memory_high", "swap", "cpus", "cpu_weight", "cpuset", "cpuset_mems",
              "pids", "io", "io_weight"}
JAIL_SOURCES = {"busybox", "host", "debootstrap", "tarball", "directory"}
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
IFNAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$")
SIZE_RE = re.compile(r"^\d+(\.\d+)?\s*[KMGT]?i?B?$", re.IGNORECASE)


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


def netns_name(lab, node):
    return "%s-%s" % (lab, node)


def _unknown(where, data, allowed, problems):
    for key in sorted(set(data) - allowed):
        problems.append("%s: unknown key '%s'; expected one of %s" % (
            where, key, ", ".join(sorted(allowed))))


def _network(where, value, problems):
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        problems.append("%s: '%s' is not a network in CIDR form with its host bits zero "
                        "(e.g. 10.213.1.0/24)" % (where, value))
        return None
    if net.num_addresses < 4:
        problems.append("%s: %s is too small; expected room for a gateway and hosts (/30 or "
                        "larger)" % (where, net))
        return None
    return net


def _limits_problems(where, limits, problems):
    if not isinstance(limits, dict):
        problems.append("%s: expected a mapping like {memory: 64M, cpus: 0.5, pids: 64}" % where)
        return
    _unknown(where, limits, LIMIT_KEYS, problems)
    for key in ("memory", "memory_high", "swap"):
        if key in limits and not SIZE_RE.match(str(limits[key])):
            problems.append("%s.%s: '%s' is not a size; expected e.g. 64M or 1.5G" % (
                where, key, limits[key]))
    if "cpus" in limits:
        try:
            if float(limits["cpus"]) <= 0:
                raise ValueError
        except (TypeError, ValueError):
            problems.append("%s.cpus: '%s' is not a positive number of CPUs" % (
                where, limits["cpus"]))
    if "pids" in limits and (not isinstance(limits["pids"], int) or limits["pids"] < 1):
        problems.append("%s.pids: '%s' is not a positive whole number" % (where, limits["pids"]))


def _jail_problems(where, jail, problems):
    if not isinstance(jail, dict) or jail.get("source") not in JAIL_SOURCES:
        problems.append("%s: expected a mapping with source one of %s" % (
            where, ", ".join(sorted(JAIL_SOURCES))))


def _node_networks(node):
    """{network: address or None} of a node, in the order the file gives."""
    networks = node.get("networks") or []
    if isinstance(networks, list):
        return dict((n, None) for n in networks)
    return dict(networks)


def _endpoint(value):
    node, _sep, ifname = str(value).partition(":")
    return node, ifname


def _link_endpoints(link):
    return link.get("endpoints") if isinstance(link, dict) else link


def validate(topology):
    """Every problem of a topology, as sentences naming where and what was expected."""
    problems = []
    if not isinstance(topology, dict):
        return ["topology: expected a mapping with lab, networks, nodes and links"]
    _unknown("topology", topology, TOP_KEYS, problems)
    problems.append(lab_problem("lab", topology.get("lab")))
    defaults = topology.get("defaults") or {}
    _unknown("defaults", defaults, DEFAULT_KEYS, problems)
    if "limits" in defaults:
        _limits_problems("defaults.limits", defaults["limits"], problems)
    if "jail" in defaults:
        _jail_problems("defaults.jail", defaults["jail"], problems)

    subnets = {}
    for name, net in (topology.get("networks") or {}).items():
        where = "networks.%s" % name
        if not NAME_RE.match(str(name)):
            problems.append("%s: network name '%s' is invalid; expected a-z, 0-9 and '-'" % (
                where, name))
        net = net or {}
        _unknown(where, net, NETWORK_KEYS, problems)
        subnet = _network(where + ".subnet", net.get("subnet"), problems)
        if subnet is not None:
            for other, other_subnet in subnets.items():
                if subnet.version == other_subnet.version and subnet.overlaps(other_subnet):
                    problems.append("%s.subnet: %s overlaps networks.%s (%s)" % (
                        where, subnet, other, other_subnet))
            subnets[name] = subnet

    nodes = topology.get("nodes") or {}
    if not nodes:
        problems.append("nodes: the lab has no nodes; expected at least one")
    used = {}    # (network, ip) -> node
    ifnames = {}
    for name, node in nodes.items():
        where = "nodes.%s" % name
        if not NAME_RE.match(str(name)):
            problems.append("%s: node name '%s' is invalid; expected 1-32 characters of a-z, "
                            "0-9 and '-'" % (where, name))
        node = node or {}
        if not isinstance(node, dict):
            problems.append("%s: expected a mapping" % where)
            continue
        _unknown(where, node, NODE_KEYS, problems)
        if "limits" in node:
            _limits_problems(where + ".limits", node["limits"], problems)
        if "jail" in node:
            _jail_problems(where + ".jail", node["jail"], problems)
        if "command" in node and not (isinstance(node["command"], list) and all(
                isinstance(a, str) for a in node["command"])):
            problems.append("%s.command: expected a list of strings (an argv)" % where)
        networks = node.get("networks") or []
        if not isinstance(networks, (list, dict)):
            problems.append("%s.networks: expected a list of network names or a mapping "
                            "network: address" % where)
            continue
        ifnames[name] = set()
        for index, (net_name, address) in enumerate(_node_networks(node).items()):
            ifnames[name].add("eth%d" % index)
            if net_name not in subnets:
                if net_name not in (topology.get("networks") or {}):
                    problems.append("%s.networks: unknown network '%s'" % (where, net_name))
                continue
            if address is None:
                continue
            try:
                ip = ipaddress.ip_address(str(address))
            except ValueError:
                problems.append("%s.networks.%s: '%s' is not an IP address" % (
                    where, net_name, address))
                continue
            subnet = subnets[net_name]
            if ip not in subnet:
                problems.append("%s.networks.%s: %s is outside %s" % (
                    where, net_name, ip, subnet))
            elif ip in (subnet.network_address, subnet.broadcast_address, gateway(subnet)):
                problems.append("%s.networks.%s: %s is reserved in %s (network, broadcast or "
                                "the host's address %s)" % (where, net_name, ip, subnet,
                                                            gateway(subnet)))
            elif (net_name, ip) in used:
                problems.append("%s.networks.%s: %s is already used by node %s" % (
                    where, net_name, ip, used[(net_name, ip)]))
            else:
                used[(net_name, ip)] = name

    for index, link in enumerate(topology.get("links") or []):
        where = "links[%d]" % index
        if isinstance(link, dict):
            _unknown(where, link, LINK_KEYS, problems)
            if link.get("subnet") is not None:
                _network(where + ".subnet", link["subnet"], problems)
        ends = _link_endpoints(link)
        if not isinstance(ends, list) or len(ends) != 2:
            problems.append("%s: expected two endpoints like [node1:eth1, node2:eth1]" % where)
            continue
        for end in ends:
            node, ifname = _endpoint(end)
            if node not in nodes:
                problems.append("%s: unknown node '%s' in '%s'" % (where, node, end))
            elif not IFNAME_RE.match(ifname):
                problems.append("%s: interface '%s' in '%s' is invalid; expected node:ifname "
                                "with 1-15 characters" % (where, ifname, end))
            elif ifname in ifnames.get(node, set()):
                problems.append("%s: interface %s of node %s is already used" % (
                    where, ifname, node))
            else:
                ifnames.setdefault(node, set()).add(ifname)
        if _endpoint(ends[0])[0] == _endpoint(ends[1])[0]:
            problems.append("%s: both ends are on node %s; expected two different nodes" % (
                where, _endpoint(ends[0])[0]))
    return [p for p in problems if p]


def gateway(subnet):
    """The host's address on a network: its first address."""
    return subnet.network_address + 1


def allocate(subnet, taken, current=()):
    """The first of ``current`` (addresses the node has now) that is in ``subnet`` and
    still free, else the lowest free host address."""
    reserved = {subnet.network_address, subnet.broadcast_address, gateway(subnet)}
    for address in current:
        ip = ipaddress.ip_address(address.split("/")[0])
        if ip in subnet and ip not in reserved and ip not in taken:
            return ip
    for ip in subnet.hosts():
        if ip not in reserved and ip not in taken:
            return ip
    return None


def _merge(defaults, node, key):
    value = dict(defaults.get(key) or {})
    value.update(node.get(key) or {})
    return value


def compile_lab(topology, current=None):
    """The objects each module converges for a valid topology.

    ``current``: what the lab has now on the host, as nslab_info reports it: its
    ``netns_addresses`` keep addresses sticky (see ``allocate``), and whatever it has that
    the topology no longer names is listed in ``remove``.
    Returns a dict with ``lab``, ``nodes`` (per node: netns, interfaces and addresses),
    ``namespaces``, ``bridges``, ``veths``, ``containers``, ``jails``, ``cgroups``,
    ``hosts`` (name -> address, for /etc/hosts) and ``remove``.
    """
    current = current or {}
    current_addresses = current.get("netns_addresses") or {}
    lab = topology["lab"]
    defaults = topology.get("defaults") or {}
    subnets = dict((n, ipaddress.ip_network(str(v["subnet"])))
                   for n, v in (topology.get("networks") or {}).items())
    nodes = topology["nodes"]

    taken = dict((n, set()) for n in subnets)
    for name, node in nodes.items():
        for net, address in _node_networks(node or {}).items():
            if address is not None:
                taken[net].add(ipaddress.ip_address(str(address)))
    addresses = {}   # (node, net) -> ip
    for name, node in nodes.items():
        for net, address in _node_networks(node or {}).items():
            if address is not None:
                addresses[(name, net)] = ipaddress.ip_address(str(address))
                continue
            ip = allocate(subnets[net], taken[net],
                          current_addresses.get(netns_name(lab, name), ()))
            if ip is None:
                raise ValueError("networks.%s: %s has no free address left for node %s" % (
                    net, subnets[net], name))
            taken[net].add(ip)
            addresses[(name, net)] = ip

    result = {"lab": lab, "nodes": {}, "namespaces": [], "bridges": [], "veths": [],
              "containers": [], "jails": [], "cgroups": [], "hosts": {}}
    for net, spec in (topology.get("networks") or {}).items():
        subnet = subnets[net]
        bridge = {"name": bridge_name(lab, net),
                  "addresses": ["%s/%d" % (gateway(subnet), subnet.prefixlen)],
                  "nat": bool(spec.get("nat")), "ipv6": bool(spec.get("ipv6"))}
        if spec.get("mtu"):
            bridge["mtu"] = spec["mtu"]
        result["bridges"].append(bridge)

    for name, node in nodes.items():
        node = node or {}
        netns = netns_name(lab, name)
        interfaces = []
        for index, net in enumerate(_node_networks(node)):
            subnet, ip = subnets[net], addresses[(name, net)]
            ifname = "eth%d" % index
            interfaces.append({"name": ifname, "network": net,
                               "address": "%s/%d" % (ip, subnet.prefixlen)})
            veth = {"name": host_end_name(lab, name, index), "bridge": bridge_name(lab, net),
                    "peer": {"name": ifname, "netns": netns,
                             "addresses": ["%s/%d" % (ip, subnet.prefixlen)]}}
            if (topology["networks"][net] or {}).get("mtu"):
                veth["mtu"] = topology["networks"][net]["mtu"]
            result["veths"].append(veth)
            result["hosts"].setdefault(name, str(ip))
        result["namespaces"].append({"name": netns, "types": ["net"]})
        # A node's jail and cgroup carry its name.
        container = {"name": name, "netns": netns, "jail": name, "cgroup": name,
                     "hostname": node.get("hostname") or name,
                     "command": node.get("command", defaults.get("command", [])),
                     "env": _merge(defaults, node, "env"),
                     "cap_add": node.get("cap_add", defaults.get("cap_add", [])),
                     "cap_drop": node.get("cap_drop", defaults.get("cap_drop", []))}
        result["containers"].append(container)
        result["jails"].append(dict(_merge(defaults, node, "jail") or {"source": "busybox"},
                                    name=name))
        result["cgroups"].append(dict(_merge(defaults, node, "limits"), name=name))
        result["nodes"][name] = {"netns": netns, "interfaces": interfaces,
                                 "host": node.get("host")}

    for index, link in enumerate(topology.get("links") or []):
        ends = [_endpoint(e) for e in _link_endpoints(link)]
        spec = link if isinstance(link, dict) else {}
        veth = {"name": ends[0][1], "netns": netns_name(lab, ends[0][0]),
                "peer": {"name": ends[1][1], "netns": netns_name(lab, ends[1][0])}}
        if spec.get("mtu"):
            veth["mtu"] = spec["mtu"]
        if spec.get("subnet"):
            subnet = ipaddress.ip_network(str(spec["subnet"]))
            hosts = list(subnet.hosts())
            veth["addresses"] = ["%s/%d" % (hosts[0], subnet.prefixlen)]
            veth["peer"]["addresses"] = ["%s/%d" % (hosts[1], subnet.prefixlen)]
        for (node, ifname), addrs in ((ends[0], veth.get("addresses")),
                                      (ends[1], veth["peer"].get("addresses"))):
            result["nodes"][node]["interfaces"].append({
                "name": ifname, "link": index, "address": addrs[0] if addrs else None})
        result["veths"].append(veth)
    result["remove"] = removals(result, current)
    return result


def removals(lab, current):
    """What ``current`` (nslab_info's view of the lab) has that the compiled ``lab`` does
    not: removed nodes, networks and links, as items the modules take with state=absent."""
    def names(items):
        return set(i["name"] for i in items)

    def missing(kind, keep):
        return [{"name": n} for n in sorted(names(current.get(kind, [])) - keep)]

    nodes = set(lab["nodes"])
    namespaces = names(lab["namespaces"])
    veth_ends = set((v.get("netns"), v["name"]) for v in lab["veths"])
    veth_ends |= set((v["peer"].get("netns"), v["peer"]["name"]) for v in lab["veths"])
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
    }

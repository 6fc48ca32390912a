# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What nslab owns on this host, lab by lab, read from the kernel and nslab's records.

One reader for every view of a running lab: the nslab_info module, the inventory plugin and
``./nslab inspect``/``graph`` all call :func:`read_labs`. It never changes anything, and it
never imports AnsibleModule: the caller hands it a Runner.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import socket

from ansible_collections.nslab.lab.plugins.module_utils.nslab_adopt import (
    lost_cgroups, lost_netns_records)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import detect_layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_read import (
    read_cgroup, recorded_owners)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import cgroup_view
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_store import CgroupStore
from ansible_collections.nslab.lab.plugins.module_utils.nslab_container_store import ContainerStore
from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import parse_links
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jail_read import JailStore, jail_view
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import (
    mount_points, read_mountinfo)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import NamespaceStore
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import (
    parse_alias, plan_record_path, read_json)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import DATA_ROOT, STATE_ROOT
from ansible_collections.nslab.lab.plugins.module_utils.nslab_publish import (
    localnet_guarded, read_table, view as ports_view)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_routes import (
    parse_routes, read_namespace_text)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_tunnels import peers_of


# What planning a run needs of a container (nslab_info's brief).
BRIEF_CONTAINER_KEYS = ("name", "state", "pid", "netns", "cgroup", "addresses")


def labs_on_host(links):
    labs = set()
    for root in (STATE_ROOT, DATA_ROOT):
        if os.path.isdir(root):
            labs.update(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    for link in links.values():
        tag = parse_alias(link.alias)
        if tag:
            labs.add(tag[0])
    return sorted(labs)


def link_item(link, netns=None):
    return {"name": link.name, "netns": netns, "master": link.master, "up": link.up,
            "mtu": link.mtu, "qdisc": link.qdisc, "addresses": sorted(link.managed_addresses())}


def read_inside(runner, netns):
    """({name: Link}, [nslab's own routes]) of a net namespace, in one ``ip`` process:
    what a rerun must know to tell that nslab_link and nslab_route have nothing to undo."""
    out = read_namespace_text(runner, netns)
    return parse_links(out), [r for r in parse_routes(out) if r.owned]


def vxlan_item(link, entries, netns=None):
    return dict(link_item(link, netns), peers=peers_of(entries), **(link.vxlan or {}))


def lab_vxlans(lab, runner, tables):
    """The lab's VXLAN devices in each of ``tables`` ({netns or None: {name: Link}}),
    with their forwarding entries, read in one ``bridge`` process per namespace."""
    found = []
    for netns, links in tables.items():
        mine = [l for l in links.values() if parse_alias(l.alias) == (lab, "vxlan")]
        fdbs = runner.read_fdb([l.name for l in mine], netns=netns)
        found += [vxlan_item(l, fdbs.get(l.name), netns) for l in mine]
    return sorted(found, key=lambda v: (v["netns"] or "", v["name"]))


def find_underlay(address, host_links):
    """{address, device, mtu}: the interface of this host that holds ``address`` (an
    address, or a name resolved here)."""
    try:
        candidates = [str(ipaddress.ip_address(address))]
    except ValueError:
        try:
            candidates = sorted(set(i[4][0] for i in socket.getaddrinfo(address, None)))
        except socket.gaierror:
            candidates = []
    for link in sorted(host_links.values(), key=lambda l: l.ifindex):
        held = [a.split("/")[0] for a in link.addresses]
        for candidate in candidates:
            if candidate in held:
                return {"address": candidate, "device": link.name, "mtu": link.mtu}
    return {"address": candidates[0] if candidates else address, "device": None, "mtu": None}


def lab_cgroups(lab, layout, brief=False):
    store = CgroupStore(lab)
    record = store.load()
    # Recovery (nslab_adopt): without the record, the lab's own cgroup directories.
    names = sorted(record.get("cgroups", {})) or lost_cgroups(store, layout)
    if brief:
        return [{"name": name} for name in names]
    ancestors = {}
    owners = recorded_owners(record)
    states = [(name, read_cgroup(layout, lab, name, record, ancestors, owners=owners))
              for name in names]
    return [dict(name=name, **cgroup_view(layout, state)) for name, state in states]


def lab_jails(lab, brief=False):
    store = JailStore(lab)
    names = sorted(store.read([]).records)
    if brief:
        return [{"name": name} for name in names]
    state = store.read(names)
    return [dict(name=name, **jail_view(store, name, state)) for name in names]


def lab_info(lab, runner, host_links, nsfs, layout, brief=False, ports_table=None):
    """What ``lab`` has on this host. ``brief``: cgroups and jails by name only, containers
    by BRIEF_CONTAINER_KEYS (see nslab_info's O(brief)). ``ports_table``: nslab's nftables
    table of published ports, as nslab_publish reads it (without it, no ``ports``)."""
    leftovers = []
    cgroups = lab_cgroups(lab, layout, brief)
    usage = dict((c["name"], c.get("usage")) for c in cgroups)
    store = NamespaceStore(lab)
    namespaces, netns_addresses, veths = [], {}, []
    tables = {None: host_links}
    # Recovery (nslab_adopt): net namespaces tagged for the lab whose records were lost.
    records = store.lab_records() + lost_netns_records(store, nsfs)
    states = [store.read(record["name"], nsfs) for record in records]
    with_net = [r["name"] for r, state in zip(records, states) if "net" in state.types]
    insides = dict(zip(with_net, runner.each(lambda name: read_inside(runner, name),
                                             with_net)))
    netns_routes = {}
    for record, state in zip(records, states):
        live = not state.missing
        namespaces.append({"name": record["name"], "types": sorted(record["types"]),
                           "paths": dict((t, i["path"]) for t, i in record["types"].items()),
                           "live": live})
        if not live:
            leftovers.append("namespace '%s': %s no longer mounted" % (
                record["name"], ", ".join(state.missing)))
        if record["name"] in insides:
            inside, routes = insides[record["name"]]
            tables[record["name"]] = inside
            netns_routes[record["name"]] = sorted(
                (r.view() for r in routes), key=lambda v: (v["to"], v["via"] or ""))
            netns_addresses[record["name"]] = sorted(
                a for link in inside.values() if link.name != "lo"
                for a in link.managed_addresses())
            veths += [link_item(l, record["name"]) for l in inside.values()
                      if parse_alias(l.alias) == (lab, "veth")]

    containers = []
    cstore = ContainerStore(lab)
    for path in sorted(glob.glob(os.path.join(cstore.directory(), "*.json"))):
        state = cstore.read(os.path.basename(path)[:-len(".json")])
        if state.record is None:
            continue
        view = dict(name=state.name, **state.view())
        view["addresses"] = netns_addresses.get(view.get("netns"), [])
        view["usage"] = usage.get(view.get("cgroup"))
        if brief:
            view = dict((k, view.get(k)) for k in BRIEF_CONTAINER_KEYS)
        containers.append(view)
        if state.died:
            leftovers.append("container '%s': its init died" % state.name)

    bridges = []
    for link in host_links.values():
        tag = parse_alias(link.alias)
        if tag == (lab, "bridge"):
            ports = sorted(p.name for p in host_links.values() if p.master == link.name)
            bridges.append(dict(link_item(link), ports=ports))
        elif tag == (lab, "veth"):
            veths.append(link_item(link))
    jails = lab_jails(lab, brief)
    vxlans = lab_vxlans(lab, runner, tables)
    if (bridges or veths) and not namespaces and not containers:
        leftovers += ["%s '%s' belongs to lab '%s', which has no namespace or container "
                      "left" % ("bridge" if "ports" in item else "veth", item["name"], lab)
                      for item in bridges + veths]
    info = {"namespaces": namespaces, "containers": containers,
            "bridges": sorted(bridges, key=lambda b: b["name"]),
            "veths": sorted(veths, key=lambda v: (v["netns"] or "", v["name"])),
            "vxlans": vxlans,
            "jails": jails, "cgroups": cgroups, "netns_addresses": netns_addresses,
            "netns_routes": netns_routes,
            "record": read_json(plan_record_path(lab)), "leftovers": leftovers}
    if ports_table is not None:
        # Each empty when the lab holds none: a lab that is gone reads as all empty.
        info["ports"] = ports_view(lab, ports_table)
        info["port_guards"] = sorted(localnet_guarded(ports_table, lab))
    return info


def lab_wires(lab, runner, view):
    """The lab's veth pairs as the kernel pairs them: a sorted list of ``[end, end]``, each
    end ``{"netns": name or None (the host), "name": ifname}``.

    A veth names its peer by ifindex in the namespace its ``link_netnsid`` designates (read
    with ``ip netns list-id`` in the end's own namespace), never by name: ifindexes repeat
    across namespaces (both ends of a:eth1-c:eth1 are often ifindex 3, peer 3). An nsid
    without a name seen from a node's namespace is the host's (it is not in /run/netns)."""
    spaces = [None] + [n["name"] for n in view["namespaces"]
                       if n["live"] and "net" in n["types"]]
    tables, names = {}, {}
    for netns in spaces:
        tables[netns] = runner.read_links(netns=netns, addresses=False)
        out = runner.run([runner.ip_bin, "-j", "netns", "list-id"], netns=netns)
        names[netns] = dict((e["nsid"], e.get("name")) for e in json.loads(out or "[]"))
    wires = set()
    for netns, links in tables.items():
        for link in links.values():
            if link.kind != "veth" or parse_alias(link.alias) != (lab, "veth"):
                continue
            peer_netns = netns
            if link.peer_netnsid is not None:
                peer_netns = names[netns].get(link.peer_netnsid)
                if peer_netns is None and netns is None:
                    continue            # a namespace not in /run/netns: not the lab's
            peer = next((p for p in tables.get(peer_netns, {}).values()
                         if p.ifindex == link.peer_ifindex), None)
            if peer is not None and peer.peer_ifindex == link.ifindex:
                wires.add(tuple(sorted([(netns or "", link.name), (peer_netns or "", peer.name)])))
    return [[{"netns": ns or None, "name": name} for ns, name in wire] for wire in sorted(wires)]


def read_labs(runner, lab=None, brief=False, nft=None):
    """{lab name: lab_info} for ``lab`` or every lab found on this host, and the host's
    links (for callers that look further, e.g. for the underlay). ``nft``: the nft
    command, to report each lab's published ports (none without it)."""
    host_links = runner.read_links()
    mounts = read_mountinfo()
    nsfs = mount_points(mounts, "nsfs")
    layout = detect_layout(mounts)
    labs = [lab] if lab else labs_on_host(host_links)
    ports_table = read_table(runner, nft)
    return dict((name, lab_info(name, runner, host_links, nsfs, layout, brief, ports_table))
                for name in labs), host_links

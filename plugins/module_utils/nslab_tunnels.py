# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner for VXLAN tunnels (the devices library/nslab_vxlan makes): one layer-2 segment
stretched over several hosts.

Unicast only, with head-end replication: every peer host is an all-zero forwarding entry
(``bridge fdb append 00:00:00:00:00:00 dev VX dst PEER``), so broadcast, unknown unicast
and multicast frames are copied to each peer, and the device learns which MAC sits behind
which peer from the frames it receives. No multicast group, no controller.

A device may be created straight into a namespace (``ip link add NAME netns NS type
vxlan``, run in the host): its UDP socket stays in the host's namespace, where it was
created, while the interface itself is the node's (a point-to-point link to another host).

Pure: works on ``nslab_iproute.Link`` snapshots and fdb listings, never runs a command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_links import Iface, configure_iface
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import (
    alias_for, check_link_owner)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_plan import (
    ADDRESS, CREATE, DELETE, Action, Step)

ALL_ZEROS = "00:00:00:00:00:00"
VXLAN_PORT = 4789          # IANA's port for VXLAN
# What VXLAN adds around a frame: outer Ethernet 14 + IP (20 or 40) + UDP 8 + VXLAN 8.
OVERHEAD = {4: 50, 6: 70}
MAX_VNI = (1 << 24) - 1


@dataclass
class VxlanSpec:
    iface: Iface
    vni: Optional[int] = None
    local: Optional[str] = None
    port: int = VXLAN_PORT
    learning: bool = True
    peers: List[str] = field(default_factory=list)
    state: str = "present"


def peers_of(entries):
    """The peers of a device: the destinations of its all-zero forwarding entries."""
    return sorted(set(e["dst"] for e in entries or []
                      if e.get("mac") == ALL_ZEROS and e.get("dst")))


def tunnel_of(spec):
    return {"vni": spec.vni, "local": spec.local, "port": spec.port, "learning": spec.learning}


def _fdb_step(verb, spec, peer):
    undo = "del" if verb == "append" else "append"
    tail = [ALL_ZEROS, "dev", spec.iface.name, "dst", peer]
    return Step(ADDRESS, spec.iface.netns, ["fdb", verb] + tail,
                (spec.iface.netns, ["fdb", undo] + tail), tool="bridge")


def plan_vxlans(specs, tables, fdbs, lab):
    """Plan VXLAN devices. ``tables``: {netns or None: {name: Link}} of every namespace
    used; ``fdbs``: {(netns, name): [fdb entry]} of the existing devices."""
    alias = alias_for(lab, "vxlan")
    actions = []
    for spec in specs:
        iface = spec.iface
        current = tables.get(iface.netns, {}).get(iface.name)
        check_link_owner(current, lab, "vxlan", "vxlan", iface.netns)
        label = "vxlan '%s'%s" % (iface.name, iface.where())
        if spec.state == "absent":
            if current is not None:
                actions.append(Action("delete %s" % label, [
                    Step(DELETE, iface.netns, ["link", "del", "dev", iface.name])]))
            continue
        if current is not None and (current.kind != "vxlan" or current.vxlan != tunnel_of(spec)):
            # VNI, local address, port and learning are fixed when a device is made.
            actions.append(Action("delete %s to make it again (%s, now %s)" % (
                label, _describe(tunnel_of(spec)), _describe(current.vxlan or {})), [
                Step(DELETE, iface.netns, ["link", "del", "dev", iface.name])]))
            current = None
        have = peers_of(fdbs.get((iface.netns, iface.name))) if current is not None else []
        if current is None:
            create = ["link", "add", "name", iface.name]
            create += ["netns", iface.netns] if iface.netns else []
            create += ["mtu", str(iface.mtu)] if iface.mtu else []
            create += ["type", "vxlan", "id", str(spec.vni), "dstport", str(spec.port)]
            create += ["local", spec.local] if spec.local else []
            create += [] if spec.learning else ["nolearning"]
            # Created from the host, so that its UDP socket is the host's.
            actions.append(Action("create %s (%s)" % (label, _describe(tunnel_of(spec))), [
                Step(CREATE, None, create, (iface.netns, ["link", "del", "dev", iface.name]))]))
        actions.extend(configure_iface("vxlan", iface, current, alias))
        for peer in spec.peers:
            if peer not in have:
                actions.append(Action("add peer %s to %s" % (peer, label),
                                      [_fdb_step("append", spec, peer)]))
        for peer in have:
            if peer not in spec.peers:
                actions.append(Action("remove peer %s from %s" % (peer, label),
                                      [_fdb_step("del", spec, peer)]))
    return actions


def _describe(tunnel):
    text = "VNI %s, port %s" % (tunnel.get("vni"), tunnel.get("port"))
    if tunnel.get("local"):
        text += ", local %s" % tunnel["local"]
    if tunnel.get("learning") is False:
        text += ", no learning"
    return text


def vxlan_view(link, entries, keys):
    """What the kernel reports of a device (for results and diffs), limited to ``keys``."""
    if link is None:
        return {"state": "absent"}
    full = {"state": "present", "kind": link.kind, "mtu": link.mtu, "mac": link.mac,
            "up": link.up, "master": link.master,
            "addresses": sorted(link.managed_addresses()), "peers": peers_of(entries),
            "ipv6": link.addrgenmode != "none", "owner": link.alias}
    full.update(link.vxlan or {})
    return dict((k, full[k]) for k in keys if k in full)

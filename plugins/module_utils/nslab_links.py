# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planners for bridges and veth pairs: desired specs vs. kernel links -> Actions.

Pure functions over ``nslab_iproute.Link`` snapshots; they never run a command.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import OwnershipError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import is_veth_pair
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import (
    alias_for, check_link_owner)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_plan import (
    ADDRESS, CONFIGURE, CREATE, DELETE, UP, Action, Step)

UNMANAGED = object()   # marks an interface property nslab leaves alone


@dataclass
class Iface:
    """Desired settings of one interface (a bridge or one end of a veth)."""
    name: str
    netns: Optional[str] = None
    mtu: Optional[int] = None
    mac: Optional[str] = None
    addresses: List[str] = field(default_factory=list)   # normalised CIDR strings
    master: object = UNMANAGED                            # bridge name, None, or UNMANAGED
    ipv6: bool = False
    keep_state: bool = False                              # up/down left alone once made

    def where(self):
        return " in netns '%s'" % self.netns if self.netns else ""


@dataclass
class BridgeSpec:
    iface: Iface
    stp: bool = False
    nat: bool = False
    isolate_host: bool = False
    state: str = "present"


@dataclass
class VethSpec:
    end: Iface
    peer: Iface
    state: str = "present"
    antispoof: bool = False

    def bridge_port(self):
        """(port, node end) when exactly one end is a bridge port and the other is not:
        the pair that plugs a node into a bridge; None otherwise (point-to-point pairs,
        bridge-to-bridge cables)."""
        ends = [(a, b) for a, b in ((self.end, self.peer), (self.peer, self.end))
                if a.master not in (None, UNMANAGED) and b.master in (None, UNMANAGED)]
        return ends[0] if len(ends) == 1 else None


def derived_mac(lab, netns, name):
    """A stable, locally administered unicast MAC for the node end ``name`` in ``netns``.

    Known before the link exists (so its anti-spoofing rules can be in place before the
    port is), the same after the pair is rebuilt (neighbours' caches stay right), and not
    taken from what a node may have changed."""
    digest = hashlib.sha256(("%s/%s/%s" % (lab, netns or "", name)).encode()).digest()
    first = (digest[0] & 0xfc) | 0x02
    return ":".join("%02x" % b for b in (first,) + tuple(digest[1:6]))


def _step(phase, iface, argv, undo_argv=None):
    undo = (iface.netns, undo_argv) if undo_argv else None
    return Step(phase, iface.netns, argv, undo)


def configure_iface(kind, iface, current, alias):
    """Actions that bring an interface (existing or just created) to ``iface``.

    ``current`` is None for an interface created by the same plan: then only what
    cannot be given to ``ip link add`` is planned (alias, addrgenmode, master,
    addresses, up).
    """
    actions = []
    name, dev = iface.name, ["dev", iface.name]
    label = "%s '%s'%s" % (kind, name, iface.where())

    def add(summary, *steps):
        actions.append(Action(summary, list(steps)))

    if current is not None and iface.mtu is not None and current.mtu != iface.mtu:
        add("set MTU of %s from %d to %d" % (label, current.mtu, iface.mtu),
            _step(CONFIGURE, iface, ["link", "set"] + dev + ["mtu", str(iface.mtu)],
                  ["link", "set"] + dev + ["mtu", str(current.mtu)]))
    if current is not None and iface.mac and (current.mac or "").lower() != iface.mac.lower():
        add("set MAC of %s from %s to %s" % (label, current.mac, iface.mac),
            _step(CONFIGURE, iface, ["link", "set"] + dev + ["address", iface.mac],
                  ["link", "set"] + dev + ["address", current.mac]))
    if current is None:
        # A link made by this plan: tag it, set its IPv6 mode before it goes up (no
        # link-local address is generated then), bring it up last; one sentence for all.
        setup = [_step(CONFIGURE, iface, ["link", "set"] + dev + ["alias", alias])]
        if not iface.ipv6:
            setup.append(_step(CONFIGURE, iface, ["link", "set"] + dev + ["addrgenmode", "none"]))
        setup.append(_step(UP, iface, ["link", "set"] + dev + ["up"]))
        add("tag %s as %s and bring it up%s" % (
            label, alias, "" if iface.ipv6 else " with IPv6 address generation off"), *setup)
    want_mode = None
    if current is not None and not iface.ipv6 and current.addrgenmode != "none":
        want_mode = "none"
    elif current is not None and iface.ipv6 and current.addrgenmode == "none":
        want_mode = "eui64"
    if want_mode:
        add("%s IPv6 address generation on %s" % (
            "turn off" if want_mode == "none" else "turn on", label),
            _step(CONFIGURE, iface, ["link", "set"] + dev + ["addrgenmode", want_mode],
                  ["link", "set"] + dev + ["addrgenmode", current.addrgenmode]))
    if iface.master is not UNMANAGED:
        have = current.master if current is not None else None
        if have != iface.master:
            undo = ["link", "set"] + dev + (["master", have] if have else ["nomaster"])
            if iface.master:
                add("attach %s to bridge '%s'" % (label, iface.master),
                    _step(CONFIGURE, iface, ["link", "set"] + dev + ["master", iface.master],
                          undo))
            else:
                add("detach %s from bridge '%s'" % (label, have),
                    _step(CONFIGURE, iface, ["link", "set"] + dev + ["nomaster"], undo))
    have_addrs = set(current.managed_addresses()) if current is not None else set()
    # Removals first: deleting a subnet's primary address also deletes the secondaries
    # of that subnet (promote_secondaries is off by default), so a new address added
    # before the old one goes would go with it.
    for addr in sorted(have_addrs - set(iface.addresses)):
        add("remove address %s from %s" % (addr, label),
            _step(ADDRESS, iface, ["addr", "del", addr] + dev, ["addr", "add", addr] + dev))
    for addr in iface.addresses:
        if addr not in have_addrs:
            add("add address %s to %s" % (addr, label),
                _step(ADDRESS, iface, ["addr", "add", addr] + dev, ["addr", "del", addr] + dev))
    if current is not None and not current.up and not iface.keep_state:
        add("bring %s up" % label,
            _step(UP, iface, ["link", "set"] + dev + ["up"], ["link", "set"] + dev + ["down"]))
    return actions


def _create_args(iface):
    args = ["name", iface.name]
    if iface.netns:
        args += ["netns", iface.netns]
    if iface.mtu is not None:
        args += ["mtu", str(iface.mtu)]
    if iface.mac:
        args += ["address", iface.mac]
    return args


def plan_bridges(specs, links, lab):
    """Plan bridges in the host namespace. ``links``: {name: Link} of the host."""
    alias = alias_for(lab, "bridge")
    actions = []
    for spec in specs:
        iface, current = spec.iface, links.get(spec.iface.name)
        check_link_owner(current, lab, "bridge", "bridge")
        if spec.state == "absent":
            if current is not None:
                actions.append(Action("delete bridge '%s'" % iface.name, [
                    Step(DELETE, None, ["link", "del", "dev", iface.name])]))
            continue
        if current is not None and current.kind != "bridge":
            raise OwnershipError("bridge", iface.name, "a %s link, not a bridge" % current.kind)
        if current is None:
            actions.append(Action("create bridge '%s'" % iface.name, [Step(
                CREATE, None,
                ["link", "add"] + _create_args(iface) + ["type", "bridge",
                                                         "stp_state", str(int(spec.stp))],
                (None, ["link", "del", "dev", iface.name]))]))
        elif current.stp != spec.stp:
            actions.append(Action("turn STP %s on bridge '%s'" % (
                "on" if spec.stp else "off", iface.name), [Step(
                    CONFIGURE, None,
                    ["link", "set", "dev", iface.name, "type", "bridge",
                     "stp_state", str(int(spec.stp))],
                    (None, ["link", "set", "dev", iface.name, "type", "bridge",
                            "stp_state", str(int(current.stp))]))]))
        actions.extend(configure_iface("bridge", iface, current, alias))
    return actions


def plan_veths(specs, tables, lab):
    """Plan veth pairs. ``tables``: {netns or None: {name: Link}} for every namespace used."""
    alias = alias_for(lab, "veth")
    actions = []
    for spec in specs:
        end, peer = spec.end, spec.peer
        cur_end = tables.get(end.netns, {}).get(end.name)
        cur_peer = tables.get(peer.netns, {}).get(peer.name)
        check_link_owner(cur_end, lab, "veth", "veth end", end.netns)
        check_link_owner(cur_peer, lab, "veth", "veth peer", peer.netns)
        paired = is_veth_pair(cur_end, cur_peer)
        label = "veth '%s'%s" % (end.name, end.where())
        if spec.state == "absent" or (not paired and (cur_end or cur_peer)):
            why = "" if spec.state == "absent" else " (not paired with '%s'%s)" % (
                peer.name, peer.where())
            for iface, cur in ((end, cur_end), (peer, cur_peer)):
                # Deleting one end deletes its peer, so delete the end only when the
                # other one is not its peer (paired) or not there.
                if cur is not None and not (iface is peer and paired):
                    actions.append(Action("delete veth '%s'%s%s" % (
                        iface.name, iface.where(), why), [
                        Step(DELETE, iface.netns, ["link", "del", "dev", iface.name])]))
            if spec.state == "absent":
                continue
            cur_end = cur_peer = None
        if cur_end is None:
            actions.append(Action("create %s with peer '%s'%s" % (
                label, peer.name, peer.where()), [Step(
                    CREATE, None,
                    ["link", "add"] + _create_args(end) + ["type", "veth", "peer"]
                    + _create_args(peer),
                    (end.netns, ["link", "del", "dev", end.name]))]))
        actions.extend(configure_iface("veth", end, cur_end, alias))
        actions.extend(configure_iface("veth", peer, cur_peer, alias))
    return actions


def address_problems(ifaces, tables):
    """Problems with desired addresses: used twice in the request, or already on an
    interface that is not the one asking for it (in the same namespace)."""
    problems, seen = [], {}
    for iface in ifaces:
        for addr in iface.addresses:
            ip = addr.split("/")[0]
            key = (iface.netns, ip)
            if key in seen and seen[key] != iface.name:
                problems.append("addresses: %s is requested for both '%s' and '%s'%s" % (
                    ip, seen[key], iface.name, iface.where()))
            seen.setdefault(key, iface.name)
            for link in tables.get(iface.netns, {}).values():
                if link.name != iface.name and any(
                        a.split("/")[0] == ip for a in link.addresses):
                    problems.append("addresses: %s is already on interface '%s'%s" % (
                        ip, link.name, iface.where()))
    return problems


def desired_view(iface, keys, **extra):
    """What ``link_view`` will report once ``iface`` is converged (for check-mode diffs)."""
    full = {"state": "present", "mtu": iface.mtu, "mac": iface.mac, "up": True,
            "addresses": sorted(iface.addresses), "ipv6": iface.ipv6}
    if iface.master is not UNMANAGED:
        full["master"] = iface.master
    full.update(extra)
    return dict((k, full[k]) for k in keys if k in full)

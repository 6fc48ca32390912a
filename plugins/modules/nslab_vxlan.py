#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_vxlan
short_description: VXLAN devices that join an nslab lab's hosts into one layer-2 segment
description:
  - Creates, updates and deletes VXLAN devices, the tunnel that carries a lab network (or a
    point-to-point link) from one host to the others over their own network (the underlay).
  - Unicast only, with static peers; every peer in O(peers) is an all-zero forwarding entry
    (C(bridge fdb append 00:00:00:00:00:00 dev NAME dst PEER)), so broadcasts and unknown
    destinations are copied to each peer (head-end replication) and the device learns from
    the frames it receives which MAC sits behind which peer. No multicast, no controller.
  - On a lab network the device is attached to the network's bridge on each host
    (O(bridge)). For a point-to-point link whose ends are on two hosts, each host makes a
    device named like the node's interface straight into the node's namespace (O(netns))
    with its addresses; it is always created from the host's namespace, where its UDP
    socket stays, so the node sees an ordinary interface and cannot reach the underlay.
  - The device carries the ifalias C(nslab:<lab>:vxlan); a link of the same name that is not
    this lab's vxlan is never changed or deleted. O(vni), O(local), O(port) and O(learning)
    are fixed when a device is made; a device whose values differ is made again. Peers are
    converged exactly; learned entries are left alone.
  - All creations cost one C(ip -batch) process on the host, and the settings and forwarding
    entries one C(ip -batch) and one C(bridge -batch) process per namespace.
  - IPv6 address generation is off unless O(ipv6=true). If applying fails half way, every
    step already done is undone, newest first.
version_added: "0.2.0"
author: nslab contributors (@nslab-lab)
options:
  name:
    description: Device name (at most 15 bytes). Mutually exclusive with O(vxlans).
    type: str
  vni:
    description: VXLAN network identifier, 1-16777215; the same on every host of the segment.
      Required with O(state=present).
    type: int
  local:
    description: This host's underlay address, the source of the tunnel's packets. The
      kernel picks one by route when omitted.
    type: str
  peers:
    description: Underlay addresses of the other hosts of the segment.
    type: list
    elements: str
    default: []
  port:
    description: UDP port of the tunnel, the same on every host.
    type: int
    default: 4789
  learning:
    description: Learn from received frames which MAC sits behind which peer.
    type: bool
    default: true
  netns:
    description: Net namespace the device lives in (a point-to-point link's end); the
      host's when omitted. It must be this lab's (see nslab_namespace).
    type: str
  bridge:
    description: Bridge of this lab the device is attached to. Only for a device in the
      host namespace.
    type: str
  addresses:
    description: Addresses of the device, in CIDR form. It ends up with exactly these.
    type: list
    elements: str
    default: []
  mtu:
    description: MTU of the device; at most the underlay's MTU minus 50 (IPv4 underlay) or
      70 (IPv6). Left as the kernel sets it when omitted.
    type: int
  ipv6:
    description: IPv6 address generation (link-local, SLAAC) on the device.
    type: bool
    default: false
  state:
    description: V(present) or V(absent). The default for items of O(vxlans).
    type: str
    choices: [present, absent]
    default: present
  vxlans:
    description: Several devices converged at once. Each item takes the options above.
    type: list
    elements: dict
    suboptions:
      name:
        description: Device name.
        type: str
        required: true
      vni:
        description: VXLAN network identifier.
        type: int
      local:
        description: This host's underlay address.
        type: str
      peers:
        description: Underlay addresses of the other hosts.
        type: list
        elements: str
        default: []
      port:
        description: UDP port.
        type: int
        default: 4789
      learning:
        description: Learn MACs behind peers.
        type: bool
        default: true
      netns:
        description: Net namespace of the device; the host's when omitted.
        type: str
      bridge:
        description: Bridge the device is attached to (host namespace only).
        type: str
      addresses:
        description: Addresses, in CIDR form.
        type: list
        elements: str
        default: []
      mtu:
        description: MTU.
        type: int
      ipv6:
        description: IPv6 address generation.
        type: bool
        default: false
      state:
        description: V(present) or V(absent); defaults to the top-level O(state).
        type: str
        choices: [present, absent]
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - iproute2 (C(ip), C(bridge)) and util-linux (nsenter) on the target
notes:
  - The underlay must let UDP O(port) through between the hosts.
seealso:
  - module: nslab.lab.nslab_bridge
  - module: nslab.lab.nslab_topology
"""

EXAMPLES = r"""
- name: Stretch the lab bridge demo-lan to two other hosts
  nslab_vxlan:
    lab: demo
    name: demo-lan-vx
    vni: 4242
    local: 10.213.250.11
    peers: [10.213.250.12, 10.213.250.13]
    bridge: demo-lan
    mtu: 1450

- name: This host's end of a point-to-point link to a node on another host
  nslab_vxlan:
    lab: demo
    name: eth1
    netns: demo-apt101
    vni: 977
    local: 10.213.250.11
    peers: [10.213.250.13]
    addresses: [10.213.9.1/30]
    mtu: 1450
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence per change.
  returned: always
  type: list
  elements: str
  sample: ["create vxlan 'demo-lan-vx' (VNI 4242, port 4789, local 10.213.250.11)",
           "add peer 10.213.250.12 to vxlan 'demo-lan-vx'"]
vxlans:
  description: Each requested device as the kernel reports it after the run.
  returned: always
  type: list
  elements: dict
  sample:
    - name: demo-lan-vx
      netns: null
      state: present
      vni: 4242
      local: 10.213.250.11
      port: 4789
      learning: true
      peers: [10.213.250.12, 10.213.250.13]
      master: demo-lan
      mtu: 1450
      up: true
      addresses: []
diff:
  description: Before and after, keyed by C(netns/name).
  returned: when diff mode is on
  type: dict
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, items_from_params, list_argument_spec, main_of, runner_for)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_links import (
    Iface, UNMANAGED, address_problems)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NamespaceStore, check_lab_netns)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import parse_alias
from ansible_collections.nslab.lab.plugins.module_utils.nslab_plan import apply_plan
from ansible_collections.nslab.lab.plugins.module_utils.nslab_tunnels import (
    MAX_VNI, VxlanSpec, plan_vxlans, vxlan_view)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
    ifname_problem, mtu_problem, nsname_problem, interface_addresses)

ITEM_KEYS = ["name", "vni", "local", "peers", "port", "learning", "netns", "bridge",
             "addresses", "mtu", "ipv6", "state"]
VIEW_KEYS = ["state", "vni", "local", "port", "learning", "peers", "master", "mtu", "up",
             "addresses", "ipv6", "owner"]


def underlay_address(option, value, problems):
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        problems.append("%s: '%s' is not an IP address; expected a host's underlay address "
                        "like 10.213.250.11" % (option, value))
        return None


def build_specs(items):
    problems, specs, seen = [], [], set()
    for item in items:
        where = item["_where"]
        problems.append(ifname_problem(where + "name", item["name"]))
        problems.append(mtu_problem(where + "mtu", item.get("mtu")))
        key = (item.get("netns"), item["name"])
        if key in seen:
            problems.append("%sname: vxlan '%s' is listed twice" % (where, item["name"]))
        seen.add(key)
        present = item["state"] == "present"
        if present and not (isinstance(item.get("vni"), int) and 1 <= item["vni"] <= MAX_VNI):
            problems.append("%svni: %r is not a VXLAN network identifier; expected 1-%d" % (
                where, item.get("vni"), MAX_VNI))
        if not 1 <= item["port"] <= 65535:
            problems.append("%sport: %r is not a UDP port; expected 1-65535" % (
                where, item["port"]))
        local = None
        if item.get("local"):
            local = underlay_address(where + "local", item["local"], problems)
        peers = [underlay_address("%speers[%d]" % (where, i), p, problems)
                 for i, p in enumerate(item.get("peers") or [])]
        if local is not None and local in peers:
            problems.append("%speers: %s is this host's own address (local); expected the "
                            "other hosts" % (where, local))
        if item.get("netns"):
            problems.append(nsname_problem(where + "netns", item["netns"]))
            if item.get("bridge"):
                problems.append("%sbridge: '%s' cannot be used for a device in netns '%s'; "
                                "expected a device in the host namespace" % (
                                    where, item["bridge"], item["netns"]))
        if item.get("bridge"):
            problems.append(ifname_problem(where + "bridge", item["bridge"]))
        addresses = interface_addresses(where + "addresses", item.get("addresses"), problems)
        iface = Iface(name=item["name"], netns=item.get("netns") or None, mtu=item.get("mtu"),
                      addresses=addresses, ipv6=bool(item.get("ipv6")),
                      master=item.get("bridge") or (UNMANAGED if item.get("netns") else None))
        specs.append(VxlanSpec(iface=iface, vni=item.get("vni"), local=local,
                               port=item["port"], learning=bool(item["learning"]),
                               peers=sorted(set(p for p in peers if p)),
                               state=item["state"]))
    problems = [p for p in problems if p]
    if problems:
        raise ValidationError(problems)
    return specs


def read_state(runner, specs, store, check_mode, warnings):
    """Links of the host and every namespace used, and the fdb of every existing device."""
    tables, problems = {None: runner.read_links()}, []
    wanted = set(s.iface.netns for s in specs if s.state == "present")
    for netns in sorted(set(s.iface.netns for s in specs if s.iface.netns)):
        if check_lab_netns(store, netns):
            tables[netns] = runner.read_links(netns=netns)
        elif check_mode or netns not in wanted:
            # A device to delete in a namespace that is gone went with it.
            if netns in wanted:
                warnings.append("netns '%s' does not exist yet; assuming it will be empty"
                                % netns)
            tables[netns] = {}
        else:
            problems.append("netns: '%s' does not exist; expected a net namespace made by "
                            "nslab_namespace for lab '%s'" % (netns, store.lab))
    for spec in specs:
        bridge = spec.iface.master
        if spec.state != "present" or not isinstance(bridge, str):
            continue
        link = tables[None].get(bridge)
        if link is None and check_mode:
            warnings.append("bridge '%s' does not exist yet" % bridge)
        elif link is None:
            problems.append("bridge: '%s' does not exist; expected a bridge made by "
                            "nslab_bridge for lab '%s'" % (bridge, store.lab))
        elif link.kind != "bridge" or parse_alias(link.alias) != (store.lab, "bridge"):
            problems.append("bridge: '%s' is not a bridge of lab '%s'; nslab only attaches "
                            "to its own bridges" % (bridge, store.lab))
    if problems:
        raise ValidationError(problems)
    return tables, read_fdbs(runner, specs, tables)


def read_fdbs(runner, specs, tables):
    fdbs = {}
    for netns, links in tables.items():
        if netns is not None and not links:
            continue
        names = [s.iface.name for s in specs if s.iface.netns == netns
                 and links.get(s.iface.name) is not None
                 and links[s.iface.name].kind == "vxlan"]
        for name, entries in runner.read_fdb(names, netns=netns).items():
            fdbs[(netns, name)] = entries
    return fdbs


def device_view(spec, tables, fdbs, keys):
    iface = spec.iface
    return dict(name=iface.name, netns=iface.netns,
                **vxlan_view(tables.get(iface.netns, {}).get(iface.name),
                             fdbs.get((iface.netns, iface.name)), keys))


def diff_keys(spec):
    keys = ["state"]
    if spec.state == "present":
        keys += ["vni", "local", "port", "learning", "peers", "master", "addresses"]
        keys += ["mtu"] if spec.iface.mtu else []
    return keys


def predicted(spec, keys):
    if spec.state == "absent":
        return {"name": spec.iface.name, "netns": spec.iface.netns, "state": "absent"}
    full = {"state": "present", "vni": spec.vni, "local": spec.local, "port": spec.port,
            "learning": spec.learning, "peers": spec.peers, "mtu": spec.iface.mtu,
            "addresses": sorted(spec.iface.addresses)}
    if spec.iface.master is not UNMANAGED:
        full["master"] = spec.iface.master
    return dict(name=spec.iface.name, netns=spec.iface.netns,
                **dict((k, full[k]) for k in keys if k in full))


def converge(module):
    params = module.params
    check_lab(params)
    lab = params["lab"]
    specs = build_specs(items_from_params(params, "vxlans", ITEM_KEYS))
    runner = runner_for(module)
    warnings = []
    tables, fdbs = read_state(runner, specs, NamespaceStore(lab), module.check_mode, warnings)
    problems = address_problems([s.iface for s in specs if s.state == "present"], tables)
    if problems:
        raise ValidationError(problems)
    actions = plan_vxlans(specs, tables, fdbs, lab)

    after, after_fdbs = tables, fdbs
    if actions and not module.check_mode:
        apply_plan(runner, actions)
        after = dict((ns, runner.read_links(netns=ns)) for ns in tables)
        after_fdbs = read_fdbs(runner, specs, after)

    result = {"changed": bool(actions), "actions": [a.summary for a in actions],
              "vxlans": [device_view(s, after, after_fdbs, VIEW_KEYS) for s in specs]}
    for warning in warnings:
        module.warn(warning)
    if module._diff:
        def key(spec):
            return "%s/%s" % (spec.iface.netns or "host", spec.iface.name)
        result["diff"] = {
            "before": dict((key(s), device_view(s, tables, fdbs, diff_keys(s))) for s in specs),
            "after": dict((key(s), predicted(s, diff_keys(s)) if module.check_mode
                           else device_view(s, after, after_fdbs, diff_keys(s)))
                          for s in specs),
        }
    return result


def vxlan_options(item=False):
    return dict(
        name=dict(type="str", required=item),
        vni=dict(type="int"),
        local=dict(type="str"),
        peers=dict(type="list", elements="str", default=[]),
        port=dict(type="int", default=4789),
        learning=dict(type="bool", default=True),
        netns=dict(type="str"),
        bridge=dict(type="str"),
        addresses=dict(type="list", elements="str", default=[]),
        mtu=dict(type="int"),
        ipv6=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"]),
    )


def get_argument_spec():
    return list_argument_spec(vxlan_options, "vxlans", "present")


def main():
    main_of(AnsibleModule, get_argument_spec(), "vxlans", "vxlan devices", converge)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_veth
short_description: veth pairs between namespaces and bridges, owned by an nslab lab
description:
  - Creates, updates and deletes veth pairs, the virtual cable of a container network. One
    end (O(name)) usually stays in the host and is attached to a bridge, the other (O(peer))
    lives in a container's net namespace under its own name, for example C(eth0). Both ends
    may also live in two namespaces, a point-to-point link with no bridge.
  - Each end is created directly in its namespace, so no temporary name ever appears in the
    host. All creations cost one C(ip -batch) process on the host, and the settings inside
    each namespace one C(nsenter --net=... ip -batch) process per namespace, whatever the
    number of pairs.
  - Both ends carry the ifalias C(nslab:<lab>:veth). A link of the same name that is not
    this lab's is never changed or deleted. A pair whose two ends are no longer each other's
    peer (rewired by hand) is deleted and created again.
  - Namespaces must exist and belong to the same lab (see nslab_namespace), and a bridge must
    be this lab's (see nslab_bridge). In check mode a namespace or bridge that does not exist
    yet is only warned about, so a whole lab can be checked before it is built. A pair to
    remove whose namespace no longer exists went with it, so removing a lab twice is safe.
  - IPv6 address generation is off on both ends unless O(ipv6=true).
  - A pair that plugs a node into a bridge (one end attached to a bridge, the other not)
    is guarded against MAC and ARP spoofing unless O(antispoof=false); see there.
  - If applying fails half way, every step already done is undone, newest first.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  name:
    description: Name of the first end (at most 15 bytes). Mutually exclusive with O(veths).
    type: str
  netns:
    description: Net namespace (by name, as in C(/run/netns)) of the first end; the host's
      when omitted.
    type: str
  bridge:
    description: Bridge the first end is attached to. Only for an end in the host namespace.
    type: str
  addresses:
    description: Addresses of the first end, in CIDR form. The end ends up with exactly these.
    type: list
    elements: str
    default: []
  mac:
    description: MAC address of the first end.
    type: str
  peer:
    description: The other end. Required with O(state=present).
    type: dict
    suboptions:
      name:
        description: Name of the other end (at most 15 bytes).
        type: str
        required: true
      netns:
        description: Its net namespace; the host's when omitted.
        type: str
      bridge:
        description: Bridge it is attached to (only in the host namespace).
        type: str
      addresses:
        description: Its addresses, in CIDR form.
        type: list
        elements: str
        default: []
      mac:
        description: Its MAC address.
        type: str
  mtu:
    description: MTU of both ends. Left as the kernel sets it when omitted.
    type: int
  ipv6:
    description: IPv6 address generation (link-local, SLAAC) on both ends.
    type: bool
    default: false
  keep_state:
    description:
      - Leave the up/down state of an existing pair as it is (a new pair is still brought
        up). For a pair whose state nslab_link sets (a topology's C(state=down)), so that
        this module does not bring it back up on every run.
    type: bool
    default: false
  antispoof:
    description:
      - For a pair with one end on a bridge (the port) and the other not (the node end),
        frames entering the bridge from the port must carry the node end's MAC as source,
        and ARP from it must carry that MAC as sender and one of the node end's IPv4
        O(peer.addresses) (or 0.0.0.0, an ARP probe) as sender IP. Anything else is
        dropped before the bridge learns from it, so a node cannot poison its neighbours'
        ARP caches or the bridge's forwarding table. IP source addresses are not checked
        (a node may route others' traffic).
      - The node end's MAC is the one given in its C(mac), else one derived from lab,
        namespace and name (locally administered, stable across rebuilds), set at creation
        and kept. It is known before the link exists, so the rules are in place before the
        port is, and it is never taken from the kernel, where a node could have changed it.
      - Three rules per port in nslab's own table C(bridge nslab) (chain C(prerouting)),
        named by their comment C(nslab:<lab>:<bridge>:port:<port>:<check>), removed with
        the pair, or by the next run once the port is gone (its namespace deleted), or
        with the bridge (see nslab_bridge).
      - A node with C(CAP_NET_ADMIN) can still change its MAC or add addresses; its
        frames are then dropped (until the next run sets the MAC back). ARP of VLAN-tagged
        frames and IPv6 neighbour discovery are not inspected (only their source MAC is).
        A node end with no IPv4 address may send ARP probes only; set O(antispoof=false)
        for a node that configures its own addresses (DHCP).
      - Needs the C(nft) command (Debian package C(nftables)) when a pair has a port.
    type: bool
    default: true
  state:
    description: V(present) or V(absent). The default for items of O(veths).
    type: str
    choices: [present, absent]
    default: present
  veths:
    description: Several pairs converged at once. Each item takes the options above.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the first end.
        type: str
        required: true
      netns:
        description: Net namespace of the first end; the host's when omitted.
        type: str
      bridge:
        description: Bridge the first end is attached to (host namespace only).
        type: str
      addresses:
        description: Addresses of the first end, in CIDR form.
        type: list
        elements: str
        default: []
      mac:
        description: MAC address of the first end.
        type: str
      peer:
        description: The other end. Required with O(state=present).
        type: dict
        suboptions:
          name:
            description: Name of the other end.
            type: str
            required: true
          netns:
            description: Its net namespace; the host's when omitted.
            type: str
          bridge:
            description: Bridge it is attached to (host namespace only).
            type: str
          addresses:
            description: Its addresses, in CIDR form.
            type: list
            elements: str
            default: []
          mac:
            description: Its MAC address.
            type: str
      mtu:
        description: MTU of both ends.
        type: int
      ipv6:
        description: IPv6 address generation on both ends.
        type: bool
        default: false
      antispoof:
        description: Guard the bridge port of a node against MAC and ARP spoofing.
        type: bool
        default: true
      keep_state:
        description: Leave an existing pair's up/down state alone.
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
  - iproute2 and util-linux (nsenter) on the target
  - nftables (C(nft)) for pairs on a bridge with O(antispoof=true)
seealso:
  - module: nslab.lab.nslab_bridge
  - module: nslab.lab.nslab_namespace
"""

EXAMPLES = r"""
- name: A container's eth0 on the lab bridge, Docker style
  nslab_veth:
    lab: demo
    name: nsl-demo-101
    bridge: nslab-demo-lan
    peer:
      name: eth0
      netns: demo-apt101
      addresses: [10.213.1.11/24]

- name: Every pair of a lab at once, with a point-to-point link between two containers
  nslab_veth:
    lab: demo
    veths:
      - {name: nsl-demo-101, bridge: nslab-demo-lan,
         peer: {name: eth0, netns: demo-apt101, addresses: [10.213.1.11/24]}}
      - {name: eth1, netns: demo-apt101, addresses: [10.213.9.1/30],
         peer: {name: eth1, netns: demo-apt103, addresses: [10.213.9.2/30]}}

- name: A node that runs its own DHCP client, so its addresses are not known here
  nslab_veth:
    lab: demo
    name: nsl-demo-102
    bridge: nslab-demo-lan
    antispoof: false
    peer: {name: eth0, netns: demo-apt102}

- name: Remove a pair (both ends go)
  nslab_veth:
    lab: demo
    name: nsl-demo-101
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence per change.
  returned: always
  type: list
  elements: str
  sample: ["create veth 'nsl-demo-101' with peer 'eth0' in netns 'demo-apt101'"]
veths:
  description: Each requested pair as the kernel reports it after the run.
  returned: always
  type: list
  elements: dict
  sample:
    - name: nsl-demo-101
      netns: null
      state: present
      mtu: 1500
      master: nslab-demo-lan
      addresses: []
      antispoof: true
      peer:
        name: eth0
        netns: demo-apt101
        state: present
        mac: 6a:1f:0c:5e:93:d2
        addresses: [10.213.1.11/24]
diff:
  description: Before and after, keyed by C(netns/name) of the first end.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, items_from_params, list_argument_spec, main_of, runner_for)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import link_view
from ansible_collections.nslab.lab.plugins.module_utils.nslab_links import (
    Iface, VethSpec, address_problems, derived_mac, desired_view, plan_veths)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NamespaceStore, check_lab_netns)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import parse_alias
from ansible_collections.nslab.lab.plugins.module_utils.nslab_nft import (
    BRIDGE_TABLE, PORT, apply_script, parse_comment, plan_rules, port_rules, read_table, script,
    undo_script)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_plan import apply_plan
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
    ifname_problem, mac_problem, mtu_problem, nsname_problem, interface_addresses)

END_KEYS = ["name", "netns", "bridge", "addresses", "mac"]
VIEW_KEYS = ["state", "kind", "mtu", "mac", "up", "master", "addresses", "ipv6", "ifindex",
             "owner"]


def build_end(end, where, item, problems):
    problems.append(ifname_problem(where + "name", end.get("name")))
    if end.get("netns"):
        problems.append(nsname_problem(where + "netns", end["netns"]))
        if end.get("bridge"):
            problems.append("%sbridge: '%s' cannot be used for an end in netns '%s'; "
                            "expected an end in the host namespace" % (
                                where, end["bridge"], end["netns"]))
    if end.get("bridge"):
        problems.append(ifname_problem(where + "bridge", end["bridge"]))
    if end.get("mac"):
        problems.append(mac_problem(where + "mac", end["mac"]))
    addresses = interface_addresses(where + "addresses", end.get("addresses"), problems)
    return Iface(name=end.get("name"), netns=end.get("netns") or None, mtu=item.get("mtu"),
                 mac=end["mac"].lower() if end.get("mac") else None, addresses=addresses,
                 master=end.get("bridge") or None, ipv6=bool(item.get("ipv6")),
                 keep_state=bool(item.get("keep_state")))


def build_specs(items):
    problems, specs, seen = [], [], set()
    for item in items:
        where = item["_where"]
        problems.append(mtu_problem(where + "mtu", item.get("mtu")))
        end = build_end(dict((k, item.get(k)) for k in END_KEYS), where, item, problems)
        if item.get("peer"):
            peer = build_end(item["peer"], where + "peer.", item, problems)
        else:
            # Deleting a pair needs only one end: the kernel removes its peer with it.
            if item["state"] == "present":
                problems.append("%speer: missing; expected the other end ({name, netns, ...}) "
                                "for a pair with state=present" % where)
            peer = Iface(name=None)
        for iface in (end, peer):
            key = (iface.netns, iface.name)
            if iface.name and key in seen:
                problems.append("%sname: interface '%s'%s is listed twice" % (
                    where, iface.name, iface.where()))
            seen.add(key)
        specs.append(VethSpec(end=end, peer=peer, state=item["state"],
                              antispoof=bool(item.get("antispoof"))))
    problems = [p for p in problems if p]
    if problems:
        raise ValidationError(problems)
    return specs


def namespaces_used(specs):
    names = []
    for spec in specs:
        for iface in (spec.end, spec.peer):
            if iface.netns and iface.netns not in names:
                names.append(iface.netns)
    return names


def read_tables(runner, netns_names, needed, store, check_mode, warnings):
    """{netns or None: {name: Link}} for the host and every namespace used.

    A missing namespace that only pairs to remove use holds nothing to remove. Raises
    ValidationError for a missing one in ``needed`` (outside check mode) or
    OwnershipError for one that is not this lab's."""
    present = [None] + [name for name in netns_names if check_lab_netns(store, name)]
    read = dict(zip(present, runner.each(lambda netns: runner.read_links(netns=netns), present)))
    tables, problems = {None: read[None]}, []
    for name in netns_names:
        if name in read:
            tables[name] = read[name]
        elif name not in needed:
            tables[name] = {}
        elif check_mode:
            warnings.append("netns '%s' does not exist yet; assuming it will be empty" % name)
            tables[name] = {}
        else:
            problems.append("netns: '%s' does not exist; expected a net namespace made by "
                            "nslab_namespace for lab '%s'" % (name, store.lab))
    if problems:
        raise ValidationError(problems)
    return tables


def bridge_problems(specs, host_links, lab, check_mode, warnings):
    problems = []
    for spec in specs:
        for iface in (spec.end, spec.peer):
            if spec.state != "present" or not iface.master:
                continue
            bridge = host_links.get(iface.master)
            if bridge is None:
                if check_mode:
                    warnings.append("bridge '%s' does not exist yet" % iface.master)
                else:
                    problems.append("bridge: '%s' does not exist; expected a bridge made by "
                                    "nslab_bridge for lab '%s'" % (iface.master, lab))
            elif bridge.kind != "bridge" or parse_alias(bridge.alias) != (lab, "bridge"):
                problems.append("bridge: '%s' is not a bridge of lab '%s'; nslab only attaches "
                                "to its own bridges" % (iface.master, lab))
    return problems


def guarded_ports(specs, lab):
    """[(spec, port, node end)] of the pairs to guard; a node end without a MAC of its own
    gets its derived one (set at creation, converged afterwards)."""
    guarded = []
    for spec in specs:
        ends = spec.bridge_port() if spec.state == "present" and spec.antispoof else None
        if ends:
            port, node = ends
            if not node.mac:
                node.mac = derived_mac(lab, node.netns, node.name)
            guarded.append((spec, port, node))
    return guarded


def plan_antispoof(specs, guarded, lab, current, host_links):
    """(summaries, NftPlan) for the bridge table: the rules of ``guarded`` ports; the
    rules of this run's other ports, and of this lab's ports that no longer exist, go."""
    run_ports = set(i.name for s in specs for i in (s.end, s.peer) if i.name and not i.netns)
    wanted = [r for _spec, port, node in guarded
              for r in port_rules(lab, port.master, port.name, node.mac, node.addresses)]

    def owned(comment):
        parsed = parse_comment(comment)
        return bool(parsed) and parsed[0] == lab and parsed[2] == PORT and (
            parsed[3] in run_ports or parsed[3] not in host_links)

    plan = plan_rules(BRIDGE_TABLE, wanted, current, owned)
    summaries = []
    changed_ports = set(parse_comment(r.comment)[3] for r in plan.add)
    replaced_ports = set(parse_comment(r.comment)[3] for r in plan.replace)
    for _spec, port, node in guarded:
        if port.name in changed_ports:
            guard_rules = list(port_rules(lab, port.master, port.name, node.mac, node.addresses))
            ips = guard_rules[2].matches[1].values[1:]
            summaries.append("%s port '%s' of bridge '%s' against spoofing: source MAC %s, "
                             "ARP sender IPv4 %s" % (
                                 "update the guard of" if port.name in replaced_ports
                                 else "guard", port.name, port.master, node.mac,
                                 ", ".join(ips) or "none (probes only)"))
    for rule in plan.delete:
        _lab, bridge, _what, port, _check = parse_comment(rule.comment)
        summary = "remove the anti-spoofing rules of port '%s' of bridge '%s'" % (port, bridge)
        if summary not in summaries:
            summaries.append(summary)
    return summaries, plan


def antispoof_state(spec, lab, rules):
    """Whether the kernel has every rule that guards the pair's port (None: no port)."""
    ends = spec.bridge_port()
    if not ends or not ends[1].mac:
        return None if not ends else False
    port, node = ends
    have = set((r.comment, r.signature) for r in rules)
    return all((r.comment, r.signature()) in have
               for r in port_rules(lab, port.master, port.name, node.mac, node.addresses))


def end_view(iface, tables, keys):
    return dict(name=iface.name, netns=iface.netns,
                **link_view(tables.get(iface.netns, {}).get(iface.name), keys))


def pair_view(spec, tables, keys, antispoof=None):
    view = end_view(spec.end, tables, keys)
    if antispoof is not None and view["state"] == "present":
        view["antispoof"] = antispoof
    if spec.peer.name:
        view["peer"] = end_view(spec.peer, tables, keys)
    return view


def diff_keys(spec):
    keys = ["state"]
    if spec.state == "present":
        keys += ["addresses", "master", "ipv6"] + (["mtu"] if spec.end.mtu else [])
    return keys


def predicted_pair(spec, keys):
    if spec.state == "absent":
        return {"name": spec.end.name, "netns": spec.end.netns, "state": "absent"}
    view = dict(name=spec.end.name, netns=spec.end.netns, **desired_view(spec.end, keys))
    if spec.bridge_port():
        view["antispoof"] = spec.antispoof
    view["peer"] = dict(name=spec.peer.name, netns=spec.peer.netns,
                        **desired_view(spec.peer, keys))
    return view


def converge(module):
    params = module.params
    check_lab(params)
    lab = params["lab"]
    items = items_from_params(params, "veths", END_KEYS + ["peer", "mtu", "ipv6", "antispoof",
                                                           "keep_state", "state"])
    specs = build_specs(items)
    runner = runner_for(module)
    warnings = []
    guarded = guarded_ports(specs, lab)
    nft = module.get_bin_path("nft")
    if guarded and nft is None:
        raise ValidationError(["antispoof: true (the default) for the bridge port%s %s needs "
                               "the nft command on the target; expected the nftables package "
                               "installed, or antispoof: false" % (
                                   "s" if len(guarded) > 1 else "",
                                   ", ".join("'%s'" % p.name for _s, p, _n in guarded))])

    netns_names = namespaces_used(specs)
    needed = namespaces_used([s for s in specs if s.state == "present"])
    tables = read_tables(runner, netns_names, needed, NamespaceStore(lab), module.check_mode,
                         warnings)
    present = [i for s in specs if s.state == "present" for i in (s.end, s.peer)]
    problems = bridge_problems(specs, tables[None], lab, module.check_mode, warnings)
    problems += address_problems(present, tables)
    if problems:
        raise ValidationError(problems)
    actions = plan_veths(specs, tables, lab)
    # Without nft there can be no nslab rules to remove.
    rules = read_table(runner, nft, BRIDGE_TABLE) if nft else []
    guard_summaries, guard_plan = plan_antispoof(specs, guarded, lab, rules, tables[None])
    summaries = [a.summary for a in actions] + guard_summaries

    after, after_rules = tables, rules
    if summaries and not module.check_mode:
        # A new port is guarded before it exists; stale rules go after their port did.
        guards = script(guard_plan, "add")
        apply_script(runner, nft, guards)
        log = UndoLog()
        if guards:
            log.record("add nslab's anti-spoofing rules", lambda: apply_script(
                runner, nft, undo_script(guard_plan, read_table(runner, nft, BRIDGE_TABLE),
                                         "add")))
        apply_plan(runner, actions, log)
        with log.guard():
            stale = script(guard_plan, "delete")
            apply_script(runner, nft, stale)
            if stale:
                log.record("delete stale anti-spoofing rules")
        if actions:
            spaces = list(tables)
            after = dict(zip(spaces, runner.each(lambda ns: runner.read_links(netns=ns), spaces)))
        after_rules = read_table(runner, nft, BRIDGE_TABLE) if nft else []

    result = {
        "changed": bool(summaries),
        "actions": summaries,
        "veths": [pair_view(s, after, VIEW_KEYS, antispoof_state(s, lab, after_rules))
                  for s in specs],
    }
    for warning in warnings:
        module.warn(warning)
    if module._diff:
        def key(spec):
            return "%s/%s" % (spec.end.netns or "host", spec.end.name)
        result["diff"] = {
            "before": dict((key(s), pair_view(s, tables, diff_keys(s),
                                              antispoof_state(s, lab, rules)))
                           for s in specs),
            "after": dict((key(s), predicted_pair(s, diff_keys(s)) if module.check_mode
                           else pair_view(s, after, diff_keys(s),
                                          antispoof_state(s, lab, after_rules)))
                          for s in specs),
        }
    return result


def end_options(required_name):
    return dict(
        name=dict(type="str", required=required_name),
        netns=dict(type="str"),
        bridge=dict(type="str"),
        addresses=dict(type="list", elements="str", default=[]),
        mac=dict(type="str"),
    )


def pair_options(item=False):
    options = end_options(required_name=item)
    options.update(
        peer=dict(type="dict", options=end_options(required_name=True)),
        mtu=dict(type="int"),
        ipv6=dict(type="bool", default=False),
        antispoof=dict(type="bool", default=True),
        keep_state=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"]),
    )
    return options


def get_argument_spec():
    return list_argument_spec(pair_options, "veths", "present")


def main():
    main_of(AnsibleModule, get_argument_spec(), "veths", "veths", converge)


if __name__ == "__main__":
    main()

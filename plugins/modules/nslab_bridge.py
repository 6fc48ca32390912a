#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_bridge
short_description: Linux bridges owned by an nslab lab
description:
  - Creates, updates and deletes Linux bridges in the host's network namespace, the switch
    that nslab containers' veth pairs plug into (Docker's default bridge model).
  - Converges one bridge (O(name)) or a list of them (O(bridges)) in a single invocation, with
    one C(ip -batch) process for all changes.
  - Every bridge it creates is tagged with the ifalias C(nslab:<lab>:bridge). A bridge that
    exists without this lab's tag (made by hand, by Docker, by another lab) is never changed
    or deleted; the module fails and names its owner instead.
  - Addresses are converged exactly (IPv6 link-local addresses made by the kernel are
    ignored). IPv6 address generation is off unless O(ipv6=true), because router
    solicitations and DAD on hundreds of bridge ports flood the bridge.
  - If applying fails half way, every step already done is undone, newest first.
version_added: "0.1.0"
author: nslab contributors
options:
  name:
    description:
      - Bridge name (at most 15 bytes). Mutually exclusive with O(bridges).
    type: str
  addresses:
    description:
      - Addresses of the bridge in CIDR form (IPv4 and IPv6). The bridge ends up with exactly
        these.
    type: list
    elements: str
    default: []
  mtu:
    description: MTU of the bridge. Left as the kernel sets it when omitted.
    type: int
  mac:
    description: MAC address of the bridge. Left as the kernel sets it when omitted.
    type: str
  stp:
    description: Spanning tree protocol on the bridge.
    type: bool
    default: false
  ipv6:
    description: IPv6 address generation (link-local, SLAAC) on the bridge.
    type: bool
    default: false
  nat:
    description:
      - Masquerade the bridge's IPv4 subnets to the host's uplink (like Docker's default
        bridge), with one nftables rule per subnet in nslab's own table C(ip nslab).
      - Needs the C(nft) command (Debian package C(nftables)). If the host does not forward
        IPv4 (C(net.ipv4.ip_forward=0)), the module turns forwarding on, which is a
        host-wide setting; it says so in RV(actions) and in a warning, and does not
        turn it off again.
    type: bool
    default: false
  isolate_host:
    description:
      - Nodes on the bridge reach no address of the host except the bridge's own (the
        host side of the lab network, their gateway). Packets that arrive on the bridge
        for any other local address of the host (its uplink, loopback, other bridges, IPv4
        and IPv6) are dropped, by one nftables rule in nslab's own table C(inet nslab)
        (chain C(input)), named by its comment C(nslab:<lab>:<bridge>:isolate-host).
      - Traffic the host forwards (routing, O(nat)) is not affected, nor are replies to
        connections the host opens from the bridge's address.
      - Needs the C(nft) command (Debian package C(nftables)).
    type: bool
    default: false
  state:
    description:
      - V(present) creates or updates, V(absent) deletes (with its rules in nslab's
        nftables tables, including the anti-spoofing rules of its ports, see nslab_veth). The default for items of
        O(bridges) that do not set their own.
    type: str
    choices: [present, absent]
    default: present
  bridges:
    description: Several bridges converged at once. Each item takes the options above.
    type: list
    elements: dict
    suboptions:
      name:
        description: Bridge name.
        type: str
        required: true
      addresses:
        description: Addresses in CIDR form.
        type: list
        elements: str
        default: []
      mtu:
        description: MTU.
        type: int
      mac:
        description: MAC address.
        type: str
      stp:
        description: Spanning tree protocol.
        type: bool
        default: false
      ipv6:
        description: IPv6 address generation.
        type: bool
        default: false
      nat:
        description: Masquerade the bridge's IPv4 subnets to the host's uplink.
        type: bool
        default: false
      isolate_host:
        description: Nodes on the bridge reach no address of the host but the bridge's.
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
  - nftables (C(nft)) only with O(nat=true) or O(isolate_host=true)
notes:
  - The bridge lives in the host's network namespace. Host-wide settings such as
    C(net.bridge.bridge-nf-call-iptables) or ARP table sizes are not changed.
seealso:
  - module: nslab_veth
  - module: nslab_namespace
"""

EXAMPLES = r"""
- name: One bridge with an address, like Docker's docker0
  nslab_bridge:
    lab: demo
    name: nslab-demo-lan
    addresses: [10.213.1.1/24]

- name: Every bridge of a lab in one invocation
  nslab_bridge:
    lab: demo
    bridges:
      - {name: nslab-demo-lan, addresses: [10.213.1.1/24, "fd00:213:1::1/64"], ipv6: true}
      - {name: nslab-demo-dmz, mtu: 9000, stp: true}

- name: A lab network whose nodes cannot reach the host's other addresses
  nslab_bridge:
    lab: demo
    name: nslab-demo-lan
    addresses: [10.213.1.1/24]
    isolate_host: true

- name: Remove a bridge
  nslab_bridge:
    lab: demo
    name: nslab-demo-dmz
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence per change.
  returned: always
  type: list
  elements: str
  sample: ["create bridge 'nslab-demo-lan'", "add address 10.213.1.1/24 to bridge 'nslab-demo-lan'"]
bridges:
  description: Each requested bridge as the kernel reports it after the run (before it, in
    check mode).
  returned: always
  type: list
  elements: dict
  sample:
    - name: nslab-demo-lan
      state: present
      kind: bridge
      mtu: 1500
      mac: 1e:e1:b5:fe:f4:9e
      up: true
      addresses: [10.213.1.1/24]
      stp: false
      ipv6: false
      nat: false
      isolate_host: false
      ifindex: 7
      owner: "nslab:demo:bridge"
diff:
  description: Before and after, keyed by bridge name, over the options that were set.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, items_from_params, list_argument_spec, main_of, runner_for)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import link_view
from ansible_collections.nslab.lab.plugins.module_utils.nslab_links import (
    BridgeSpec, Iface, address_problems, desired_view, plan_bridges)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_nat import (
    enable_forwarding, forwarding_enabled, nat_subnets, plan_nat, read_rules, rule_comment,
    undo_nat)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_nft import (
    BRIDGE_TABLE, HOST_TABLE, ISOLATE, PORT, apply_script, isolate_rule, parse_comment, plan_rules,
    read_table, script, undo_script)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_plan import apply_plan
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
    ifname_problem, mac_problem, mtu_problem, interface_addresses)

VIEW_KEYS = ["state", "kind", "mtu", "mac", "up", "addresses", "stp", "ipv6", "nat",
             "isolate_host", "ifindex", "owner"]


def build_specs(items):
    """Validate every item and turn it into a BridgeSpec; raise once with every problem."""
    problems, specs, names = [], [], set()
    for item in items:
        where = item["_where"]
        problems.append(ifname_problem(where + "name", item["name"]))
        if item["name"] in names:
            problems.append("%sname: bridge '%s' is listed twice" % (where, item["name"]))
        names.add(item["name"])
        problems.append(mtu_problem(where + "mtu", item.get("mtu")))
        if item.get("mac"):
            problems.append(mac_problem(where + "mac", item["mac"]))
        addresses = interface_addresses(where + "addresses", item.get("addresses"), problems)
        specs.append(BridgeSpec(
            iface=Iface(name=item["name"], mtu=item.get("mtu"),
                        mac=item["mac"].lower() if item.get("mac") else None,
                        addresses=addresses, ipv6=bool(item.get("ipv6"))),
            stp=bool(item.get("stp")), nat=bool(item.get("nat")),
            isolate_host=bool(item.get("isolate_host")), state=item["state"]))
    problems = [p for p in problems if p]
    if problems:
        raise ValidationError(problems)
    return specs


def diff_keys(item):
    keys = ["state"]
    if item["state"] == "present":
        keys += ["addresses", "stp", "ipv6", "nat", "isolate_host"] + [
            k for k in ("mtu", "mac") if item.get(k)]
    return keys


def wanted_nat_rules(specs, lab):
    wanted = {}
    for spec in specs:
        if spec.state == "present" and spec.nat:
            for subnet in nat_subnets(spec.iface.addresses):
                wanted[rule_comment(lab, spec.iface.name, subnet)] = (spec.iface.name, subnet)
    return wanted


def nat_state(rules, lab, name):
    return any(c.startswith("nslab:%s:%s:" % (lab, name)) for c in rules)


def plan_filters(specs, lab, host_rules, bridge_rules):
    """Plans for nslab's filter tables: the isolation rule of each bridge with
    isolate_host, and for a bridge that goes, every rule named after it (its isolation
    and its ports' anti-spoofing rules). Returns (summaries, [NftPlan])."""
    managed = set(s.iface.name for s in specs)
    absent = set(s.iface.name for s in specs if s.state == "absent")

    def owned_host(comment):
        parsed = parse_comment(comment)
        return bool(parsed) and parsed[0] == lab and parsed[1] in managed and (
            parsed[2] == ISOLATE or parsed[1] in absent)

    def owned_bridge(comment):
        parsed = parse_comment(comment)
        return bool(parsed) and parsed[0] == lab and parsed[1] in absent

    wanted = [isolate_rule(lab, s.iface.name) for s in specs
              if s.state == "present" and s.isolate_host]
    host_plan = plan_rules(HOST_TABLE, wanted, host_rules, owned_host)
    bridge_plan = plan_rules(BRIDGE_TABLE, [], bridge_rules, owned_bridge)
    summaries = []
    for rule in host_plan.add:
        summaries.append("isolate the host from bridge '%s': its nodes reach only the "
                         "bridge's own addresses" % parse_comment(rule.comment)[1])
    for rule in host_plan.delete:
        _lab, bridge, what, _port, _check = parse_comment(rule.comment)
        if what == ISOLATE:
            summaries.append("stop isolating the host from bridge '%s'" % bridge)
    for rule in bridge_plan.delete:
        _lab, bridge, what, port, _check = parse_comment(rule.comment)
        summary = "remove the anti-spoofing rules of port '%s' of bridge '%s'" % (port, bridge)
        if what == PORT and summary not in summaries:
            summaries.append(summary)
    return summaries, [p for p in (host_plan, bridge_plan) if p]


def isolate_state(rules, lab, name):
    wanted = isolate_rule(lab, name)
    return any(r.comment == wanted.comment and r.signature == wanted.signature()
               for r in rules)


def run_nat_script(runner, nft, lines):
    if lines:
        runner.run([nft, "-f", "-"], data="\n".join(lines) + "\n")


def restore_filters(runner, nft, filter_plans):
    """Put nslab's port rules back as they were before ``filter_plans`` were applied."""
    apply_script(runner, nft, [c for p in filter_plans
                               for c in undo_script(p, read_table(runner, nft, p.table))])


def converge(module):
    params = module.params
    lab = params["lab"]
    check_lab(params)
    items = items_from_params(params, "bridges", ["name", "addresses", "mtu", "mac", "stp",
                                                  "ipv6", "nat", "isolate_host", "state"])
    specs = build_specs(items)
    runner = runner_for(module)

    links = runner.read_links()
    present = [s.iface for s in specs if s.state == "present"]
    problems = address_problems(present, {None: links})
    wanted = wanted_nat_rules(specs, lab)
    nft = module.get_bin_path("nft")
    if wanted and nft is None:
        problems.append("nat: true needs the nft command on the target; expected the "
                        "nftables package to be installed")
    isolating = [s.iface.name for s in specs if s.state == "present" and s.isolate_host]
    if isolating and nft is None:
        problems.append("isolate_host: true (bridge %s) needs the nft command on the target; "
                        "expected the nftables package to be installed" % ", ".join(
                            "'%s'" % n for n in isolating))
    if problems:
        raise ValidationError(problems)
    actions = plan_bridges(specs, links, lab)

    # With no nft there can be no nslab rules to remove.
    rules = read_rules(runner, nft) if nft else {}
    nat_summaries, nat_script = plan_nat(wanted, rules, lab, [s.iface.name for s in specs])
    host_rules = read_table(runner, nft, HOST_TABLE) if nft else []
    # Only a bridge that goes needs its ports' rules.
    bridge_rules = read_table(runner, nft, BRIDGE_TABLE) if nft and any(
        s.state == "absent" for s in specs) else []
    filter_summaries, filter_plans = plan_filters(specs, lab, host_rules, bridge_rules)
    turn_on_forwarding = bool(wanted) and not forwarding_enabled()
    summaries = [a.summary for a in actions] + nat_summaries + filter_summaries
    if turn_on_forwarding:
        summaries.append("enable IPv4 forwarding (net.ipv4.ip_forward=1, host-wide)")
        module.warn("nat: IPv4 forwarding was off; nslab turned it on for the whole host "
                    "and will not turn it off again")

    after_links, after_rules, after_host_rules = links, rules, host_rules
    if summaries and not module.check_mode:
        log = apply_plan(runner, actions)
        with log.guard():
            filter_script = [c for p in filter_plans for c in script(p)]
            apply_script(runner, nft, filter_script)
            if filter_script:
                log.record("apply nslab's nftables rules for the bridges' ports",
                           lambda: restore_filters(runner, nft, filter_plans))
            if nat_script:
                run_nat_script(runner, nft, nat_script)
                log.record("apply nslab's masquerade rules",
                           lambda: run_nat_script(runner, nft, undo_nat(
                               wanted, rules, read_rules(runner, nft), lab)))
            if turn_on_forwarding:
                enable_forwarding()
                # Host-wide, and other labs may rely on it from now on: never undone.
                log.record("enable IPv4 forwarding")
        after_links = runner.read_links()
        after_rules = read_rules(runner, nft) if nft else {}
        after_host_rules = read_table(runner, nft, HOST_TABLE) if nft else []

    def view(name, bridge_links, bridge_rules, filter_rules, keys):
        state = link_view(bridge_links.get(name), keys)
        if "nat" in keys and state["state"] == "present":
            state["nat"] = nat_state(bridge_rules, lab, name)
        if "isolate_host" in keys and state["state"] == "present":
            state["isolate_host"] = isolate_state(filter_rules, lab, name)
        return state

    result = {
        "changed": bool(summaries),
        "actions": summaries,
        "bridges": [dict(name=s.iface.name, **view(s.iface.name, after_links, after_rules,
                                                   after_host_rules, VIEW_KEYS))
                    for s in specs],
    }
    if module._diff:
        before, after = {}, {}
        for item, spec in zip(items, specs):
            keys = diff_keys(item)
            before[spec.iface.name] = view(spec.iface.name, links, rules, host_rules, keys)
            if module.check_mode:
                after[spec.iface.name] = (
                    desired_view(spec.iface, keys, stp=spec.stp, nat=spec.nat and bool(
                        nat_subnets(spec.iface.addresses)), isolate_host=spec.isolate_host)
                    if spec.state == "present" else {"state": "absent"})
            else:
                after[spec.iface.name] = view(spec.iface.name, after_links, after_rules,
                                              after_host_rules, keys)
        result["diff"] = {"before": before, "after": after}
    return result


def bridge_options(item=False):
    options = dict(
        name=dict(type="str", required=item),
        addresses=dict(type="list", elements="str", default=[]),
        mtu=dict(type="int"),
        mac=dict(type="str"),
        stp=dict(type="bool", default=False),
        ipv6=dict(type="bool", default=False),
        nat=dict(type="bool", default=False),
        isolate_host=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"]),
    )
    return options


def get_argument_spec():
    return list_argument_spec(bridge_options, "bridges", "present")


def main():
    main_of(AnsibleModule, get_argument_spec(), "bridges", "bridges", converge)


if __name__ == "__main__":
    main()

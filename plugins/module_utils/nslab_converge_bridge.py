# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the module nslab_bridge does, for any module object: its argument spec and
``converge(module) -> result`` (read the kernel, plan, apply unless in check mode, re-read).
The module runs it alone; nslab_nodes runs it with the node's other parts in one process."""

from __future__ import annotations

from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, items_from_params, list_argument_spec, runner_for)
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

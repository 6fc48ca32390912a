# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the module nslab_veth does, for any module object: its argument spec and
``converge(module) -> result`` (read the kernel, plan, apply unless in check mode, re-read).
The module runs it alone; nslab_nodes runs it with the node's other parts in one process."""

from __future__ import annotations

from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, items_from_params, list_argument_spec, runner_for)
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


def rule_keys(rules):
    """The (comment, signature) of each rule read, for antispoof_state: made once per read,
    not once per pair (500 pairs checked against 1,500 rules each was 0.3 s)."""
    return set((r.comment, r.signature) for r in rules)


def antispoof_state(spec, lab, have):
    """Whether the kernel has every rule that guards the pair's port (None: no port).
    ``have``: rule_keys of the table read."""
    ends = spec.bridge_port()
    if not ends or not ends[1].mac:
        return None if not ends else False
    port, node = ends
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

    after_keys = rule_keys(after_rules)
    result = {
        "changed": bool(summaries),
        "actions": summaries,
        "veths": [pair_view(s, after, VIEW_KEYS, antispoof_state(s, lab, after_keys))
                  for s in specs],
    }
    for warning in warnings:
        module.warn(warning)
    if module._diff:
        def key(spec):
            return "%s/%s" % (spec.end.netns or "host", spec.end.name)
        before_keys = rule_keys(rules)
        result["diff"] = {
            "before": dict((key(s), pair_view(s, tables, diff_keys(s),
                                              antispoof_state(s, lab, before_keys)))
                           for s in specs),
            "after": dict((key(s), predicted_pair(s, diff_keys(s)) if module.check_mode
                           else pair_view(s, after, diff_keys(s),
                                          antispoof_state(s, lab, after_keys)))
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

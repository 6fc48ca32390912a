# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the module nslab_link does, for any module object: its argument spec and
``converge(module) -> result`` (read the kernel, plan, apply unless in check mode, re-read).
The module runs it alone; nslab_nodes runs it with the node's other parts in one process."""

from __future__ import annotations

import json

from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import runner_for
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    NslabError, ValidationError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NamespaceStore, check_lab_netns)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_netem import (
    EndState, apply_actions, netem_problems, normalize_netem, parse_root_qdiscs, plan_link)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import parse_alias
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import netns_name
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import ifname_problem


def entry_problems(links):
    problems = []
    for index, entry in enumerate(links):
        where = "links[%d]" % index
        if not entry.get("node"):
            problems.append("%s.node: a node name is required" % where)
        problem = ifname_problem("%s.interface" % where, entry.get("interface"))
        if problem:
            problems.append(problem)
        problems += netem_problems("%s.netem" % where, entry.get("netem"))
    return problems


class Kernel:
    """Reads of the kernel, cached per namespace (None: the host's)."""

    def __init__(self, runner, tc, lab):
        self.runner, self.tc, self.lab = runner, tc, lab
        self._links, self._qdiscs, self._veths = {}, {}, None

    def links(self, netns):
        if netns not in self._links:
            self._links[netns] = self.runner.read_links(netns=netns, addresses=False)
        return self._links[netns]

    def netns_ids(self, netns):
        """{netns name: nsid} as ``netns`` numbers them (``link_netnsid`` of its veths)."""
        out = self.runner.run([self.runner.ip_bin, "-j", "netns", "list-id"], netns=netns)
        return dict((e["name"], e["nsid"]) for e in json.loads(out or "[]") if "name" in e)

    def qdiscs(self, netns):
        if netns not in self._qdiscs:
            self._qdiscs[netns] = parse_root_qdiscs(
                self.runner.run([self.tc, "-j", "qdisc", "show"], netns=netns))
        return self._qdiscs[netns]

    def prefetch(self, spaces):
        """Read the links and qdiscs of every namespace in ``spaces`` at once (two
        processes each, run a few at a time): every entry's ends are then read."""
        def read(netns):
            return (self.runner.read_links(netns=netns, addresses=False), parse_root_qdiscs(
                self.runner.run([self.tc, "-j", "qdisc", "show"], netns=netns)))
        todo = [ns for ns in spaces if ns not in self._links or ns not in self._qdiscs]
        for netns, (links, qdiscs) in zip(todo, self.runner.each(read, todo)):
            self._links[netns], self._qdiscs[netns] = links, qdiscs
        self._veths = None

    def veths(self, spaces):
        """{(ifindex, peer ifindex): [(netns, Link)]} of every veth end in ``spaces``: a
        pair's other end is found by its numbers, not by a scan per entry."""
        if self._veths is None:
            self._veths = {}
            for netns in spaces:
                for link in self.links(netns).values():
                    if link.kind == "veth":
                        self._veths.setdefault((link.ifindex, link.peer_ifindex), []).append(
                            (netns, link))
        return self._veths

    def forget(self):
        self._links, self._qdiscs, self._veths = {}, {}, None

    def end(self, netns, dev):
        link = self.links(netns)[dev]
        return EndState(netns=netns, dev=dev, qdisc=self.qdiscs(netns).get(dev), up=link.up)


def find_ends(kernel, store, entry, where, namespaces):
    """(node netns, node device, peer netns, peer device) of one entry."""
    lab = kernel.lab
    netns = netns_name(lab, entry["node"])
    if netns not in namespaces or not check_lab_netns(store, netns):
        raise ValidationError("%s.node: node '%s' has no net namespace '%s' in lab '%s'" % (
            where, entry["node"], netns, lab))
    link = kernel.links(netns).get(entry["interface"])
    if link is None:
        raise ValidationError("%s.interface: node '%s' has no interface '%s' (it has %s)" % (
            where, entry["node"], entry["interface"],
            ", ".join(sorted(n for n in kernel.links(netns) if n != "lo")) or "none"))
    if link.kind != "veth" or parse_alias(link.alias) != (lab, "veth"):
        raise ValidationError(
            "%s.interface: '%s' of node '%s' is not a veth of lab '%s' (kind %s, ifalias %r);"
            " nslab_link only changes the lab's own veths" % (
                where, entry["interface"], entry["node"], lab, link.kind, link.alias))
    candidates = [(other, peer) for other, peer in kernel.veths(
        [None] + sorted(namespaces)).get((link.peer_ifindex, link.ifindex), [])
        if (other, peer.name) != (netns, link.name)]
    mine = [(ns, p) for ns, p in candidates if parse_alias(p.alias) == (lab, "veth")]
    if len(mine) > 1:
        # ifindexes are per namespace: in a ring, another pair can have the same two
        # numbers. The peer's namespace is the one link_netnsid names, seen from ours.
        ids = kernel.netns_ids(netns)
        mine = [(ns, p) for ns, p in mine if (ns is None and link.peer_netnsid is None)
                or (ns is not None and ids.get(ns) == link.peer_netnsid)]
    if len(mine) != 1:
        found = ", ".join("%s%s (ifalias %r)" % (p.name, " in netns '%s'" % ns if ns else "",
                                                 p.alias) for ns, p in candidates)
        raise ValidationError("%s: cannot tell the other end of '%s' of node '%s': %s" % (
            where, entry["interface"], entry["node"],
            "found %s" % found if found else "it is in no namespace of lab '%s'" % lab))
    return netns, link.name, mine[0][0], mine[0][1].name


def end_view(end, up=None, netem=None, predicted=False):
    view = end.view()
    if predicted:
        view["netem"] = netem
        view["state"] = "up" if up else "down"
        if netem is not None:
            view["qdisc"] = "netem 4e53:"
        elif end.qdisc is not None and end.qdisc.owner == "nslab":
            view["qdisc"] = "default"
    return view


def _binary(kernel, argv):
    if argv[0] == "sh":
        return list(argv)
    tool = kernel.tc if argv[0] == "tc" else kernel.runner.ip_bin
    return [tool] + list(argv[1:])


def converge(module):
    params = module.params
    lab = params["lab"]
    links = params["links"]
    problems = entry_problems(links)
    if problems:
        raise ValidationError(problems)
    runner = runner_for(module)
    kernel = Kernel(runner, module.get_bin_path("tc", required=True), lab)
    store = NamespaceStore(lab)
    namespaces = set(r["name"] for r in store.lab_records() if "net" in r.get("types", {}))

    kernel.prefetch([None] + [ns for ns in sorted(namespaces) if check_lab_netns(store, ns)])
    plans, seen, errors = [], {}, []
    for index, entry in enumerate(links):
        where = "links[%d]" % index
        ends = find_ends(kernel, store, entry, where, namespaces)
        pair = frozenset([ends[:2], ends[2:]])
        if pair in seen:
            raise ValidationError("%s: node '%s' interface '%s' is the same veth as %s" % (
                where, entry["node"], entry["interface"], seen[pair]))
        seen[pair] = where
        node_end, peer_end = kernel.end(*ends[:2]), kernel.end(*ends[2:])
        actions, trouble, warnings = plan_link(node_end, peer_end, entry.get("netem"),
                                               entry["state"])
        errors += ["%s: %s" % (where, t) for t in trouble]
        for warning in warnings:
            module.warn("%s: %s" % (where, warning))
        plans.append((entry, ends, node_end, peer_end, actions))
    if errors:
        raise ValidationError(errors)

    result = {"changed": any(p[4] for p in plans), "actions": [], "links": []}
    before, after = {}, {}
    for entry, ends, node_end, peer_end, actions in plans:
        key = "%s:%s" % (entry["node"], entry["interface"])
        normal = normalize_netem(entry.get("netem"))
        up = entry["state"] != "down"
        before[key] = [node_end.view(), peer_end.view()]
        after[key] = [end_view(node_end, up, normal["egress"], True),
                      end_view(peer_end, up, normal["ingress"], True)]
        result["actions"] += [a.summary for a in actions]
        if actions and not module.check_mode:
            apply_actions(lambda netns, argv: kernel.runner.run(_binary(kernel, argv),
                                                                netns=netns), actions)
    if result["changed"] and not module.check_mode:
        kernel.forget()
    for entry, ends, node_end, peer_end, actions in plans:
        if result["changed"] and not module.check_mode:
            node_end, peer_end = kernel.end(*ends[:2]), kernel.end(*ends[2:])
            left = plan_link(node_end, peer_end, entry.get("netem"), entry["state"])[0]
            if left:
                raise NslabError("the kernel did not take the change of %s:%s: still to do "
                                 "%s" % (entry["node"], entry["interface"],
                                         "; ".join(a.summary for a in left)))
        result["links"].append({"node": entry["node"], "interface": entry["interface"],
                                "state": entry["state"],
                                "ends": [node_end.view(), peer_end.view()]})
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    return result


def get_argument_spec():
    return dict(
        lab=dict(type="str", required=True),
        links=dict(type="list", elements="dict", required=True, options=dict(
            node=dict(type="str", required=True),
            interface=dict(type="str", required=True),
            netem=dict(type="dict"),
            state=dict(type="str", choices=["up", "down"], default="up"),
        )),
    )

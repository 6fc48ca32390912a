#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_link
short_description: Impairment (netem) and link state of a running nslab lab's links
description:
  - Sets delay, jitter, loss, rate, corruption, duplication and reordering (the kernel's
    C(netem) queueing discipline) and the up/down state of a node's interface and of the
    other end of its veth (the host end on the lab's bridge, or the other node's interface
    of a point-to-point link), without touching anything else of the lab.
  - Reads both ends' root qdiscs (C(tc -j qdisc show)) and link state, and changes only
    what differs. A rerun with the same arguments changes nothing.
  - A flat O(links[].netem) applies to the egress of B(both) ends, so a C(delay) of C(20ms) gives
    about 40 ms of round trip. A netem with the keys C(egress) and C(ingress) sets each
    direction as seen from the node (its C(ingress) is the egress of the other end).
  - nslab's qdisc is the root qdisc with handle C(4e53:). A root qdisc that is neither the
    kernel's default (handle C(0:)) nor nslab's is foreign; an impairment on that end fails,
    naming the device, and the qdisc is left alone; with no impairment wanted it is a
    warning.
  - Only this lab's veths (ifalias C(nslab:<lab>:veth)) are touched; any other interface is
    refused by name.
  - If a change fails half way, what was done for that entry is undone, newest first.
  - Needs the kernel's C(sch_netem) (module or built in) for an impairment; link state
    works without it.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  links:
    description: The attachments to converge.
    type: list
    elements: dict
    required: true
    suboptions:
      node:
        description: Node (its net namespace is C(<lab>-<node>), as nslab_topology names it).
        type: str
        required: true
      interface:
        description: The node's interface, for example C(eth0).
        type: str
        required: true
      netem:
        description:
          - Impairment; omitted or null means none (nslab's qdisc is removed).
          - Keys C(delay), C(jitter) (a number and C(us), C(ms) or C(s)); C(loss),
            C(corrupt), C(duplicate), C(reorder) (a percentage such as C(1%), 0-100); C(rate)
            (a number and C(bit), C(kbit), C(mbit), C(gbit), C(bps), C(kbps), C(mbps) or
            C(gbps)). C(jitter) and C(reorder) need a C(delay).
          - Or C(egress) and C(ingress), each a mapping of those keys.
        type: dict
      state:
        description: C(up) or C(down), for both ends of the veth.
        type: str
        choices: [up, down]
        default: up
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - iproute2 (C(ip), C(tc)) and util-linux (C(nsenter)) on the target
  - the kernel's netem qdisc (C(CONFIG_NET_SCH_NETEM)) for an impairment
seealso:
  - module: nslab.lab.nslab_veth
  - module: nslab.lab.nslab_topology
"""

EXAMPLES = r"""
- name: 50 ms more round trip and 1% loss each way on apt101's eth0
  nslab_link:
    lab: demo
    links:
      - {node: apt101, interface: eth0, netem: {delay: 25ms, loss: 1%}}

- name: A slow uplink (10 Mbit/s out of the node) and 20 ms on what comes back
  nslab_link:
    lab: demo
    links:
      - node: r1
        interface: eth1
        netem: {egress: {rate: 10mbit}, ingress: {delay: 20ms}}

- name: Cut a point-to-point link (both ends go down), and restore another
  nslab_link:
    lab: demo
    links:
      - {node: r1, interface: eth2, state: down}
      - {node: r2, interface: eth3}
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence each.
  returned: always
  type: list
  elements: str
  sample: ["add netem delay 25ms loss 1% to eth0 in netns 'demo-apt101'"]
links:
  description: Each entry's two ends as the kernel reports them after the run (in check
    mode, before).
  returned: always
  type: list
  elements: dict
  sample:
    - node: apt101
      interface: eth0
      state: up
      ends:
        - {netns: demo-apt101, device: eth0, qdisc: "netem 4e53:", state: up,
           netem: {delay: 25ms, loss: 1%}}
        - {netns: null, device: demo-apt101-0, qdisc: "netem 4e53:", state: up,
           netem: {delay: 25ms, loss: 1%}}
diff:
  description: Both ends of each entry before and after, keyed C(<node>:<interface>).
  returned: in diff mode
  type: dict
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import run_module
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    NslabError, ValidationError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NamespaceStore, check_lab_netns)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_netem import (
    EndState, apply_actions, netem_problems, normalize_netem, parse_root_qdiscs, plan_link)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import parse_alias
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import Runner
from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import netns_name
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
    runner = Runner(_runner_callable(module), ip=module.get_bin_path("ip", required=True),
                    nsenter=module.get_bin_path("nsenter", required=True), netlink=True)
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


def _runner_callable(module):
    def run(argv, data=None):
        return module.run_command(argv, data=data, environ_update={"LC_ALL": "C", "LANG": "C"})
    return run


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


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "converge links of lab '%s'" % module.params["lab"], converge, lock=True)


if __name__ == "__main__":
    main()

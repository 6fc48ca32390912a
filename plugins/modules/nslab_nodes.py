#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_nodes
short_description: A lab's nodes on a host, and the bridges and jails they need, in one module run
description:
  - Converges everything the nodes of a lab need on a host, in one module run and one hold of
    the lab's lock, in the order the parts depend on each other. With V(present) - the
    bridges (M(nslab.lab.nslab_bridge)), the jails (M(nslab.lab.nslab_jail)), the
    namespaces (M(nslab.lab.nslab_namespace)), the cgroups (M(nslab.lab.nslab_cgroup)), the
    veth pairs (M(nslab.lab.nslab_veth)), the links' impairment and state
    (M(nslab.lab.nslab_link)), the routes (M(nslab.lab.nslab_route)), the sysctls
    (M(nslab.lab.nslab_sysctl)), then the containers (M(nslab.lab.nslab_container)), which
    start with their network, routes and sysctls in place. With V(absent) - the containers,
    then the namespaces (the kernel removes the veths inside, and their host ends, in one
    batch), then the veth pairs that outlive them, then the cgroups, killing any process left
    in them, then the jails and last the bridges.
  - Each option takes exactly the list its module takes, validated by that module's own
    argument spec, and each part does exactly what that module does (read, plan, apply,
    re-read, roll back on failure). Running them together only saves the cost of a module run
    per part (about 0.4 s on a small host before any work), which is most of a small lab's
    time. The single modules stay, for a playbook that needs one part alone.
  - Every part's arguments are checked against its module's argument spec (types, choices,
    unknown keys) before any part runs. What only a part can judge (a size, an address, a
    path) is checked when that part runs, after the parts before it, as separate tasks
    would; lab.yml validates its whole topology (M(nslab.lab.nslab_topology)) before any of
    this.
  - A part whose list is empty is not run. In check mode, the links are left out when the
    namespaces or veth pairs are still to be made (there is nothing to read yet), as the
    nslab_node role does.
  - If a part fails, the parts before it keep what they did (as separate tasks would) and the
    failure names the part; its own half-done work is rolled back by the part. The failure's
    result lists the earlier parts' RV(actions) and says whether they changed anything.
version_added: "0.4.0"
author: nslab contributors (@nslab-lab)
options:
  state:
    description:
      - V(present) builds every part listed; V(absent) removes the containers, namespaces,
        veth pairs, cgroups, jails and bridges listed. O(links), O(routes) and O(sysctls) are not used with
        V(absent) - they go with their namespaces.
      - Each list item may still set its own C(state), as in its module.
    type: str
    choices: [present, absent]
    default: present
  bridges:
    description: The O(nslab.lab.nslab_bridge#module:bridges) of nslab_bridge.
    type: list
    elements: dict
    default: []
  jails:
    description:
      - The O(nslab.lab.nslab_jail#module:jails) of nslab_jail, with its
        O(nslab.lab.nslab_jail#module:cache_dir) at its default. What their sources need on
        the host (busybox-static, debootstrap) must be installed first; the nslab_jail
        role's C(packages) tasks install it.
    type: list
    elements: dict
    default: []
  namespaces:
    description: The O(nslab.lab.nslab_namespace#module:namespaces) of nslab_namespace.
    type: list
    elements: dict
    default: []
  cgroups:
    description:
      - The O(nslab.lab.nslab_cgroup#module:cgroups) of nslab_cgroup. With V(absent), any
        process left in them is killed (its O(nslab.lab.nslab_cgroup#module:kill)).
    type: list
    elements: dict
    default: []
  veths:
    description: The O(nslab.lab.nslab_veth#module:veths) of nslab_veth.
    type: list
    elements: dict
    default: []
  links:
    description: The O(nslab.lab.nslab_link#module:links) of nslab_link.
    type: list
    elements: dict
    default: []
  routes:
    description: The O(nslab.lab.nslab_route#module:nodes) of nslab_route.
    type: list
    elements: dict
    default: []
  sysctls:
    description: The O(nslab.lab.nslab_sysctl#module:namespaces) of nslab_sysctl.
    type: list
    elements: dict
    default: []
  containers:
    description:
      - The O(nslab.lab.nslab_container#module:containers) of nslab_container, started
        with V(present).
    type: list
    elements: dict
    default: []
  files:
    description:
      - Files every container gets, as nslab_container's top-level
        O(nslab.lab.nslab_container#module:files) (for example C(/etc/hosts)).
    type: dict
    default: {}
  brief:
    description:
      - Return only the containers' views (RV(containers)) of the parts' views, each with
        its C(name), C(state), C(pid), C(netns) and C(cgroup) only; every part still
        reports its C(changed), C(actions) and C(seconds) in RV(parts). The other views
        (cgroups with their limits and usage, veth ends, jails, namespaces) and the rest of
        each container's of a lab of thousands of nodes would be read back and sent to the
        controller on every run; lab.yml does not use them.
    type: bool
    default: false
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - Linux with namespaces and cgroups; root
  - iproute2 and util-linux (nsenter) on the target
seealso:
  - module: nslab.lab.nslab_bridge
  - module: nslab.lab.nslab_jail
  - module: nslab.lab.nslab_namespace
  - module: nslab.lab.nslab_cgroup
  - module: nslab.lab.nslab_veth
  - module: nslab.lab.nslab_container
"""

EXAMPLES = r"""
- name: Two nodes on a bridge made by nslab_bridge, in one run
  nslab_nodes:
    lab: demo
    namespaces:
      - {name: demo-a, types: [net, uts, ipc]}
      - {name: demo-b, types: [net, uts, ipc]}
    cgroups:
      - {name: a, memory: 64M, pids: 64}
      - {name: b, memory: 64M, pids: 64}
    veths:
      - {name: demo-a0, peer: {name: eth0, netns: demo-a, addresses: [10.88.0.2/24]},
         bridge: demo-br0}
      - {name: demo-b0, peer: {name: eth0, netns: demo-b, addresses: [10.88.0.3/24]},
         bridge: demo-br0}
    containers:
      - {name: a, jail: a, netns: demo-a, cgroup: a, command: [sleep, infinity]}
      - {name: b, jail: b, netns: demo-b, cgroup: b, command: [sleep, infinity]}

- name: Remove them
  nslab_nodes:
    lab: demo
    state: absent
    containers: [{name: a}, {name: b}]
    namespaces: [{name: demo-a}, {name: demo-b}]
    cgroups: [{name: a}, {name: b}]
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), the parts in the order they ran.
  returned: always
  type: list
  elements: str
  sample: ["create net, uts, ipc namespaces 'demo-a'", "start container 'a'"]
parts:
  description:
    - The parts that ran, in the order they ran, each with C(changed) and its own
      C(actions) - what a task of its own module would have reported - and C(seconds),
      the wall time it took (where a run's time goes; C(./nslab bench) reports it).
  returned: always
  type: dict
  sample:
    namespaces: {changed: true, actions: ["create net, uts, ipc namespaces 'demo-a'"],
                 seconds: 0.012}
    cgroups: {changed: false, actions: [], seconds: 0.004}
    containers: {changed: true, actions: ["start container 'a'"], seconds: 0.153}
bridges:
  description: nslab_bridge's RV(nslab.lab.nslab_bridge#module:bridges).
  returned: when the part ran, unless O(brief)
  type: list
  elements: dict
jails:
  description: nslab_jail's RV(nslab.lab.nslab_jail#module:jails).
  returned: when the part ran, unless O(brief)
  type: list
  elements: dict
stripped:
  description: nslab_jail's RV(nslab.lab.nslab_jail#module:stripped).
  returned: when the jails ran, unless O(brief)
  type: list
  elements: dict
namespaces:
  description: nslab_namespace's RV(nslab.lab.nslab_namespace#module:namespaces).
  returned: when the part ran, unless O(brief)
  type: list
  elements: dict
cgroups:
  description: nslab_cgroup's RV(nslab.lab.nslab_cgroup#module:cgroups).
  returned: when the part ran, unless O(brief)
  type: list
  elements: dict
layout:
  description: nslab_cgroup's RV(nslab.lab.nslab_cgroup#module:layout).
  returned: when the cgroups ran, unless O(brief)
  type: dict
veths:
  description: nslab_veth's RV(nslab.lab.nslab_veth#module:veths).
  returned: when the part ran, unless O(brief)
  type: list
  elements: dict
links:
  description: nslab_link's RV(nslab.lab.nslab_link#module:links).
  returned: when the part ran, unless O(brief)
  type: list
  elements: dict
routes:
  description: nslab_route's RV(nslab.lab.nslab_route#module:routes).
  returned: when the part ran, unless O(brief)
  type: dict
waiting:
  description: nslab_route's RV(nslab.lab.nslab_route#module:waiting).
  returned: when the routes ran, unless O(brief)
  type: dict
sysctls:
  description: nslab_sysctl's RV(nslab.lab.nslab_sysctl#module:namespaces).
  returned: when the part ran, unless O(brief)
  type: list
  elements: dict
containers:
  description: nslab_container's RV(nslab.lab.nslab_container#module:containers); with
    O(brief), each container's C(name), C(state), C(pid), C(netns) and C(cgroup) only.
  returned: when the part ran
  type: list
  elements: dict
diff:
  description: Each part's before and after, keyed by the part's option name.
  returned: when diff mode is on
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils import (
    nslab_converge_bridge, nslab_converge_cgroup, nslab_converge_container,
    nslab_converge_jail, nslab_converge_link, nslab_converge_namespace,
    nslab_converge_route, nslab_converge_sysctl, nslab_converge_veth)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    PartModule, check_lab, run_module)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError


class Part:
    """One module's work inside this one: its option here, its converge code, the name
    its module gives the list, what its failures say, and the result keys it returns."""

    def __init__(self, option, code, list_key, doing, returns, extra=None):
        self.option, self.code, self.list_key, self.doing = option, code, list_key, doing
        self.returns = returns        # {key in its module's result: key in this one's}
        self.extra = extra or (lambda state, params: {})


def list_state(present):
    return lambda state, params: {"state": present if state == "present" else "absent"}


BRIDGES = Part("bridges", nslab_converge_bridge, "bridges", "converge bridges",
               {"bridges": "bridges"}, list_state("present"))
JAILS = Part("jails", nslab_converge_jail, "jails", "converge jails",
             {"jails": "jails", "stripped": "stripped"}, list_state("present"))
NAMESPACES = Part("namespaces", nslab_converge_namespace, "namespaces", "converge namespaces",
                  {"namespaces": "namespaces"}, list_state("present"))
CGROUPS = Part("cgroups", nslab_converge_cgroup, "cgroups", "converge cgroups",
               {"cgroups": "cgroups", "layout": "layout"},
               lambda state, params: {"state": state, "kill": state == "absent"})
VETHS = Part("veths", nslab_converge_veth, "veths", "converge veths", {"veths": "veths"},
             list_state("present"))
LINKS = Part("links", nslab_converge_link, "links", "converge links", {"links": "links"})
ROUTES = Part("routes", nslab_converge_route, "nodes", "converge routes",
              {"routes": "routes", "waiting": "waiting"})
SYSCTLS = Part("sysctls", nslab_converge_sysctl, "namespaces", "set the sysctls",
               {"namespaces": "sysctls"})
CONTAINERS = Part("containers", nslab_converge_container, "containers", "converge containers",
                  {"containers": "containers"},
                  lambda state, params: dict(list_state("started")(state, params),
                                             files=params["files"]))

# Present: a veth joins its bridge, a container starts in its jail with its network,
# routes and sysctls in place. Absent: the namespaces before the veths (the kernel removes
# a namespace's veths in one batch), a bridge when no port is left on it.
ORDER = {"present": (BRIDGES, JAILS, NAMESPACES, CGROUPS, VETHS, LINKS, ROUTES, SYSCTLS,
                     CONTAINERS),
         "absent": (CONTAINERS, NAMESPACES, VETHS, CGROUPS, JAILS, BRIDGES)}


# What O(brief) keeps of the parts' views, and of each item in them (lab.yml's summary
# shows each container's state and pid).
BRIEF_VIEWS = {"containers": ("name", "state", "pid", "netns", "cgroup")}


def part_params(part, params):
    """The part's own parameters, validated by its module's argument spec (defaults
    filled in, types converted, unknown keys refused) as its module would be."""
    given = dict({"lab": params["lab"], part.list_key: params[part.option]},
                 **part.extra(params["state"], params))
    checked = ArgumentSpecValidator(part.code.get_argument_spec()).validate(given)
    if checked.error_messages:
        raise ValidationError(["%s: %s" % (part.option, message)
                               for message in checked.error_messages])
    return checked.validated_parameters


def converge(module, progress, running):
    params = module.params
    check_lab(params)
    parts = [p for p in ORDER[params["state"]] if params[p.option]]
    # Every part's arguments are checked before any part changes anything.
    validated = [(part, part_params(part, params)) for part in parts]

    result = {"actions": [], "parts": {}}
    before, after, changed = {}, {}, set()
    for part, part_args in validated:
        if part is LINKS and module.check_mode and changed & {NAMESPACES, VETHS}:
            continue
        running.append(part)
        started = time.monotonic()
        # brief: only the views BRIEF_VIEWS keeps are read and returned.
        views = not params["brief"] or any(k in BRIEF_VIEWS for k in part.returns.values())
        done = part.code.converge(PartModule(module, part_args, views))
        seconds = round(time.monotonic() - started, 3)
        if done["changed"]:
            changed.add(part)
        result["actions"] += done["actions"]
        result["parts"][part.option] = {"changed": done["changed"], "actions": done["actions"],
                                        "seconds": seconds}
        progress.update(changed=bool(changed), actions=list(result["actions"]))
        for key, as_key in part.returns.items():
            if not params["brief"]:
                result[as_key] = done[key]
            elif as_key in BRIEF_VIEWS:
                result[as_key] = [dict((k, item[k]) for k in BRIEF_VIEWS[as_key] if k in item)
                                  for item in done[key]]
        if "diff" in done:
            before[part.option], after[part.option] = done["diff"]["before"], done["diff"]["after"]
    result["changed"] = bool(changed)
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    return result


def get_argument_spec():
    lists = dict((option, dict(type="list", elements="dict", default=[]))
                 for option in ("bridges", "jails", "namespaces", "cgroups", "veths", "links",
                                "routes", "sysctls", "containers"))
    return dict(lab=dict(type="str", required=True),
                state=dict(type="str", choices=["present", "absent"], default="present"),
                files=dict(type="dict", default={}), brief=dict(type="bool", default=False),
                **lists)


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    progress, running = {}, []

    def doing():
        what = running[-1].doing if running else "converge the nodes"
        return "%s of lab '%s'" % (what, module.params["lab"])

    run_module(module, doing, lambda m: converge(m, progress, running), lock=True,
               progress=progress)


if __name__ == "__main__":
    main()

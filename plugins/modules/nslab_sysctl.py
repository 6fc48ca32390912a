#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_sysctl
short_description: Sysctls of an nslab node's own net namespace
description:
  - Sets the sysctls of net namespaces of a lab (made by nslab_namespace), such as
    C(net.ipv4.ip_forward) for a router, from the host - a short child joins the namespace
    and writes C(/proc/sys/net/...) there - so the node needs no capability for it and
    no other namespace, the host's included, is changed.
  - Only C(net.*) names are taken. One that does not exist in a net namespace of this
    kernel, or is read-only there (a host-wide setting such as
    C(net.netfilter.nf_conntrack_max)), fails the task by name before anything is written.
  - Each value is read first and written only when it differs (whitespace-normalised, as
    the kernel prints it), then read back; the value read back is returned, and a rerun
    reports no change. If a write fails, the values already written in that namespace and
    in the namespaces listed before it are put back.
  - Sysctls live as long as the net namespace, whatever happens to the container in it;
    the module never resets a value that is no longer listed (the namespace goes with its
    node).
version_added: "0.1.0"
author: nslab contributors
options:
  namespaces:
    description: Net namespaces of the lab and the sysctls each gets.
    type: list
    elements: dict
    required: true
    suboptions:
      netns:
        description: Net namespace made by nslab_namespace for this lab.
        type: str
        required: true
      sysctls:
        description: Name (C(net.*), dotted) to value (an integer or a string like
          C("4096 87380 6291456")).
        type: dict
        required: true
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - Linux, root; python3 >= 3.9 on the target
seealso:
  - module: nslab_namespace
"""

EXAMPLES = r"""
- name: A router forwards IPv4 and IPv6
  nslab_sysctl:
    lab: routers
    namespaces:
      - netns: routers-r1
        sysctls: {net.ipv4.ip_forward: 1, net.ipv6.conf.all.forwarding: 1}
"""

RETURN = r"""
actions:
  description: What was set (or would be, in check mode), one sentence per value.
  returned: always
  type: list
  elements: str
  sample: ["set net.ipv4.ip_forward to '1' in netns 'routers-r1' (was '0')"]
namespaces:
  description: Each namespace with the values its sysctls have after the run (read back).
  returned: always
  type: list
  elements: dict
  sample: [{netns: routers-r1, sysctls: {net.ipv4.ip_forward: "1"}}]
diff:
  description: Before and after, keyed by namespace.
  returned: when diff mode is on
  type: dict
"""

import functools

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import run_module
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    SysctlError, ValidationError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NamespaceStore, check_lab_netns)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import netns_path
from ansible_collections.nslab.lab.plugins.module_utils.nslab_sysctls import (
    current_values, normalise, plan_sysctls, read_sysctls, unsettable, write_sysctls)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import sysctl_problem
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import nsname_problem


def requested(params):
    """[(where, netns, {name: value})] with every problem of the arguments raised at once."""
    problems, items, seen = [], [], set()
    for index, item in enumerate(params["namespaces"]):
        where = "namespaces[%d]" % index
        netns = item["netns"]
        problems.append(nsname_problem(where + ".netns", netns))
        if netns in seen:
            problems.append("%s.netns: '%s' is listed twice; expected each once" % (where,
                                                                                    netns))
        seen.add(netns)
        for name, value in item["sysctls"].items():
            at = "%s.sysctls.%s" % (where, name)
            problems.append(sysctl_problem("%s.sysctls.%s" % (where, name), name))
            if isinstance(value, bool) or not isinstance(value, (int, str)) or \
                    not normalise(value) or "\0" in str(value):
                problems.append("%s: %r is not a sysctl value; expected an integer or a "
                                "one-line string like \"4096 87380\"" % (at, value))
        items.append((where, netns, item["sysctls"]))
    problems = [p for p in problems if p]
    if problems:
        raise ValidationError(problems)
    return items


def converge(module):
    lab = module.params["lab"]
    store = NamespaceStore(lab)
    items = requested(module.params)
    plans, before, problems = [], {}, []
    for where, netns, wanted in items:
        if not check_lab_netns(store, netns):
            message = "%s.netns: '%s' does not exist; expected a net namespace of lab '%s'" % (
                where, netns, lab)
            if module.check_mode:
                # An earlier task of the same check run would make it.
                module.warn(message)
                plans.append((netns, plan_sysctls(netns, wanted, {})))
                before[netns] = {}
                continue
            problems.append(message)
            continue
        found = read_sysctls(netns_path(netns), list(wanted))
        problems += unsettable(where + ".sysctls", found)
        before[netns] = current_values(found)
        plans.append((netns, plan_sysctls(netns, wanted, before[netns])))
    if problems:
        raise ValidationError(problems)
    actions = [a for _netns, plan in plans for a in plan]
    after = dict((netns, dict(before[netns])) for netns in before)
    if not module.check_mode:
        log = UndoLog()
        for netns, plan in plans:
            if not plan:
                continue
            try:
                # write_sysctls puts back this namespace's earlier writes if one fails.
                after[netns].update(write_sysctls(netns_path(netns),
                                                  [(a.name, a.after) for a in plan]))
            except SysctlError as err:
                raise log.fail(SysctlError("netns '%s': %s" % (netns, err)))
            # One undo for the namespace: one process puts all its values back.
            log.record_all([a.summary for a in plan], functools.partial(
                write_sysctls, netns_path(netns), [(a.name, a.before) for a in reversed(plan)]))
    else:
        for action in actions:
            after[action.netns][action.name] = action.after
    result = {"changed": bool(actions), "actions": [a.summary for a in actions],
              "namespaces": [{"netns": netns, "sysctls": after[netns]}
                             for _where, netns, _wanted in items]}
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    return result


def get_argument_spec():
    return dict(
        lab=dict(type="str", required=True),
        namespaces=dict(type="list", elements="dict", required=True, options=dict(
            netns=dict(type="str", required=True),
            sysctls=dict(type="dict", required=True))),
    )


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "set the sysctls of lab '%s'" % module.params["lab"], converge,
               lock=True)


if __name__ == "__main__":
    main()

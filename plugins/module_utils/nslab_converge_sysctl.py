# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the module nslab_sysctl does, for any module object: its argument spec and
``converge(module) -> result`` (read the kernel, plan, apply unless in check mode, re-read).
The module runs it alone; nslab_nodes runs it with the node's other parts in one process."""

from __future__ import annotations

import functools

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    SysctlError, ValidationError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NamespaceStore, check_lab_netns)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import netns_path
from ansible_collections.nslab.lab.plugins.module_utils.nslab_sysctls import (
    current_values, normalise, plan_sysctls, read_sysctls, sysctl_problem, unsettable,
    write_sysctls)
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

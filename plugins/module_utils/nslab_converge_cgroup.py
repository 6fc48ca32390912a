# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the module nslab_cgroup does, for any module object: its argument spec and
``converge(module) -> result`` (read the kernel, plan, apply unless in check mode, re-read).
The module runs it alone; nslab_nodes runs it with the node's other parts in one process."""

from __future__ import annotations

from ansible_collections.nslab.lab.plugins.module_utils.nslab_adopt import adopt_cgroups
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, items_from_params, list_argument_spec)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_apply import CgroupApplier
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import detect_layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_plan import (
    CgroupSpec, plan_cgroups, predicted_limits, settle)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_read import (
    missing_pids, read_cgroup, recorded_owners, reread_written)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import (
    cgroup_view, limits_view)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_store import CgroupStore
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import (
    name_problem, parse_limits)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_vocab import (
    KEYS, layout_problems)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import read_mountinfo

ITEM_KEYS = ["name", "state", "procs"] + KEYS


def build_specs(items, layout):
    """Validate every item and turn it into a CgroupSpec; raise once with every problem."""
    problems, specs, names = [], [], set()
    for item in items:
        where = item["_where"]
        problems.append(name_problem(where + "name", item["name"]))
        if item["name"] in names:
            problems.append("%sname: cgroup '%s' is listed twice" % (where, item["name"]))
        names.add(item["name"])
        procs = item.get("procs") or []
        if item["state"] == "absent":
            # Limits are ignored, so one list of cgroups can both build and remove a lab.
            limits = {}
            if procs:
                problems.append("%sprocs: set with state absent; expected no processes to "
                                "move into a cgroup being deleted" % where)
        else:
            limits, limit_problems = parse_limits(item, where)
            problems.extend(limit_problems)
            if not limit_problems:
                problems.extend(layout_problems(where, limits, layout))
        problems.extend("%sprocs: process %d does not exist" % (where, pid)
                        for pid in missing_pids(procs))
        specs.append(CgroupSpec(item["name"], item["state"], limits, list(procs)))
    problems = [p for p in problems if p]
    if problems:
        raise ValidationError(problems)
    return specs


def read_states(layout, lab, specs, record, views=True):
    """Each spec's cgroup as the kernel has it: its child cgroups only for a deletion;
    without ``views``, only what a plan reads (the limit files, and none for a deletion; the
    processes to kill or attach)."""
    ancestors, owners = {}, recorded_owners(record)
    return dict((s.name, read_cgroup(
        layout, lab, s.name, record, ancestors,
        files="all" if views else ("none" if s.state == "absent" else "limits"),
        children=s.state == "absent", owners=owners,
        procs=views or s.state == "absent" or bool(s.procs))) for s in specs)


def reread_states(layout, lab, specs, record, states, actions, touched, shown, views):
    """The specs' cgroups after an apply: the ones its actions ``touched`` read again (whole
    if their views or the diff are ``shown``, else only the limit files of the directories
    where it wrote a limit: all that settle needs), the others as ``states`` read them."""
    if shown:
        after = read_states(layout, lab, [s for s in specs if s.name in touched], record,
                            views)
        return dict((s.name, after.get(s.name, states[s.name])) for s in specs)
    written = {}
    for action in actions:
        written.setdefault(action.name, []).extend(
            op.path for op in action.ops if op.kind == "write" and op.key)
    return dict((s.name, reread_written(layout, states[s.name], written[s.name])
                 if s.name in touched else states[s.name]) for s in specs)


def diff_view(layout, state, spec, limits=None):
    """The options the task set, as the cgroup has them (or as ``limits`` predicts)."""
    view = cgroup_view(layout, state)
    if limits is not None and spec.state == "absent":
        return {"state": "absent"}
    if spec.state == "absent" or (view["state"] == "absent" and limits is None):
        return {"state": view["state"]}
    shown = limits_view(limits) if limits is not None else view["limits"]
    out = dict((k, shown.get(k)) for k in spec.limits)
    out["state"] = "present"
    if spec.procs:
        out["procs"] = sorted(set(view.get("procs", [])) | set(spec.procs)) \
            if limits is not None else view["procs"]
    return out


def converge(module):
    params = module.params
    check_lab(params)
    layout = detect_layout(read_mountinfo())
    items = items_from_params(params, "cgroups", ITEM_KEYS)
    specs = build_specs(items, layout)
    store = CgroupStore(params["lab"])
    record = store.load()
    # Recovery (nslab_adopt): without the lab's record, its own directories are its own.
    adopted = adopt_cgroups(store, record, layout, specs)

    # A caller that drops the cgroups' views (nslab_nodes' brief) spares the files only
    # they show.
    views = getattr(module, "views", True)
    states = read_states(layout, params["lab"], specs, record, views)
    actions = adopted + plan_cgroups(specs, states, layout, kill=params["kill"])
    after = states
    if actions and not module.check_mode:
        CgroupApplier(store, record, layout).apply(actions)
        touched = set(a.name for a in actions)
        after = reread_states(layout, params["lab"], specs, record, states, actions, touched,
                              views or module._diff, views)
        # The apply saved the record; again only if the kernel made other values of some.
        if settle(record, [s for s in specs if s.name in touched], layout, after):
            store.save(record)

    result = {
        "changed": bool(actions),
        "actions": [a.summary for a in actions],
        "layout": layout.view(),
    }
    if views:
        result["cgroups"] = [dict(name=s.name, **cgroup_view(layout, after[s.name]))
                             for s in specs]
    if module._diff:
        result["diff"] = {
            "before": dict((s.name, diff_view(layout, states[s.name], s)) for s in specs),
            "after": dict((s.name, diff_view(
                layout, after[s.name], s,
                predicted_limits(s, states[s.name], layout) if module.check_mode else None))
                for s in specs),
        }
    return result


def io_options():
    return dict(
        device=dict(type="str", required=True),
        read_bps=dict(type="raw"),
        write_bps=dict(type="raw"),
        read_iops=dict(type="raw"),
        write_iops=dict(type="raw"),
    )


def cgroup_options(item=False):
    return dict(
        name=dict(type="str", required=item),
        memory=dict(type="raw"),
        memory_high=dict(type="raw"),
        swap=dict(type="raw"),
        cpus=dict(type="raw"),
        cpu_weight=dict(type="int"),
        cpuset=dict(type="str"),
        cpuset_mems=dict(type="str"),
        pids=dict(type="raw"),
        io=dict(type="list", elements="dict", options=io_options()),
        io_weight=dict(type="int"),
        procs=dict(type="list", elements="int"),
        state=dict(type="str", choices=["present", "absent"]),
    )


def get_argument_spec():
    return list_argument_spec(cgroup_options, "cgroups", "present",
                              kill=dict(type="bool", default=False))

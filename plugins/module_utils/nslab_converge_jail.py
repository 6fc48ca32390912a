# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the module nslab_jail does, for any module object: its argument spec and
``converge(module) -> result`` (read the kernel, plan, apply unless in check mode, re-read).
The module runs it alone; nslab_nodes runs it with the node's other parts in one process."""

from __future__ import annotations

from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, items_from_params, list_argument_spec)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    JailCommandError, ValidationError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jail_read import (
    JailStore, jail_view)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jail_vocab import (
    SOURCES, VARIANTS)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jails import (
    JailApplier, JailSpec, parse_disk, plan_jails, predicted_view, run_in_jail)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import CACHE_ROOT
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import subprocess_run
from ansible_collections.nslab.lab.plugins.module_utils.nslab_sources import (
    RootfsBuilder, SourceResolver)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
    abspath_problem, object_name_problem)

SOURCE_KEYS = ["source", "path", "binaries", "suite", "mirror", "variant", "include",
               "keep_setuid"]
ITEM_KEYS = ["name"] + SOURCE_KEYS + ["overlay", "disk", "state", "command"]
DIFF_KEYS = ["state", "source", "base_id", "overlay", "disk", "mounted"]


def check_names(items):
    """Names become paths: check them before anything is read."""
    problems, names = [], set()
    for item in items:
        where = item["_where"]
        problems.append(object_name_problem(where + "name", item["name"], "jail"))
        if item["name"] in names:
            problems.append("%sname: jail '%s' is listed twice" % (where, item["name"]))
        names.add(item["name"])
    problems = [p for p in problems if p]
    if problems:
        raise ValidationError(problems)


def build_specs(items, resolver, store, state, which=lambda name: None):
    """Validate every item and resolve its source; raise once with every problem.

    An existing jail whose item sets no source option keeps its base and an unset
    ``overlay`` keeps its layout, so ``state: unmounted`` never rebuilds a jail."""
    problems, specs = [], []
    for item in items:
        where, current = item["_where"], state.jails[item["name"]]
        command = item.get("command")
        if command is not None and (not command or item["state"] != "present"):
            problems.append("%scommand: %r needs a non-empty argv and state 'present' "
                            "(state is '%s')" % (where, command, item["state"]))
        overlay = item["overlay"]
        if overlay is None:
            overlay = current.record["overlay"] if current.exists else True
        disk = current.record.get("disk") if current.exists else None
        if item.get("disk") is not None:
            disk, problem = parse_disk(where, item["disk"])
            problems.append(problem)
        if disk and item["state"] != "absent" and not which("mkfs.ext4"):
            problems.append("%sdisk: needs mkfs.ext4 (Debian package e2fsprogs), not found "
                            "on PATH" % where)
        spec = JailSpec(item["name"], item["state"], overlay=overlay, command=command,
                        disk=disk)
        specs.append(spec)
        if item["state"] == "absent":
            continue
        if current.exists and not any(item.get(k) for k in SOURCE_KEYS):
            spec.base_id = current.record["base"]
            spec.lowerdir = (state.bases.get(spec.base_id) or {}).get("rootfs")
            if spec.lowerdir is None:
                problems.append("%ssource: jail '%s' stands on base %s, which is gone; set "
                                "its source to rebuild it" % (where, spec.name, spec.base_id))
            continue
        spec.source, more = resolver.resolve(dict(item, source=item["source"] or "busybox"),
                                             where)
        problems += more
        if spec.source:
            spec.base_id, spec.lowerdir = spec.source.base_id, store.rootfs(spec.source)
    problems = [p for p in problems if p]
    if problems:
        raise ValidationError(problems)
    return specs


def run_commands(module, store, specs, result):
    for spec, view in zip(specs, result["jails"]):
        if spec.command is None:
            continue
        if module.check_mode:
            view["command_result"] = {"cmd": spec.command, "skipped": True,
                                      "msg": "not run in check mode"}
            continue
        outcome = run_in_jail(view["root"], store.writable(spec.name, view["overlay"]),
                              spec.command)
        view["command_result"] = outcome
        result["changed"] = result["changed"] or outcome["changed"]
        if outcome["rc"] != 0:
            raise JailCommandError(spec.name, outcome, result)


def converge(module):
    params = module.params
    check_lab(params)
    problem = abspath_problem("cache_dir", params["cache_dir"])
    if problem:
        raise ValidationError(problem)
    items = items_from_params(params, "jails", ITEM_KEYS, inherited=ITEM_KEYS[1:])
    check_names(items)

    store = JailStore(params["lab"], cache_dir=params["cache_dir"])
    names = [item["name"] for item in items]
    state = store.read(names)
    specs = build_specs(items, SourceResolver(subprocess_run, module.get_bin_path,
                                              params["cache_dir"]),
                        store, state, module.get_bin_path)
    actions = plan_jails(specs, state, store)
    after, stripped = state, []
    if actions and not module.check_mode:
        applier = JailApplier(store, RootfsBuilder(subprocess_run, module.get_bin_path),
                              subprocess_run)
        applier.apply(actions)
        after, stripped = store.read(names), applier.stripped

    result = {
        "changed": bool(actions),
        "actions": [a.summary for a in actions],
        "stripped": stripped,
        "jails": [dict(name=n, **jail_view(store, n, after)) for n in names],
    }
    if module._diff:
        def keyed(view):
            return dict((k, view[k]) for k in DIFF_KEYS if k in view)
        result["diff"] = {
            "before": dict((n, keyed(jail_view(store, n, state))) for n in names),
            "after": dict((s.name, keyed(predicted_view(store, s, state) if module.check_mode
                                         else jail_view(store, s.name, after)))
                          for s in specs),
        }
    run_commands(module, store, specs, result)
    return result


def jail_options(item=False):
    return dict(
        name=dict(type="str", required=item),
        source=dict(type="str", choices=SOURCES),
        path=dict(type="str"),
        binaries=dict(type="list", elements="str"),
        suite=dict(type="str"),
        mirror=dict(type="str"),
        variant=dict(type="str", choices=VARIANTS),
        include=dict(type="list", elements="str"),
        keep_setuid=dict(type="bool"),
        overlay=dict(type="bool"),
        disk=dict(type="str"),
        state=dict(type="str", choices=["present", "unmounted", "absent"]),
        command=dict(type="list", elements="str"),
    )


def get_argument_spec():
    return list_argument_spec(jail_options, "jails", "present",
                              cache_dir=dict(type="str", default=CACHE_ROOT))

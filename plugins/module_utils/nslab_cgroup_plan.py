# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning cgroups (pure): desired ``CgroupSpec``s against read ``CgroupState``s give the
``CgroupAction``s that make the kernel match, each a sentence for the user and the file
system steps (``Op``) that nslab_cgroup_apply runs.

Values are compared in canonical form. The kernel rounds some values (memory to pages,
``cpu.shares`` to its range): after writing, ``settle`` records the value the kernel reports
next to the one asked for, so that a rerun asking the same again plans no change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import (
    controller_files, limits_view, read_limits)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import (
    IO_LIMITS, MAX, show_value)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_vocab import (
    FILES, KEY_CONTROLLER, KEYS, V1_NAMES, V2_NAMES)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    CgroupBusyError, CgroupError, OwnershipError)


# Phases, applied in this order; deletions first, so a later failure never has to undo one,
# and processes last, because moving a process is not undone (see Op).
DELETE, CREATE, LIMIT, ATTACH = range(4)


@dataclass
class Op:
    """One file system step. ``undo`` restores the old text of a ``write``; ``mkdir`` is
    undone by rmdir, ``own`` by restoring the record. ``attach`` is not undone: putting a
    process back would mean writing into a cgroup nslab does not own. Each kind is one
    entry of ``CgroupApplier.steps`` (nslab_cgroup_apply)."""
    kind: str               # mkdir, mkdir_shared, write, rmdir, rmdir_empty, kill, attach,
    #                         own, disown
    path: str
    text: Optional[str] = None
    undo: Optional[str] = None
    key: Optional[str] = None


@dataclass
class CgroupSpec:
    name: str
    state: str = "present"
    limits: Dict[str, object] = field(default_factory=dict)
    procs: List[int] = field(default_factory=list)


@dataclass
class CgroupAction:
    summary: str
    phase: int
    name: str
    ops: List[Op] = field(default_factory=list)


def plan_cgroups(specs, states, layout, kill=False):
    """Pure: desired specs vs. read states -> CgroupActions in apply order."""
    deleting = set(s.name for s in specs if s.state == "absent")
    actions = []
    for spec in specs:
        state = states[spec.name]
        if state.foreign:
            raise OwnershipError("cgroup", state.relpath, state.foreign)
        if spec.state == "absent":
            actions.extend(_plan_delete(state, deleting, kill))
        else:
            actions.extend(_plan_create(state, layout))
            actions.extend(_plan_limits(spec, state, layout))
            actions.extend(_plan_attach(spec, state, layout))
    # Deepest deletions first: a parent goes after its children.
    actions.sort(key=lambda a: (a.phase, -a.name.count("/") if a.phase == DELETE else 0))
    return _without_repeated_steps(actions)


def _without_repeated_steps(actions):
    """Cgroups of one task share parents: each parent is made (and prepared) once."""
    seen = set()
    for action in actions:
        kept = []
        for op in action.ops:
            step = (op.kind, op.path, op.text)
            if op.kind in ("mkdir", "mkdir_shared", "write") and op.key is None and step in seen:
                continue
            seen.add(step)
            kept.append(op)
        action.ops = kept
    return actions


def _plan_delete(state, deleting, kill):
    if not state.owned:
        return []
    children = [c for c in state.children if "%s/%s" % (state.name, c) not in deleting]
    if children:
        raise CgroupBusyError(
            "cgroup '%s' has child cgroups %s; delete them first (list them with state "
            "absent in the same task)" % (state.relpath, ", ".join(children)),
            children=children)
    pids = state.procs
    if pids and not kill:
        raise CgroupBusyError(
            "cgroup '%s' still has processes %s; stop them first, or set kill=true to "
            "SIGKILL them" % (state.relpath, ", ".join(map(str, pids))), pids=pids)
    leaves = [chain[-1].path for chain in state.chains.values() if chain[-1].exists]
    ops = [Op("kill", path) for path in leaves if pids]
    ops += [Op("rmdir", path) for path in leaves]
    # Parents nslab made on the way (nslab/<lab>/web for web/apt101), then nslab/<lab>:
    # removed only if empty, and never a parent the record names as a cgroup (its
    # name travels in ``text``; None for nslab/<lab>).
    parts = state.relpath.split("/")
    # nslab itself (depth 1) is every lab's: nslab_shared removes it once no run is going.
    for chain in state.chains.values():
        for depth in range(len(chain) - 2, 1, -1):
            ops.append(Op("rmdir_empty", chain[depth].path, "/".join(parts[2:depth]) or None))
    ops.append(Op("disown", state.name))
    summary = "delete cgroup '%s'" % state.relpath
    if pids:
        summary = "kill %d process%s (%s) in cgroup '%s' and delete it" % (
            len(pids), "es" if len(pids) > 1 else "", ", ".join(map(str, pids)), state.relpath)
    return [CgroupAction(summary, DELETE, state.name, ops)]


def _plan_create(state, layout):
    ops, created = [], []
    for hierarchy in layout.hierarchies:
        chain = state.chains[hierarchy.mount]
        if hierarchy.version == 2:
            ops.extend(_v2_enable_controllers(hierarchy, chain))
        else:
            ops.extend(_v1_prepare(hierarchy, chain))
        if not chain[-1].exists:
            created.append("/".join(V1_NAMES.get(c, c) for c in hierarchy.controllers)
                           if hierarchy.version == 1 else "cgroup2")
    if not ops and state.recorded:
        return []
    ops.append(Op("own", state.name))
    if created:
        summary = "create cgroup '%s' (%s)" % (state.relpath, ", ".join(created))
    elif len(ops) > 1:
        summary = "prepare the parents of cgroup '%s'" % state.relpath
    else:
        summary = "record cgroup '%s', which nslab made as a parent" % state.relpath
    return [CgroupAction(summary, CREATE, state.name, ops)]


def _mkdir(depth, directory):
    """nslab's own cgroup (depth 1, below the mount) is shared by all labs: another lab's
    run may make it at the same moment."""
    return Op("mkdir_shared" if depth == 1 else "mkdir", directory.path)


def _v2_enable_controllers(hierarchy, chain):
    """mkdir what is missing; every dir above the cgroup passes nslab's controllers down
    (cgroup.subtree_control), the mount root included."""
    wanted = [c for c in V2_NAMES if c in hierarchy.controllers]
    ops = []
    for depth, directory in enumerate(chain):
        if not directory.exists:
            ops.append(_mkdir(depth, directory))
        if depth == len(chain) - 1:
            break
        enabled = set(directory.files.get("cgroup.subtree_control", "").split())
        missing = [c for c in wanted if c not in enabled]
        if missing:
            ops.append(Op("write", os.path.join(directory.path, "cgroup.subtree_control"),
                          " ".join("+" + c for c in missing),
                          " ".join("-" + c for c in missing) if directory.exists else None))
    return ops


def _v1_prepare(hierarchy, chain):
    """mkdir what is missing. A new v1 cpuset has no CPUs and no memory nodes, and no process
    may join it: each gets its parent's (copied down nslab's own path only)."""
    ops, inherited = [], None
    for depth, directory in enumerate(chain):
        cpus = (directory.files.get("cpuset.cpus"), directory.files.get("cpuset.mems"))
        if not directory.exists:
            ops.append(_mkdir(depth, directory))
        if "cpuset" not in hierarchy.controllers:
            continue
        if depth > 0 and (not directory.exists or not all(cpus)):
            for filename, text in zip(("cpuset.cpus", "cpuset.mems"), inherited):
                ops.append(Op("write", os.path.join(directory.path, filename), text))
            cpus = inherited
        inherited = cpus
    return ops


def _plan_limits(spec, state, layout):
    files = controller_files(layout, state)
    current = read_limits(layout, state)
    changed = [k for k in KEYS if k in spec.limits
               and not _settled(spec.limits[k], current.get(k), state.settled.get(k))]
    actions = []
    for key in changed:
        hierarchy = layout.hierarchy_of(KEY_CONTROLLER[key])
        leaf = state.leaf(hierarchy)
        translator = FILES[hierarchy.version]
        own_files = files[KEY_CONTROLLER[key]]
        if leaf.exists and _enabled(hierarchy, state, KEY_CONTROLLER[key]):
            absent = [f for f in translator.needs(key) if f not in own_files]
            if absent:
                raise CgroupError(
                    "%s: %s cannot be enforced on this host: %s has no %s" % (
                        key, show_value(spec.limits[key]), leaf.path, ", ".join(absent)))
        ops = [Op("write", os.path.join(leaf.path, name), text, undo, key)
               for name, text, undo in translator.writes(key, spec.limits[key], own_files,
                                                         spec.limits)]
        was = (" from %s" % _plain(limits_view({key: current.get(key)})[key])
               if leaf.exists else "")
        actions.append(CgroupAction(
            "set %s of cgroup '%s'%s to %s" % (
                key, state.relpath, was, _plain(limits_view({key: spec.limits[key]})[key])),
            LIMIT, spec.name, ops))
    return actions


def _enabled(hierarchy, state, controller):
    """Whether the cgroup has the controller's files now (on v2 only once the parent enables
    it, which this run may still do)."""
    if hierarchy.version == 1 or controller == "cpuacct":
        return True
    parent = state.chains[hierarchy.mount][-2]
    return controller in parent.files.get("cgroup.subtree_control", "").split()


def _plain(value):
    """A value for an action sentence; io lists as '8:0 read_bps=1048576'."""
    if value in (None, [], {}):
        return "none"
    if isinstance(value, list):
        return ", ".join(" ".join([d["device"]] + ["%s=%s" % (k, d[k]) for k in IO_LIMITS
                                                   if d[k] != MAX]) for d in value)
    return str(value)


def _settled(desired, current, settled):
    """Equal, or what the kernel made of this very value when nslab last wrote it."""
    if current == desired:
        return True
    return settled is not None and settled.get("asked") == desired and \
        settled.get("kernel") == current


def _plan_attach(spec, state, layout):
    actions = []
    for pid in spec.procs:
        leaves = [state.leaf(h) for h in layout.hierarchies]
        if all(leaf.exists and pid in leaf.procs for leaf in leaves):
            continue
        actions.append(CgroupAction(
            "move process %d into cgroup '%s'" % (pid, state.relpath), ATTACH, spec.name,
            [Op("attach", os.path.join(leaf.path, "cgroup.procs"), str(pid))
             for leaf in leaves]))
    return actions


def predicted_limits(spec, state, layout):
    """Limits after a run, as check mode predicts them."""
    limits = read_limits(layout, state) if state.exists else {}
    limits.update(spec.limits)
    return limits


def settle(record, specs, layout, states):
    """Remember what the kernel made of each value nslab asked for (pages, clamps); True if
    that changed the record."""
    changed = False
    for spec in specs:
        entry = record.get("cgroups", {}).get(spec.name)
        if entry is None or spec.state != "present":
            continue
        current = read_limits(layout, states[spec.name])
        settled = dict(
            (key, {"asked": value, "kernel": current.get(key)})
            for key, value in sorted(spec.limits.items()) if current.get(key) != value)
        changed = changed or settled != entry.get("settled")
        entry["settled"] = settled
    return changed

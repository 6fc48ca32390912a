# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plans of link operations and their application with rollback.

A plan is a list of ``Action`` (one readable sentence each) made of ``Step`` (one ``ip``
batch line in one namespace, with the line that undoes it; or a ``bridge`` batch line, for
forwarding entries). ``apply_plan`` orders the steps by phase and namespace so that a whole
plan costs one ``ip -batch`` process per namespace and phase (and tool), and undoes every
finished step, newest first, if one fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ansible.module_utils.nslab_errors import ApplyError, BatchError

# Phases, applied in this order. Deletions come first so that names are free before
# they are reused, and so that a later failure never needs to undo a deletion.
DELETE, CREATE, CONFIGURE, ADDRESS, UP = range(5)


@dataclass
class Step:
    phase: int
    netns: Optional[str]                               # None: the host's namespace
    argv: List[str]                                    # one command, without the tool
    undo: Optional[Tuple[Optional[str], List[str]]] = None   # (netns, argv) that reverses it
    tool: str = "ip"                                   # "ip", or "bridge" for fdb entries


@dataclass
class Action:
    summary: str
    steps: List[Step] = field(default_factory=list)


def ordered_steps(actions):
    """All steps, sorted by phase, then by first appearance of their namespace."""
    ns_order = {}
    indexed = []
    for action in actions:
        for step in action.steps:
            ns_order.setdefault(step.netns, len(ns_order))
            indexed.append(step)
    return sorted(indexed, key=lambda s: (s.phase, ns_order[s.netns]))


def batches(steps):
    """Split ordered steps into runs of the same (phase, netns, tool): one process each."""
    groups = []
    for step in steps:
        last = groups[-1][0] if groups else None
        if last and (last.phase, last.netns, last.tool) == (step.phase, step.netns, step.tool):
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _describe(netns, argv, tool="ip"):
    return "%s %s%s" % (tool, " ".join(argv), " (netns %s)" % netns if netns else "")


def rollback(runner, done):
    """Undo finished steps newest first; returns (undone descriptions, errors)."""
    undone, errors = [], []
    undo_groups = []
    for step in reversed(done):
        if step.undo is None:
            continue
        netns, argv = step.undo
        if undo_groups and undo_groups[-1][:2] == (netns, step.tool):
            undo_groups[-1][2].append(argv)
        else:
            undo_groups.append((netns, step.tool, [argv]))
    for netns, tool, commands in undo_groups:
        try:
            # -force: keep undoing the rest even if one undo line fails.
            runner.ip_batch(commands, netns=netns, force=True, tool=tool)
        except BatchError as err:
            errors.append(str(err))
        undone.extend(_describe(netns, argv, tool) for argv in commands)
    return undone, errors


def apply_plan(runner, actions):
    """Apply every step; on failure roll back what was done and raise ApplyError."""
    done = []
    for group in batches(ordered_steps(actions)):
        try:
            runner.ip_batch([s.argv for s in group], netns=group[0].netns, tool=group[0].tool)
        except BatchError as err:
            if err.failed_index >= 0:
                done.extend(group[:err.failed_index])
            undone, errors = rollback(runner, done)
            raise ApplyError(err, [_describe(s.netns, s.argv, s.tool) for s in done], undone,
                             errors)
        done.extend(group)
    return done

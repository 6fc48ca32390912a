# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plans of link operations and their application with rollback.

A plan is a list of ``Action`` (one readable sentence each) made of ``Step`` (one ``ip``
batch line in one namespace, with the line that undoes it; or a ``bridge`` batch line, for
forwarding entries). ``apply_plan`` orders the steps by phase and namespace so that a whole
plan costs one ``ip -batch`` process per namespace and tool for the deletions, one for
the creations, and one for all that follows (configure, address, up), and undoes every
finished step, newest first, if one fails: each step is one entry of the undo log
(nslab_undo), and the undo lines of one batch run as one ``-force`` batch again.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import BatchError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog

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


def _stage(phase):
    # Deletions and creations are lab-wide (a name is free, a link exists, before anything
    # uses it); what follows only concerns each link's own namespace, so a namespace's
    # configure, address and up steps run in one process, in phase order.
    return phase if phase < CONFIGURE else CONFIGURE


def ordered_steps(actions):
    """All steps: deletions, then creations, each by first appearance of their namespace;
    then every other step, namespace by namespace, each in phase order."""
    ns_order = {}
    indexed = []
    for action in actions:
        for step in action.steps:
            ns_order.setdefault(step.netns, len(ns_order))
            indexed.append(step)
    return sorted(indexed, key=lambda s: (_stage(s.phase), ns_order[s.netns], s.phase))


def batches(steps):
    """Split ordered steps into runs of the same (stage, netns, tool): one process each."""
    groups = []
    for step in steps:
        last = groups[-1][-1] if groups else None
        if last and (_stage(last.phase), last.netns, last.tool) == (
                _stage(step.phase), step.netns, step.tool):
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _describe(netns, argv, tool="ip"):
    return "%s %s%s" % (tool, " ".join(argv), " (netns %s)" % netns if netns else "")


# ip and bridge -force -batch name every line that failed, not only the first.
_FAILED_LINES = re.compile(r"Command failed -:(\d+)")


class BatchUndo:
    """The undo lines of one applied batch (one namespace and tool), newest first, run as
    one ``-force`` batch (one process) by the first of its steps the undo log reverses;
    each step then reports its own line's result."""

    def __init__(self, runner, netns, tool, lines):
        self.runner, self.netns, self.tool, self.lines = runner, netns, tool, lines
        self.error, self.failed = None, None      # failed: indexes of lines that failed

    def undo(self, index):
        if self.failed is None:
            try:
                # -force: keep undoing the rest even if one undo line fails.
                self.runner.ip_batch(self.lines, netns=self.netns, force=True, tool=self.tool)
                self.failed = set()
            except BatchError as err:
                self.error = err
                found = set(int(n) - 1 for n in _FAILED_LINES.findall(err.stderr or ""))
                # Which line failed is not known: none of them is reported undone.
                self.failed = found or set(range(len(self.lines)))
        if index in self.failed:
            # The error names this step's own undo line.
            raise BatchError(self.error.argv, self.error.rc, self.error.stderr, index,
                             [" ".join(argv) for argv in self.lines])


def record_batch(runner, log, steps):
    """Record finished steps of one batch in ``log``: one step each (so done and rolled
    back name every line), their undo lines grouped into one batch per namespace and
    tool."""
    groups = {}
    for step in reversed(steps):
        if step.undo is not None:
            groups.setdefault((step.undo[0], step.tool), []).append(step)
    undo_of = {}
    for (netns, tool), undone in groups.items():
        batch = BatchUndo(runner, netns, tool, [s.undo[1] for s in undone])
        for index, step in enumerate(undone):
            undo_of[id(step)] = functools.partial(batch.undo, index)
    for step in steps:
        log.record(_describe(step.netns, step.argv, step.tool), undo_of.get(id(step)))


def _run_batches(runner, groups):
    """Run one namespace's batches in order; (the groups done, the BatchError that stopped
    the next one or None)."""
    for index, group in enumerate(groups):
        try:
            runner.ip_batch([s.argv for s in group], netns=group[0].netns, tool=group[0].tool)
        except BatchError as err:
            return groups[:index], (group, err)
    return groups, None


def apply_plan(runner, actions, log=None):
    """Apply every step, recording each in ``log`` (a new UndoLog if None) and returning
    it; on a failure roll back what was done and raise ApplyError. A caller with work of
    its own after the plan passes its log, and undoes the plan with it.

    Deletions and creations run one batch after the other. What follows concerns each
    namespace's own links only, so the namespaces' batches run at once (one thread per
    namespace at a time, each waiting on its own process, as the reads do; issue #12: 500
    nodes' batches one after the other were most of the veths' build), each namespace's
    own in order."""
    log = UndoLog() if log is None else log
    per_netns = {}
    for group in batches(ordered_steps(actions)):
        if _stage(group[0].phase) == CONFIGURE:
            per_netns.setdefault(group[0].netns, []).append(group)
        else:
            _record(runner, log, [_run_batches(runner, [group])])
    _record(runner, log, runner.each(lambda groups: _run_batches(runner, groups),
                                     list(per_netns.values())))
    return log


def _record(runner, log, outcomes):
    """Record in ``log`` the batches done and the lines done of each batch that failed;
    if one failed, roll back everything in ``log`` and raise ApplyError (the first
    failure's)."""
    failures = []
    for done, failed in outcomes:
        for group in done:
            record_batch(runner, log, group)
        if failed:
            group, err = failed
            if err.failed_index >= 0:
                record_batch(runner, log, group[:err.failed_index])
            failures.append(err)
    if failures:
        raise log.fail(failures[0])

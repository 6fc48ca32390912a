# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One undo log for every half-applied change.

An applier records each step it finished together with the step that reverses it. When a
later step fails, ``UndoLog.fail`` undoes the recorded steps newest first, keeps going past
an undo that fails, and returns one ``ApplyError`` that names what was done, what was
undone and what could not be undone::

    log = UndoLog()
    for op in plan:
        try:
            do(op)
        except (NslabError, OSError) as err:
            raise log.fail(err)
        log.record(op.summary, lambda op=op: undo(op))

``with log.guard():`` does the same for a block: any ``NslabError`` or ``OSError`` raised in
it becomes ``log.fail(err)``. Anything else is a bug and passes through untouched.
"""

from __future__ import annotations

import contextlib

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ApplyError, NslabError

# What an undo may raise and still be reported (anything else is a bug).
UNDO_ERRORS = (NslabError, OSError)


def _reason(err):
    if isinstance(err, OSError) and err.strerror:
        return "%s%s" % (err.strerror, ": %s" % err.filename if err.filename else "")
    return str(err)


class UndoLog:
    """Finished steps, oldest first, each with the callable that reverses it (or None)."""

    def __init__(self):
        self._steps = []        # [(description, undo or None)]

    def record(self, description, undo=None):
        """Note a finished step. ``undo`` takes no argument; None: nothing to reverse
        (the step is still reported as done)."""
        self._steps.append((description, undo))

    def record_all(self, descriptions, undo):
        """Note several finished steps that one call reverses (one process for all of
        them): ``undo`` runs once, when the newest of them is undone. If it fails, none
        of them counts as undone and each reports the failure."""
        outcome = []                # [None] once run, or [the error]

        def undo_once():
            if not outcome:
                try:
                    undo()
                except UNDO_ERRORS as err:
                    outcome.append(err)
                    raise
                outcome.append(None)
            elif outcome[0] is not None:
                raise outcome[0]
        for description in descriptions:
            self.record(description, undo_once)

    @property
    def done(self):
        return [description for description, _undo in self._steps]

    def __len__(self):
        return len(self._steps)

    def rollback(self):
        """Undo every recorded step, newest first. Returns (undone, errors): the
        descriptions undone, and one "description: reason" per undo that failed."""
        undone, errors = [], []
        while self._steps:
            description, undo = self._steps.pop()
            if undo is None:
                continue
            try:
                undo()
            except UNDO_ERRORS as err:
                errors.append("%s: %s" % (description, _reason(err)))
            else:
                undone.append(description)
        return undone, errors

    def fail(self, cause):
        """Roll back and return the ApplyError to raise (``raise log.fail(err)``)."""
        done = self.done
        undone, errors = self.rollback()
        return ApplyError(cause, done, undone, errors)

    @contextlib.contextmanager
    def guard(self):
        """Turn an NslabError or OSError raised in the block into a rolled-back ApplyError."""
        try:
            yield self
        except ApplyError:
            raise
        except UNDO_ERRORS as err:
            raise self.fail(err) from err

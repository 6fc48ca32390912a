# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying planned cgroup actions to the file system.
"""

from __future__ import annotations

import errno
import os
import signal
import time

from ansible.module_utils.nslab_cgroup_read import read_procs
from ansible.module_utils.nslab_cgroup_state import cgroup_relpath
from ansible.module_utils.nslab_errors import ApplyError, CgroupError, NslabError


def _os_problem(err, op):
    hint = ""
    if op.path.endswith("cgroup.subtree_control") and err.errno == errno.EBUSY:
        hint = " (cgroup v2 enables no controller below a cgroup that holds processes)"
    elif op.kind == "attach" and err.errno == errno.ENOSPC:
        hint = " (the cpuset of the cgroup has no CPUs or memory nodes)"
    elif op.kind == "attach" and err.errno == errno.ESRCH:
        hint = " (the process has exited)"
    elif err.errno == errno.EINVAL and op.kind == "write":
        hint = " (the kernel rejected the value)"
    what = "%s: " % op.key if op.key else ""
    if op.kind in ("write", "attach"):
        return "%swriting '%s' to %s failed: %s%s" % (what, op.text, op.path, err.strerror,
                                                        hint)
    return "%s %s failed: %s%s" % (op.kind, op.path, err.strerror, hint)


def write_file(path, text):
    with open(path, "w") as handle:
        handle.write(text + "\n")


class CgroupApplier:
    """Applies CgroupActions; on failure undoes this run's steps, newest first. The record
    is saved in any case, so it names exactly the cgroups that exist afterwards."""

    def __init__(self, store, record, layout, kill_seconds=5.0):
        self.store, self.record, self.layout = store, record, layout
        self.kill_seconds = kill_seconds
        self.undo = []              # (description, callable)

    def apply(self, actions):
        try:
            for action in actions:
                for op in action.ops:
                    self._run(op)
        except NslabError as err:
            raise self._rolled_back(err)
        except OSError as err:
            raise self._rolled_back(CgroupError(_os_problem(err, op)))
        finally:
            self.store.save(self.record)

    def _rolled_back(self, err):
        undone, errors = [], []
        for description, undo in reversed(self.undo):
            try:
                undo()
                undone.append(description)
            except OSError as undo_err:
                errors.append("%s: %s" % (description, undo_err.strerror))
        return ApplyError(err, [], undone, errors)

    def _run(self, op):
        getattr(self, "_" + op.kind)(op)

    def _mkdir(self, op):
        os.mkdir(op.path)
        self.undo.append(("mkdir %s" % op.path, lambda: os.rmdir(op.path)))

    def _write(self, op):
        if not os.path.exists(op.path):
            raise CgroupError("%s: %s cannot be enforced on this host: %s does not exist" % (
                op.key, op.text, op.path) if op.key else "%s does not exist" % op.path)
        write_file(op.path, op.text)
        if op.undo is not None:
            self.undo.append(("write '%s' to %s" % (op.undo, op.path),
                              lambda: write_file(op.path, op.undo)))

    def _attach(self, op):
        write_file(op.path, op.text)

    def _rmdir(self, op):
        os.rmdir(op.path)

    def _rmdir_empty(self, op):
        if op.text in self.record.get("cgroups", {}):
            return
        try:
            os.rmdir(op.path)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
                raise

    def _kill(self, op):
        """SIGKILL every process of the cgroup until none is left."""
        directory = op.path
        deadline = time.monotonic() + self.kill_seconds
        while True:
            pids = read_procs(directory)
            if not pids:
                return
            if time.monotonic() > deadline:
                raise CgroupError("processes %s are still in %s %.0f s after SIGKILL" % (
                    ", ".join(map(str, pids)), directory, self.kill_seconds))
            kill_file = os.path.join(directory, "cgroup.kill")
            if os.path.exists(kill_file):           # v2, Linux 5.14+: also catches forks
                write_file(kill_file, "1")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def _own(self, op):
        cgroups = self.record.setdefault("cgroups", {})
        before = cgroups.get(op.path)
        entry = dict(before or {"settled": {}})
        relpath = cgroup_relpath(self.store.lab, op.path)
        leaves = [h.path(relpath) for h in self.layout.hierarchies]
        entry["inodes"] = dict((d, os.stat(d).st_ino) for d in leaves if os.path.isdir(d))
        cgroups[op.path] = entry

        def undo(name=op.path, old=before):
            if old is None:
                cgroups.pop(name, None)
            else:
                cgroups[name] = old
        self.undo.append(("record cgroup '%s'" % op.path, undo))

    def _disown(self, op):
        self.record.get("cgroups", {}).pop(op.path, None)

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying planned cgroup actions (nslab_cgroup_plan) to the file system: mkdir, interface
file writes, moving processes, SIGKILL and rmdir, and the ownership record's entries.

Rollback goes through the one undo log (nslab_undo): a step that fails undoes this run's
earlier steps, newest first, and the ApplyError names what was done and undone. An OSError
of a step becomes a CgroupError that names the file, the value and a hint for the errno.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import time

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_read import read_procs
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import cgroup_relpath
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import CgroupError, NslabError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog


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
    """Write ``text`` to an existing file: never creates one (FileNotFoundError), so a
    missing interface file needs no stat of its own first."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def _dir_inode(path):
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_ino if stat.S_ISDIR(info.st_mode) else None


class CgroupApplier:
    """Runs the steps of CgroupActions in order. Each step that changes something is
    recorded in an undo log with the step that reverses it; when a step fails, this run's
    steps are undone newest first and one ApplyError names what was done, what was undone
    and what could not be. The record is saved in any case, so it names exactly the cgroups
    that exist afterwards."""

    def __init__(self, store, record, layout, kill_seconds=5.0):
        self.store, self.record, self.layout = store, record, layout
        self.kill_seconds = kill_seconds
        # Op.kind -> the step that runs it; each returns (description, undo or None), or
        # None when it changed nothing.
        self.steps = {
            "mkdir": self._mkdir,
            "mkdir_shared": self._mkdir_shared,
            "write": self._write,
            "attach": self._attach,
            "rmdir": self._rmdir,
            "rmdir_empty": self._rmdir_empty,
            "kill": self._kill,
            "own": self._own,
            "disown": self._disown,
        }

    def apply(self, actions):
        log = UndoLog()
        try:
            for action in actions:
                for op in action.ops:
                    try:
                        done = self.steps[op.kind](op)
                    except OSError as err:
                        raise log.fail(CgroupError(_os_problem(err, op))) from err
                    except NslabError as err:
                        raise log.fail(err) from err
                    if done is not None:
                        log.record(*done)
        finally:
            self.store.save(self.record)

    def _mkdir(self, op):
        os.mkdir(op.path)
        return "mkdir %s" % op.path, lambda: os.rmdir(op.path)

    def _mkdir_shared(self, op):
        # Not undone: another lab may use it by now; nslab_shared removes it once empty.
        try:
            os.mkdir(op.path)
        except FileExistsError:
            return None
        return "mkdir %s" % op.path, None

    def _write(self, op):
        try:
            write_file(op.path, op.text)
        except FileNotFoundError:
            raise CgroupError("%s: %s cannot be enforced on this host: %s does not exist" % (
                op.key, op.text, op.path) if op.key else "%s does not exist" % op.path) from None
        if op.undo is None:                 # a file of a cgroup this run made: rmdir undoes it
            return "write '%s' to %s" % (op.text, op.path), None
        return ("write '%s' to %s (was '%s')" % (op.text, op.path, op.undo),
                lambda: write_file(op.path, op.undo))

    def _attach(self, op):
        # Not undone: putting a process back means writing into a cgroup nslab does not own.
        write_file(op.path, op.text)
        return "move process %s into %s" % (op.text, os.path.dirname(op.path)), None

    def _rmdir(self, op):
        os.rmdir(op.path)
        return "rmdir %s" % op.path, None

    def _rmdir_empty(self, op):
        if op.text in self.record.get("cgroups", {}):
            return None
        try:
            os.rmdir(op.path)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
                raise
            return None
        return "rmdir %s" % op.path, None

    def _kill(self, op):
        """SIGKILL every process of the cgroup until none is left."""
        directory = op.path
        deadline = time.monotonic() + self.kill_seconds
        while True:
            pids = read_procs(directory)
            if not pids:
                return "kill the processes in %s" % directory, None
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
        entry["inodes"] = dict((d, inode) for d, inode in
                               ((d, _dir_inode(d)) for d in leaves) if inode is not None)
        cgroups[op.path] = entry

        def undo(name=op.path, old=before):
            if old is None:
                cgroups.pop(name, None)
            else:
                cgroups[name] = old
        return "record cgroup '%s'" % op.path, undo

    def _disown(self, op):
        # Not undone: the deletions run first, and a cgroup once removed is not put back.
        self.record.get("cgroups", {}).pop(op.path, None)
        return "forget cgroup '%s'" % op.path, None

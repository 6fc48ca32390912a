# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed exceptions shared by every nslab module.

module_utils raise these; only a module's ``main()`` turns them into ``fail_json``
(see ``nslab_ansible.run_module``), so no traceback ever reaches the user.
"""

from __future__ import annotations


class NslabError(Exception):
    """Base class: ``str(err)`` is a complete, user-facing sentence."""

    def details(self):
        """Extra keys for the failure result (machine-readable context)."""
        return {}


class ValidationError(NslabError):
    """One or more arguments are wrong. Raised before anything is changed."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    def details(self):
        return {"problems": self.problems}


class OwnershipError(NslabError):
    """A requested name is taken by an object nslab (or this lab) does not own."""

    def __init__(self, kind, name, owner, where=None):
        self.kind, self.name, self.owner, self.where = kind, name, owner, where
        place = " in netns '%s'" % where if where else ""
        super().__init__(
            "%s '%s'%s exists and is %s; nslab only changes objects it created "
            "(choose another name or remove it by hand)" % (kind, name, place, owner))

    def details(self):
        return {"conflict": {"kind": self.kind, "name": self.name, "owner": self.owner,
                             "netns": self.where}}


class CommandError(NslabError):
    """An external command failed."""

    def __init__(self, argv, rc, stderr, stdout=""):
        self.argv, self.rc, self.stderr, self.stdout = list(argv), rc, stderr, stdout
        super().__init__("command %s exited %s: %s" % (
            " ".join(self.argv), rc, (stderr or stdout or "").strip()))

    def details(self):
        return {"cmd": self.argv, "rc": self.rc, "stderr": self.stderr}


class BatchError(CommandError):
    """``ip -batch`` stopped at a failing line; ``failed_index`` is 0-based."""

    def __init__(self, argv, rc, stderr, failed_index, lines):
        super().__init__(argv, rc, stderr)
        self.failed_index = failed_index
        self.lines = lines
        failing = lines[failed_index] if 0 <= failed_index < len(lines) else "?"
        tool = "bridge" if any(a == "bridge" or a.endswith("/bridge") for a in argv) else "ip"
        self.args = ("'%s %s' failed: %s" % (tool, failing, (stderr or "").strip()),)

    def __str__(self):
        return self.args[0]


class ApplyError(NslabError):
    """Applying a plan failed half way; what was done has been rolled back (see
    nslab_undo.UndoLog). ``done``: the steps finished before the failure, oldest first;
    ``rolled_back``: those undone, newest first; ``rollback_errors``: one line per undo
    that failed, so that a user knows what may be left behind."""

    def __init__(self, cause, done, rolled_back, rollback_errors):
        self.cause, self.done = cause, list(done)
        self.rolled_back, self.rollback_errors = list(rolled_back), list(rollback_errors)
        msg = "%s; rolled back %d step(s)" % (cause, len(self.rolled_back))
        if self.rollback_errors:
            msg += ", but could not undo: %s" % "; ".join(self.rollback_errors)
        super().__init__(msg)

    def details(self):
        return {"done": self.done, "rolled_back": self.rolled_back,
                "rollback_errors": self.rollback_errors}


class LabLockedError(NslabError):
    """Another run held the lab's lock for longer than the timeout."""


class ContainerError(NslabError):
    """A container could not be started, stopped or read."""


class JailError(NslabError):
    """A jail could not be built, mounted or removed."""


class JailCommandError(CommandError):
    """A jail's command exited non-zero; ``result`` is the module result so far."""

    def __init__(self, jail, outcome, result):
        super().__init__(outcome["cmd"], outcome["rc"], outcome["stderr"], outcome["stdout"])
        self.jail, self.result = jail, result
        self.args = ("command %s in jail '%s' exited %s: %s" % (
            " ".join(outcome["cmd"]), jail, outcome["rc"],
            (outcome["stderr"] or outcome["stdout"]).strip()),)

    def __str__(self):
        return self.args[0]

    def details(self):
        return dict(super().details(), jail=self.jail, stdout=self.stdout, **self.result)


class SysctlError(NslabError):
    """A sysctl could not be read or written in a namespace."""


class SourceError(NslabError):
    """A base could not be built; the message names the source and why."""


class NamespaceError(NslabError):
    """A persistent namespace could not be created or removed."""


class ExecError(NslabError):
    """A command in a container failed; ``results`` holds every command's outcome so far."""

    def __init__(self, message, results):
        super().__init__(message)
        self.results = results

    def details(self):
        return {"results": self.results}


class TopologyError(ValidationError):
    """A valid-looking topology cannot be compiled for these hosts (a node placed on an
    unknown host, an MTU that does not fit the underlay, a subnet out of addresses).
    Each problem starts with the key path it is about (``networks.lan.mtu: ...``);
    ``paths`` lists those paths in the same order."""

    def __init__(self, problems):
        super().__init__(problems)
        self.paths = [problem.split(":", 1)[0] for problem in self.problems]

    def details(self):
        return dict(super().details(), paths=self.paths)


class StateError(NslabError):
    """A state record nslab wrote (a container's, a jail's, a namespace's...) is corrupt or
    not nslab's. nslab cannot tell what it describes, so the task stops: reading it as "no
    record" could start a second init beside a running one, or remove nothing."""

    def __init__(self, path, problem):
        self.path, self.problem = path, problem
        super().__init__(
            "state record %s %s; nslab will not guess what it describes: check the objects "
            "it names (processes, mounts, namespaces), then repair the file or remove it by "
            "hand and rerun" % (path, problem))

    def details(self):
        return {"state_record": self.path}


class CgroupError(NslabError):
    """A cgroup operation failed or cannot be done on this host."""


class CgroupBusyError(CgroupError):
    """A cgroup to delete still has processes or child cgroups."""

    def __init__(self, message, pids=(), children=()):
        self.pids, self.children = list(pids), list(children)
        super().__init__(message)

    def details(self):
        return {"pids": self.pids, "children": self.children}


class DeviceError(CgroupError):
    """The device policy of a cgroup cannot be read or applied."""


class StopError(NslabError):
    """Inits that outlived their SIGKILL by a grace period (stuck in the kernel: an
    uninterruptible sleep, a frozen cgroup). ``stuck``: [(container, pid)]; their records
    still say running."""

    def __init__(self, stuck, grace):
        self.stuck, self.grace = list(stuck), grace
        super().__init__(
            "could not stop %s: still there %s s after SIGKILL (a process stuck in the kernel: "
            "uninterruptible sleep or a frozen cgroup); their records stay running" % (
                ", ".join("container '%s' (pid %d)" % (name, pid) for name, pid in self.stuck),
                grace))

    def details(self):
        return {"stuck": [{"name": name, "pid": pid} for name, pid in self.stuck]}

"""UndoLog: the one rollback engine (steps undone newest first, failures reported)."""

import errno

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ApplyError, CommandError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog


def test_fail_undoes_newest_first_and_reports_done_and_undone():
    undone = []
    log = UndoLog()
    log.record("create a", lambda: undone.append("a"))
    log.record("read b")                      # nothing to undo, still done
    log.record("create c", lambda: undone.append("c"))
    err = log.fail(CommandError(["ip", "link", "add", "d"], 2, "File exists"))
    assert isinstance(err, ApplyError)
    assert undone == ["c", "a"]
    assert err.done == ["create a", "read b", "create c"]
    assert err.rolled_back == ["create c", "create a"]
    assert err.rollback_errors == []
    assert "File exists; rolled back 2 step(s)" in str(err)
    assert err.details()["done"] == ["create a", "read b", "create c"]
    assert len(log) == 0                      # a log is rolled back once


def test_an_undo_that_fails_is_reported_and_the_rest_still_runs():
    undone = []

    def busy():
        raise OSError(errno.EBUSY, "Device or resource busy", "/sys/fs/cgroup/x")

    log = UndoLog()
    log.record("mkdir a", lambda: undone.append("a"))
    log.record("mkdir x", busy)
    err = log.fail(OSError(errno.ENOSPC, "No space left on device"))
    assert undone == ["a"]
    assert err.rolled_back == ["mkdir a"]
    assert err.rollback_errors == ["mkdir x: Device or resource busy: /sys/fs/cgroup/x"]
    assert "could not undo: mkdir x" in str(err)


def test_guard_turns_domain_and_os_errors_into_apply_error():
    undone = []
    log = UndoLog()
    with pytest.raises(ApplyError) as caught:
        with log.guard():
            log.record("step 1", lambda: undone.append(1))
            raise OSError(errno.EACCES, "Permission denied", "/run/nslab/x")
    assert undone == [1]
    assert "Permission denied" in str(caught.value)


def test_guard_lets_a_bug_through_untouched():
    log = UndoLog()
    log.record("step 1", lambda: None)
    with pytest.raises(KeyError):
        with log.guard():
            raise KeyError("bug")
    assert len(log) == 1                      # a bug is not rolled back as a user error


def test_an_undo_that_has_a_bug_is_not_swallowed():
    log = UndoLog()
    log.record("step", lambda: {}["missing"])
    with pytest.raises(KeyError):
        log.fail(OSError(errno.EIO, "I/O error"))


def test_record_all_runs_one_undo_for_several_steps():
    runs = []
    log = UndoLog()
    log.record("create a", lambda: runs.append("a"))
    log.record_all(["start b", "start c"], lambda: runs.append("b+c"))
    err = log.fail(OSError(errno.EIO, "Input/output error"))
    assert runs == ["b+c", "a"]
    assert err.done == ["create a", "start b", "start c"]
    assert err.rolled_back == ["start c", "start b", "create a"]


def test_record_all_reports_each_step_when_its_undo_fails():
    def stuck():
        raise OSError(errno.EPERM, "Operation not permitted")

    log = UndoLog()
    log.record_all(["start b", "start c"], stuck)
    err = log.fail(OSError(errno.EIO, "Input/output error"))
    assert err.rolled_back == []
    assert err.rollback_errors == ["start c: Operation not permitted",
                                   "start b: Operation not permitted"]

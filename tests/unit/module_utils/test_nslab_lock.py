"""The per-lab lock (nslab_lock): one holder at a time, a clear error after the timeout,
no lock file left behind, and a waiter never ends up holding an unlinked file."""

import multiprocessing
import os
import time

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import LabLockedError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_lock import (
    LabLock, lock_path, unless_a_run_is_going)


def hold(root, seconds, ready):
    with LabLock("lab1", root=root):
        ready.set()
        time.sleep(seconds)


@pytest.fixture
def holder(tmp_path):
    procs = []

    def start(seconds):
        ready = multiprocessing.Event()
        proc = multiprocessing.Process(target=hold, args=(str(tmp_path), seconds, ready))
        proc.start()
        assert ready.wait(5)
        procs.append(proc)
        return proc
    yield start
    for proc in procs:
        proc.kill()
        proc.join()


def test_the_holder_writes_its_pid_and_removes_the_file(tmp_path):
    with LabLock("lab1", root=str(tmp_path)) as lock:
        assert open(lock_path("lab1", str(tmp_path))).read() == str(os.getpid())
        assert oct(os.stat(lock.path).st_mode & 0o777) == "0o600"
    assert not os.path.exists(lock_path("lab1", str(tmp_path)))


def test_a_second_holder_times_out_naming_the_first(tmp_path, holder):
    proc = holder(30)
    start = time.monotonic()
    with pytest.raises(LabLockedError) as err:
        LabLock("lab1", root=str(tmp_path), timeout=0.3).acquire()
    assert time.monotonic() - start < 5
    assert "lab 'lab1' is locked by another nslab run (held by pid %d)" % proc.pid in str(err.value)


def test_a_waiter_gets_the_lock_once_the_holder_is_done(tmp_path, holder):
    proc = holder(0.5)
    with LabLock("lab1", root=str(tmp_path), timeout=10) as lock:
        assert lock.waited > 0.1
        assert not proc.is_alive() or proc.join(1) is None
        # what it holds is the file at the path, not the one its predecessor unlinked
        assert os.fstat(lock.fd).st_ino == os.stat(lock.path).st_ino


def test_a_killed_holder_does_not_leave_the_lab_locked(tmp_path, holder):
    proc = holder(30)
    proc.kill()
    proc.join()
    with LabLock("lab1", root=str(tmp_path), timeout=2):
        pass


def test_other_labs_are_not_held_up(tmp_path, holder):
    holder(30)
    with LabLock("lab2", root=str(tmp_path), timeout=0.2):
        pass


def hold_other_lab(root, seconds, ready):
    with LabLock("lab2", root=root):
        ready.set()
        time.sleep(seconds)


def test_the_last_run_out_tidies_and_no_run_tidies_while_another_is_going(tmp_path):
    """Runs on different labs go at once (both hold ``.shared`` shared); only a run that
    finds none going calls its on_release (nslab_shared's tidy of the roots all labs use)."""
    ready = multiprocessing.Event()
    other = multiprocessing.Process(target=hold_other_lab, args=(str(tmp_path), 1.0, ready))
    other.start()
    try:
        assert ready.wait(5)
        calls = []
        with LabLock("lab1", root=str(tmp_path), timeout=0.5) as lock:
            assert lock.waited < 0.5                   # lab2's run does not hold lab1 up
            lock.on_release = lambda: calls.append("tidy") or ["removed"]
        assert calls == [] and lock.released is None   # lab2's run is still going
        other.join(10)
        with LabLock("lab1", root=str(tmp_path)) as lock:
            lock.on_release = lambda: calls.append("tidy") or ["removed"]
        assert calls == ["tidy"] and lock.released == ["removed"]
    finally:
        other.kill()
        other.join()


def test_a_cleanup_outside_a_run_waits_for_no_one_and_skips_while_a_run_goes(tmp_path, holder):
    assert unless_a_run_is_going(lambda: "tidied", root=str(tmp_path)) == "tidied"
    holder(30)                                  # a run on lab1 holds the shared lock
    assert unless_a_run_is_going(lambda: "tidied", root=str(tmp_path)) is None

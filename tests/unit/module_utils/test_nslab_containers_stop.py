"""ContainerManager.stop_many on a fake clock and a fake process table: SIGTERM, SIGKILL
after stop_timeout, and an overall end when an init outlives its SIGKILL."""

import json
import signal

import pytest

from ansible_collections.nslab.lab.plugins.module_utils import nslab_containers
from ansible_collections.nslab.lab.plugins.module_utils.nslab_container_store import ContainerStore
from ansible_collections.nslab.lab.plugins.module_utils.nslab_containers import (
    KILL_GRACE, ContainerManager, ContainerSpec)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import StopError


class FakeHost:
    """Processes by pid, each obeying SIGTERM, only SIGKILL, or nothing (stuck in D);
    time moves only when stop_many pauses."""

    def __init__(self, behaviours):
        self.behaviours = dict(behaviours)          # pid -> "term", "kill" or "stuck"
        self.alive = set(self.behaviours)
        self.now = 1000.0
        self.sent = []

    def clock(self):
        return self.now

    def pause(self, seconds):
        self.now += seconds

    def send_signal(self, pid, signum):
        self.sent.append((round(self.now - 1000.0, 2), pid, signum))
        if pid not in self.alive:
            raise ProcessLookupError(pid)
        behaviour = self.behaviours[pid]
        if signum == signal.SIGTERM and behaviour == "term" or \
                signum == signal.SIGKILL and behaviour != "stuck":
            self.alive.discard(pid)

    def start_time(self, pid):
        return 7 if pid in self.alive else None


@pytest.fixture
def manager(tmp_path, monkeypatch):
    def make(behaviours, stop_timeout=10.0):
        host = FakeHost(behaviours)
        monkeypatch.setattr(nslab_containers, "proc_start_time", host.start_time)
        monkeypatch.setattr(nslab_containers, "is_recorded_process",
                            lambda record: host.start_time(record["pid"]) == 7)
        store = ContainerStore("lab", root=str(tmp_path))
        (tmp_path / "lab" / "containers").mkdir(parents=True)
        specs = []
        for pid in sorted(behaviours):
            name = "c%d" % pid
            with open(store.record_path(name), "w") as handle:
                json.dump({"lab": "lab", "name": name, "pid": pid, "start_time": 7,
                           "running": True, "config": {}}, handle)
            specs.append(ContainerSpec(name, rootfs="/j", stop_timeout=stop_timeout))
        manager = ContainerManager(store, layout=None)
        manager.clock, manager.pause, manager.send_signal = \
            host.clock, host.pause, host.send_signal
        return manager, host, specs, store
    return make


def running(store, name):
    with open(store.record_path(name)) as handle:
        return json.load(handle)["running"]


def test_sigterm_obeyed_no_sigkill(manager):
    mgr, host, specs, store = manager({101: "term"})
    mgr.stop_many(specs)
    assert host.sent == [(0.0, 101, signal.SIGTERM)]
    assert running(store, "c101") is False


def test_sigkill_after_stop_timeout(manager):
    mgr, host, specs, store = manager({101: "kill"}, stop_timeout=2.0)
    mgr.stop_many(specs)
    assert [s for _t, _p, s in host.sent] == [signal.SIGTERM, signal.SIGKILL]
    assert 2.0 < host.sent[1][0] < 2.1
    assert running(store, "c101") is False


def test_init_stuck_after_sigkill_ends_with_its_name_and_pid(manager):
    mgr, host, specs, store = manager({101: "term", 102: "stuck", 103: "kill"},
                                      stop_timeout=1.0)
    with pytest.raises(StopError) as caught:
        mgr.stop_many(specs)
    assert caught.value.stuck == [("c102", 102)]
    assert str(caught.value) == (
        "could not stop container 'c102' (pid 102): still there %s s after SIGKILL (a "
        "process stuck in the kernel: uninterruptible sleep or a frozen cgroup); their "
        "records stay running" % KILL_GRACE)
    assert caught.value.details() == {"stuck": [{"name": "c102", "pid": 102}]}
    # one SIGKILL each, and the overall end comes KILL_GRACE after it, not never
    assert [(p, s) for _t, p, s in host.sent if s == signal.SIGKILL] == [
        (102, signal.SIGKILL), (103, signal.SIGKILL)]
    assert 1.0 + KILL_GRACE < host.now - 1000.0 < 1.0 + KILL_GRACE + 0.1
    # the others are recorded stopped; the stuck one still says running, as it is
    assert [running(store, n) for n in ("c101", "c102", "c103")] == [False, True, False]

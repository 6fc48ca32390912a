"""Container planning, capability sets and process identity (pure logic)."""

import errno
import os

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import Hierarchy, Layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_container_store import (
    ContainerState)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_containers import (
    ContainerAction, ContainerManager, ContainerSpec, cgroup_mounts, plan_containers)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    ApplyError, ContainerError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import parse_mountinfo
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import (
    CAPABILITIES, cap_masks, cap_numbers, proc_start_time)


def state(name, config=None, running=False, died=False):
    record = None if config is None else {"config": config, "pid": 42}
    return ContainerState(name, record, running=running, died=died)


def plan(spec, current):
    return [(a.verb, a.summary) for a in plan_containers([spec], {spec.name: current})]


def test_start_stop_restart_remove():
    spec = ContainerSpec("a", rootfs="/j", command=["sleep", "1"])
    assert plan(spec, state("a")) == [("start", "start container 'a'")]
    assert plan(spec, state("a", spec.config(), died=True)) == [
        ("start", "start container 'a' (its init died)")]
    assert plan(spec, state("a", spec.config(), running=True)) == []
    spec.state = "restarted"
    assert plan(spec, state("a", spec.config(), running=True))[0][0] == "restart"
    spec.state = "stopped"
    assert plan(spec, state("a", spec.config(), running=True)) == [("stop", "stop container 'a'")]
    assert plan(spec, state("a", spec.config())) == []
    spec.state = "absent"
    assert plan(spec, state("a", spec.config(), running=True)) == [
        ("remove", "stop and remove container 'a'")]
    assert plan(spec, state("a")) == []


def test_a_changed_configuration_restarts_and_names_what_changed():
    spec = ContainerSpec("a", rootfs="/j", command=["sleep", "1"])
    old = dict(spec.config(), command=["sleep", "2"], hostname="x")
    assert plan(spec, state("a", old, running=True)) == [
        ("restart", "restart container 'a' (hostname, command changed)")]


def test_capability_masks():
    assert cap_numbers(["CAP_CHOWN", "net_admin", "NET_ADMIN"]) == [0, 12]
    assert cap_masks([0, 12, 33]) == (1 | 1 << 12, 1 << 1)
    assert CAPABILITIES[21] == "SYS_ADMIN" and len(CAPABILITIES) == 41
    with pytest.raises(ValueError):
        cap_numbers(["FLY"])


def test_process_identity_uses_start_time():
    assert proc_start_time(os.getpid()) > 0
    assert proc_start_time(2 ** 22 + 1) is None


def test_privileged_and_binds_restart_but_an_old_record_without_them_does_not():
    spec = ContainerSpec("a", rootfs="/j")
    old = dict(spec.config())
    del old["privileged"], old["binds"]            # a record from before these options
    assert plan(spec, state("a", old, running=True)) == []
    spec.privileged = True
    spec.binds = [{"path": "/var/lib/nslab", "source": "/d", "readonly": False}]
    assert plan(spec, state("a", old, running=True)) == [
        ("restart", "restart container 'a' (privileged, binds changed)")]


def test_removal_names_the_bind_directory_it_deletes():
    spec = ContainerSpec("a", rootfs="/j", state="absent")
    actions = plan_containers([spec], {"a": state("a", spec.config())}, bind_dirs={"a": "/b/a"})
    assert [a.summary for a in actions] == ["remove container 'a' and its bind directory /b/a"]


HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


def test_cgroup_mounts_are_the_hierarchies_holding_the_container():
    layout = Layout([Hierarchy(1, "/sys/fs/cgroup/cpu,cpuacct", ("cpu", "cpuacct")),
                     Hierarchy(1, "/sys/fs/cgroup/memory", ("memory",))], "v1")
    dirs = ["/sys/fs/cgroup/cpu,cpuacct/nslab/l/a", "/sys/fs/cgroup/memory/nslab/l/a"]
    assert cgroup_mounts(layout, parse_mountinfo(HYBRID), dirs) == [
        {"mount": "/sys/fs/cgroup/cpu,cpuacct", "fstype": "cgroup", "options": "cpu,cpuacct"},
        {"mount": "/sys/fs/cgroup/memory", "fstype": "cgroup", "options": "memory"}]
    v2 = Layout([Hierarchy(2, "/sys/fs/cgroup", ("memory", "pids"))], "v2")
    pure = "30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    assert cgroup_mounts(v2, parse_mountinfo(pure), ["/sys/fs/cgroup/nslab/l/a"]) == [
        {"mount": "/sys/fs/cgroup", "fstype": "cgroup2", "options": "nsdelegate"}]


def test_a_running_init_cut_off_from_its_lab_is_restarted_with_the_reason():
    spec = ContainerSpec("a", rootfs="/j", netns="lab-a")
    running = {"a": state("a", spec.config(), running=True)}
    actions = plan_containers([spec], running, broken={"a": "its net namespace was replaced"})
    assert [(a.verb, a.summary) for a in actions] == [
        ("restart", "restart container 'a' (its net namespace was replaced)")]
    assert plan_containers([spec], running, broken={"a": None}) == []


def test_a_record_from_before_files_logs_and_seccomp_does_not_restart():
    spec = ContainerSpec("a", rootfs="/j")
    old = dict((k, v) for k, v in spec.config().items()
               if k not in ("files", "log_max_size", "seccomp"))
    assert plan(spec, state("a", old, running=True)) == []
    spec.seccomp = "unconfined"
    assert plan(spec, state("a", old, running=True)) == [
        ("restart", "restart container 'a' (seccomp changed)")]


class StartingManager(ContainerManager):
    """ContainerManager with fake starts and stops: tests the undo of apply only."""

    def __init__(self, fail_start=None, fail_stop=False):
        super().__init__(store=None, layout=None)
        self.fail_start, self.fail_stop, self.stopped = fail_start, fail_stop, []

    def start_many(self, specs):
        for spec in specs:
            if spec.name == self.fail_start:
                raise ContainerError("container '%s' did not start: injected" % spec.name)
            self.started.append(spec)

    def stop_many(self, specs):
        if specs and self.fail_stop:
            raise OSError(errno.EPERM, "Operation not permitted")
        self.stopped.append([s.name for s in specs])

    def remove_many(self, specs):
        pass


def starts(*names):
    return [ContainerAction("start container '%s'" % n, "start", ContainerSpec(n, rootfs="/j"))
            for n in names]


def test_a_failed_start_stops_the_containers_this_run_started_at_once():
    manager = StartingManager(fail_start="c")
    with pytest.raises(ApplyError) as caught:
        manager.apply(starts("a", "b", "c"))
    assert manager.stopped == [[], ["a", "b"]]      # the run's stops, then one undo
    assert caught.value.done == ["start container 'a'", "start container 'b'"]
    assert caught.value.rolled_back == ["start container 'b'", "start container 'a'"]
    assert "did not start: injected; rolled back 2 step(s)" in str(caught.value)


def test_a_stop_that_fails_while_undoing_names_every_container_it_may_leave():
    manager = StartingManager(fail_start="c", fail_stop=True)
    with pytest.raises(ApplyError) as caught:
        manager.apply(starts("a", "b", "c"))
    assert caught.value.rolled_back == []
    assert caught.value.rollback_errors == ["start container 'b': Operation not permitted",
                                            "start container 'a': Operation not permitted"]

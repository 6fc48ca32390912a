"""Container planning, capability sets and process identity (pure logic)."""

import os

import pytest

from ansible.module_utils.nslab_containers import (ContainerSpec, ContainerState, plan_containers,
                                                   proc_start_time)
from ansible.module_utils.nslab_init import CAPABILITIES, cap_masks, cap_numbers


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

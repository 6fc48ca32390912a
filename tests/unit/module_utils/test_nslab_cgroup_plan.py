"""nslab_cgroup_plan: desired specs against read states give the actions and file steps
that make the kernel match, in apply order, and nothing when it already does."""

import os
import shutil

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_plan import (
    CgroupSpec, plan_cgroups, settle)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_read import read_cgroup
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import read_limits
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import MAX
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    CgroupBusyError, CgroupError)


def test_unchanged_v1_cgroup_plans_nothing(cgroup_v1, cgroup_record):
    layout, _root = cgroup_v1
    state = read_cgroup(layout, "demo", "x", cgroup_record("x"))
    spec = CgroupSpec("x", limits=read_limits(layout, state), procs=[19675])
    assert plan_cgroups([spec], {"x": state}, layout) == []


def test_v1_change_writes_with_undo(cgroup_v1, cgroup_record):
    layout, root = cgroup_v1
    state = read_cgroup(layout, "demo", "x", cgroup_record("x"))
    actions = plan_cgroups([CgroupSpec("x", limits={"memory": 1 << 29, "cpus": MAX,
                                                    "cpu_weight": 100, "io": {}})],
                           {"x": state}, layout)
    assert [a.summary for a in actions] == [
        "set memory of cgroup 'nslab/demo/x' from 268435456 to 536870912",
        "set cpus of cgroup 'nslab/demo/x' from 0.5 to max",
        "set cpu_weight of cgroup 'nslab/demo/x' from 50 to 100",
        "set io of cgroup 'nslab/demo/x' from 254:0 read_bps=1048576 write_iops=200 to none"]
    memory, cpus, weight, io = [[(os.path.basename(o.path), o.text, o.undo) for o in a.ops]
                                for a in actions]
    assert memory == [("memory.limit_in_bytes", "536870912", "268435456")]
    assert cpus == [("cpu.cfs_period_us", "100000", "100000"),
                    ("cpu.cfs_quota_us", "-1", "50000")]
    assert weight == [("cpu.shares", "1024", "512")]
    assert io == [("blkio.throttle.read_bps_device", "254:0 0", "254:0 1048576"),
                  ("blkio.throttle.write_iops_device", "254:0 0", "254:0 200")]


def test_v1_memsw_moves_with_memory_and_is_raised_first(cgroup_v1, cgroup_record):
    layout, _root = cgroup_v1
    state = read_cgroup(layout, "demo", "x", cgroup_record("x"))       # memory = memsw = 256M
    # swap stays 0, memory doubles: memsw must follow, and go up first
    grow = plan_cgroups([CgroupSpec("x", limits={"memory": 1 << 29, "swap": 0})],
                        {"x": state}, layout)
    assert [a.summary.split(" of ")[0] for a in grow] == ["set memory"]
    assert [(os.path.basename(o.path), o.text, o.undo) for o in grow[0].ops] == [
        ("memory.memsw.limit_in_bytes", str(1 << 29), str(1 << 28)),
        ("memory.limit_in_bytes", str(1 << 29), str(1 << 28))]
    shrink = plan_cgroups([CgroupSpec("x", limits={"memory": 1 << 27, "swap": 1 << 27})],
                          {"x": state}, layout)
    assert [a.summary.split(" of ")[0] for a in shrink] == ["set memory", "set swap"]
    assert [os.path.basename(o.path) for o in shrink[0].ops] == [
        "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    assert [o.text for o in shrink[0].ops] == [str(1 << 27), str(1 << 28)]


def test_kernel_rounding_is_remembered(cgroup_v1, cgroup_record):
    layout, root = cgroup_v1
    (root / "memory/nslab/demo/x/memory.limit_in_bytes").write_text("999424\n")
    record = cgroup_record("x")
    state = read_cgroup(layout, "demo", "x", record)
    spec = CgroupSpec("x", limits={"memory": 1000000})
    assert len(plan_cgroups([spec], {"x": state}, layout)) == 1
    assert settle(record, [spec], layout, {"x": state}) is True
    assert record["cgroups"]["x"]["settled"] == {"memory": {"asked": 1000000,
                                                            "kernel": 999424}}
    assert settle(record, [spec], layout, {"x": state}) is False     # nothing new to save
    again = read_cgroup(layout, "demo", "x", record)
    assert plan_cgroups([spec], {"x": again}, layout) == []
    # asking for another value is a change again
    assert plan_cgroups([CgroupSpec("x", limits={"memory": 2000000})], {"x": again}, layout)


def test_new_v1_cgroup_gets_its_parents_cpuset(cgroup_v1):
    layout, root = cgroup_v1
    state = read_cgroup(layout, "demo", "web/a", {"cgroups": {}})
    actions = plan_cgroups([CgroupSpec("web/a", limits={"pids": 10})], {"web/a": state},
                           layout)
    assert actions[0].summary == ("create cgroup 'nslab/demo/web/a' (cpu, cpuacct, cpuset, "
                                  "memory, devices, blkio, pids)")
    cpuset = [(o.kind, os.path.relpath(o.path, str(root)), o.text) for o in actions[0].ops
              if "cpuset" in o.path]
    assert cpuset == [("mkdir", "cpuset/nslab/demo/web", None),
                      ("write", "cpuset/nslab/demo/web/cpuset.cpus", "0-1"),
                      ("write", "cpuset/nslab/demo/web/cpuset.mems", "0"),
                      ("mkdir", "cpuset/nslab/demo/web/a", None),
                      ("write", "cpuset/nslab/demo/web/a/cpuset.cpus", "0-1"),
                      ("write", "cpuset/nslab/demo/web/a/cpuset.mems", "0")]
    assert actions[0].ops[-1].kind == "own"
    assert actions[1].summary == "set pids of cgroup 'nslab/demo/web/a' to 10"
    assert actions[1].ops[0].undo is None


def test_new_v2_cgroup_enables_controllers_along_its_path(cgroup_v2, cgroup_record):
    layout, root = cgroup_v2
    state = read_cgroup(layout, "demo", "y", cgroup_record("x"))
    actions = plan_cgroups([CgroupSpec("y", limits={
        "cpus": 1.5, "cpuset": "1", "memory": MAX,
        "io": {"8:0": {"read_bps": 1 << 20, "write_bps": MAX, "read_iops": MAX,
                       "write_iops": MAX}}})], {"y": state}, layout)
    ops = [(o.kind, os.path.relpath(o.path, str(root)), o.text, o.undo)
           for a in actions for o in a.ops if o.kind != "own"]
    assert ops == [
        ("write", "cgroup.subtree_control", "+cpuset", "-cpuset"),
        ("write", "nslab/cgroup.subtree_control", "+cpuset", "-cpuset"),
        ("write", "nslab/demo/cgroup.subtree_control", "+cpuset", "-cpuset"),
        ("mkdir", "nslab/demo/y", None, None),
        ("write", "nslab/demo/y/memory.max", "max", None),
        ("write", "nslab/demo/y/cpu.max", "150000 100000", None),
        ("write", "nslab/demo/y/cpuset.cpus", "1", None),
        ("write", "nslab/demo/y/io.max", "8:0 rbps=1048576 wbps=max riops=max wiops=max",
         None)]


def test_v2_limits_on_an_existing_cgroup(cgroup_v2, cgroup_record):
    layout, _root = cgroup_v2
    state = read_cgroup(layout, "demo", "x", cgroup_record("x"))
    actions = plan_cgroups([CgroupSpec("x", limits={
        "memory_high": 1 << 28, "io": {}, "io_weight": 300, "cpus": 1.5})], {"x": state},
        layout)
    # the fixture's parents do not pass cpuset down yet: nslab enables every controller
    prepare = actions.pop(0)
    assert prepare.summary == "prepare the parents of cgroup 'nslab/demo/x'"
    assert [o.text for o in prepare.ops] == ["+cpuset"] * 3 + [None]
    assert [(os.path.basename(o.path), o.text, o.undo) for a in actions for o in a.ops] == [
        ("memory.high", "268435456", "max"),
        ("io.max", "8:0 rbps=max wbps=max riops=max wiops=max",
         "8:0 rbps=10485760 wbps=max riops=max wiops=200"),
        ("io.weight", "default 300", "default 100")]


def test_v2_missing_interface_file_cannot_be_enforced(cgroup_v2, cgroup_record):
    layout, root = cgroup_v2
    os.unlink(str(root / "nslab/demo/x/memory.swap.max"))   # no swap accounting
    state = read_cgroup(layout, "demo", "x", cgroup_record("x"))
    with pytest.raises(CgroupError, match="swap: '0' cannot be enforced on this host: "
                                          ".*x has no memory.swap.max"):
        plan_cgroups([CgroupSpec("x", limits={"swap": 0})], {"x": state}, layout)


def test_attach_only_what_is_not_a_member(cgroup_v1, cgroup_record):
    layout, _root = cgroup_v1
    state = read_cgroup(layout, "demo", "x", cgroup_record("x"))
    actions = plan_cgroups([CgroupSpec("x", procs=[19675, 4242])], {"x": state}, layout)
    assert [a.summary for a in actions] == ["move process 4242 into cgroup 'nslab/demo/x'"]
    assert len(actions[0].ops) == 7 and {o.text for o in actions[0].ops} == {"4242"}


def test_delete_refuses_processes_and_children_unless_allowed(cgroup_v1, cgroup_record):
    layout, root = cgroup_v1
    state = read_cgroup(layout, "demo", "x", cgroup_record("x"))
    with pytest.raises(CgroupBusyError) as err:
        plan_cgroups([CgroupSpec("x", "absent")], {"x": state}, layout)
    assert err.value.pids == [19675, 19699] and "kill=true" in str(err.value)
    actions = plan_cgroups([CgroupSpec("x", "absent")], {"x": state}, layout, kill=True)
    assert actions[0].summary == ("kill 2 processes (19675, 19699) in cgroup 'nslab/demo/x' "
                                  "and delete it")
    assert [o.kind for o in actions[0].ops][:8] == ["kill"] * 7 + ["rmdir"]

    os.mkdir(str(root / "pids/nslab/demo/x/inner"))
    parent = read_cgroup(layout, "demo", "x", cgroup_record("x", "x/inner"))
    with pytest.raises(CgroupBusyError, match="has child cgroups inner"):
        plan_cgroups([CgroupSpec("x", "absent")], {"x": parent}, layout, kill=True)
    inner = read_cgroup(layout, "demo", "x/inner", cgroup_record("x", "x/inner"))
    both = plan_cgroups([CgroupSpec("x", "absent"), CgroupSpec("x/inner", "absent")],
                        {"x": parent, "x/inner": inner}, layout, kill=True)
    assert [a.name for a in both] == ["x/inner", "x"]


def test_absent_and_unknown_plans_nothing(cgroup_v2, cgroup_record):
    layout, _root = cgroup_v2
    state = read_cgroup(layout, "demo", "nope", cgroup_record("x"))
    assert plan_cgroups([CgroupSpec("nope", "absent")], {"nope": state}, layout) == []


def test_nslab_own_cgroup_is_shared_it_is_made_if_missing_and_never_removed_here(
        cgroup_v2, cgroup_record):
    """nslab/ holds every lab: a run makes it when missing (another lab's run may make it
    at the same moment: mkdir_shared) and never removes it (nslab_shared does, when no run
    is going); the lab's own nslab/demo goes with its last cgroup."""
    layout, root = cgroup_v2
    state = read_cgroup(layout, "demo", "x", cgroup_record("x"))
    gone = plan_cgroups([CgroupSpec("x", "absent")], {"x": state}, layout, kill=True)
    emptied = [os.path.relpath(o.path, str(root)) for o in gone[0].ops
               if o.kind == "rmdir_empty"]
    assert emptied == ["nslab/demo"]
    shutil.rmtree(str(root / "nslab"))
    fresh = read_cgroup(layout, "other", "web", {"cgroups": {}})
    made = plan_cgroups([CgroupSpec("web")], {"web": fresh}, layout)
    assert [(o.kind, os.path.relpath(o.path, str(root))) for o in made[0].ops
            if o.kind.startswith("mkdir")] == [
        ("mkdir_shared", "nslab"), ("mkdir", "nslab/other"), ("mkdir", "nslab/other/web")]


def test_cgroups_made_together_make_their_shared_parents_once(cgroup_v2):
    """Every new cgroup's read finds nslab/ and the lab's directory missing; the plan makes
    each once (500 cgroups made 500 mkdir attempts of nslab/ per hierarchy)."""
    layout, root = cgroup_v2
    shutil.rmtree(str(root / "nslab"))
    names = ["a", "b", "c"]
    states = dict((n, read_cgroup(layout, "other", n, {"cgroups": {}})) for n in names)
    made = plan_cgroups([CgroupSpec(n) for n in names], states, layout)
    mkdirs = [(o.kind, os.path.relpath(o.path, str(root))) for a in made for o in a.ops
              if o.kind.startswith("mkdir")]
    assert mkdirs == [("mkdir_shared", "nslab"), ("mkdir", "nslab/other"),
                      ("mkdir", "nslab/other/a"), ("mkdir", "nslab/other/b"),
                      ("mkdir", "nslab/other/c")]

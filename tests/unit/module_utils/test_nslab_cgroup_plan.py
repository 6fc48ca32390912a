"""cgroup layout, vocabulary, reading, planning and applying over file trees: a v1 tree
captured on this machine (fixtures/cgroup_v1, with its real mountinfo) and a v2 tree built
after Documentation/admin-guide/cgroup-v2.rst (fixtures/cgroup_v2)."""

import os
import pathlib
import shutil

import pytest

from ansible.module_utils import nslab_cgroup_apply
from ansible.module_utils.nslab_cgroup_apply import CgroupApplier
from ansible.module_utils.nslab_cgroup_layout import Layout, detect_layout
from ansible.module_utils.nslab_cgroup_plan import CgroupSpec, plan_cgroups, settle
from ansible.module_utils.nslab_cgroup_read import read_cgroup
from ansible.module_utils.nslab_cgroup_state import cgroup_view, read_limits, read_usage
from ansible.module_utils.nslab_cgroup_store import CgroupStore
from ansible.module_utils.nslab_cgroup_values import (
    MAX, format_cpulist, name_problem, parse_cpulist, parse_cpus, parse_count, parse_io,
    parse_limits, parse_size)
from ansible.module_utils.nslab_cgroup_vocab import FILES, layout_problems
from ansible.module_utils.nslab_errors import (ApplyError, CgroupBusyError, CgroupError,
                                               OwnershipError)
from ansible.module_utils.nslab_mountinfo import parse_mountinfo

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"


def tree(tmp_path, name):
    """Copy a fixture tree to tmp_path; return its layout (mount points moved there)."""
    root = tmp_path / name
    shutil.copytree(str(FIXTURES / name), str(root))
    text = (root / "mountinfo.txt").read_text().replace("/sys/fs/cgroup", str(root))
    return detect_layout(parse_mountinfo(text)), root


def owned(*names):
    return {"lab": "demo", "cgroups": dict((n, {"settled": {}}) for n in names)}


@pytest.fixture
def v1(tmp_path):
    return tree(tmp_path, "cgroup_v1")


@pytest.fixture
def v2(tmp_path):
    return tree(tmp_path, "cgroup_v2")


# --- layout -------------------------------------------------------------------------------

def test_v1_layout_of_this_machine(v1):
    layout, root = v1
    assert layout.kind == "hybrid"               # v1 controllers beside a cgroup2 mount
    assert [(h.version, os.path.basename(h.mount), h.controllers)
            for h in layout.hierarchies] == [
        (1, "cpu", ("cpu",)), (1, "cpuacct", ("cpuacct",)), (1, "cpuset", ("cpuset",)),
        (1, "memory", ("memory",)), (1, "devices", ("devices",)), (1, "blkio", ("io",)),
        (1, "pids", ("pids",))]
    assert (layout.cpus, layout.mems) == ("0-1", "0")
    # the cgroup2 mount holds only hugetlb: no cgroup is made there
    assert str(root / "unified") not in [h.mount for h in layout.hierarchies]


def test_v2_layout(v2):
    layout, root = v2
    assert layout.kind == "v2" and (layout.cpus, layout.mems) == ("0-3", "0")
    assert [(h.version, h.mount, h.controllers) for h in layout.hierarchies] == [
        (2, str(root), ("memory", "cpu", "cpuacct", "cpuset", "pids", "io"))]
    assert layout.view()["controllers"]["io"] == {"version": 2, "mount": str(root)}


def test_comounted_v1_controllers_share_one_hierarchy(tmp_path):
    text = ("25 24 0:22 / /c/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
            "26 24 0:23 / /c/memory rw - cgroup cgroup rw,memory\n")
    layout = detect_layout(parse_mountinfo(text))
    assert [(h.mount, h.controllers) for h in layout.hierarchies] == [
        ("/c/cpu,cpuacct", ("cpu", "cpuacct")), ("/c/memory", ("memory",))]
    assert layout.kind == "v1" and layout.hierarchy_of("pids") is None


def test_no_cgroup_mount_is_an_error():
    with pytest.raises(CgroupError, match="no cgroup hierarchy is mounted"):
        detect_layout(parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"))


# --- vocabulary ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("256M", 256 << 20), ("1.5G", 3 << 29), ("512k", 512 << 10), ("64MiB", 64 << 20),
    ("2T", 2 << 40), (1048576, 1048576), ("1000000", 1000000), ("max", MAX)])
def test_parse_size(value, expected):
    assert parse_size("memory", value) == (expected, None)


@pytest.mark.parametrize("value", ["12Q", "", "-1M", 0, True, "1.5.3G", None])
def test_parse_size_problems_name_option_and_value(value):
    size, problem = parse_size("cgroups[1].memory", value)
    assert size is None and problem.startswith("cgroups[1].memory: size %r is invalid" % value)
    assert "like 256M" in problem


def test_swap_may_be_zero():
    assert parse_limits({"swap": 0}) == ({"swap": 0}, [])


@pytest.mark.parametrize("value, expected", [
    (1.5, 1.5), ("0.2", 0.2), (2, 2.0), ("max", MAX), (0.333333, 0.33333)])
def test_parse_cpus(value, expected):
    assert parse_cpus("cpus", value) == (expected, None)


@pytest.mark.parametrize("value", [0, "0.001", "two", -1])
def test_parse_cpus_problems(value):
    assert "expected a number of CPUs of at least 0.01" in parse_cpus("cpus", value)[1]


def test_parse_count():
    assert parse_count("pids", 128) == (128, None)
    assert parse_count("pids", "max") == (MAX, None)
    assert parse_count("pids", "10") == (10, None)
    assert "expected an integer from 1 to 4194304" in parse_count("pids", 0)[1]
    assert parse_count("pids", 1.5)[0] is None


def test_cpulists_are_canonical():
    assert parse_cpulist("cpuset", "0,1,2,5") == ("0-2,5", None)
    assert parse_cpulist("cpuset", 3) == ("3", None)
    assert format_cpulist({0, 2, 3, 4, 7}) == "0,2-4,7"
    assert "not a list of CPUs" in parse_cpulist("cpuset", "3-1")[1]
    assert "not a list of memory nodes" in parse_cpulist("cpuset_mems", "a", "memory nodes")[1]


def test_parse_io_exact_per_device():
    def resolve(value):
        return (value, None) if value in ("8:0", "8:16") else (None, "no such disk")
    devices, problems = parse_io("", [
        {"device": "8:0", "read_bps": "10M", "write_iops": 200},
        {"device": "8:16"},                                # no limit: not listed
        {"device": "9:9", "read_bps": "1M"},
        {"device": "8:0", "read_iops": "x"}], resolve)
    assert devices == {"8:0": {"read_bps": 10 << 20, "write_bps": MAX, "read_iops": MAX,
                               "write_iops": 200}}
    assert problems == ["io[2].device: '9:9' is invalid: no such disk",
                        "io[3].device: 8:0 is listed twice"]
    _devices, problems = parse_io("", [{"device": "8:0", "read_iops": "x"}], resolve)
    assert problems == ["io[0].read_iops: 'x' is invalid; expected an integer from 1 to "
                        "1099511627776, or 'max'"]


@pytest.mark.parametrize("name", ["a", "web/apt101", "A-b_9/x"])
def test_good_names(name):
    assert name_problem("name", name) is None


@pytest.mark.parametrize("name", ["", "../x", "/abs", "a//b", "a/", "web/..", ".hidden",
                                  "a.b", "tasks", "x/release_agent", "/".join("a" * 9)])
def test_bad_names(name):
    assert name_problem("cgroups[0].name", name).startswith("cgroups[0].name: cgroup name ")


def test_layout_problems_on_v1(v1):
    layout, _root = v1
    limits, _p = parse_limits({"memory_high": "1G", "io_weight": 50, "swap": "1G",
                               "cpuset": "0-3", "cpuset_mems": "1"})
    problems = layout_problems("x.", limits, layout)
    assert [p.split(":")[0] for p in problems] == [
        "x.memory_high", "x.io_weight", "x.swap", "x.cpuset", "x.cpuset_mems"]
    assert "cgroup v1 has no memory.high" in problems[0]
    assert "cgroup v1 limits memory and swap together" in problems[2]
    assert "CPUs 2-3 are not available on this host; expected a subset of 0-1" in problems[3]
    # the same limits with memory set, within the host's CPUs: only the v1 gaps remain
    limits.update(memory=1 << 30, cpuset="1", cpuset_mems="0")
    assert len(layout_problems("", limits, layout)) == 2


def test_layout_problems_on_v2_and_missing_controller(v2, tmp_path):
    layout, _root = v2
    limits, _p = parse_limits({"memory_high": "1G", "io_weight": 50, "swap": 0, "cpuset": "3"})
    assert layout_problems("", limits, layout) == []
    only_memory = detect_layout(parse_mountinfo(
        "26 24 0:23 / /c/memory rw - cgroup cgroup rw,memory\n"))
    assert layout_problems("", {"pids": 10}, only_memory) == [
        "pids: '10' cannot be enforced on this host: no pids controller is mounted (cgroup "
        "layout v1); expected that controller, or leave pids unset"]


# --- reading ------------------------------------------------------------------------------

def test_read_captured_v1_cgroup(v1):
    layout, root = v1
    state = read_cgroup(layout, "demo", "x", owned("x"))
    assert state.procs == [19675, 19699] and state.children == []
    assert read_limits(layout, state) == {
        "memory": 268435456, "swap": 0, "cpus": 0.5, "cpu_weight": 50, "cpuset": "0-1",
        "cpuset_mems": "0", "pids": 10,
        "io": {"254:0": {"read_bps": 1048576, "write_bps": MAX, "read_iops": MAX,
                         "write_iops": 200}}}
    assert read_usage(layout, state) == {
        "memory_bytes": 262144, "memory_peak_bytes": 262144, "oom_kills": 0, "pids": 2,
        "cpu_usec": 314047, "cpu_periods": 8, "cpu_throttled_periods": 5,
        "cpu_throttled_usec": 244553}
    view = cgroup_view(layout, state)
    assert view["paths"]["io"] == str(root / "blkio/nslab/demo/x")
    assert view["limits"]["io"] == [{"device": "254:0", "read_bps": 1048576,
                                     "write_bps": MAX, "read_iops": MAX, "write_iops": 200}]


def test_read_constructed_v2_cgroup(v2):
    layout, root = v2
    state = read_cgroup(layout, "demo", "x", owned("x"))
    # cpuset is not enabled above x (cgroup.subtree_control): its keys are not readable
    assert read_limits(layout, state) == {
        "memory": 268435456, "memory_high": MAX, "swap": 0, "cpus": 1.5, "cpu_weight": 100,
        "pids": 128, "io_weight": 100,
        "io": {"8:0": {"read_bps": 10485760, "write_bps": MAX, "read_iops": MAX,
                       "write_iops": 200}}}
    assert read_usage(layout, state) == {
        "memory_bytes": 9502720, "memory_peak_bytes": 11046912, "oom_kills": 1, "pids": 3,
        "cpu_usec": 81234, "cpu_periods": 12, "cpu_throttled_periods": 3,
        "cpu_throttled_usec": 4567}
    assert cgroup_view(layout, state)["paths"] == dict(
        (c, str(root / "nslab/demo/x")) for c in ("memory", "cpu", "cpuacct", "cpuset",
                                                   "pids", "io"))


def test_v1_unlimited_values_read_as_max(v1):
    layout, root = v1
    leaf = root / "memory/nslab/demo/x"
    (leaf / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (leaf / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "cpu/nslab/demo/x/cpu.cfs_quota_us").write_text("-1\n")
    limits = read_limits(layout, read_cgroup(layout, "demo", "x", owned("x")))
    assert (limits["memory"], limits["swap"], limits["cpus"]) == (MAX, MAX, MAX)


# --- ownership ----------------------------------------------------------------------------

def test_unrecorded_cgroup_is_foreign(v1):
    layout, _root = v1
    state = read_cgroup(layout, "demo", "x", {"cgroups": {}, "_path": "/run/x.json"})
    assert state.foreign == "not nslab's (no record in /run/x.json)"
    for wanted in ("present", "absent"):
        with pytest.raises(OwnershipError, match="cgroup 'nslab/demo/x' exists and is not"):
            plan_cgroups([CgroupSpec("x", wanted)], {"x": state}, layout)


def test_recorded_inode_must_match(v1):
    layout, root = v1
    memory = str(root / "memory/nslab/demo/x")
    record = {"cgroups": {"x": {"inodes": {memory: os.stat(memory).st_ino + 1}}}}
    state = read_cgroup(layout, "demo", "x", record)
    assert "a different cgroup than the one nslab made" in state.foreign


def test_a_parent_nslab_made_is_owned(v1):
    layout, _root = v1
    parent = read_cgroup(layout, "demo", "web", owned("web/a"))
    assert parent.owned and not parent.recorded and parent.foreign is None


# --- planning -----------------------------------------------------------------------------

def test_unchanged_v1_cgroup_plans_nothing(v1):
    layout, _root = v1
    state = read_cgroup(layout, "demo", "x", owned("x"))
    spec = CgroupSpec("x", limits=read_limits(layout, state), procs=[19675])
    assert plan_cgroups([spec], {"x": state}, layout) == []


def test_v1_change_writes_with_undo(v1):
    layout, root = v1
    state = read_cgroup(layout, "demo", "x", owned("x"))
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


def test_v1_memsw_moves_with_memory_and_is_raised_first(v1):
    layout, _root = v1
    state = read_cgroup(layout, "demo", "x", owned("x"))       # memory = memsw = 256M
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


def test_kernel_rounding_is_remembered(v1):
    layout, root = v1
    (root / "memory/nslab/demo/x/memory.limit_in_bytes").write_text("999424\n")
    record = owned("x")
    state = read_cgroup(layout, "demo", "x", record)
    spec = CgroupSpec("x", limits={"memory": 1000000})
    assert len(plan_cgroups([spec], {"x": state}, layout)) == 1
    settle(record, [spec], layout, {"x": state})
    assert record["cgroups"]["x"]["settled"] == {"memory": {"asked": 1000000,
                                                            "kernel": 999424}}
    again = read_cgroup(layout, "demo", "x", record)
    assert plan_cgroups([spec], {"x": again}, layout) == []
    # asking for another value is a change again
    assert plan_cgroups([CgroupSpec("x", limits={"memory": 2000000})], {"x": again}, layout)


def test_new_v1_cgroup_gets_its_parents_cpuset(v1):
    layout, root = v1
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


def test_new_v2_cgroup_enables_controllers_along_its_path(v2):
    layout, root = v2
    state = read_cgroup(layout, "demo", "y", owned("x"))
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


def test_v2_limits_on_an_existing_cgroup(v2):
    layout, _root = v2
    state = read_cgroup(layout, "demo", "x", owned("x"))
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


def test_v2_missing_interface_file_cannot_be_enforced(v2):
    layout, root = v2
    os.unlink(str(root / "nslab/demo/x/memory.swap.max"))   # no swap accounting
    state = read_cgroup(layout, "demo", "x", owned("x"))
    with pytest.raises(CgroupError, match="swap: '0' cannot be enforced on this host: "
                                          ".*x has no memory.swap.max"):
        plan_cgroups([CgroupSpec("x", limits={"swap": 0})], {"x": state}, layout)


def test_attach_only_what_is_not_a_member(v1):
    layout, _root = v1
    state = read_cgroup(layout, "demo", "x", owned("x"))
    actions = plan_cgroups([CgroupSpec("x", procs=[19675, 4242])], {"x": state}, layout)
    assert [a.summary for a in actions] == ["move process 4242 into cgroup 'nslab/demo/x'"]
    assert len(actions[0].ops) == 7 and {o.text for o in actions[0].ops} == {"4242"}


def test_delete_refuses_processes_and_children_unless_allowed(v1):
    layout, root = v1
    state = read_cgroup(layout, "demo", "x", owned("x"))
    with pytest.raises(CgroupBusyError) as err:
        plan_cgroups([CgroupSpec("x", "absent")], {"x": state}, layout)
    assert err.value.pids == [19675, 19699] and "kill=true" in str(err.value)
    actions = plan_cgroups([CgroupSpec("x", "absent")], {"x": state}, layout, kill=True)
    assert actions[0].summary == ("kill 2 processes (19675, 19699) in cgroup 'nslab/demo/x' "
                                  "and delete it")
    assert [o.kind for o in actions[0].ops][:8] == ["kill"] * 7 + ["rmdir"]

    os.mkdir(str(root / "pids/nslab/demo/x/inner"))
    parent = read_cgroup(layout, "demo", "x", owned("x", "x/inner"))
    with pytest.raises(CgroupBusyError, match="has child cgroups inner"):
        plan_cgroups([CgroupSpec("x", "absent")], {"x": parent}, layout, kill=True)
    inner = read_cgroup(layout, "demo", "x/inner", owned("x", "x/inner"))
    both = plan_cgroups([CgroupSpec("x", "absent"), CgroupSpec("x/inner", "absent")],
                        {"x": parent, "x/inner": inner}, layout, kill=True)
    assert [a.name for a in both] == ["x/inner", "x"]


def test_absent_and_unknown_plans_nothing(v2):
    layout, _root = v2
    state = read_cgroup(layout, "demo", "nope", owned("x"))
    assert plan_cgroups([CgroupSpec("nope", "absent")], {"nope": state}, layout) == []


# --- applying -----------------------------------------------------------------------------

def test_apply_rolls_back_newest_first_and_keeps_the_record_true(v2, tmp_path):
    layout, root = v2
    store = CgroupStore("demo", root=str(tmp_path / "state"))
    record = store.load()
    record["cgroups"]["x"] = {"settled": {}}
    (root / "nslab/demo/cgroup.subtree_control").write_text("cpuset cpu io memory pids\n")
    (root / "nslab/cgroup.subtree_control").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("cpuset cpu io memory pids\n")
    states = {"x": read_cgroup(layout, "demo", "x", record),
              "y": read_cgroup(layout, "demo", "y", record)}
    actions = plan_cgroups([CgroupSpec("y"),
                            CgroupSpec("x", limits={"memory": 1 << 27, "pids": 5})],
                           states, layout)
    # x's pids.max turns out unwritable (EISDIR on this plain file system)
    os.unlink(str(root / "nslab/demo/x/pids.max"))
    os.mkdir(str(root / "nslab/demo/x/pids.max"))
    with pytest.raises(ApplyError) as err:
        CgroupApplier(store, record, layout).apply(actions)
    assert "pids: writing '5' to %s/nslab/demo/x/pids.max failed" % root in str(err.value)
    assert err.value.done == [
        "mkdir %s/nslab/demo/y" % root,
        "record cgroup 'y'",
        "write '134217728' to %s/nslab/demo/x/memory.max (was '268435456')" % root]
    assert err.value.rolled_back == err.value.done[::-1]
    assert err.value.rollback_errors == []
    assert (root / "nslab/demo/x/memory.max").read_text() == "268435456\n"
    assert not (root / "nslab/demo/y").exists()
    assert set(store.load()["cgroups"]) == {"x"}


def test_apply_reports_an_undo_that_fails_and_still_undoes_the_rest(v2, tmp_path,
                                                                    monkeypatch):
    layout, root = v2
    store = CgroupStore("demo", root=str(tmp_path / "state"))
    record = store.load()
    record["cgroups"]["x"] = {"settled": {}}
    for path in ("", "nslab/", "nslab/demo/"):
        (root / (path + "cgroup.subtree_control")).write_text("cpuset cpu io memory pids\n")
    states = {"x": read_cgroup(layout, "demo", "x", record),
              "y": read_cgroup(layout, "demo", "y", record)}
    actions = plan_cgroups([CgroupSpec("y"), CgroupSpec("x", limits={"pids": 5})],
                           states, layout)
    fresh, pids_max = root / "nslab/demo/y", root / "nslab/demo/x/pids.max"

    def stray_file_then_fail(path, text):
        # y gets a file rmdir cannot remove (a plain file system is no cgroupfs), then
        # x's write fails: undoing "mkdir y" fails, undoing "record cgroup 'y'" still runs
        (fresh / "stray").write_text("")
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(nslab_cgroup_apply, "write_file", stray_file_then_fail)
    with pytest.raises(ApplyError) as err:
        CgroupApplier(store, record, layout).apply(actions)
    assert err.value.done == ["mkdir %s" % fresh, "record cgroup 'y'"]
    assert err.value.rolled_back == ["record cgroup 'y'"]
    assert err.value.rollback_errors == ["mkdir %s: Directory not empty: %s" % (fresh, fresh)]
    assert str(err.value) == (
        "pids: writing '5' to %s failed: Permission denied; rolled back 1 step(s), but could "
        "not undo: mkdir %s: Directory not empty: %s" % (pids_max, fresh, fresh))
    assert set(store.load()["cgroups"]) == {"x"}


def test_store_removes_its_file_and_dirs_when_empty(tmp_path):
    store = CgroupStore("demo", root=str(tmp_path / "state"))
    record = store.load()
    record["cgroups"]["x"] = {"settled": {}}
    store.save(record)
    assert store.load()["cgroups"] == {"x": {"settled": {}}}
    record["cgroups"].clear()
    store.save(record)
    assert not (tmp_path / "state").exists()


def test_translators_agree_on_what_they_write_and_read():
    """Writing a value then reading the file back gives that value, on both versions."""
    values = {"memory": 1 << 28, "swap": 1 << 20, "cpus": 1.25, "cpu_weight": 37,
              "cpuset": "0-1", "cpuset_mems": "0", "pids": 7, "memory_high": 1 << 27,
              "io_weight": 300,
              "io": {"8:0": {"read_bps": 5, "write_bps": MAX, "read_iops": MAX,
                             "write_iops": 9}}}
    for version, translator in FILES.items():
        files = dict((name, "") for name in FILES[1].needs("io") + FILES[2].needs("io"))
        for key, value in values.items():
            if version == 1 and key in ("memory_high", "io_weight"):
                continue
            for name, text, _undo in translator.writes(key, value, files, values):
                if key != "io":
                    files[name] = text
                    continue
                # a device line replaces that device's line; v1 "MAJ:MIN 0" removes it
                device = text.split()[0]
                lines = [l for l in files[name].splitlines() if not l.startswith(device + " ")]
                files[name] = "\n".join(lines + ([] if text.endswith(" 0") else [text]))
        for key, value in values.items():
            if version == 2 or key not in ("memory_high", "io_weight"):
                assert translator.read(key, files) == value, (version, key)


def test_v1_devices_directory_is_made_recorded_and_removed(v1, tmp_path):
    """The devices hierarchy holds every container's cgroup (nslab_devices sets its rules):
    made with the others, its inode recorded, removed with the others."""
    full, root = v1
    assert full.hierarchy_of("devices").mount == str(root / "devices")
    # only that hierarchy: a plain file system has no kernel to fill a new cpuset's files
    layout = Layout([full.hierarchy_of("devices")], full.kind)
    store = CgroupStore("demo", root=str(tmp_path / "state"))
    record = store.load()
    states = {"web/a": read_cgroup(layout, "demo", "web/a", record)}
    actions = plan_cgroups([CgroupSpec("web/a")], states, layout)
    CgroupApplier(store, record, layout).apply(actions)
    leaf = root / "devices/nslab/demo/web/a"
    assert leaf.is_dir()
    assert store.load()["cgroups"]["web/a"]["inodes"][str(leaf)] == os.stat(str(leaf)).st_ino
    view = cgroup_view(layout, read_cgroup(layout, "demo", "web/a", record))
    assert view["paths"]["devices"] == str(leaf)
    # a second run plans nothing: the devices directory has no limit key to converge
    again = read_cgroup(layout, "demo", "web/a", store.load())
    assert plan_cgroups([CgroupSpec("web/a")], {"web/a": again}, layout) == []
    gone = plan_cgroups([CgroupSpec("web/a", "absent")], {"web/a": again}, layout)
    assert str(leaf) in [o.path for o in gone[0].ops if o.kind == "rmdir"]

"""nslab_cgroup_read (and the views of nslab_cgroup_state): a cgroup read from the captured
v1 tree and the constructed v2 tree, its limits and usage, and whose it is."""

import os

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_plan import (
    CgroupSpec, plan_cgroups)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_read import (
    read_cgroup, recorded_owners)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import (
    cgroup_view, read_limits, read_usage)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import MAX
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import OwnershipError


def test_read_captured_v1_cgroup(cgroup_v1, cgroup_record):
    layout, root = cgroup_v1
    state = read_cgroup(layout, "demo", "x", cgroup_record("x"))
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


def test_read_constructed_v2_cgroup(cgroup_v2, cgroup_record):
    layout, root = cgroup_v2
    state = read_cgroup(layout, "demo", "x", cgroup_record("x"))
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


@pytest.mark.parametrize("tree", ["cgroup_v1", "cgroup_v2"])
def test_a_plan_reads_the_limits_alone_and_plans_the_same(tree, cgroup_record, request):
    """files="limits" (a caller without views: nslab_nodes' brief) reads every file a limit
    is read from and no usage file; "none" reads no file; without children no child is
    listed. Each plans what the full read plans (issue #12)."""
    layout, root = request.getfixturevalue(tree)
    for hierarchy in layout.hierarchies:
        os.makedirs(hierarchy.path("nslab/demo/x/child"), exist_ok=True)
    record = cgroup_record("x")
    full = read_cgroup(layout, "demo", "x", record)
    limits = read_cgroup(layout, "demo", "x", record, files="limits", children=False)
    bare = read_cgroup(layout, "demo", "x", record, files="none")
    assert read_limits(layout, limits) == read_limits(layout, full)
    assert set(read_usage(layout, limits).values()) == {None}
    assert set(read_usage(layout, full).values()) != {None}
    assert (full.children, limits.children, bare.children) == (["child"], [], ["child"])
    assert limits.procs == full.procs == bare.procs
    assert all(leaf[-1].files == {} for leaf in bare.chains.values())
    spec = CgroupSpec("x", "present", {"memory": 1 << 27, "pids": 7, "cpus": 0.25})
    assert [(a.summary, a.ops) for a in plan_cgroups([spec], {"x": limits}, layout)] == \
        [(a.summary, a.ops) for a in plan_cgroups([spec], {"x": full}, layout)]


def test_v1_unlimited_values_read_as_max(cgroup_v1, cgroup_record):
    layout, root = cgroup_v1
    leaf = root / "memory/nslab/demo/x"
    (leaf / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (leaf / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "cpu/nslab/demo/x/cpu.cfs_quota_us").write_text("-1\n")
    limits = read_limits(layout, read_cgroup(layout, "demo", "x", cgroup_record("x")))
    assert (limits["memory"], limits["swap"], limits["cpus"]) == (MAX, MAX, MAX)


def test_unrecorded_cgroup_is_foreign(cgroup_v1):
    layout, _root = cgroup_v1
    state = read_cgroup(layout, "demo", "x", {"cgroups": {}, "_path": "/run/x.json"})
    assert state.foreign == "not nslab's (no record in /run/x.json)"
    for wanted in ("present", "absent"):
        with pytest.raises(OwnershipError, match="cgroup 'nslab/demo/x' exists and is not"):
            plan_cgroups([CgroupSpec("x", wanted)], {"x": state}, layout)


def test_recorded_inode_must_match(cgroup_v1):
    layout, root = cgroup_v1
    memory = str(root / "memory/nslab/demo/x")
    record = {"cgroups": {"x": {"inodes": {memory: os.stat(memory).st_ino + 1}}}}
    state = read_cgroup(layout, "demo", "x", record)
    assert "a different cgroup than the one nslab made" in state.foreign


def test_a_parent_nslab_made_is_cgroup_record(cgroup_v1, cgroup_record):
    layout, _root = cgroup_v1
    parent = read_cgroup(layout, "demo", "web", cgroup_record("web/a"))
    assert parent.owned and not parent.recorded and parent.foreign is None


def test_shared_ancestors_are_read_once_and_read_the_same(cgroup_v2, cgroup_record, monkeypatch):
    """The directories above many cgroups are read once per moment (issue #12), and a cgroup
    read with the shared cache is the cgroup read without it."""
    from ansible_collections.nslab.lab.plugins.module_utils import nslab_cgroup_read
    layout, root = cgroup_v2
    (root / "nslab/demo/y").mkdir()
    record = cgroup_record("x", "y")
    alone = dict((n, read_cgroup(layout, "demo", n, record)) for n in ("x", "y"))
    reads = []
    real = nslab_cgroup_read.read_dir

    def counting(hierarchy, path, leaf, *args):
        reads.append((path, leaf))
        return real(hierarchy, path, leaf, *args)

    monkeypatch.setattr(nslab_cgroup_read, "read_dir", counting)
    ancestors = {}
    shared = dict((n, read_cgroup(layout, "demo", n, record, ancestors)) for n in ("x", "y"))
    assert shared == alone
    above = [path for path, leaf in reads if not leaf]
    assert sorted(above) == sorted(set(above))            # each ancestor once
    assert len([1 for _p, leaf in reads if leaf]) == 2    # each cgroup's own directory
    assert str(root / "nslab/demo") in above


def test_recorded_owners_are_the_recorded_cgroups_and_every_cgroup_above_one():
    record = {"cgroups": {"web/a": {}, "web/b/c": {}, "db": {}}}
    assert recorded_owners(record) == {"web/a", "web", "web/b/c", "web/b", "db"}
    assert recorded_owners({}) == set()
    # "we" is a prefix of "web" as a string, not a cgroup above it
    assert "we" not in recorded_owners({"cgroups": {"web/a": {}}})

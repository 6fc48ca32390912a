"""nslab_cgroup_state: one cgroup spread over several hierarchies read as one state, and its
limits and views, from constructed directory states (no file system)."""

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import Hierarchy, Layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import (
    CgroupState, DirState, cgroup_view, controller_files, limits_view, read_limits)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import MAX

MEMORY = Hierarchy(1, "/c/memory", ("memory",))
PIDS = Hierarchy(1, "/c/pids", ("pids",))
LAYOUT = Layout([MEMORY, PIDS], "v1")


def state_of(memory_leaf, pids_leaf):
    return CgroupState("x", "nslab/demo/x", {
        "/c/memory": [DirState("/c/memory", True), memory_leaf],
        "/c/pids": [DirState("/c/pids", True), pids_leaf]})


def test_a_cgroup_over_two_hierarchies_is_one_state():
    state = state_of(
        DirState("/c/memory/nslab/demo/x", True,
                 {"memory.limit_in_bytes": "268435456", "memory.usage_in_bytes": "4096",
                  "pids.max": "3"}, 11, [5], ["a"]),
        DirState("/c/pids/nslab/demo/x", True, {"pids.max": "max", "pids.current": "2"},
                 12, [5, 7], ["b"]))
    assert state.exists and state.procs == [5, 7] and state.children == ["a", "b"]
    assert state.leaf(PIDS).inode == 12
    # each controller's files come from its own hierarchy only (no pids.max from memory)
    assert controller_files(LAYOUT, state) == {
        "memory": {"memory.limit_in_bytes": "268435456", "memory.usage_in_bytes": "4096"},
        "pids": {"pids.max": "max", "pids.current": "2"}}
    # swap needs memory.memsw.limit_in_bytes, and no cpu controller is mounted: not read
    assert read_limits(LAYOUT, state) == {"memory": 268435456, "pids": MAX}
    view = cgroup_view(LAYOUT, state)
    assert view["paths"] == {"memory": "/c/memory/nslab/demo/x", "pids": "/c/pids/nslab/demo/x"}
    assert view["usage"]["memory_bytes"] == 4096 and view["usage"]["pids"] == 2


def test_a_cgroup_in_no_hierarchy_is_absent():
    state = state_of(DirState("/c/memory/nslab/demo/x", False),
                     DirState("/c/pids/nslab/demo/x", False))
    assert not state.exists and state.procs == []
    assert cgroup_view(LAYOUT, state) == {"state": "absent", "path": "nslab/demo/x"}


def test_limits_view_lists_io_by_device():
    eight = {"read_bps": 5, "write_bps": MAX, "read_iops": MAX, "write_iops": 9}
    assert limits_view({"pids": 3, "io": {"8:16": eight, "8:0": eight}}) == {
        "pids": 3, "io": [dict(device="8:0", **eight), dict(device="8:16", **eight)]}

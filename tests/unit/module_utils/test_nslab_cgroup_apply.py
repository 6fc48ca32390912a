"""nslab_cgroup_apply: running planned steps over a constructed tree; a failure half way
undoes this run's steps through the undo log and reports what was done and undone."""

import os

import pytest

from ansible_collections.nslab.lab.plugins.module_utils import nslab_cgroup_apply
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_apply import CgroupApplier
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import Layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_plan import (
    LIMIT, CgroupAction, CgroupSpec, Op, plan_cgroups, settle)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_read import (
    read_cgroup, reread_written)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import (
    cgroup_view, read_limits)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_store import CgroupStore
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ApplyError


def test_apply_rolls_back_newest_first_and_keeps_the_record_true(cgroup_v2, tmp_path):
    layout, root = cgroup_v2
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


def test_apply_reports_an_undo_that_fails_and_still_undoes_the_rest(cgroup_v2, tmp_path,
                                                                    monkeypatch):
    layout, root = cgroup_v2
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


def test_v1_devices_directory_is_made_recorded_and_removed(cgroup_v1, tmp_path):
    """The devices hierarchy holds every container's cgroup (nslab_devices sets its rules):
    made with the others, its inode recorded, removed with the others."""
    full, root = cgroup_v1
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


def test_every_step_the_planner_emits_has_an_entry_in_the_table(cgroup_v1, cgroup_record,
                                                                tmp_path):
    layout, _root = cgroup_v1
    record = cgroup_record("x")
    states = dict((n, read_cgroup(layout, "demo", n, record)) for n in ("x", "web/a"))
    plans = plan_cgroups([CgroupSpec("x", "absent")], states, layout, kill=True) + \
        plan_cgroups([CgroupSpec("web/a", limits={"pids": 10}, procs=[1])], states, layout)
    kinds = set(op.kind for action in plans for op in action.ops)
    assert kinds == {"kill", "rmdir", "rmdir_empty", "disown", "mkdir", "write", "own",
                     "attach"}
    applier = CgroupApplier(CgroupStore("demo", root=str(tmp_path / "state")), record, layout)
    assert kinds <= set(applier.steps)


def test_reread_after_apply_reads_the_written_leaves_only(cgroup_v1, cgroup_record, tmp_path):
    """Without views an apply is settled from the limit files of the directories it wrote;
    the kernel's own value (here a rounding) is what is read back and remembered."""
    layout, root = cgroup_v1
    store = CgroupStore("demo", root=str(tmp_path / "state"))
    record = cgroup_record("x")
    before = read_cgroup(layout, "demo", "x", record, files="limits", children=False)
    spec = CgroupSpec("x", limits={"memory": 1000000, "pids": 5})
    actions = plan_cgroups([spec], {"x": before}, layout)
    CgroupApplier(store, record, layout).apply(actions)
    (root / "memory/nslab/demo/x/memory.limit_in_bytes").write_text("999424\n")   # the kernel's
    written = [op.path for a in actions for op in a.ops if op.kind == "write" and op.key]
    after = reread_written(layout, before, written)
    full = read_cgroup(layout, "demo", "x", record, files="limits", children=False)
    assert read_limits(layout, after) == read_limits(layout, full)
    assert read_limits(layout, after)["memory"] == 999424
    assert read_limits(layout, after)["pids"] == 5
    for hierarchy in layout.hierarchies:
        wrote = hierarchy.controllers[0] in ("memory", "pids")
        assert (after.leaf(hierarchy) is before.leaf(hierarchy)) != wrote, hierarchy.mount
    settle(record, [spec], layout, {"x": after})
    assert record["cgroups"]["x"]["settled"] == {"memory": {"asked": 1000000,
                                                            "kernel": 999424}}


def test_a_write_to_a_missing_interface_file_fails_and_creates_nothing(cgroup_v1, tmp_path):
    layout, root = cgroup_v1
    store = CgroupStore("demo", root=str(tmp_path / "state"))
    missing = root / "memory/nslab/demo/x/memory.high"
    action = CgroupAction("set memory_high", LIMIT, "x",
                          [Op("write", str(missing), "1000", None, "memory_high")])
    with pytest.raises(ApplyError, match="memory_high: 1000 cannot be enforced on this host: "
                       "%s does not exist" % missing):
        CgroupApplier(store, store.load(), layout).apply([action])
    assert not missing.exists()

"""Recovery without state files (nslab_adopt): which labelled process is a container's init,
and which cgroups a lab adopts when its record is lost. Over constructed /proc and cgroup
trees; the real kernel is in tests/integration/test_lost_state.py."""

import os

from ansible_collections.nslab.lab.plugins.module_utils.nslab_adopt import (
    FoundInit, adopt_cgroups, cgroup_path_in, find_unrecorded, labelled_pids, parse_proc_cgroup,
    unrecorded_summaries, verify_init)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import Hierarchy, Layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_plan import CgroupSpec
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_store import CgroupStore

PROC_CGROUP_V1 = """9:name=systemd:/
8:pids:/nslab/demo/a
7:blkio:/nslab/demo/a
4:memory:/nslab/demo/a
2:cpu,cpuacct:/nslab/demo/a
0::/
"""


def layout_over(tmp_path):
    return Layout([Hierarchy(1, str(tmp_path / "memory"), ("memory",)),
                   Hierarchy(1, str(tmp_path / "cpu,cpuacct"), ("cpu", "cpuacct")),
                   Hierarchy(1, str(tmp_path / "blkio"), ("io",))], "v1")


def fake_proc(tmp_path, pid, argv, nspid, cgroup, own_nspid="100"):
    proc = tmp_path / "proc"
    for entry, status in ((str(pid), "NSpid:\t%s\nPPid:\t1\n" % nspid),
                          ("self", "NSpid:\t%s\n" % own_nspid)):
        (proc / entry).mkdir(parents=True, exist_ok=True)
        (proc / entry / "status").write_text(status)
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / str(pid) / "cgroup").write_text(cgroup)
    (proc / str(pid) / "stat").write_text("%d (python3) S %s" % (pid, " ".join(["0"] * 50)))
    return str(proc)


def test_proc_cgroup_lines_map_to_nslab_hierarchies():
    entries = parse_proc_cgroup(PROC_CGROUP_V1)
    assert cgroup_path_in(entries, Hierarchy(1, "/m", ("memory",))) == "/nslab/demo/a"
    assert cgroup_path_in(entries, Hierarchy(1, "/c", ("cpu", "cpuacct"))) == "/nslab/demo/a"
    assert cgroup_path_in(entries, Hierarchy(1, "/b", ("io",))) == "/nslab/demo/a"
    assert cgroup_path_in(entries, Hierarchy(2, "/u", ("memory",))) == "/"
    assert cgroup_path_in(entries, Hierarchy(1, "/s", ("cpuset",))) is None


def test_only_an_init_in_the_nodes_cgroups_is_taken(tmp_path):
    layout = layout_over(tmp_path)
    for hierarchy in layout.hierarchies:
        os.makedirs(hierarchy.path("nslab/demo/a"))
    label = ["python3", "-I", "-S", "-", "nslab:demo:a"]
    proc = fake_proc(tmp_path, 42, label, "42\t1", PROC_CGROUP_V1)
    assert labelled_pids(["nslab:demo:a", "nslab:demo:b"], proc) == {"nslab:demo:a": [42]}
    assert labelled_pids(["nslab:demo:"], proc) == {}        # whole arguments only
    found = verify_init(42, "demo", None, "a", layout, proc)
    assert isinstance(found, FoundInit)
    assert found.evidence == "cgroup nslab/demo/a"

    # the same argv from a host user: its cgroups are the user's, not the node's
    user = PROC_CGROUP_V1.replace("/nslab/demo/a", "/user.slice")
    proc = fake_proc(tmp_path / "u", 43, label, "43\t1", user)
    assert verify_init(43, "demo", None, "a", layout, proc) == (
        "not in cgroup /nslab/demo/a of %s" % layout.hierarchies[0].mount)
    # pid 1 of a pid namespace made inside a container (two levels below nslab's)
    proc = fake_proc(tmp_path / "n", 44, label, "44\t7\t1", PROC_CGROUP_V1)
    assert verify_init(44, "demo", None, "a", layout, proc) == (
        "not pid 1 of a pid namespace right below nslab's")
    # not an init at all
    proc = fake_proc(tmp_path / "p", 45, label, "45", PROC_CGROUP_V1)
    assert "not pid 1" in verify_init(45, "demo", None, "a", layout, proc)
    # nothing only root can arrange to check: never taken
    proc = fake_proc(tmp_path / "q", 46, label, "46\t1", PROC_CGROUP_V1)
    assert verify_init(46, "demo", None, None, layout, proc) == (
        "nothing only root can arrange proves it is nslab's")


def test_cgroups_are_adopted_only_when_the_record_file_is_missing(tmp_path):
    layout = layout_over(tmp_path)
    for hierarchy in layout.hierarchies:
        os.makedirs(hierarchy.path("nslab/demo/a"))
    store = CgroupStore("demo", root=str(tmp_path / "state"))
    specs = [CgroupSpec("a"), CgroupSpec("b"), CgroupSpec("gone", state="absent")]
    os.makedirs(layout.hierarchies[0].path("nslab/demo/gone"))
    record = store.load()
    actions = adopt_cgroups(store, record, layout, specs)
    assert [a.summary for a in actions] == [
        "adopt cgroup 'nslab/demo/a', found under nslab/demo/ without the lab's record"]
    assert sorted(record["cgroups"]) == ["a", "gone"]      # gone: recorded, to be deleted
    assert record["cgroups"]["a"]["inodes"] == dict(
        (h.path("nslab/demo/a"), os.stat(h.path("nslab/demo/a")).st_ino)
        for h in layout.hierarchies)

    # a record that exists rules: nothing is adopted, the plan refuses what it lacks
    store.save({"lab": "demo", "cgroups": {"other": {"inodes": {}, "settled": {}}}})
    record = store.load()
    assert adopt_cgroups(store, record, layout, specs) == []
    assert sorted(record["cgroups"]) == ["other"]


def test_only_containers_without_a_record_are_looked_for(tmp_path):
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_container_store import (
        ContainerState)
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_containers import (
        ContainerSpec)
    layout = layout_over(tmp_path)
    for hierarchy in layout.hierarchies:
        os.makedirs(hierarchy.path("nslab/demo/a"))
    proc = fake_proc(tmp_path, 42, ["python3", "nslab:demo:a"], "42\t1", PROC_CGROUP_V1)
    specs = [ContainerSpec("a", cgroup="a"), ContainerSpec("b", cgroup="b")]
    lost = {"a": ContainerState("a", None), "b": ContainerState("b", None)}
    found = find_unrecorded("demo", specs, lost, layout, proc)
    assert [(n, [i.pid for i in inits]) for n, inits in found.items()] == [("a", [42])]
    assert unrecorded_summaries(found) == [
        "stop init 42 of container 'a', found running without its record "
        "(cgroup nslab/demo/a)"]
    recorded = dict(lost, a=ContainerState("a", {"pid": 42}))
    assert find_unrecorded("demo", specs, recorded, layout, proc) == {}

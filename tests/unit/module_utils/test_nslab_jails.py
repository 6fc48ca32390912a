"""Jail planning (pure) and the applier's rollback (in tmp_path, no mounts, no root)."""

import os

import pytest

from ansible_collections.nslab.lab.plugins.module_utils import nslab_jails
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    ApplyError, JailError, OwnershipError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jail_read import (
    JailState, JailStore, LabState, missing_mounts, overlay_lowerdirs)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jails import (
    JailApplier, JailSpec, plan_jails)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import (
    MountEntry, parse_mountinfo)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_sources import Source

STORE = JailStore("demo", root="/d")


def busybox(digest="aaa"):
    return Source("busybox", {"path": "/usr/bin/busybox"}, {"sha256": digest})


def spec(name, state="present", source=None, overlay=True):
    source = source or busybox()
    return JailSpec(name, state, source, overlay, None, source.base_id, STORE.rootfs(source))


def mounted(name, lowerdir, options="rw,nosuid,nodev", upperdir=None):
    root = STORE.jail_path(name, "root")
    upperdir = upperdir or STORE.layer(name, "upper")
    return [MountEntry(1, 0, "/", root, options, [], "overlay", "overlay",
                       "rw,lowerdir=%s,upperdir=%s,workdir=w" % (lowerdir, upperdir)),
            MountEntry(2, 1, "/", root + "/dev", "rw", [], "tmpfs", "tmpfs", "rw"),
            MountEntry(3, 2, "/", root + "/dev/pts", "rw", [], "devpts", "devpts", "rw")]


def lab(jails=(), bases=None, lowerdirs=(), requested=(), layout=nslab_jails.LAYOUT,
        modes=None):
    """LabState with ``jails`` = [(name, base_id, overlay, mounts)] on disk."""
    states = dict((n, JailState(n, dict({"lab": "demo", "name": n, "base": b, "overlay": o},
                                        **({"layout": layout} if layout else {})), m))
                  for n, b, o, m in jails)
    for name in requested:
        states.setdefault(name, JailState(name, None))
    return LabState(states, dict((n, s.record) for n, s in states.items() if s.exists),
                    bases or {}, list(lowerdirs), modes or {})


def base_record(source):
    return dict(source.stamp(), rootfs=STORE.rootfs(source))


def verbs(actions):
    return [(a.verb, a.name or a.base_id) for a in actions]


def test_two_new_jails_of_one_source_build_one_base():
    specs = [spec("a"), spec("b")]
    actions = plan_jails(specs, lab(requested=["a", "b"]), STORE)
    base = busybox().base_id
    assert verbs(actions) == [("build", base), ("create", "a"), ("create", "b")]
    assert actions[1].summary == "create jail 'a' as an overlay of base %s and mount it" % base
    assert actions[1].lowerdir == "/d/demo/bases/%s/rootfs" % base


def test_a_mounted_jail_on_its_base_needs_nothing():
    source = busybox()
    state = lab([("a", source.base_id, True, mounted("a", STORE.rootfs(source)))],
                {source.base_id: base_record(source)})
    assert plan_jails([spec("a")], state, STORE) == []


def test_missing_mounts_and_a_foreign_overlay_at_the_root():
    lowerdir = STORE.rootfs(busybox())
    full = mounted("a", lowerdir)
    assert missing_mounts(STORE, "a", True, lowerdir, full) == []
    assert missing_mounts(STORE, "a", True, lowerdir, full[:1]) == ["/dev", "/dev/pts"]
    assert missing_mounts(STORE, "a", True, lowerdir, []) == ["overlay", "/dev", "/dev/pts"]
    other = mounted("a", "/somewhere/else")
    assert missing_mounts(STORE, "a", True, lowerdir, other)[0] == "overlay"


def test_a_root_mount_without_nosuid_nodev_or_of_the_old_layout_is_remounted():
    lowerdir = STORE.rootfs(busybox())
    for mounts in (mounted("a", lowerdir, options="rw,relatime"),
                   mounted("a", lowerdir, options="rw,nosuid"),
                   mounted("a", lowerdir, upperdir=STORE.jail_path("a", "upper"))):
        assert missing_mounts(STORE, "a", True, lowerdir, mounts) == ["overlay", "/dev",
                                                                      "/dev/pts"]


def test_a_copy_jail_needs_its_copy_bound_at_its_root_nosuid_nodev():
    lowerdir = STORE.rootfs(busybox())
    root = STORE.jail_path("c", "root")
    dev = mounted("c", lowerdir)[1:]

    def bind(source, options="rw,nosuid,nodev,relatime"):
        return MountEntry(1, 0, source, root, options, [], "ext4", "/dev/vda", "rw")
    copy = STORE.layer("c", "copy")
    assert missing_mounts(STORE, "c", False, lowerdir, [bind(copy)] + dev) == []
    assert missing_mounts(STORE, "c", False, lowerdir, dev) == ["root", "/dev", "/dev/pts"]
    assert missing_mounts(STORE, "c", False, lowerdir, [bind(copy, "rw")] + dev)[0] == "root"
    assert missing_mounts(STORE, "c", False, lowerdir, [bind("/elsewhere")] + dev)[0] == "root"


def test_a_jail_of_the_old_layout_is_migrated_in_place_not_rebuilt():
    source = busybox()
    state = lab([("a", source.base_id, True, mounted("a", STORE.rootfs(source))),
                 ("c", source.base_id, False, [])], {source.base_id: base_record(source)},
                layout=None)
    actions = plan_jails([spec("a"), spec("c", "unmounted", overlay=False)], state, STORE)
    assert verbs(actions) == [("migrate", "a"), ("migrate", "c")]
    assert actions[0].summary == ("move the writable layer of jail 'a' below its private "
                                  "layer/ directory (0700) and remount it nosuid,nodev")
    assert actions[0].mount is True and actions[1].mount is False


def test_nslab_directories_with_wider_modes_are_restricted():
    source = busybox()
    modes = {"/d": 0o755, "/d/demo": 0o711, "/d/demo/bases": 0o755,
             "/var/cache/nslab/debootstrap": 0o755}
    state = lab([("a", source.base_id, True, mounted("a", STORE.rootfs(source)))],
                {source.base_id: base_record(source)}, modes=modes)
    actions = plan_jails([spec("a")], state, STORE)
    assert [a.summary for a in actions] == [
        "restrict /d to mode 0711 (was 0755)", "restrict /d/demo/bases to mode 0700 (was 0755)",
        "restrict /var/cache/nslab/debootstrap to mode 0700 (was 0755)"]


def test_a_changed_source_rebuilds_the_jail_and_releases_the_old_base():
    old, new = busybox("old"), busybox("new")
    state = lab([("a", old.base_id, True, mounted("a", STORE.rootfs(old)))],
                {old.base_id: base_record(old)})
    actions = plan_jails([spec("a", source=new)], state, STORE)
    assert verbs(actions) == [("build", new.base_id), ("remove", "a"), ("create", "a"),
                              ("release", old.base_id)]
    assert "its writable layer is discarded" in actions[1].summary


def test_a_base_another_jail_uses_or_a_foreign_overlay_stands_on_is_kept():
    source = busybox()
    state = lab([("a", source.base_id, True, []), ("b", source.base_id, True, [])],
                {source.base_id: base_record(source)})
    assert verbs(plan_jails([spec("a", "absent")], state, STORE)) == [("remove", "a")]
    state = lab([("a", source.base_id, True, [])], {source.base_id: base_record(source)},
                lowerdirs=[STORE.rootfs(source)])
    assert verbs(plan_jails([spec("a", "absent")], state, STORE)) == [("remove", "a")]


def test_unmounted_and_absent():
    source = busybox()
    state = lab([("a", source.base_id, True, mounted("a", STORE.rootfs(source)))],
                {source.base_id: base_record(source)})
    unmount = plan_jails([spec("a", "unmounted")], state, STORE)
    assert [a.summary for a in unmount] == ["unmount jail 'a' (3 mounts)"]
    gone = plan_jails([spec("a", "absent")], state, STORE)
    assert verbs(gone) == [("remove", "a"), ("release", source.base_id)]
    assert plan_jails([spec("zz", "absent")], lab(requested=["zz"]), STORE) == []


def test_a_base_directory_without_a_record_is_not_nslabs():
    with pytest.raises(OwnershipError, match="base directory '/d/demo/bases/busybox-"):
        plan_jails([spec("a")], lab(requested=["a"], bases={busybox().base_id: None}), STORE)


def test_a_jail_directory_without_a_record_is_not_nslabs(tmp_path):
    store = JailStore("demo", root=str(tmp_path))
    os.makedirs(store.jail_dir("a"))
    with pytest.raises(OwnershipError, match="jail directory '%s' exists and is not nslab's"
                       % store.jail_dir("a")):
        store.read(["a"])


def test_mountinfo_keeps_overlay_super_options():
    line = ("45 27 0:39 / /var/lib/nslab/x/jails/a/root rw,relatime - overlay overlay "
            "rw,lowerdir=/b/rootfs,upperdir=/u,workdir=/w,uuid=on")
    entry = parse_mountinfo(line)[0]
    assert overlay_lowerdirs(entry) == ["/b/rootfs"]


class StubBuilder:
    def build(self, source, dest):
        with open(os.path.join(dest, "marker"), "w") as handle:
            handle.write(source.kind)


def test_a_failed_mount_rolls_back_the_jail_and_the_base_built_in_this_run(tmp_path,
                                                                          monkeypatch):
    store = JailStore("demo", root=str(tmp_path))
    source = busybox()
    jail = JailSpec("a", "present", source, True, None, source.base_id, store.rootfs(source))
    actions = plan_jails([jail], lab(requested=["a"]), store)

    def failing_mount(*args, **kwargs):
        raise OSError(22, "mount: Invalid argument (injected)")
    monkeypatch.setattr(nslab_jails, "mount_jail", failing_mount)
    with pytest.raises(ApplyError) as failure:
        JailApplier(store, StubBuilder(), run=None).apply(actions)
    assert "rolled back 2 step(s)" in str(failure.value)
    assert failure.value.rolled_back == [a.summary for a in reversed(actions)]
    assert list(tmp_path.iterdir()) == []   # no jail, base, temp dir or lab dir; the shared
    #                                          root stays, for nslab_shared's tidy


def test_a_failed_build_leaves_no_temporary_directory(tmp_path):
    store = JailStore("demo", root=str(tmp_path))

    class Failing:
        def build(self, source, dest):
            open(os.path.join(dest, "half"), "w").close()
            raise OSError(28, "No space left on device (injected)")
    actions = plan_jails([JailSpec("a", "present", busybox(), True, None, busybox().base_id,
                                   store.rootfs(busybox()))], lab(requested=["a"]), store)
    with pytest.raises(ApplyError, match="No space left"):
        JailApplier(store, Failing(), run=None).apply(actions)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value,expected", [
    ("512M", 512 << 20), ("2G", 2 << 30), ("2GiB", 2 << 30), ("16m", 16 << 20),
    ("16777216", 16 << 20), ("0", None), (0, None)])
def test_parse_disk_sizes(value, expected):
    assert nslab_jails.parse_disk("disk", value) == (expected, None)


@pytest.mark.parametrize("value", ["15M", "1K", "-5M", "lots", "1.5G", "", "5X"])
def test_parse_disk_refuses_what_is_not_a_size_of_16m(value):
    size, problem = nslab_jails.parse_disk("jails[3].", value)
    assert size is None and problem.startswith("jails[3].disk: %r is not a size" % value)


def test_a_jail_with_a_disk_needs_its_layer_mounted_first():
    lowerdir = STORE.rootfs(busybox())
    layer = MountEntry(9, 0, "/", STORE.layer("a"), "rw,nosuid,nodev", [], "ext4",
                       "/dev/loop0", "rw")
    full = [layer] + mounted("a", lowerdir)
    assert missing_mounts(STORE, "a", True, lowerdir, full, 32 << 20) == []
    assert missing_mounts(STORE, "a", True, lowerdir, full[1:], 32 << 20) == [
        "layer", "overlay", "/dev", "/dev/pts"]


def test_a_changed_disk_rebuilds_the_jail():
    source = busybox()
    state = lab([("a", source.base_id, True, [])], {source.base_id: base_record(source)})
    jail = spec("a")
    jail.disk = 64 << 20
    actions = plan_jails([jail], state, STORE)
    assert verbs(actions) == [("remove", "a"), ("create", "a")]
    assert actions[1].disk == 64 << 20
    assert actions[0].summary == (
        "remove jail 'a' to rebuild it as an overlay of base %s with a 64 MiB disk (was an "
        "overlay of %s); its writable layer is discarded" % (source.base_id, source.base_id))


def test_every_verb_a_plan_makes_has_a_handler():
    applier = JailApplier(JailStore("demo"), StubBuilder(), run=None)
    # The verbs JailAction documents; a new verb must be added to the table.
    assert set(applier.handlers) == {"restrict", "build", "remove", "unmount", "create",
                                     "migrate", "mount", "release"}


def test_done_names_the_actions_finished_before_the_failure(tmp_path, monkeypatch):
    store = JailStore("demo", root=str(tmp_path))
    source = busybox()
    jail = JailSpec("a", "present", source, True, None, source.base_id, store.rootfs(source))
    actions = plan_jails([jail], lab(requested=["a"]), store)

    def failing_mount(*args, **kwargs):
        raise OSError(22, "mount: Invalid argument (injected)")
    monkeypatch.setattr(nslab_jails, "mount_jail", failing_mount)
    with pytest.raises(ApplyError) as failure:
        JailApplier(store, StubBuilder(), run=None).apply(actions)
    # The jail's directory was made before its mount failed: done, and undone.
    assert failure.value.done == [a.summary for a in actions]
    assert failure.value.details()["rollback_errors"] == []


def mount(point, mount_id=1):
    return MountEntry(mount_id, 1, "/", point, "rw", [], "overlay", "overlay")


def test_mounts_under_many_paths_in_one_pass_in_mount_order():
    entries = [mount("/", 1), mount("/var/lib/nslab/x/jails/a/root", 2),
               mount("/var/lib/nslab/x/jails/ab/root", 3),
               mount("/var/lib/nslab/x/jails/b", 4), mount("/var/lib/nslab/x/jails/a/root/dev", 5)]
    found = nslab_jails.mounts_under(entries, ["/var/lib/nslab/x/jails/a",
                                               "/var/lib/nslab/x/jails/b"])
    assert [(p, e.mount_id) for p, e in found] == [
        ("/var/lib/nslab/x/jails/a", 2), ("/var/lib/nslab/x/jails/b", 4),
        ("/var/lib/nslab/x/jails/a", 5)]     # 'ab' is not below 'a'


def test_many_trees_go_with_two_reads_of_the_mount_table(tmp_path, monkeypatch):
    """A lab's jails are removed together: the mount table is read twice in all, not twice
    per jail (issue #12), and missing paths are skipped."""
    reads = []
    monkeypatch.setattr(nslab_jails, "read_mountinfo",
                        lambda containing=None: reads.append(containing) or [mount("/")])
    trees = []
    for index in range(300):                   # more than one rm chunk
        tree = tmp_path / ("j%d" % index) / "layer"
        tree.mkdir(parents=True)
        (tree / "file").write_text("x")
        trees.append(str(tmp_path / ("j%d" % index)))
    nslab_jails.remove_trees(trees + [str(tmp_path / "missing")])
    assert not any(os.path.lexists(t) for t in trees)
    assert reads == [None, None]


def test_a_tree_still_mounted_is_not_removed(tmp_path, monkeypatch):
    tree = tmp_path / "jail"
    (tree / "root").mkdir(parents=True)
    monkeypatch.setattr(nslab_jails, "read_mountinfo",
                        lambda containing=None: [mount(str(tree / "root"))])
    monkeypatch.setattr(nslab_jails, "_unmount", lambda entries: None)   # EBUSY, say
    with pytest.raises(JailError, match="still mounted"):
        nslab_jails.remove_trees([str(tree), str(tmp_path / "other")])
    assert tree.exists()

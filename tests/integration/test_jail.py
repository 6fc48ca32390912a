"""nslab_jail against the real kernel: every offline source built for real, a chrooted
command proving the jail sees only its own files, 50 overlay jails in one invocation,
reruns, changed sources, bad input, rollback, and debootstrap once with its cache."""

import glob
import json
import os
import shutil
import stat
import subprocess
import tarfile
import time
import urllib.request

import pytest

from helpers.kernel import mounts_under, sh

BUSYBOX = shutil.which("busybox")
CACHE_DIR = "/var/cache/nslab"
DEV_NAMES = {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd",
             "stdin", "stdout", "stderr"}
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="no busybox on PATH (apt-get install "
                                   "busybox-static)")


def listing(root):
    """Every path below ``root`` as the jail would name it, not following symlinks."""
    found = set()
    for directory, dirs, names in os.walk(root):
        for name in dirs + names:
            found.add(os.path.join(directory, name)[len(root):])
    return found


def lab_actions(result):
    """The run's actions but the restriction of shared directories (/var/lib/nslab, the
    cache), which another lab or module may have made with wider modes just before."""
    return [a for a in result["actions"] if not a.startswith("restrict ")
            or "/bases " in a or "/jails " in a]


def mount_options(point):
    with open("/proc/self/mountinfo") as handle:
        return next(line.split()[5].split(",") for line in handle
                    if line.split()[4] == point)


def seen_from_inside(result):
    out = result["jails"][0]["command_result"]["stdout"]
    return set(line for line in out.splitlines() if line not in ("/", ""))


def busybox_tree(path, marker):
    """A tiny root filesystem: busybox, an sh link, and /etc/marker."""
    os.makedirs(os.path.join(path, "bin"))
    os.makedirs(os.path.join(path, "etc"))
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    for applet in ("sh", "cat", "ls", "find"):
        os.symlink("busybox", os.path.join(path, "bin", applet))
    with open(os.path.join(path, "etc", "marker"), "w") as handle:
        handle.write(marker)


def write_tarball(path, tree):
    with tarfile.open(path, "w:gz") as archive:
        archive.add(tree, arcname=".")


@needs_busybox
def test_check_mode_creates_nothing(lab, module):
    result = module("nslab_jail", dict(lab=lab.name, name="a"), check=True, diff=True)
    assert result["_status"] == "ok" and result["changed"] is True
    assert [a.split(" ", 2)[:2] for a in lab_actions(result)] == [["build", "base"],
                                                                  ["create", "jail"]]
    assert result["diff"]["before"] == {"a": {"state": "absent"}}
    assert result["diff"]["after"]["a"]["mounted"] is True
    assert not os.path.exists(lab.data_dir)


@needs_busybox
def test_busybox_jail_sees_only_its_own_files(lab, module):
    result = module("nslab_jail", dict(lab=lab.name, name="a", command=["find", "/"]),
                    diff=True)
    assert result["_status"] == "ok", result.get("msg")
    jail = result["jails"][0]
    root = jail["root"]
    assert jail["state"] == "present" and jail["mounted"] and jail["overlay"]
    assert root == os.path.join(lab.data_dir, "jails", "a", "root")
    assert jail["stamp"]["source"] == "busybox" and jail["stamp"]["fingerprint"]["sha256"]
    # what the chrooted find saw is exactly the tree below the jail's root on the host
    assert seen_from_inside(result) == listing(root)
    assert "/work" not in seen_from_inside(result)
    assert jail["command_result"]["changed"] is False
    # overlay over the shared base, a tmpfs /dev with only the listed nodes, devpts
    assert mounts_under(os.path.dirname(root)) == [root, root + "/dev", root + "/dev/pts"]
    assert set(os.listdir(root + "/dev")) == DEV_NAMES
    null = os.stat(root + "/dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
    assert os.listdir(root + "/proc") == [] and os.listdir(root + "/sys") == []

    again = module("nslab_jail", dict(lab=lab.name, name="a"))
    assert again["changed"] is False and again["actions"] == []


@needs_busybox
def test_host_jail_has_its_binaries_libraries_and_loader_only(lab, module):
    args = dict(lab=lab.name, name="h", source="host", binaries=["sh", "ls", "cat"],
                command=["ls", "-aR", "/"])
    result = module("nslab_jail", args)
    assert result["_status"] == "ok", result.get("msg")
    root = result["jails"][0]["root"]
    inside = result["jails"][0]["command_result"]["stdout"]
    outside = sh("ls", "-aR", root).stdout.replace(root + "/", "/").replace(root + ":", "/:")
    assert inside == outside          # the same ls, chrooted or not, lists the same files
    assert sorted(os.listdir(root + "/usr/bin")) == ["cat", "ls", "sh"]
    assert "root:x:0:0:" in open(root + "/etc/passwd").read()
    assert sh("chroot", root, "sh", "-c", "cat /etc/hosts").stdout.startswith("127.0.0.1")
    assert module("nslab_jail", dict(args, command=None))["changed"] is False


def test_missing_host_binary_and_bad_names_and_paths_leave_nothing(lab, module):
    cases = [
        (dict(name="../escape"), "name: jail name '../escape' is invalid"),
        (dict(name="h", source="host", binaries=["sh", "nosuchbinary"]),
         "binaries: 'nosuchbinary' not found on PATH"),
        (dict(name="t", source="tarball", path="/srv/../etc/passwd"),
         "path: path '/srv/../etc/passwd' is not in normal form"),
        (dict(name="d", source="directory", path="/"), "path: '/' resolves to '/', the host's root"),
        (dict(name="b", source="busybox", path="/bin/ls"), "is dynamically linked"),
        (dict(name="c", command=["true"], state="unmounted"), "command: ['true'] needs"),
    ]
    for args, message in cases:
        result = module("nslab_jail", dict(lab=lab.name, **args))
        assert result["_status"] == "failed", args
        assert message in result["msg"], (message, result["msg"])
        assert not os.path.exists(lab.data_dir)


@needs_busybox
def test_tarball_source_and_a_changed_tarball_rebuilds(lab, module, tmp_path):
    tree, archive = str(tmp_path / "tree"), str(tmp_path / "rootfs.tar.gz")
    busybox_tree(tree, "v1")
    write_tarball(archive, tree)
    args = dict(lab=lab.name, name="t", source="tarball", path=archive,
                command=["cat", "/etc/marker"])
    first = module("nslab_jail", args)
    assert first["_status"] == "ok", first.get("msg")
    assert first["jails"][0]["command_result"]["stdout"] == "v1"
    old_base = first["jails"][0]["base"]
    assert module("nslab_jail", dict(args, command=None))["changed"] is False

    with open(os.path.join(tree, "etc", "marker"), "w") as handle:
        handle.write("v2")
    write_tarball(archive, tree)
    second = module("nslab_jail", args)
    assert second["changed"] is True
    assert [a.split(" ")[0] for a in second["actions"]] == ["build", "remove", "create",
                                                            "remove"]
    assert second["jails"][0]["command_result"]["stdout"] == "v2"
    assert not os.path.exists(os.path.dirname(old_base))       # the old base was released


@needs_busybox
def test_directory_source_is_copied_and_never_written(lab, module, tmp_path):
    tree = str(tmp_path / "tree")
    busybox_tree(tree, "mine")
    before = listing(tree)
    writes = module("nslab_jail", dict(lab=lab.name, name="d", source="directory", path=tree,
                                       command=["sh", "-c", "echo x > /new; cat /etc/marker"]))
    assert writes["_status"] == "ok", writes.get("msg")
    base = writes["jails"][0]["base"]
    assert base.startswith(os.path.join(lab.data_dir, "bases", "directory-"))
    assert writes["jails"][0]["command_result"]["stdout"] == "mine"
    assert writes["stripped"] == [{"base_id": writes["jails"][0]["base_id"],
                                   "device_nodes": 0, "setuid_setgid": 0}]
    assert writes["jails"][0]["command_result"]["changed"] is True     # measured, not guessed
    assert listing(tree) == before                      # /new, /dev, /proc... are in upper
    assert os.path.exists(os.path.join(lab.data_dir, "jails", "d", "layer", "upper", "new"))
    reads = module("nslab_jail", dict(lab=lab.name, name="d", command=["cat", "/new"]))
    assert reads["changed"] is False and reads["jails"][0]["command_result"]["stdout"] == "x\n"
    # an edited source tree is a new base (the jail is rebuilt from it)
    with open(os.path.join(tree, "etc", "marker"), "w") as handle:
        handle.write("edited")
    edited = module("nslab_jail", dict(lab=lab.name, name="d", source="directory", path=tree,
                                       command=["cat", "/etc/marker"]))
    assert edited["jails"][0]["base_id"] != writes["jails"][0]["base_id"]
    assert edited["jails"][0]["command_result"]["stdout"] == "edited"


@needs_busybox
def test_a_symlinked_dev_is_refused_and_the_host_dev_untouched(lab, module, tmp_path):
    tree = str(tmp_path / "tree")
    busybox_tree(tree, "evil")
    os.symlink("/dev", os.path.join(tree, "dev"))
    host_dev = [l for l in open("/proc/self/mountinfo") if l.split()[4] == "/dev"]
    result = module("nslab_jail", dict(lab=lab.name, name="e", source="directory", path=tree))
    assert result["_status"] == "failed"
    assert "is a symlink, not a directory; refusing to mount over it" in result["msg"]
    assert "rolled back" in result["msg"]
    assert [l for l in open("/proc/self/mountinfo") if l.split()[4] == "/dev"] == host_dev
    assert not os.path.exists(lab.data_dir)


@needs_busybox
def test_unmounted_keeps_the_writable_layer_and_copy_jails(lab, module):
    module("nslab_jail", dict(lab=lab.name, name="u", command=["sh", "-c", "echo kept > /k"]))
    down = module("nslab_jail", dict(lab=lab.name, name="u", state="unmounted"), diff=True)
    assert down["actions"] == ["unmount jail 'u' (3 mounts)"]
    assert down["diff"]["after"]["u"]["mounted"] is False
    assert mounts_under(lab.data_dir) == []
    up = module("nslab_jail", dict(lab=lab.name, name="u", command=["cat", "/k"]))
    assert up["actions"] == ["mount overlay, /dev, /dev/pts of jail 'u'"]
    assert up["jails"][0]["command_result"]["stdout"] == "kept\n"

    copy = module("nslab_jail", dict(lab=lab.name, name="c", overlay=False,
                                     command=["sh", "-c", "echo c > /c"]))
    root = copy["jails"][0]["root"]
    assert copy["jails"][0]["overlay"] is False and copy["changed"] is True
    # its copy, private below layer/, bound at root nosuid,nodev
    assert mounts_under(os.path.dirname(root)) == [root, root + "/dev", root + "/dev/pts"]
    assert open(root + "/c").read() == "c\n"
    assert open(os.path.join(lab.data_dir, "jails", "c", "layer", "copy", "c")).read() == "c\n"
    assert {"nosuid", "nodev"} <= set(mount_options(root))
    # both jails share the one busybox base
    assert len(os.listdir(os.path.join(lab.data_dir, "bases"))) == 1


@needs_busybox
def test_fifty_overlay_jails_from_one_base_in_one_invocation(lab, module):
    jails = [dict(name="j%02d" % i) for i in range(50)]
    start = time.monotonic()
    result = module("nslab_jail", dict(lab=lab.name, jails=jails))
    took = time.monotonic() - start
    assert result["_status"] == "ok", result.get("msg")
    assert len(lab_actions(result)) == 51 and lab_actions(result)[0].startswith("build base")
    assert all(j["mounted"] and j["base"] == result["jails"][0]["base"]
               for j in result["jails"])
    assert len(mounts_under(lab.data_dir)) == 150
    assert took < 30, took
    assert module("nslab_jail", dict(lab=lab.name, jails=jails))["changed"] is False

    gone = module("nslab_jail", dict(lab=lab.name, jails=jails, state="absent"))
    assert gone["changed"] is True and gone["actions"][-1].startswith("remove base")
    assert mounts_under(lab.data_dir) == [] and not os.path.exists(lab.data_dir)


@needs_busybox
def test_a_failed_build_rolls_back_the_whole_run(lab, module, tmp_path):
    broken = str(tmp_path / "broken.tar")
    with open(broken, "w") as handle:
        handle.write("this is not a tar archive")
    result = module("nslab_jail", dict(lab=lab.name, jails=[
        dict(name="ok"), dict(name="bad", source="tarball", path=broken)]))
    assert result["_status"] == "failed"
    assert "building from tarball %s failed" % broken in result["msg"]
    assert len(result["rolled_back"]) == 1
    assert result["rolled_back"][0].startswith("build base busybox-")
    assert not os.path.exists(lab.data_dir)


@needs_busybox
def test_a_foreign_directory_and_a_failing_command(lab, module):
    foreign = os.path.join(lab.data_dir, "jails", "mine")
    os.makedirs(os.path.join(foreign, "data"))
    result = module("nslab_jail", dict(lab=lab.name, name="mine", state="absent"))
    assert result["_status"] == "failed"
    assert "jail directory '%s' exists and is not nslab's" % foreign in result["msg"]
    assert os.path.isdir(os.path.join(foreign, "data"))
    shutil.rmtree(lab.data_dir)

    failing = module("nslab_jail", dict(lab=lab.name, name="f", command=["ls", "/nothere"]))
    assert failing["_status"] == "failed" and failing["rc"] != 0 and failing["jail"] == "f"
    assert "command ls /nothere in jail 'f' exited" in failing["msg"]
    assert failing["changed"] is True                 # the jail was made before it ran
    skipped = module("nslab_jail", dict(lab=lab.name, name="f", command=["ls", "/nothere"]),
                     check=True)
    assert skipped["jails"][0]["command_result"]["skipped"] is True


def mirror_reachable():
    try:
        with open("/etc/apt/sources.list.d/debian.sources") as handle:
            uri = next(l.split()[1] for l in handle if l.startswith("URIs:"))
        urllib.request.urlopen(urllib.request.Request(uri + "/dists/bookworm/Release",
                                                      method="HEAD"), timeout=10).close()
        return None
    except (OSError, StopIteration) as err:
        return "Debian mirror not reachable (%s)" % err


def test_an_unreachable_mirror_fails_clearly_and_leaves_nothing(lab, module):
    if not shutil.which("debootstrap"):
        pytest.skip("debootstrap is not installed (apt-get install debootstrap)")
    result = module("nslab_jail", dict(lab=lab.name, name="d", source="debootstrap",
                                       suite="nslabtest", mirror="http://127.0.0.1:9/debian",
                                       cache_dir=str(lab.data_dir) + "-cache"))
    assert result["_status"] == "failed"
    assert "mirror: 'http://127.0.0.1:9/debian' is unreachable" in result["msg"]
    assert not os.path.exists(lab.data_dir) and not os.path.exists(lab.data_dir + "-cache")


def test_debootstrap_once_then_from_the_cache(lab, module):
    """ONE debootstrap build at most (none when the cache is already there); the second
    base of the same suite comes from the cached tarball in seconds."""
    args = dict(lab=lab.name, name="deb", source="debootstrap", suite="bookworm",
                command=["cat", "/etc/debian_version"])
    if not shutil.which("debootstrap"):
        pytest.skip("debootstrap is not installed (apt-get install debootstrap)")
    unreachable = mirror_reachable()
    if unreachable:
        pytest.skip(unreachable)
    first = module("nslab_jail", args)
    assert first["_status"] == "ok", first.get("msg")
    assert first["jails"][0]["command_result"]["stdout"].startswith("12.")
    cache = first["jails"][0]["base_id"] + ".tar"
    assert os.path.isfile(os.path.join(CACHE_DIR, "debootstrap", cache))
    module("nslab_jail", dict(lab=lab.name, name="deb", state="absent"))

    start = time.monotonic()
    second = module("nslab_jail", args)
    took = time.monotonic() - start
    assert "extract the cached tarball" in lab_actions(second)[0]
    # debootstrap's /dev nodes are not kept; Debian's setuid programs are
    assert second["stripped"][0]["device_nodes"] > 0
    assert second["stripped"][0]["setuid_setgid"] == 0
    base = second["jails"][0]["base"]
    assert os.stat(base + "/usr/bin/passwd").st_mode & stat.S_ISUID
    assert not [n for n in os.listdir(base + "/dev")
                if stat.S_ISCHR(os.lstat(base + "/dev/" + n).st_mode)
                or stat.S_ISBLK(os.lstat(base + "/dev/" + n).st_mode)]
    assert second["jails"][0]["command_result"]["stdout"].startswith("12.")
    assert took < 30, took
    # apt inside sees the jail's own dpkg database, not the host's
    dpkg = module("nslab_jail", dict(lab=lab.name, name="deb",
                                     command=["dpkg-query", "-W", "-f", "${Package}\n"]))
    assert "debootstrap" not in dpkg["jails"][0]["command_result"]["stdout"].split()


@needs_busybox
def test_converges_under_python39(lab, module):
    from helpers.interpreters import python39
    interpreter = python39()
    if interpreter is None:
        pytest.skip("no python3.9 interpreter on this machine (vermin checks it statically)")
    args = dict(lab=lab.name, name="p", source="host", binaries=["sh"], command=["sh", "-c",
                                                                                 "echo ok"])
    made = module("nslab_jail", args, interpreter=interpreter)
    assert made["_status"] == "ok", made.get("msg")
    assert made["jails"][0]["command_result"]["stdout"] == "ok\n"
    gone = module("nslab_jail", dict(lab=lab.name, name="p", state="absent"),
                  interpreter=interpreter)
    assert gone["changed"] is True and not os.path.exists(lab.data_dir)


def make_old_layout(lab, name, overlay):
    """Turn a jail made now into one of the layout before issue #15: layers directly in the
    jail directory, no ``layout`` in jail.json, an overlay mounted without nosuid,nodev."""
    jail = os.path.join(lab.data_dir, "jails", name)
    for point in reversed(mounts_under(jail)):
        sh("umount", point)
    if overlay:
        for part in ("upper", "work"):
            os.rename(os.path.join(jail, "layer", part), os.path.join(jail, part))
    else:
        os.rmdir(os.path.join(jail, "root"))
        os.rename(os.path.join(jail, "layer", "copy"), os.path.join(jail, "root"))
    os.rmdir(os.path.join(jail, "layer"))
    record = json.load(open(os.path.join(jail, "jail.json")))
    del record["layout"]
    json.dump(record, open(os.path.join(jail, "jail.json"), "w"))
    os.chmod(jail, 0o755)
    if overlay:
        lower = glob.glob(os.path.join(lab.data_dir, "bases", "*", "rootfs"))[0]
        sh("mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s/upper,workdir="
           "%s/work" % (lower, jail, jail), os.path.join(jail, "root"))


@needs_busybox
def test_jails_of_the_old_layout_are_migrated_in_place_keeping_their_files(lab, module):
    jails = [dict(name="ov", command=["sh", "-c", "echo kept > /k"]),
             dict(name="cp", overlay=False, command=["sh", "-c", "echo kept > /k"])]
    assert module("nslab_jail", dict(lab=lab.name, jails=jails))["_status"] == "ok"
    make_old_layout(lab, "ov", overlay=True)
    make_old_layout(lab, "cp", overlay=False)
    for path in (lab.data_dir, os.path.join(lab.data_dir, "bases")):
        os.chmod(path, 0o755)
    plain = [dict(name="ov", command=["cat", "/k"]),
             dict(name="cp", overlay=False, command=["cat", "/k"])]
    planned = module("nslab_jail", dict(lab=lab.name, jails=plain), check=True)
    assert planned["changed"] is True
    assert stat.S_IMODE(os.stat(lab.data_dir).st_mode) == 0o755          # check mode: as was

    migrated = module("nslab_jail", dict(lab=lab.name, jails=plain))
    assert migrated["_status"] == "ok", migrated.get("msg")
    assert migrated["actions"] == planned["actions"] == [
        "restrict %s to mode 0711 (was 0755)" % lab.data_dir,
        "restrict %s/bases to mode 0700 (was 0755)" % lab.data_dir,
        "move the writable layer of jail 'ov' below its private layer/ directory (0700) "
        "and remount it nosuid,nodev",
        "move the writable layer of jail 'cp' below its private layer/ directory (0700) "
        "and remount it nosuid,nodev"]
    assert [j["command_result"]["stdout"] for j in migrated["jails"]] == ["kept\n", "kept\n"]
    for jail in migrated["jails"]:
        assert {"nosuid", "nodev"} <= set(mount_options(jail["root"]))
        layer = os.path.join(os.path.dirname(jail["root"]), "layer")
        assert stat.S_IMODE(os.stat(layer).st_mode) == 0o700
    assert os.path.isfile(os.path.join(lab.data_dir, "jails", "ov", "layer", "upper", "k"))
    assert module("nslab_jail", dict(lab=lab.name, jails=plain))["changed"] is False


def loop_devices_of(image):
    return [line for line in sh("losetup", "-a").stdout.splitlines()
            if "(%s)" % image in line]


@needs_busybox
def test_a_disk_limit_caps_the_writable_layer_and_goes_with_the_jail(lab, module):
    args = dict(lab=lab.name, name="q", disk="32M")
    made = module("nslab_jail", args, diff=True)
    assert made["_status"] == "ok", made.get("msg")
    jail = os.path.join(lab.data_dir, "jails", "q")
    image, layer, root = jail + "/layer.img", jail + "/layer", made["jails"][0]["root"]
    assert made["jails"][0]["disk"] == 32 << 20 and made["diff"]["after"]["q"]["disk"] == 32 << 20
    assert os.stat(image).st_size == 32 << 20 and os.stat(image).st_blocks * 512 < 32 << 20
    assert stat.S_IMODE(os.stat(image).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(layer).st_mode) == 0o700
    assert mounts_under(jail) == [layer, root, root + "/dev", root + "/dev/pts"]
    assert {"nosuid", "nodev"} <= set(mount_options(layer)) and len(loop_devices_of(image)) == 1
    # a container writing 48 MiB gets ENOSPC, and nothing lands outside the image
    proc = subprocess.run(["chroot", root, "sh", "-c",
                           "dd if=/dev/zero of=/big bs=1M count=48 2>&1"], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "No space left on device" in proc.stdout
    assert os.path.getsize(layer + "/upper/big") < 32 << 20
    assert module("nslab_jail", args)["changed"] is False

    down = module("nslab_jail", dict(args, state="unmounted"))
    assert down["actions"] == ["unmount jail 'q' (4 mounts)"]
    assert mounts_under(jail) == [] and loop_devices_of(image) == []
    up = module("nslab_jail", dict(lab=lab.name, name="q"))          # disk unset: kept
    assert up["actions"] == ["mount layer, overlay, /dev, /dev/pts of jail 'q'"]
    assert os.path.exists(root + "/big")

    bigger = module("nslab_jail", dict(args, disk="64M"))
    assert [a.split(" ")[0] for a in bigger["actions"]] == ["remove", "create"]
    assert "with a 64 MiB disk" in bigger["actions"][1]
    assert not os.path.exists(root + "/big")                       # rebuilt: layer discarded
    gone = module("nslab_jail", dict(args, state="absent"))
    assert gone["_status"] == "ok" and not os.path.exists(lab.data_dir)
    assert loop_devices_of(image) == []


def test_a_bad_disk_size_is_refused_naming_it(lab, module):
    result = module("nslab_jail", dict(lab=lab.name, jails=[dict(name="q", disk="1M")]))
    assert result["_status"] == "failed"
    assert "jails[0].disk: '1M' is not a size of at least 16M" in result["msg"]
    assert not os.path.exists(lab.data_dir)

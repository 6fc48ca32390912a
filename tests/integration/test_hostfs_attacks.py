"""The host side of jails, attacked from the host (issues #15 and #16).

What a container writes lands in its jail's writable layer on the host. These tests play
the container (writing through the jail's mounted ``root/``, as its processes would) and
then an ordinary host user (``nobody``, via setpriv) or a careless admin, and assert on
what the kernel does: exec refused, euid not 0, no device node or setuid bit in a base,
a deep tree removed, a symlinked source refused.
"""

import glob
import os
import shutil
import stat
import subprocess
import tarfile
import time

import pytest

from helpers.kernel import mounts_under

BUSYBOX = shutil.which("busybox")
# A setuid binary the attacker "brought": head ignores its setuid bit as busybox does not,
# so the run shows the euid the kernel gave it (its own /proc/self/status).
SETUID_TOOL = shutil.which("head")
# setpriv (util-linux 2.38) still holds root's capabilities at its own execve: the exec of
# the target is left to a shell that runs as nobody through and through.
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
          "/bin/sh", "-c", 'exec "$@"', "sh"]
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="no busybox on PATH (apt-get "
                                   "install busybox-static)")


def as_nobody(*argv):
    return subprocess.run(NOBODY + list(argv), capture_output=True, text=True)


def euid_of_run(path):
    """Run ``path`` (a copy of head) as nobody; its effective uid, or None if no exec."""
    proc = as_nobody(path, "-n", "9", "/proc/self/status")
    for line in proc.stdout.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])
    return None


def files_named(top, name):
    """Every path to a file called ``name`` below ``top``, mounts included (as root)."""
    return sorted(os.path.join(d, name) for d, _dirs, files in os.walk(top) if name in files)


def plant_setuid_copy(root):
    """What a container's root can do in its own root: a setuid-root executable."""
    target = os.path.join(root, "tmp", "x")
    shutil.copy(SETUID_TOOL, target)
    os.chown(target, 0, 0)
    os.chmod(target, 0o4755)
    return target


@needs_busybox
def test_a_container_made_setuid_file_gives_a_host_user_nothing(lab, module):
    made = module("nslab_jail", dict(lab=lab.name, jails=[dict(name="ov"),
                                                          dict(name="cp", overlay=False)]))
    assert made["_status"] == "ok", made.get("msg")
    for jail in made["jails"]:
        planted = plant_setuid_copy(jail["root"])
        assert os.stat(planted).st_mode & stat.S_ISUID
        paths = files_named(os.path.join(lab.data_dir, "jails", jail["name"]), "x")
        assert planted in paths and len(paths) >= 2, paths   # the root and the layer below
        for path in paths:
            euid = euid_of_run(path)
            assert euid != 0, "%s gave nobody euid 0" % path
            if path != planted:
                # the writable layer (upper/ or the copy) is not even reachable
                assert euid is None and "Permission denied" in as_nobody(path).stderr, path
        # through the mounted root it runs, but nosuid keeps nobody nobody
        assert euid_of_run(planted) == 65534
    # nslab's trees: traversable where a userns init must pass, listable nowhere
    for path in ("/var/lib/nslab", lab.data_dir, os.path.join(lab.data_dir, "jails")):
        assert as_nobody("ls", path).returncode != 0, path
    assert as_nobody("ls", os.path.join(lab.data_dir, "bases", ".")).returncode != 0
    assert as_nobody("stat", made["jails"][0]["base"]).returncode != 0


def write_hostile_tarball(path, tree):
    """A root filesystem archive with a world-writable /dev/mem, a block device, and
    setuid and setgid executables (the kind a downloaded image may hold)."""
    with tarfile.open(path, "w") as archive:
        archive.add(tree, arcname=".")
        for name, kind, major, minor in (("dev/mem", tarfile.CHRTYPE, 1, 1),
                                         ("dev/sda", tarfile.BLKTYPE, 8, 0)):
            node = tarfile.TarInfo(name)
            node.type, node.devmajor, node.devminor, node.mode = kind, major, minor, 0o666
            archive.addfile(node)
        for name, mode in (("bin/su-copy", 0o4755), ("bin/sg-copy", 0o2755)):
            info = archive.gettarinfo(os.path.join(tree, "bin", "busybox"), arcname=name)
            info.mode = mode
            with open(os.path.join(tree, "bin", "busybox"), "rb") as handle:
                archive.addfile(info, handle)


def special_files(top):
    """(devices, setuid or setgid files) below ``top``, not following links."""
    devices, setid = [], []
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                devices.append(path[len(top):])
            elif mode & (stat.S_ISUID | stat.S_ISGID):
                setid.append(path[len(top):])
    return sorted(devices), sorted(setid)


@needs_busybox
def test_a_tarball_base_holds_no_device_node_and_no_setuid_file(lab, module, tmp_path):
    tree, archive = tmp_path / "tree", str(tmp_path / "hostile.tar")
    (tree / "bin").mkdir(parents=True)
    (tree / "dev").mkdir()
    shutil.copy(BUSYBOX, tree / "bin" / "busybox")
    os.symlink("busybox", tree / "bin" / "sh")
    write_hostile_tarball(archive, str(tree))

    made = module("nslab_jail", dict(lab=lab.name, name="t", source="tarball", path=archive))
    assert made["_status"] == "ok", made.get("msg")
    base = made["jails"][0]["base"]
    assert special_files(base) == ([], [])
    assert made["stripped"] == [{"base_id": made["jails"][0]["base_id"], "device_nodes": 2,
                                 "setuid_setgid": 2}]
    assert os.stat(base + "/bin/su-copy").st_mode & 0o7777 == 0o755

    kept = module("nslab_jail", dict(lab=lab.name, name="k", source="tarball", path=archive,
                                     keep_setuid=True))
    assert kept["_status"] == "ok", kept.get("msg")
    assert kept["jails"][0]["base_id"] != made["jails"][0]["base_id"]
    assert special_files(kept["jails"][0]["base"]) == ([], ["/bin/sg-copy", "/bin/su-copy"])
    assert module("nslab_jail", dict(lab=lab.name, name="k", source="tarball", path=archive,
                                     keep_setuid=True))["changed"] is False


@needs_busybox
def test_a_1100_deep_directory_in_a_jail_is_removed(lab, module):
    made = module("nslab_jail", dict(lab=lab.name, name="deep"))
    assert made["_status"] == "ok", made.get("msg")
    fd = os.open(os.path.join(made["jails"][0]["root"], "tmp"), os.O_RDONLY)
    for _ in range(1100):                     # deeper than PATH_MAX allows to name at once
        os.mkdir("dddd", dir_fd=fd)
        deeper = os.open("dddd", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(fd)
    try:
        gone = module("nslab_jail", dict(lab=lab.name, name="deep", state="absent"))
        assert gone["_status"] == "ok", gone.get("msg")
        assert not os.path.lexists(lab.data_dir) and mounts_under(lab.data_dir) == []
    finally:
        # the lab fixture's cleanup uses shutil.rmtree, which this tree defeats
        jail = os.path.join(lab.data_dir, "jails", "deep")
        for chain in glob.glob(jail + "/*/tmp/dddd") + glob.glob(jail + "/*/*/tmp/dddd"):
            subprocess.run(["rm", "-rf", "--one-file-system", chain], check=True)


def test_a_directory_source_that_resolves_to_the_host_is_refused(lab, module, tmp_path):
    links = {"to-root": "/", "to-etc": "/etc", "to-nslab": "/var/lib/nslab",
             "to-cache": "/var/cache"}
    for name, target in links.items():
        os.symlink(target, tmp_path / name)
    for name, target in links.items():
        result = module("nslab_jail", dict(lab=lab.name, name="d", source="directory",
                                           path=str(tmp_path / name)))
        assert result["_status"] == "failed", (name, result.get("jails"))
        assert "path: '%s' resolves to '%s'" % (tmp_path / name, target) in result["msg"]
        assert not os.path.lexists(lab.data_dir)
    assert mounts_under(lab.data_dir) == []


def test_setuid_inside_a_privileged_container_still_works_and_stays_inert_on_the_host(
        lab, module):
    """nosuid is the host mount's: the container's init re-binds its root without it."""
    made = module("nslab_jail", dict(lab=lab.name, name="p", source="host",
                                     binaries=["sh", "head", "setpriv", "sleep"]))
    assert made["_status"] == "ok", made.get("msg")
    root = made["jails"][0]["root"]
    plant_setuid_copy(root)
    assert module("nslab_namespace", dict(lab=lab.name, name=lab.n("p")))["changed"]
    script = ("setpriv --reuid=65534 --regid=65534 --clear-groups -- sh -c "
              "'exec /tmp/x -n 9 /proc/self/status' > /tmp/out 2>&1; exec sleep 1000")
    started = module("nslab_container", dict(lab=lab.name, name="p", jail="p",
                                             netns=lab.n("p"), privileged=True,
                                             command=["sh", "-c", script]))
    assert started["_status"] == "ok", started.get("msg")
    out = os.path.join("/proc/%d/root/tmp/out" % started["containers"][0]["pid"])
    for _ in range(100):
        if os.path.exists(out) and "Uid:" in open(out).read():
            break
        time.sleep(0.05)
    uids = [line.split()[1:] for line in open(out) if line.startswith("Uid:")][0]
    assert uids[:2] == ["65534", "0"]          # real nobody, effective root: setuid worked
    assert euid_of_run(os.path.join(root, "tmp", "x")) == 65534      # on the host: inert

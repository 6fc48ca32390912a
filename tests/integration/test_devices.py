"""The device cgroup against the real kernel, as an attacker in a container would meet it: a
root process (CAP_MKNOD) moved into the cgroup makes device nodes in a tmp dir and opens
them. Without the policy it reads the host console's memory (vcs, c 7:0); with it, mknod
and open of anything but the container's few nodes fail with EPERM, and /dev/null works.
cgroup v1 through the devices hierarchy; cgroup v2 through an eBPF program attached to a
directory of this hybrid machine's cgroup2 mount (/sys/fs/cgroup/unified)."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import (
    Hierarchy, Layout, detect_layout)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_devices import (
    CONTAINER_DEVICES, PROGRAM_NAME, Bpf, DeviceRule, assemble, restrict_devices)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import read_mountinfo
from helpers.lab import BUSYBOX, BUSYBOX_APPLETS, BUSYBOX_SKIP, STATE_ROOT

V1_DEVICES = "/sys/fs/cgroup/devices"
UNIFIED = "/sys/fs/cgroup/unified"

# Waits for a line, then for each (name, major, minor): mknod in its own dir, and open of
# the node the test made beforehand (outside any restriction): {name: [mknod, open]} where
# each is "ok" or the errno name. Then /dev/null is written.
ATTACKER = r"""
import errno, json, os, stat, sys
sys.stdin.readline()
nodes, made_dir = json.loads(sys.argv[1]), sys.argv[2]
result = {}
for name, major, minor, premade in nodes:
    outcome = []
    for step in ("mknod", "open"):
        try:
            if step == "mknod":
                os.mknod(os.path.join(made_dir, name), 0o600 | stat.S_IFCHR,
                         os.makedev(major, minor))
            else:
                os.close(os.open(premade, os.O_RDONLY))
            outcome.append("ok")
        except OSError as err:
            outcome.append(errno.errorcode[err.errno])
    result[name] = outcome
try:
    with open("/dev/null", "w") as handle:
        handle.write("x")
    result["/dev/null"] = "ok"
except OSError as err:
    result["/dev/null"] = errno.errorcode[err.errno]
print(json.dumps(result), flush=True)
"""
TARGETS = [("vcs", 7, 0), ("mem", 1, 1), ("null", 1, 3)]


@pytest.fixture
def attack(tmp_path):
    """attack(cgroup dirs) -> what a root process inside those cgroups could do."""
    premade = tmp_path / "premade"
    premade.mkdir()
    for name, major, minor in TARGETS:
        os.mknod(str(premade / name), 0o600 | 0o020000, os.makedev(major, minor))
    runs = []

    def run(directories):
        made = tmp_path / ("made%d" % len(runs))
        made.mkdir()
        nodes = [(n, a, b, str(premade / n)) for n, a, b in TARGETS]
        child = subprocess.Popen([sys.executable, "-c", ATTACKER, json.dumps(nodes), str(made)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        runs.append(child)
        for directory in directories:
            with open(os.path.join(directory, "cgroup.procs"), "w") as handle:
                handle.write(str(child.pid))
        out, _err = child.communicate("go\n", timeout=30)
        return json.loads(out)
    yield run
    for child in runs:
        if child.poll() is None:
            child.kill()
            child.wait()


def read(path):
    with open(path) as handle:
        return handle.read()


CONTAINER_LIST = "".join(rule.render() + "\n" for rule in CONTAINER_DEVICES)
OPEN = {"vcs": ["ok", "ok"], "mem": ["ok", "ENXIO"], "null": ["ok", "ok"], "/dev/null": "ok"}
DENIED = {"vcs": ["EPERM", "EPERM"], "mem": ["EPERM", "EPERM"], "null": ["ok", "ok"],
          "/dev/null": "ok"}


def expected_open(result):
    """Without a policy: vcs is the host console's memory, readable; this kernel has no
    /dev/mem driver (ENXIO from the driver, past any device cgroup: not EPERM)."""
    assert result["mem"][1] != "EPERM"
    return dict(OPEN, mem=["ok", result["mem"][1]])


@pytest.mark.skipif(not os.path.isfile(os.path.join(V1_DEVICES, "devices.list")),
                    reason="no cgroup v1 devices hierarchy on this host")
def test_v1_device_cgroup_stops_mknod_and_open_of_host_devices(lab, module, attack):
    made = module("nslab_cgroup", dict(lab=lab.name, name="node"))
    assert made["changed"] is True, made
    relpath = "nslab/%s/node" % lab.name
    leaf = os.path.join(V1_DEVICES, relpath)
    assert made["cgroups"][0]["paths"]["devices"] == leaf
    inodes = json.loads(read(os.path.join(STATE_ROOT, lab.name, "cgroups.json")))
    assert inodes["cgroups"]["node"]["inodes"][leaf] == os.stat(leaf).st_ino
    assert read(leaf + "/devices.list") == "a *:* rwm\n"            # inherited: allow all

    # the attack works on a cgroup without the policy
    before = attack([leaf])
    assert before == expected_open(before)

    layout = detect_layout(read_mountinfo())
    planned = restrict_devices(layout, relpath, False, check_mode=True)
    assert planned and read(leaf + "/devices.list") == "a *:* rwm\n"
    assert restrict_devices(layout, relpath, False) == planned
    assert read(leaf + "/devices.list") == CONTAINER_LIST
    assert restrict_devices(layout, relpath, False) == []
    assert attack([leaf]) == DENIED

    # nslab_cgroup leaves the rules alone (no limit key of its own)
    assert module("nslab_cgroup", dict(lab=lab.name, name="node"))["changed"] is False
    assert read(leaf + "/devices.list") == CONTAINER_LIST

    # privileged: all devices again, once
    assert restrict_devices(layout, relpath, True) == [
        "set the devices of cgroup '%s' from %s to a *:* rwm" % (
            relpath, ", ".join(CONTAINER_LIST.splitlines()))]
    assert read(leaf + "/devices.list") == "a *:* rwm\n"
    assert restrict_devices(layout, relpath, True) == []
    after = attack([leaf])
    assert after == expected_open(after)

    gone = module("nslab_cgroup", dict(lab=lab.name, name="node", state="absent"))
    assert gone["changed"] is True and not os.path.exists(leaf)


def unified_is_cgroup2():
    return any(e.mount_point == UNIFIED and e.fstype == "cgroup2" for e in read_mountinfo())


def programs(directory):
    """(name, id) of the device programs attached to a cgroup v2 directory."""
    bpf, fd = Bpf(), os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        found = []
        for prog_id in bpf.query(fd):
            prog_fd = bpf.fd_of(prog_id)
            found.append((bpf.info(prog_fd)[0], prog_id))
            os.close(prog_fd)
        return found
    finally:
        os.close(fd)


@pytest.fixture
def unified_cgroup(lab):
    """nslab/<lab>/node in the cgroup2 mount; removed (with its programs) at the end."""
    if not os.path.isdir(UNIFIED) or not unified_is_cgroup2():
        pytest.skip("no cgroup2 mount at %s" % UNIFIED)
    top = os.path.join(UNIFIED, "nslab", lab.name)
    leaf = os.path.join(top, "node")
    os.makedirs(leaf)
    yield leaf
    # the lab fixture kills what is left in it and removes the directories


def test_v2_device_program_stops_mknod_and_open_of_host_devices(lab, attack, unified_cgroup):
    leaf, relpath = unified_cgroup, "nslab/%s/node" % lab.name
    layout = Layout([Hierarchy(2, UNIFIED, ())], "v2")      # the cgroup2 mount alone

    before = attack([leaf])
    assert before == expected_open(before)

    planned = restrict_devices(layout, relpath, False, check_mode=True)
    assert planned == ["attach a device program allowing %s to cgroup '%s'" % (
        ", ".join(CONTAINER_LIST.splitlines()), relpath)]
    assert programs(leaf) == []
    assert restrict_devices(layout, relpath, False) == planned
    assert [name for name, _id in programs(leaf)] == [PROGRAM_NAME]
    assert restrict_devices(layout, relpath, False) == []          # queried: the same program
    assert attack([leaf]) == DENIED

    # another program on the cgroup (not nslab's) is kept; nslab's is replaced in place
    bpf, fd = Bpf(), os.open(leaf, os.O_RDONLY | os.O_DIRECTORY)
    foreign = bpf.load(assemble([DeviceRule("c", None, None), DeviceRule("b", None, None)]),
                       name="other_devices")
    try:
        bpf.attach(fd, foreign)
    finally:
        os.close(foreign)
        os.close(fd)
    ours = [i for n, i in programs(leaf) if n == PROGRAM_NAME]
    assert len(ours) == 1
    assert restrict_devices(layout, relpath, False) == []
    assert sorted(n for n, _i in programs(leaf)) == ["nslab_devices", "other_devices"]

    # privileged: nslab's program goes, the other stays (it allows every c and b device)
    assert restrict_devices(layout, relpath, True) == [
        "detach the device program of cgroup '%s' (privileged: all devices)" % relpath]
    assert [n for n, _i in programs(leaf)] == ["other_devices"]
    assert restrict_devices(layout, relpath, True) == []
    after = attack([leaf])
    assert after == expected_open(after)
    # and back: attached again, beside the other
    assert restrict_devices(layout, relpath, False) == planned
    assert attack([leaf]) == DENIED
    # the same loaded program (one verifier run per process, see nslab_devices._LOADED)
    assert [i for n, i in programs(leaf) if n == PROGRAM_NAME] == ours

    # a stale nslab program beside the current one (an older policy): one replace leaves
    # exactly the current policy
    bpf, fd = Bpf(), os.open(leaf, os.O_RDONLY | os.O_DIRECTORY)
    stale = bpf.load(assemble([DeviceRule("c", 7, 0)]))                # would allow vcs
    try:
        bpf.attach(fd, stale)
    finally:
        os.close(stale)
        os.close(fd)
    assert [n for n, _i in programs(leaf)].count(PROGRAM_NAME) == 2
    assert restrict_devices(layout, relpath, False) == [
        "replace the device program of cgroup '%s' by one allowing %s" % (
            relpath, ", ".join(CONTAINER_LIST.splitlines()))]
    assert sorted(n for n, _i in programs(leaf)) == ["nslab_devices", "other_devices"]
    assert restrict_devices(layout, relpath, False) == []
    assert attack([leaf]) == DENIED


# --- a container, end to end ------------------------------------------------------------------

# /dev is the one place in a container where device nodes work (a tmpfs without nodev).
MKNOD_ATTACK = ("busybox mknod /dev/vcsx c 7 0 2>>/tmp/err; echo mknod=$? > /tmp/out; "
                "head -c 1 /dev/vcsx > /dev/null 2>>/tmp/err; echo open=$? >> /tmp/out; "
                "echo x > /dev/null; echo null=$? >> /tmp/out; echo done >> /tmp/out; "
                "exec sleep 1000")


def busybox_root(root):
    """A minimal busybox jail (as the rootfs fixture makes one), one per container."""
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, str(root / "bin" / "busybox"))
    for applet in BUSYBOX_APPLETS:
        os.symlink("busybox", str(root / "bin" / applet))
    (root / "tmp").mkdir()
    return root


def wait_for_done(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and read(path).endswith("done\n"):
            return read(path)
        time.sleep(0.05)
    raise AssertionError("%s never said done" % path)


@BUSYBOX_SKIP
@pytest.mark.skipif(not os.path.isfile(os.path.join(V1_DEVICES, "devices.list")),
                    reason="no cgroup v1 devices hierarchy on this host")
def test_container_with_cap_mknod_cannot_reach_the_host_console(lab, module, tmp_path):
    """cap_add MKNOD: mknod of vcs in its /dev fails; a privileged container (every device,
    as Docker's --privileged) shows the same commands do read the host's console."""
    roots = dict((name, busybox_root(tmp_path / name)) for name in ("box", "priv"))
    assert module("nslab_namespace", dict(lab=lab.name, name=lab.n("d")))["changed"]
    assert module("nslab_cgroup", dict(lab=lab.name, cgroups=[
        {"name": "box"}, {"name": "priv"}]))["changed"]
    result = module("nslab_container", dict(lab=lab.name, containers=[
        dict(name="box", rootfs=str(roots["box"]), netns=lab.n("d"), cgroup="box",
             cap_add=["MKNOD"], command=["sh", "-c", MKNOD_ATTACK]),
        dict(name="priv", rootfs=str(roots["priv"]), netns=lab.n("d"), cgroup="priv",
             privileged=True, command=["sh", "-c", MKNOD_ATTACK])]))
    assert result["_status"] == "ok", result.get("msg")
    box = wait_for_done(str(roots["box"] / "tmp/out"))
    assert box == "mknod=1\nopen=1\nnull=0\ndone\n", box
    assert "Operation not permitted" in read(str(roots["box"] / "tmp/err"))
    assert wait_for_done(str(roots["priv"] / "tmp/out")) == "mknod=0\nopen=0\nnull=0\ndone\n"
    # what the kernel holds for each
    leaf = os.path.join(V1_DEVICES, "nslab", lab.name)
    assert read(os.path.join(leaf, "box", "devices.list")) == CONTAINER_LIST
    assert read(os.path.join(leaf, "priv", "devices.list")) == "a *:* rwm\n"
    # its init and command are in the devices cgroup
    pid = result["containers"][0]["pid"]
    assert "devices:/nslab/%s/box" % lab.name in read("/proc/%d/cgroup" % pid)
    # a rerun changes nothing
    again = module("nslab_container", dict(lab=lab.name, containers=[
        dict(name="box", rootfs=str(roots["box"]), netns=lab.n("d"), cgroup="box",
             cap_add=["MKNOD"], command=["sh", "-c", MKNOD_ATTACK]),
        dict(name="priv", rootfs=str(roots["priv"]), netns=lab.n("d"), cgroup="priv",
             privileged=True, command=["sh", "-c", MKNOD_ATTACK])]))
    assert again["changed"] is False

"""nslab_container against the real kernel: isolation proved from the kernel's side
(/proc/<pid>/...) and from inside the container (its command writes what it saw)."""

import glob
import json
import os
import shutil
import subprocess
import time

import pytest

from helpers.capabilities import DEFAULT_CAPS
from helpers.kernel import proc_children, proc_status, sh
from helpers.lab import BUSYBOX_SKIP

from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import proc_start_time

pytestmark = BUSYBOX_SKIP


@pytest.fixture
def netns(lab, module):
    assert module("nslab_namespace", dict(lab=lab.name, name=lab.n("c")))["changed"]
    return lab.n("c")


def wait_for(path, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path):
            return open(path).read()
        time.sleep(0.05)
    raise AssertionError("%s never appeared" % path)


def container(lab, rootfs, netns, **kw):
    args = dict(lab=lab.name, name="box", rootfs=str(rootfs), netns=netns)
    args.update(kw)
    return args


def test_check_mode_starts_nothing(lab, module, rootfs, netns):
    result = module("nslab_container", container(lab, rootfs, netns), check=True, diff=True)
    assert result["changed"] is True and result["actions"] == ["start container 'box'"]
    assert result["diff"]["after"]["box"]["state"] == "running"
    assert result["containers"][0]["state"] == "absent"
    assert not os.path.exists("/run/nslab/%s/containers/box.json" % lab.name)


def test_isolation_seen_by_the_kernel(lab, module, rootfs, netns):
    result = module("nslab_container", container(lab, rootfs, netns, command=["sleep", "1000"],
                                                 hostname="web1"))
    assert result["changed"] is True
    box = result["containers"][0]
    pid = box["pid"]
    # PID 1 of its own pid namespace, the command its only other process (pid 3: the init's
    # setup child, gone, was 2)
    assert proc_status(pid)["NSpid"].split()[-1] == "1"
    inside = sorted(int(p) for p in os.listdir("/proc/%d/root/proc" % pid) if p.isdigit())
    assert len(inside) == 2 and inside[0] == 1, inside
    with open("/proc/%d/root/proc/%d/cmdline" % (pid, inside[1]), "rb") as handle:
        assert handle.read().split(b"\0")[:2] == [b"sleep", b"1000"]
    for nstype in ("pid", "mnt", "uts", "ipc", "cgroup"):
        assert os.stat("/proc/%d/ns/%s" % (pid, nstype)).st_ino != \
            os.stat("/proc/self/ns/%s" % nstype).st_ino, nstype
    assert os.stat("/proc/%d/ns/net" % pid).st_ino == os.stat("/run/netns/" + netns).st_ino
    assert sh("nsenter", "--target", str(pid), "--uts", "uname", "-n").stdout.strip() == "web1"
    # its mount table: the jail as /, its own /proc, read-only /sys, tiny /dev; no host path
    mounts = [line.split() for line in open("/proc/%d/mountinfo" % pid)]
    points = {m[4]: m for m in mounts}
    assert points["/"][3] == str(rootfs)
    assert "ro" in points["/sys"][5].split(",") and "ro" in points["/proc/sys"][5].split(",")
    masked = {"/proc/" + p for p in ("acpi", "asound", "kcore", "keys", "latency_stats",
                                     "timer_list", "timer_stats", "sched_debug", "scsi",
                                     "bus", "fs", "irq", "sys", "sysrq-trigger")}
    masked |= {"/sys/firmware", "/sys/devices/virtual/powercap"}
    assert set(points) <= {"/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm"} | masked
    for path in ("/proc/irq", "/proc/bus", "/proc/fs", "/proc/keys", "/sys/firmware"):
        if os.path.exists(path):
            assert path in points, path
    assert sorted(os.listdir("/proc/%d/root/dev" % pid)) == sorted(
        ["fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
         "tty", "urandom", "zero"])
    # the command: default capabilities only, no_new_privs
    command = proc_children(pid)[0]
    mask = sum(1 << n for n in DEFAULT_CAPS.values())
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert int(proc_status(command)[key], 16) == mask, key
    assert proc_status(command)["NoNewPrivs"] == "1"
    # only its own interfaces
    assert sh("ip", "-br", "link", netns=netns).stdout.split()[0] == "lo"

    again = module("nslab_container", container(lab, rootfs, netns, command=["sleep", "1000"],
                                                hostname="web1"))
    assert again["changed"] is False and again["containers"][0]["pid"] == pid


def test_from_inside_no_mounts_no_host_files_no_cgroup_writes(lab, module, rootfs, netns):
    script = ("mount -t tmpfs x /tmp 2>/dev/null; echo mount=$? > /tmp/out; "
              "echo 1 > /sys/kernel/profiling 2>/dev/null; echo sysfs=$? >> /tmp/out; "
              "ls / >> /tmp/out; cat /proc/1/cgroup | head -1 >> /tmp/out; exec sleep 1000")
    module("nslab_container", container(lab, rootfs, netns, command=["sh", "-c", script]))
    out = wait_for(str(rootfs / "tmp" / "out")).split("\n")
    assert out[0] == "mount=1" and out[1] == "sysfs=1"
    listing = out[2:-2]
    assert sorted(listing) == ["bin", "dev", "proc", "sys", "tmp"]
    assert out[-2].endswith(":/")          # its cgroup namespace: its own cgroup is /


def test_classic_chroot_escape_finds_only_the_jail(lab, module, rootfs, netns, tmp_path):
    if not shutil.which("gcc") or not os.path.exists("/usr/lib/x86_64-linux-gnu/libc.a"):
        pytest.skip("needs gcc and a static libc to build the escape program")
    source = tmp_path / "escape.c"
    source.write_text(
        '#include <stdio.h>\n#include <unistd.h>\n#include <dirent.h>\n#include <sys/stat.h>\n'
        'int main(void) { mkdir("/esc", 0755); if (chroot("/esc")) perror("chroot");\n'
        '  for (int i = 0; i < 64; i++) chdir("..");\n  if (chroot(".")) perror("chroot .");\n'
        '  FILE *out = fopen("/tmp/escaped", "w"); DIR *d = opendir("/"); struct dirent *e;\n'
        '  while ((e = readdir(d))) fprintf(out, "%s\\n", e->d_name); fclose(out);\n'
        '  pause(); return 0; }\n')
    subprocess.run(["gcc", "-static", "-O1", "-o", str(rootfs / "bin" / "escape"), str(source)],
                   check=True)
    module("nslab_container", container(lab, rootfs, netns, command=["escape"]))
    # the program's "/" after the escape is the jail's root, seen in the jail's own /tmp
    seen = wait_for(str(rootfs / "tmp" / "escaped")).split()
    assert "bin" in seen and "esc" in seen
    assert not {"usr", "etc", "work", "home", "var"} & set(seen)


def test_init_reaps_zombies_forwards_sigterm_and_comes_back(lab, module, rootfs, netns):
    script = ("trap 'echo term > /tmp/term; exit 3' TERM; (sleep 0.2 &); "
              "while true; do sleep 0.1; done")
    # a long stop_timeout: only a forwarded, obeyed SIGTERM stops it well before SIGKILL
    args = container(lab, rootfs, netns, command=["sh", "-c", script], stop_timeout=30)
    pid = module("nslab_container", args)["containers"][0]["pid"]
    time.sleep(0.8)              # the orphaned sleep ended and was reparented to PID 1
    states = [open("/proc/%d/root/proc/%s/stat" % (pid, p)).read().split()[2]
              for p in os.listdir("/proc/%d/root/proc" % pid) if p.isdigit()]
    assert "Z" not in states

    os.kill(pid, 9)              # the init dies behind nslab's back
    time.sleep(0.2)
    result = module("nslab_container", args)
    assert result["actions"] == ["start container 'box' (its init died)"]
    new_pid = result["containers"][0]["pid"]
    assert new_pid != pid

    start = time.monotonic()
    stopped = module("nslab_container", dict(args, state="stopped"))
    assert stopped["actions"] == ["stop container 'box'"]
    assert time.monotonic() - start < 20         # SIGTERM was enough: forwarded and obeyed
    assert wait_for(str(rootfs / "tmp" / "term")).strip() == "term"
    assert stopped["containers"][0]["state"] == "stopped"
    assert not os.path.exists("/proc/%d" % new_pid) or \
        open("/proc/%d/stat" % new_pid).read().split()[2] in ("Z", "X")


def test_changed_config_restarts_and_absent_removes(lab, module, rootfs, netns):
    args = container(lab, rootfs, netns, command=["sleep", "1000"])
    pid = module("nslab_container", args)["containers"][0]["pid"]
    changed = module("nslab_container", dict(args, command=["sleep", "999"], cap_add=["NET_ADMIN"]),
                     diff=True)
    assert changed["actions"] == ["restart container 'box' (command, capabilities changed)"]
    assert changed["diff"]["before"]["box"]["command"] == ["sleep", "1000"]
    new_pid = changed["containers"][0]["pid"]
    assert new_pid != pid and "NET_ADMIN" in changed["containers"][0]["capabilities"]
    restarted = module("nslab_container", dict(args, command=["sleep", "999"],
                                               cap_add=["NET_ADMIN"], state="restarted"))
    assert restarted["changed"] is True
    gone = module("nslab_container", dict(lab=lab.name, name="box", state="absent"))
    assert gone["actions"] == ["stop and remove container 'box'"]
    assert not os.path.exists("/run/nslab/%s/containers" % lab.name)
    assert module("nslab_container", dict(lab=lab.name, name="box",
                                          state="absent"))["changed"] is False


def test_bad_input_is_refused(lab, module, rootfs):
    result = module("nslab_container", dict(lab=lab.name, containers=[
        dict(name="a", rootfs="/"), dict(name="b", rootfs="relative/path"),
        dict(name="c", rootfs=str(rootfs), cap_add=["FLY"], netns=lab.n("nope")),
        dict(name="d"),
        dict(name="e", rootfs=str(rootfs), env={"A=B": "x", "OK": "a\u0000b", "1X": "y",
                                                "X\n": "z"})]))
    assert result["_status"] == "failed"
    problems = result["problems"]
    assert any(p.startswith("containers[0].rootfs: '/' is not allowed") for p in problems)
    assert any(p.startswith("containers[1].rootfs: ") for p in problems)
    assert any("unknown capability 'FLY'" in p for p in problems)
    assert any(p.startswith("containers[2].netns: ") and "does not exist" in p for p in problems)
    assert any(p.startswith("containers[3].rootfs: missing") for p in problems)
    for key in ("'A=B'", "'1X'", "'X\\n'"):
        assert any(p.startswith("containers[4].env: name %s is not allowed" % key)
                   for p in problems), (key, problems)
    assert "containers[4].env.OK: the value contains a NUL byte; expected text without " \
           "one" in problems
    assert not os.path.exists("/run/nslab/%s/containers" % lab.name)


def test_files_are_bound_read_only_from_the_host_and_never_through_a_symlink(
        lab, module, rootfs, netns, tmp_path):
    hosts = "127.0.0.1 localhost\n10.251.50.2 box\n"
    args = container(lab, rootfs, netns, files={"/etc/hosts": hosts}, command=["sleep", "1000"])
    first = module("nslab_container", args)
    assert first["actions"] == ["write /etc/hosts in container 'box'", "start container 'box'"]
    pid = first["containers"][0]["pid"]
    assert open("/proc/%d/root/etc/hosts" % pid).read() == hosts
    # nslab's copy on the host, closed to other users; the jail's own file untouched
    copies = "/run/nslab/%s/containers/box.files" % lab.name
    assert os.stat(copies).st_mode & 0o777 == 0o700
    assert open(copies + "/%2Fetc%2Fhosts").read() == hosts
    assert (rootfs / "etc" / "hosts").read_text() == ""
    mounts = dict((m.split()[4], m.split()[5]) for m in open("/proc/%d/mountinfo" % pid))
    assert "ro" in mounts["/etc/hosts"].split(",")
    assert module("nslab_container", args)["changed"] is False
    changed = module("nslab_container", dict(args, files={"/etc/hosts": hosts + "# more\n"}))
    assert changed["actions"] == ["write /etc/hosts in container 'box'"]   # no restart
    assert changed["containers"][0]["pid"] == pid
    assert open("/proc/%d/root/etc/hosts" % pid).read() == hosts + "# more\n"   # at once
    other = module("nslab_container", dict(args, files={"/etc/motd": "hi\n"}))
    assert other["actions"] == ["write /etc/motd in container 'box'",
                                "restart container 'box' (files changed)"]
    assert sorted(os.listdir(copies)) == ["%2Fetc%2Fmotd"]      # the unlisted copy went
    args["files"] = {"/etc/hosts": hosts + "# more\n"}
    pid = module("nslab_container", args)["containers"][0]["pid"]

    # a jail whose /etc is a symlink to a host directory: nothing follows it
    outside = tmp_path / "host-etc"
    outside.mkdir()
    shutil.rmtree(str(rootfs / "etc"))
    os.symlink(str(outside), str(rootfs / "etc"))
    rewritten = module("nslab_container", dict(args, files={"/etc/hosts": "new\n"}))
    assert rewritten["actions"] == ["write /etc/hosts in container 'box'"]
    refused = module("nslab_container", dict(args, files={"/etc/hosts": "new\n"},
                                             state="restarted"))
    assert refused["_status"] == "failed" and "did not start" in refused["msg"]
    assert list(outside.iterdir()) == []
    gone = module("nslab_container", dict(args, state="absent"))
    assert gone["changed"] and not os.path.exists(copies)


def test_a_failed_start_leaves_nothing_and_says_why(lab, module, rootfs, netns):
    (rootfs / "bin" / "busybox").unlink()          # the jail's sh cannot run now...
    (rootfs / "tmp").rmdir()
    (rootfs / "tmp").write_text("not a directory")  # ...and /tmp cannot be mounted on
    result = module("nslab_container", container(lab, rootfs, netns, command=["sh"]))
    assert result["_status"] == "failed"
    assert "did not start" in result["msg"]
    assert not os.path.exists("/run/nslab/%s/containers" % lab.name)


def test_a_failed_start_stops_the_containers_started_before_it(lab, module, rootfs, netns,
                                                              tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(str(rootfs), str(broken), symlinks=True)
    (broken / "tmp").rmdir()
    (broken / "tmp").write_text("not a directory")  # /tmp cannot be mounted on: b fails
    result = module("nslab_container", dict(lab=lab.name, containers=[
        dict(name="a", rootfs=str(rootfs), netns=netns, command=["sleep", "100000"]),
        dict(name="b", rootfs=str(broken), netns=netns, command=["sleep", "100000"])]))
    assert result["_status"] == "failed" and "container 'b' did not start" in result["msg"]
    assert "rolled back 1 step(s)" in result["msg"], result["msg"]
    assert result["done"] == result["rolled_back"] == ["start container 'a'"]
    record = json.load(open("/run/nslab/%s/containers/a.json" % lab.name))
    assert record["running"] is False
    # a's init is gone: no process runs with its recorded pid and start time
    assert not os.path.exists("/proc/%d" % record["pid"]) or proc_start_time(
        record["pid"]) != record["start_time"]


def test_userns_makes_an_unprivileged_container(lab, module, netns):
    # A jail from nslab_jail: its directories must be reachable by an unprivileged uid.
    assert module("nslab_jail", dict(lab=lab.name, name="box", source="busybox"))["changed"]
    script = ("id -u > /tmp/out; touch /bin/x 2>/dev/null; echo write=$? >> /tmp/out; "
              "ls /sys/fs/cgroup | wc -l >> /tmp/out; exec sleep 1000")
    result = module("nslab_container", dict(lab=lab.name, name="box", jail="box", netns=netns,
                                            userns=True, userns_base=200000,
                                            files={"/etc/hosts": "10.0.0.1 box\n"},
                                            command=["sh", "-c", script]))
    assert result["_status"] == "ok", result.get("msg")
    pid = result["containers"][0]["pid"]
    assert open("/proc/%d/uid_map" % pid).read().split() == ["0", "200000", "65536"]
    assert proc_status(pid)["Uid"].split()[0] == "200000"          # an ordinary host user
    out = wait_for("/proc/%d/root/tmp/out" % pid).split()
    assert out[0] == "0"                                      # root inside...
    assert out[1] == "write=1"                                # ...that cannot touch the jail
    assert out[2] == "0"                                      # no host cgroup hierarchy in /sys
    assert open("/proc/%d/root/etc/hosts" % pid).read() == "10.0.0.1 box\n"


def test_userns_container_on_a_nosuid_nodev_jail(lab, module, netns):
    """The host mounts jails nosuid,nodev: in the container's user namespace those flags are
    locked, and the init's remount of its root must keep them (or the start fails EPERM)."""
    assert module("nslab_jail", dict(lab=lab.name, name="box", source="busybox"))["changed"]
    root = "/var/lib/nslab/%s/jails/box/root" % lab.name
    subprocess.run(["mount", "-o", "remount,nosuid,nodev", root], check=True)
    result = module("nslab_container", dict(lab=lab.name, name="box", jail="box", netns=netns,
                                            userns=True, userns_base=200000,
                                            command=["sleep", "1000"]))
    assert result["_status"] == "ok", result.get("msg")
    pid = result["containers"][0]["pid"]
    options = dict((m.split()[4], m.split()[5]) for m in open("/proc/%d/mountinfo" % pid))["/"]
    assert {"nosuid", "nodev"} <= set(options.split(",")), options


def test_a_container_cut_off_from_its_netns_or_cgroup_is_restarted(lab, module, rootfs, netns):
    """Issue #16: its net namespace deleted and made again, or its cgroup emptied, removed
    and made again: the init still runs, in the dead namespace or the parent cgroup. The
    next converge restarts it (a change, saying why); the one after changes nothing."""
    assert module("nslab_cgroup", dict(lab=lab.name, name="box", pids=64))["_status"] == "ok"
    args = container(lab, rootfs, netns, command=["sleep", "1000"], cgroup="box")
    pid = module("nslab_container", args)["containers"][0]["pid"]
    assert module("nslab_container", args)["changed"] is False

    sh("ip", "netns", "del", netns)
    assert module("nslab_namespace", dict(lab=lab.name, name=netns))["changed"]
    healed = module("nslab_container", args)
    assert healed["actions"] == ["restart container 'box' (its net namespace was replaced)"]
    pid = healed["containers"][0]["pid"]
    assert os.stat("/proc/%d/ns/net" % pid).st_ino == os.stat("/run/netns/" + netns).st_ino
    assert module("nslab_container", args)["changed"] is False

    dirs = glob.glob("/sys/fs/cgroup/*/nslab/%s/box" % lab.name)
    assert dirs
    for directory in dirs:               # its processes moved to the lab's cgroup, then rmdir
        for _attempt in range(50):
            procs = open(os.path.join(directory, "cgroup.procs")).read().split()
            if not procs:
                break
            for proc in procs:
                try:
                    with open(os.path.join(os.path.dirname(directory), "cgroup.procs"),
                              "w") as handle:
                        handle.write(proc)
                except ProcessLookupError:
                    pass
        os.rmdir(directory)
    assert module("nslab_cgroup", dict(lab=lab.name, name="box", pids=64))["changed"]
    check = module("nslab_container", args, check=True)
    assert check["actions"] == ["restart container 'box' (it is no longer in its cgroup "
                                "nslab/%s/box)" % lab.name]
    healed = module("nslab_container", args)
    assert healed["actions"] == check["actions"]
    pid = healed["containers"][0]["pid"]
    for directory in dirs:
        assert str(pid) in open(os.path.join(directory, "cgroup.procs")).read().split()
    assert module("nslab_container", args)["changed"] is False

"""Inits forked by one launcher per module run (nslab_init.launcher): each is labelled as
its own container, holds only its own container's descriptors, and shares the launcher's
pages, so its PSS is a fraction of a fresh interpreter's. Memory, not time, is asserted."""

import os
import re

from helpers.lab import BUSYBOX, BUSYBOX_APPLETS, BUSYBOX_SKIP

pytestmark = BUSYBOX_SKIP

COUNT = 20
# A fresh `python3 -I -S -` fed the init source idles at 7-9 MiB PSS (8.39 MiB measured by
# the bench at N=100 before the launcher). A forked init owns only the pages it wrote since
# the fork (stack, its config, the objects it touched); the interpreter and the compiled
# source are shared by COUNT inits (1/COUNT of them each). Measured here: 2.6 MiB each at
# COUNT=20 (2.2 MiB of it private: the pages CPython's reference counts and the init's own
# work dirtied after the fork). 4 MiB is under half a fresh interpreter's, which can never
# pass it, with room for a different build of python3 on the target.
PSS_BOUND_KIB = 4 * 1024


def make_rootfs(top, name):
    """A busybox jail whose binary is a hard link of one copy: 20 jails, one 2 MB file."""
    root = top / name
    (root / "bin").mkdir(parents=True)
    shared = top / "busybox"
    if not shared.exists():
        shared.write_bytes(open(BUSYBOX, "rb").read())
        os.chmod(shared, 0o755)
    os.link(shared, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    (root / "tmp").mkdir()
    return root


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().split(b"\0")
    except OSError:        # gone meanwhile
        return []


def pss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as handle:
        return int(re.search(r"^Pss:\s+(\d+) kB", handle.read(), re.M).group(1))


def fd_targets(pid):
    directory = "/proc/%d/fd" % pid
    return dict((int(fd), os.readlink(os.path.join(directory, fd)))
                for fd in os.listdir(directory))


def label(lab, name):
    return ("nslab:%s:%s" % (lab.name, name)).encode()


def start(lab, module, tmp_path, names):
    result = module("nslab_container", dict(lab=lab.name, containers=[
        dict(name=name, rootfs=str(make_rootfs(tmp_path, name)),
             command=["sh", "-c", "echo up; exec sleep 1000"],
             files={"/etc/hostname": name + "\n"}) for name in names]))
    assert result["changed"] is True, result
    return dict((c["name"], c["pid"]) for c in result["containers"])


def test_inits_of_one_task_are_labelled_apart_hold_only_their_own_and_share_memory(
        lab, module, tmp_path):
    names = ["node%02d" % i for i in range(COUNT)]
    pids = start(lab, module, tmp_path, names)
    assert sorted(pids) == names
    # Labels: each init's command line has its own label as a whole argument, none other.
    for name, pid in pids.items():
        argv = cmdline(pid)
        assert label(lab, name) in argv, (name, argv)
        assert [a for a in argv if a.startswith(b"nslab")] == [label(lab, name)], argv
    # nslab_adopt's finder (the label as a whole argument) finds each init, and only it.
    from ansible.module_utils.nslab_adopt import init_label, labelled_pids
    found = labelled_pids([init_label(lab.name, name) for name in names])
    assert found == dict((init_label(lab.name, n), [p]) for n, p in pids.items())
    # No launcher is left behind: the inits are all nslab keeps running.
    assert not [p for p in os.listdir("/proc") if p.isdigit() and any(
        a.startswith(b"nslab-launcher:%s:" % lab.name.encode()) for a in cmdline(int(p)))]

    # Descriptors: an init holds its own log files, pipes no other init holds, /dev/null;
    # no socket (the launcher's), no other container's log or files.
    directory = "/run/nslab/%s/containers" % lab.name
    pipes = {}
    for name, pid in pids.items():
        own_logs = {os.path.join(directory, name + ".log"),
                    os.path.join(directory, name + ".log.1")}
        targets = fd_targets(pid)
        logs = set(t for t in targets.values() if t.startswith(directory))
        assert logs == own_logs, (name, targets)
        for fd, target in targets.items():
            assert target in own_logs or target == "/dev/null" or \
                target.startswith("pipe:["), (name, fd, target)
            if target.startswith("pipe:["):
                pipes.setdefault(target, set()).add(name)
    shared = dict((p, n) for p, n in pipes.items() if len(n) > 1)
    assert not shared, shared

    # Memory: each init's PSS is a fraction of a fresh interpreter's.
    sizes = dict((name, pss_kib(pid)) for name, pid in pids.items())
    assert max(sizes.values()) < PSS_BOUND_KIB, sizes

    # Each works: its command ran and wrote into its own log through its init.
    for name in names:
        with open(os.path.join(directory, name + ".log")) as handle:
            assert "up" in handle.read().split(), name

    # A container started alone later: a launcher with one child, labelled the same way.
    later = start(lab, module, tmp_path, ["late"])
    assert label(lab, "late") in cmdline(later["late"])
    assert set(t for t in fd_targets(later["late"]).values() if t.startswith(directory)) == \
        {os.path.join(directory, "late.log"), os.path.join(directory, "late.log.1")}
    again = module("nslab_container", dict(lab=lab.name, name="late",
                                           rootfs=str(tmp_path / "late"),
                                           command=["sh", "-c", "echo up; exec sleep 1000"],
                                           files={"/etc/hostname": "late\n"}))
    assert again["changed"] is False
    assert all(os.path.exists("/proc/%d" % pid) for pid in pids.values())

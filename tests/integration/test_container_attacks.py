"""A hostile container against nslab's runtime (issue #15, #16): each attack is run AS THE
CONTAINER'S OWN PROCESS - its command, or a command through the door the connection plugin
uses - on a busybox jail, and what it achieved is read back from the kernel. Where it is
cheap, the same attack is run with the protection off (a privileged container) to show that
the test can fail."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from helpers.ansible_runs import ansible_env, task_results
from helpers.kernel import proc_status
from helpers.lab import BUSYBOX_SKIP
from helpers.paths import BIN, ROOT

pytestmark = BUSYBOX_SKIP


@pytest.fixture
def netns(lab, module):
    assert module("nslab_namespace", dict(lab=lab.name, name=lab.n("a")))["changed"]
    return lab.n("a")


def wait_for(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as handle:
                return handle.read()
        time.sleep(0.05)
    raise AssertionError("%s never appeared" % path)


def run_in_node(lab, module, rootfs, netns, script, **options):
    """Start container 'box' whose command runs ``script`` (busybox sh) and keeps running;
    returns (module result, the script's combined output)."""
    command = ["sh", "-c", "(%s) > /tmp/out.part 2>&1; mv /tmp/out.part /tmp/out; "
                           "exec sleep 1000" % script]
    args = dict(lab=lab.name, name="box", rootfs=str(rootfs), netns=netns, command=command)
    args.update(options)
    result = module("nslab_container", args)
    assert result["_status"] == "ok", result.get("msg")
    return result, wait_for(str(rootfs / "tmp" / "out"))


def door(lab, name, command):
    """``command`` run in the container by the nslab connection plugin (the door)."""
    argv = [str(BIN / "ansible"), "all", "-i", "%s/%s," % (lab.name, name), "-c", "nslab.lab.nslab",
            "-m", "raw", "-a", command]
    env = dict(ansible_env(), ANSIBLE_STDOUT_CALLBACK="default")
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)


IRQ = sorted((d for d in os.listdir("/proc/irq") if d.isdigit()), key=int)[-1]
SURFACES = (
    # reads: each prints "<path> <bytes read>"
    "for f in /proc/keys /proc/timer_list /proc/kcore /proc/sched_debug /proc/latency_stats; do "
    "  echo \"read $f $(busybox cat $f 2>/dev/null | busybox wc -c)\"; done; "
    "echo \"read /sys/firmware $(busybox ls -A /sys/firmware 2>/dev/null | busybox wc -l)\"; "
    # writes of what is there already (harmless if they got through)
    "v=$(busybox cat /proc/irq/%s/smp_affinity); "
    "echo $v > /proc/irq/%s/smp_affinity && echo write irq ok; "
    "busybox test -w /proc/sysrq-trigger && echo writable sysrq || echo write sysrq refused; "
    "busybox cat /proc/1/environ > /dev/null && echo read environ ok; "
    # opening another process's memory is the ptrace attach check
    "busybox dd if=/proc/1/mem bs=1 count=1 skip=4096 > /dev/null && echo read mem ok; "
    "busybox readlink /proc/1/fd/0 && echo read fd ok; "
    "true" % (IRQ, IRQ))


def test_kernel_surfaces_are_masked_read_only_and_pid1_is_untouchable(lab, module, rootfs,
                                                                      netns):
    _result, out = run_in_node(lab, module, rootfs, netns, SURFACES)
    reads = dict(line.split()[1:] for line in out.splitlines() if line.startswith("read /"))
    assert reads == {"/proc/keys": "0", "/proc/timer_list": "0", "/proc/kcore": "0",
                     "/proc/sched_debug": "0", "/proc/latency_stats": "0",
                     "/sys/firmware": "0"}, out
    assert "/proc/irq/%s/smp_affinity: Read-only file system" % IRQ in out, out
    assert "write irq ok" not in out
    assert "write sysrq refused" in out, out
    assert "read environ ok" not in out and "open '/proc/1/environ': Permission denied" in out, out
    assert "open '/proc/1/mem': Permission denied" in out, out
    assert "read fd ok" not in out, out


def test_without_the_protection_the_same_reads_get_through(lab, module, rootfs, netns):
    """A privileged container (the documented way to turn it all off) reads what the test
    above expects hidden: the test can fail."""
    _result, out = run_in_node(lab, module, rootfs, netns, SURFACES.replace(
        "echo $v > /proc/irq", "true /proc/irq"), privileged=True)
    reads = dict(line.split()[1:] for line in out.splitlines() if line.startswith("read /"))
    assert int(reads["/proc/keys"]) > 0 and int(reads["/proc/timer_list"]) > 0, out
    assert int(reads["/sys/firmware"]) > 0, out
    assert "read environ ok" in out and "open '/proc/1/mem': Permission denied" not in out, out


def test_the_doors_command_is_held_like_the_node(lab, module, rootfs, netns):
    """The node replaces its /bin/sh (what the door runs): that program runs with the
    node's capabilities and no_new_privs, never the host root's."""
    script = ("busybox rm /bin/sh; "
              "printf '#!/bin/busybox sh\\nbusybox cat /proc/self/status > /tmp/status\\n' "
              "> /bin/sh; busybox chmod 755 /bin/sh")
    result, _out = run_in_node(lab, module, rootfs, netns, script)
    proc = door(lab, "box", "anything")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = dict(line.split(":\t", 1) for line in
                  (rootfs / "tmp" / "status").read_text().splitlines() if ":\t" in line)
    init = proc_status(result["containers"][0]["pid"])
    assert status["CapEff"].strip() == init["CapEff"] != "000001ffffffffff"
    assert status["CapBnd"].strip() == init["CapBnd"]
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"                  # the node's filter, too


def test_a_command_that_cannot_run_fails_the_start_every_time(lab, module, rootfs, netns):
    args = dict(lab=lab.name, name="box", rootfs=str(rootfs), netns=netns,
                command=["no-such-program", "-x"])
    for _run in range(2):                     # a rerun fails the same way: no flip-flop
        result = module("nslab_container", args)
        assert result["_status"] == "failed"
        assert "container 'box' did not start: cannot run 'no-such-program': No such file " \
               "or directory" in result["msg"], result["msg"]
        assert not os.path.exists("/run/nslab/%s/containers" % lab.name)
        assert lab.init_pids() == []
    bad_dir = module("nslab_container", dict(args, command=["sleep", "1"], workdir="/nowhere"))
    assert bad_dir["_status"] == "failed"
    assert "cannot enter workdir '/nowhere': No such file or directory" in bad_dir["msg"]


def bounded_module(args, timeout=60):
    """nslab_container run with a time limit; returns (result, seconds, peak RSS in KiB of
    the biggest process of the run: ansible or the module)."""
    argv = [str(BIN / "ansible"), "localhost", "-m", "nslab_container", "-a", json.dumps(args)]
    probe = ("import resource, subprocess, sys, time; start = time.monotonic(); "
             "out = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=%d); "
             "print(out.stdout); print('SECONDS', time.monotonic() - start); "
             "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)" % timeout)
    proc = subprocess.run([sys.executable, "-c", probe] + argv, cwd=ROOT, env=ansible_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, "the run did not finish within %d s:\n%s" % (
        timeout, proc.stderr[-2000:])
    tail = dict(line.split() for line in proc.stdout.splitlines()
                if line.startswith(("SECONDS", "MAXRSS")))
    return task_results(proc.stdout)[0], float(tail["SECONDS"]), int(tail["MAXRSS"])


def test_a_node_that_turns_its_files_hostile_cannot_stall_or_bloat_the_host(lab, module, rootfs,
                                                                            netns):
    script = ("busybox rm -f /etc/hosts; echo rm=$?; busybox mkfifo /etc/hosts 2>/dev/null; "
              "echo mkfifo=$?; busybox truncate -s 2G /etc/hosts; echo truncate=$?")
    result, out = run_in_node(lab, module, rootfs, netns, script, files={"/etc/hosts": "1\n"})
    # from inside: the bound file can be neither replaced nor grown
    assert "rm=1" in out and "mkfifo=1" in out and "truncate=1" in out, out
    pid = result["containers"][0]["pid"]
    assert open("/proc/%d/root/etc/hosts" % pid).read() == "1\n"

    # the node's own root holds a FIFO where the file goes (its upper layer is its own)
    hosts = rootfs / "etc" / "hosts"
    hosts.unlink()
    os.mkfifo(str(hosts))
    args = dict(lab=lab.name, name="box", rootfs=str(rootfs), netns=netns, files={
        "/etc/hosts": "2\n"}, command=["sleep", "1000"])
    for state in ("started", "restarted"):
        result, seconds, _rss = bounded_module(dict(args, state=state))
        assert result["_status"] == "ok", result.get("msg")
        assert seconds < 30
    pid = result["containers"][0]["pid"]
    assert open("/proc/%d/root/etc/hosts" % pid).read() == "2\n"
    assert os.path.isfile(str(hosts))              # the init replaced the FIFO inside

    # a 2 GiB sparse file there: the host never reads it
    os.truncate(str(hosts), 2 << 30)
    result, seconds, rss = bounded_module(dict(args, files={"/etc/hosts": "3\n"},
                                               state="restarted"))
    assert result["_status"] == "ok", result.get("msg")
    assert seconds < 30 and rss < 200 * 1024, (seconds, rss)
    assert open("/proc/%d/root/etc/hosts" % result["containers"][0]["pid"]).read() == "3\n"


def test_a_node_flooding_its_output_leaves_at_most_twice_log_max_size(lab, module, rootfs,
                                                                      netns):
    flood = ("busybox dd if=/dev/zero bs=65536 count=3200; echo flood over; "
             "echo done > /tmp/done; exec sleep 1000")         # 200 MiB to stdout
    result = module("nslab_container", dict(lab=lab.name, name="box", rootfs=str(rootfs),
                                            netns=netns, command=["sh", "-c", flood]))
    assert result["_status"] == "ok", result.get("msg")
    wait_for(str(rootfs / "tmp" / "done"), timeout=120)
    log = result["containers"][0]["log"]
    deadline = time.monotonic() + 10
    while b"flood over" not in open(log, "rb").read() and time.monotonic() < deadline:
        time.sleep(0.1)                       # the relay copies what is left in the pipe
    sizes = [os.path.getsize(path) for path in (log, log + ".1")]
    assert all(size <= 1024 * 1024 for size in sizes) and sum(sizes) > 1024 * 1024, sizes
    assert b"flood over" in open(log, "rb").read()         # the newest output is kept
    for path in (log, log + ".1", os.path.dirname(log)):
        assert os.stat(path).st_mode & 0o077 == 0, path    # closed to other host users
    gone = module("nslab_container", dict(lab=lab.name, name="box", state="absent"))
    assert gone["changed"] and not os.path.exists(log + ".1")


ESCAPE = ("busybox mkdir -p /mnt/m /mnt/p; "
          "/usr/bin/unshare -U -r -C -m sh -c 'busybox mount -t cgroup -o memory x /mnt/m && "
          "echo 4G > /mnt/m/memory.limit_in_bytes'; echo memory=$?; "
          "/usr/bin/unshare -U -r -C -m sh -c 'busybox mount -t cgroup -o pids x /mnt/p && "
          "echo max > /mnt/p/pids.max'; echo pids=$?")


def bring_host_binary(rootfs, name):
    """Copy the host's ``name`` and the libraries it links into the jail, as a node can
    bring any tool of its own."""
    binary = shutil.which(name)
    if not binary:
        pytest.skip("needs the host's %s" % name)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    for path in [binary] + [w for w in ldd.split() if w.startswith("/")]:
        target = rootfs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(path), str(target))


def cgroup_value(lab, controller, key):
    with open("/sys/fs/cgroup/%s/nslab/%s/box/%s" % (controller, lab.name, key)) as handle:
        return handle.read().strip()


@pytest.mark.parametrize("seccomp", ["default", "unconfined"])
def test_a_node_cannot_raise_its_own_cgroup_limits(lab, module, rootfs, netns, seccomp):
    """Issue #15's escape: a new user namespace (and a cgroup namespace it owns) gives the
    node's root every capability again, enough to mount its cgroup v1 hierarchies and raise
    its limits. The seccomp
    filter refuses the user namespace; unconfined, the attack works (the test can fail)."""
    if not os.path.isdir("/sys/fs/cgroup/memory") or not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("needs the cgroup v1 memory and pids hierarchies")
    result = module("nslab_cgroup", dict(lab=lab.name, name="box", memory="64M", pids=64))
    assert result["_status"] == "ok", result.get("msg")
    before = cgroup_value(lab, "memory", "memory.limit_in_bytes"), cgroup_value(
        lab, "pids", "pids.max")
    assert before == (str(64 << 20), "64")
    bring_host_binary(rootfs, "unshare")     # busybox's unshare has no cgroup namespace
    _result, out = run_in_node(lab, module, rootfs, netns, ESCAPE, cgroup="box",
                               seccomp=seccomp)
    after = cgroup_value(lab, "memory", "memory.limit_in_bytes"), cgroup_value(
        lab, "pids", "pids.max")
    if seccomp == "default":
        assert "memory=0" not in out and "pids=0" not in out, out
        assert after == before, out
    else:
        assert "memory=0" in out and "pids=0" in out, out
        assert after == (str(4 << 30), "max")


def test_a_1100_deep_tree_in_its_bind_does_not_stop_its_removal(lab, module, rootfs, netns):
    deep = "cd /data; i=0; while [ $i -lt 1100 ]; do busybox mkdir d; cd d; i=$((i+1)); done"
    run_in_node(lab, module, rootfs, netns, deep, binds=[{"path": "/data"}])
    owned = "/var/lib/nslab/%s/binds/box" % lab.name
    assert os.path.isdir(owned + "/data/d/d/d")
    gone = module("nslab_container", dict(lab=lab.name, name="box", state="absent"))
    assert gone["_status"] == "ok", gone.get("msg")
    assert not os.path.exists(owned)

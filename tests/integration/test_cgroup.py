"""nslab_cgroup against the real kernel (cgroup v1 on this machine): limits are written where
they belong and the kernel enforces them on processes the tests spawn themselves."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers.kernel import lab_cgroup_dirs
from helpers.lab import STATE_ROOT
from helpers.interpreters import python39

V1_MEMORY = "/sys/fs/cgroup/memory"

# A child that waits for a line on stdin before it does its work, so that the test can move
# it into a cgroup first.
FORKER = r"""
import os, sys, time
sys.stdin.readline()
children, error = [], 0
try:
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
except OSError as err:
    error = err.errno
print(len(children), error, flush=True)
sys.stdin.readline()
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""
ALLOCATOR = r"""
import sys
sys.stdin.readline()
chunks = []
for _ in range(64):
    chunks.append(b"x" * (4 << 20))      # written, so every page is really charged
print("survived", flush=True)
"""
BUSY_LOOP = r"""
import sys
sys.stdin.readline()
while True:
    pass
"""
HOLD_MEMORY = r"""
import sys, time
sys.stdin.readline()
data = b"x" * (24 << 20)
print("holding", flush=True)
time.sleep(60)
"""


@pytest.fixture
def spawn():
    """Start python children of this test; all are killed and reaped in teardown."""
    children = []

    def start(code):
        child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        children.append(child)
        return child
    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()


def go(child):
    child.stdin.write("\n")
    child.stdin.flush()


def leaf(result, controller):
    return result["cgroups"][0]["paths"][controller]


def read(path):
    with open(path) as handle:
        return handle.read().strip()


def a_disk():
    """MAJ:MIN of a whole disk of this machine (loop devices excluded), or None."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram")):
            return read("/sys/block/%s/dev" % name)
    return None


def test_check_mode_creates_nothing(lab, module):
    result = module("nslab_cgroup", dict(lab=lab.name, name="web/a", memory="64M", pids=10),
                    check=True, diff=True)
    assert result["_status"] == "ok" and result["changed"] is True
    assert result["actions"][0].startswith("create cgroup 'nslab/%s/web/a'" % lab.name)
    assert result["diff"]["before"]["web/a"] == {"state": "absent"}
    assert result["diff"]["after"]["web/a"] == {"state": "present", "memory": 64 << 20,
                                                 "pids": 10}
    assert result["cgroups"][0]["state"] == "absent"
    assert lab_cgroup_dirs(lab.name) == []
    assert not os.path.exists(os.path.join(STATE_ROOT, lab.name))


def test_create_rerun_update_and_delete(lab, module):
    disk = a_disk()
    args = dict(lab=lab.name, name="web/a", memory=1000000, cpus=0.5, cpu_weight=50,
                pids=64, cpuset="0", cpuset_mems="0",
                io=[dict(device=disk, read_bps="1M", write_iops=200)] if disk else None)
    result = module("nslab_cgroup", args, diff=True)
    assert result["_status"] == "ok" and result["changed"] is True, result
    assert result["layout"]["controllers"]["memory"] == {"version": 1, "mount": V1_MEMORY}
    # each limit in its v1 file, as the kernel keeps it (memory rounded down to pages)
    assert read(leaf(result, "memory") + "/memory.limit_in_bytes") == "999424"
    assert read(leaf(result, "cpu") + "/cpu.cfs_quota_us") == "50000"
    assert read(leaf(result, "cpu") + "/cpu.cfs_period_us") == "100000"
    assert read(leaf(result, "cpu") + "/cpu.shares") == "512"
    assert read(leaf(result, "pids") + "/pids.max") == "64"
    assert read(leaf(result, "cpuset") + "/cpuset.cpus") == "0"
    limits = result["cgroups"][0]["limits"]
    assert limits["memory"] == 999424 and limits["cpus"] == 0.5 and limits["cpu_weight"] == 50
    assert result["diff"]["after"]["web/a"]["memory"] == 999424
    if disk:
        assert read(leaf(result, "io") + "/blkio.throttle.read_bps_device") == "%s 1048576" % disk
        assert read(leaf(result, "io") + "/blkio.throttle.write_iops_device") == "%s 200" % disk
        assert limits["io"] == [dict(device=disk, read_bps=1 << 20, write_bps="max",
                                     read_iops="max", write_iops=200)]

    again = module("nslab_cgroup", args)
    assert again["changed"] is False and again["actions"] == []

    changed = module("nslab_cgroup", dict(lab=lab.name, name="web/a", memory="256M", cpus="max",
                                          io=[]), diff=True)
    assert changed["actions"] == [
        "set memory of cgroup 'nslab/%s/web/a' from 999424 to 268435456" % lab.name,
        "set cpus of cgroup 'nslab/%s/web/a' from 0.5 to max" % lab.name,
    ] + (["set io of cgroup 'nslab/%s/web/a' from %s read_bps=1048576 write_iops=200 to none"
          % (lab.name, disk)] if disk else [])
    assert read(leaf(changed, "cpu") + "/cpu.cfs_quota_us") == "-1"
    assert changed["diff"]["before"]["web/a"]["cpus"] == 0.5
    assert changed["diff"]["after"]["web/a"]["cpus"] == "max"
    if disk:
        assert read(leaf(changed, "io") + "/blkio.throttle.read_bps_device") == ""

    gone = module("nslab_cgroup", dict(lab=lab.name, name="web/a", state="absent"))
    assert gone["changed"] is True and gone["cgroups"][0]["state"] == "absent"
    assert lab.leftovers() == []
    assert module("nslab_cgroup", dict(lab=lab.name, name="web/a",
                                       state="absent"))["changed"] is False


def test_pids_limit_stops_forks(lab, module, spawn):
    child = spawn(FORKER)
    result = module("nslab_cgroup", dict(lab=lab.name, name="fork", pids=10,
                                         procs=[child.pid]))
    assert result["actions"][-1] == "move process %d into cgroup 'nslab/%s/fork'" % (
        child.pid, lab.name)
    assert result["cgroups"][0]["procs"] == [child.pid]
    go(child)
    forked, error = map(int, child.stdout.readline().split())
    # the child itself counts: 9 forks succeed, the 10th gets EAGAIN
    assert (forked, error) == (9, errno.EAGAIN)
    usage = module("nslab_cgroup", dict(lab=lab.name, name="fork"))["cgroups"][0]["usage"]
    assert usage["pids"] == 10
    go(child)
    child.wait(timeout=10)


def test_memory_limit_oom_kills_inside_the_cgroup(lab, module, spawn):
    child = spawn(ALLOCATOR)
    module("nslab_cgroup", dict(lab=lab.name, name="oom", memory="32M", procs=[child.pid]))
    go(child)
    assert child.wait(timeout=20) == -signal.SIGKILL
    assert child.stdout.read() == ""                # it never got past the limit
    result = module("nslab_cgroup", dict(lab=lab.name, name="oom"))
    usage = result["cgroups"][0]["usage"]
    assert usage["oom_kills"] >= 1
    assert usage["memory_peak_bytes"] <= 32 << 20
    assert result["cgroups"][0]["procs"] == []
    assert os.getpid() > 0 and result["_status"] == "ok"    # the runner lives on


def test_cpu_quota_limits_a_busy_loop(lab, module, spawn):
    child = spawn(BUSY_LOOP)
    result = module("nslab_cgroup", dict(lab=lab.name, name="cpu", cpus=0.2,
                                         procs=[child.pid]))
    usage_file = leaf(result, "cpuacct") + "/cpuacct.usage"
    start_ns, start = int(read(usage_file)), time.monotonic()
    go(child)
    time.sleep(2.0)
    used = (int(read(usage_file)) - start_ns) / 1e9
    share = used / (time.monotonic() - start)
    assert 0.1 <= share <= 0.35, "busy loop got %.2f CPUs under cpus: 0.2" % share
    usage = module("nslab_cgroup", dict(lab=lab.name, name="cpu"))["cgroups"][0]["usage"]
    assert usage["cpu_usec"] >= used * 1e6 * 0.9
    assert usage["cpu_throttled_periods"] > 0 and usage["cpu_throttled_usec"] > 0


def test_deleting_a_cgroup_with_processes_fails_unless_kill(lab, module, spawn):
    child = spawn(BUSY_LOOP)
    module("nslab_cgroup", dict(lab=lab.name, name="busy", procs=[child.pid]))
    refused = module("nslab_cgroup", dict(lab=lab.name, name="busy", state="absent"))
    assert refused["_status"] == "failed"
    assert "still has processes %d" % child.pid in refused["msg"]
    assert "kill=true" in refused["msg"] and refused["pids"] == [child.pid]
    assert child.poll() is None and lab_cgroup_dirs(lab.name)

    check = module("nslab_cgroup", dict(lab=lab.name, name="busy", state="absent", kill=True),
                   check=True)
    assert check["actions"] == ["kill 1 process (%d) in cgroup 'nslab/%s/busy' and delete it"
                                % (child.pid, lab.name)]
    assert child.poll() is None

    killed = module("nslab_cgroup", dict(lab=lab.name, name="busy", state="absent", kill=True))
    assert killed["changed"] is True
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert lab.leftovers() == []


def test_children_are_deleted_first_and_parents_cleaned_up(lab, module):
    made = module("nslab_cgroup", dict(lab=lab.name, cgroups=[
        dict(name="web/a", pids=10), dict(name="web", pids=100), dict(name="db/b")]))
    # web/a comes first and makes web; web's own create only records it
    assert made["_status"] == "ok" and made["changed"] is True, made
    assert [a.split(" (")[0] for a in made["actions"][:3]] == [
        "create cgroup 'nslab/%s/%s'" % (lab.name, n) for n in ("web/a", "web", "db/b")]
    refused = module("nslab_cgroup", dict(lab=lab.name, name="web", state="absent"))
    assert refused["_status"] == "failed" and "has child cgroups a" in refused["msg"]
    both = module("nslab_cgroup", dict(lab=lab.name, state="absent", cgroups=[
        dict(name="web"), dict(name="web/a")]))
    assert both["actions"] == ["delete cgroup 'nslab/%s/web/a'" % lab.name,
                               "delete cgroup 'nslab/%s/web'" % lab.name]
    assert not os.path.exists(os.path.join(V1_MEMORY, "nslab", lab.name, "web"))
    # db, made by nslab as db/b's parent, goes with it; then the lab's directory
    module("nslab_cgroup", dict(lab=lab.name, name="db/b", state="absent"))
    assert lab.leftovers() == []


def test_foreign_cgroup_is_refused_and_untouched(lab, module):
    # With the lab's record in place, a directory it does not name is not nslab's (without
    # any record, the lab's own subtree is adopted: test_lost_state).
    assert module("nslab_cgroup", dict(lab=lab.name, name="mine"))["changed"] is True
    hand = os.path.join(V1_MEMORY, "nslab", lab.name, "hand")
    os.makedirs(hand)
    for state in ("present", "absent"):
        result = module("nslab_cgroup", dict(lab=lab.name, name="hand", state=state, kill=True))
        assert result["_status"] == "failed"
        assert "cgroup 'nslab/%s/hand' exists and is not nslab's" % lab.name in result["msg"]
    assert os.path.isdir(hand) and read(hand + "/memory.limit_in_bytes") == "9223372036854771712"


def test_limits_this_host_cannot_enforce_and_bad_values_fail_clearly(lab, module):
    result = module("nslab_cgroup", dict(lab=lab.name, cgroups=[
        dict(name="a", memory_high="100M", io_weight=200),
        dict(name="../escape", memory="12Q", cpus=0, pids=-1, cpuset="3-1"),
        dict(name="b", swap=0),
        dict(name="c", io=[dict(device="999:999", read_bps="1M")], procs=[2 ** 22 + 1])]))
    assert result["_status"] == "failed"
    problems = result["problems"]
    expected = ["cgroups[0].memory_high: '104857600' cannot be enforced on this host: the "
                "memory controller is cgroup v1 (%s) and cgroup v1 has no memory.high" % V1_MEMORY,
                "cgroups[0].io_weight: '200' cannot be enforced on this host",
                "cgroups[1].name: cgroup name '../escape' is invalid",
                "cgroups[1].memory: size '12Q' is invalid",
                "cgroups[1].cpus: 0 is invalid; expected a number of CPUs of at least 0.01",
                "cgroups[1].pids: -1 is invalid; expected an integer from 1 to 4194304",
                "cgroups[1].cpuset: '3-1' is not a list of CPUs",
                "cgroups[2].swap: '0' needs memory set to a size on this host",
                "cgroups[3].io[0].device: '999:999' is invalid: no block device 999:999",
                "cgroups[3].procs: process %d does not exist" % (2 ** 22 + 1)]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected)
    assert lab_cgroup_dirs(lab.name) == []


def test_v1_swap_is_written_with_memory_in_a_safe_order(lab, module):
    if not os.path.exists(os.path.join(V1_MEMORY, "memory.memsw.limit_in_bytes")):
        pytest.skip("swap accounting is off on this host")
    first = module("nslab_cgroup", dict(lab=lab.name, name="s", memory="64M", swap=0))
    memsw = leaf(first, "memory") + "/memory.memsw.limit_in_bytes"
    assert read(memsw) == str(64 << 20) and first["cgroups"][0]["limits"]["swap"] == 0
    # memory above the current memory+swap: the kernel only accepts memsw raised first
    grown = module("nslab_cgroup", dict(lab=lab.name, name="s", memory="128M", swap=0))
    assert grown["_status"] == "ok", grown.get("msg")
    assert [a.split(" of ")[0] for a in grown["actions"]] == ["set memory"]
    assert read(memsw) == str(128 << 20)
    swapping = module("nslab_cgroup", dict(lab=lab.name, name="s", memory="96M", swap="64M"))
    assert swapping["_status"] == "ok", swapping.get("msg")
    assert read(memsw) == str(160 << 20) and swapping["cgroups"][0]["limits"]["swap"] == 64 << 20
    assert module("nslab_cgroup", dict(lab=lab.name, name="s", memory="96M",
                                       swap="64M"))["changed"] is False


def test_failure_half_way_rolls_back_this_runs_cgroups(lab, module, spawn):
    # "full" holds 24 MiB of anonymous memory and there is no swap: the kernel refuses a
    # 4 MiB limit (EBUSY) after "fresh" has been created in the same run.
    holder = spawn(HOLD_MEMORY)
    module("nslab_cgroup", dict(lab=lab.name, name="full", procs=[holder.pid]))
    go(holder)
    assert holder.stdout.readline().strip() == "holding"
    result = module("nslab_cgroup", dict(lab=lab.name, cgroups=[
        dict(name="fresh", memory="64M", pids=10), dict(name="full", memory="4M")]))
    assert result["_status"] == "failed", result
    assert "memory: writing '4194304' to %s/nslab/%s/full/memory.limit_in_bytes failed: " \
           "Device or resource busy" % (V1_MEMORY, lab.name) in result["msg"]
    assert "rolled back" in result["msg"] and result["rollback_errors"] == []
    assert "mkdir %s/nslab/%s/fresh" % (V1_MEMORY, lab.name) in result["rolled_back"]
    assert not [d for d in lab_cgroup_dirs(lab.name) if os.path.exists(d + "/fresh")]
    assert read(os.path.join(V1_MEMORY, "nslab", lab.name, "full",
                             "memory.limit_in_bytes")) == "9223372036854771712"
    state = module("nslab_cgroup", dict(lab=lab.name, cgroups=[dict(name="full")]))
    assert state["changed"] is False                    # the record still holds "full" only
    assert module("nslab_cgroup", dict(lab=lab.name, name="fresh",
                                       state="absent"))["changed"] is False


@pytest.mark.skipif(python39() is None, reason="no python3.9 interpreter on this machine")
def test_converges_under_python39(lab, module):
    args = dict(lab=lab.name, cgroups=[dict(name="a", memory="1000000", cpus=1.5, pids=20),
                                       dict(name="a/b", cpuset="0")])
    made = module("nslab_cgroup", args, interpreter=python39())
    assert made["_status"] == "ok" and made["changed"] is True, made.get("msg")
    assert module("nslab_cgroup", args, interpreter=python39())["changed"] is False
    gone = module("nslab_cgroup", dict(lab=lab.name, state="absent", cgroups=[
        dict(name="a"), dict(name="a/b")]), interpreter=python39())
    assert gone["changed"] is True and lab.leftovers() == []

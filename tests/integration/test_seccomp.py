"""The container seccomp filter on the real kernel.

Each test runs a fresh ``python3 -I -S -`` fed with nslab_seccomp's source followed by a
probe script, as the container init is run: it sets no_new_privs, installs the filter
(or not: the baseline, which proves each probe can tell the difference) and tries
syscalls, each in a forked child so that one which succeeds changes nothing for the
next. The process stays root with every capability: what refuses is the filter alone.
Nothing here touches the host: the mounts aim at a path that does not exist, the
namespaces a probe may create die with it, no packet leaves a socketpair.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_containers import DEFAULT_CAPABILITIES

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = (ROOT / "module_utils" / "nslab_seccomp.py").read_text()
PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"
MISSING = "/nonexistent-nslab-seccomp-test"

if os.geteuid() != 0 or os.uname().machine not in ("x86_64", "aarch64"):
    pytest.skip("needs root on x86_64 or aarch64", allow_module_level=True)

PROBES = r'''
import ctypes, json, os, socket, subprocess, sys, threading

config = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = SECCOMP_SYSCALLS[os.uname().machine]
MISSING = config["missing"].encode()


def result(value):
    """0 on success, else errno."""
    return 0 if value >= 0 else ctypes.get_errno()


def syscall(number, *args):
    return result(libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args]))


def probe(function):
    """errno of function() run in a forked child; "signal N" if it was killed."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(min(function(), 255))
        except BaseException:
            os._exit(254)
    status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):
        return "signal %d" % os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if config["filter"]:
    assert libc.prctl(38, 1, 0, 0, 0) == 0                       # PR_SET_NO_NEW_PRIVS
    seccomp_install(config["capabilities"])

probes = {
    "unshare_user": lambda: result(libc.unshare(0x10000000)),
    "unshare_mount": lambda: result(libc.unshare(0x00020000)),
    "unshare_net": lambda: result(libc.unshare(0x40000000)),
    "unshare_fs": lambda: result(libc.unshare(0x200)),
    "mount": lambda: result(libc.mount(b"none", MISSING, b"tmpfs", ctypes.c_ulong(0), None)),
    "umount2": lambda: result(libc.umount2(MISSING, 0)),
    "pivot_root": lambda: syscall(NR["pivot_root"], 0, 0),
    "keyctl_get_keyring_id": lambda: syscall(NR["keyctl"], 0, -4, 0),
    "add_key": lambda: syscall(NR["add_key"], 0, 0, 0, 0, 0),
    "bpf": lambda: syscall(NR["bpf"], 0xffff, 0, 0),
    "perf_event_open": lambda: syscall(NR["perf_event_open"], 0, 0, -1, -1, 0),
    "io_uring_setup": lambda: syscall(NR["io_uring_setup"], 0, 0),
    "clone3": lambda: syscall(NR["clone3"], 0, 0),
    "personality_no_aslr": lambda: result(libc.personality(0x0040000)),
    "personality_query": lambda: result(libc.personality(0xffffffff)),
    "socket_vsock": lambda: syscall(NR["socket"], 40, socket.SOCK_STREAM, 0),
    "finit_module": lambda: syscall(NR["finit_module"], -1, 0, 0),
    "userfaultfd": lambda: syscall(NR["userfaultfd"], 0),
    "x32_getpid": lambda: syscall(0x40000000 | 39) if os.uname().machine == "x86_64" else 0,
}
out = {name: probe(function) for name, function in probes.items()}

with open("/proc/self/status") as handle:
    out["status"] = dict(line.split(":\t", 1) for line in handle.read().splitlines()
                         if line.startswith("Seccomp"))
out["true"] = subprocess.run(["/bin/true"]).returncode
shell = subprocess.run(["busybox", "sh", "-c", "echo shell ok; grep Seccomp: /proc/self/status"],
                       capture_output=True, text=True)
out["busybox"] = [shell.returncode, shell.stdout]
with open("/etc/os-release") as handle:
    out["read"] = len(handle.read())
threads = []
worker = threading.Thread(target=lambda: threads.append(threading.get_native_id()))
worker.start()
worker.join()
out["thread"] = len(threads)
left, right = socket.socketpair()
left.send(b"ping")
out["socketpair"] = right.recv(4).decode()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out["udp"] = udp.fileno() > 0
cli = subprocess.run(["unshare", "-U", "-r", "--mount", "true"], capture_output=True, text=True)
out["unshare_cli"] = [cli.returncode, cli.stderr.strip()]
print(json.dumps(out))
'''


def run_probes(filtered, capabilities=DEFAULT_CAPABILITIES):
    config = {"filter": filtered, "capabilities": list(capabilities), "missing": MISSING}
    proc = subprocess.run([PYTHON, "-I", "-S", "-", json.dumps(config)],
                          input=SOURCE + "\n" + PROBES, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


EPERM, ENOSYS, ENOENT = 1, 38, 2


@pytest.fixture(scope="module")
def unfiltered():
    return run_probes(False)


@pytest.fixture(scope="module")
def filtered():
    return run_probes(True)


def test_without_the_filter_every_probe_gets_past_it(unfiltered):
    """The baseline: as root without the filter each probe reaches the kernel and gets
    something other than the filter's answer, so the assertions below can fail."""
    assert unfiltered["status"]["Seccomp"] == "0"
    assert unfiltered["unshare_user"] == 0          # a new user namespace: the attack
    assert unfiltered["unshare_mount"] == 0
    assert unfiltered["unshare_net"] == 0
    assert unfiltered["mount"] == ENOENT and unfiltered["umount2"] == ENOENT
    assert unfiltered["keyctl_get_keyring_id"] == 0     # the host root's user keyring
    # (this kernel has no modules: finit_module is ENOSYS, still not the filter's EPERM)
    for name in ("pivot_root", "add_key", "bpf", "perf_event_open", "finit_module",
                 "userfaultfd"):
        assert unfiltered[name] != EPERM, name
    for name in ("io_uring_setup", "clone3"):
        assert unfiltered[name] != ENOSYS, name
    assert unfiltered["personality_no_aslr"] == 0
    assert unfiltered["socket_vsock"] != EPERM
    assert unfiltered["x32_getpid"] != "signal %d" % signal.SIGSYS
    assert unfiltered["unshare_cli"][0] == 0, unfiltered["unshare_cli"]


def test_the_kernel_reports_the_filter(filtered):
    assert filtered["status"]["Seccomp"] == "2"
    assert filtered["status"]["Seccomp_filters"] == "1"
    # children inherit it: the busybox shell's own status says so
    assert "Seccomp:\t2" in filtered["busybox"][1]


def test_new_namespaces_and_mounts_are_refused(filtered):
    for name in ("unshare_user", "unshare_mount", "unshare_net", "mount", "umount2",
                 "pivot_root"):
        assert filtered[name] == EPERM, name
    assert filtered["clone3"] == ENOSYS
    # unshare of what is not a namespace stays allowed
    assert filtered["unshare_fs"] == 0


def test_util_linux_unshare_of_a_user_namespace_fails(filtered):
    returncode, stderr = filtered["unshare_cli"]
    assert returncode != 0
    assert "Operation not permitted" in stderr


def test_host_wide_syscalls_are_refused(filtered):
    for name in ("keyctl_get_keyring_id", "add_key", "bpf", "perf_event_open",
                 "finit_module", "userfaultfd", "personality_no_aslr", "socket_vsock"):
        assert filtered[name] == EPERM, name
    assert filtered["io_uring_setup"] == ENOSYS
    assert filtered["personality_query"] == 0


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x32 is an x86_64 ABI")
def test_an_x32_syscall_kills_the_process(filtered):
    assert filtered["x32_getpid"] == "signal %d" % signal.SIGSYS


def test_ordinary_work_still_runs(filtered):
    assert filtered["true"] == 0
    assert filtered["busybox"][0] == 0 and filtered["busybox"][1].startswith("shell ok")
    assert filtered["read"] > 0
    assert filtered["thread"] == 1          # pthread_create: glibc falls back from clone3
    assert filtered["socketpair"] == "ping"
    assert filtered["udp"] is True


def test_sys_admin_lifts_the_namespace_rules_only():
    result = run_probes(True, DEFAULT_CAPABILITIES + ["SYS_ADMIN"])
    assert result["status"]["Seccomp"] == "2"
    assert result["unshare_mount"] == 0 and result["unshare_user"] == 0
    assert result["mount"] == ENOENT
    assert result["keyctl_get_keyring_id"] == EPERM
    assert result["finit_module"] == EPERM


def test_filter_costs_little_per_syscall():
    """getpid through the whole filter (it matches no rule, the longest path): measured
    against the same loop unfiltered, and bounded loosely for a shared 2-core machine."""
    loop = r'''
import ctypes, json, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if json.loads(sys.argv[1])["filter"]:
    libc.prctl(38, 1, 0, 0, 0)
    seccomp_install([])
getpid = libc.syscall
number = {"x86_64": 39, "aarch64": 172}[os.uname().machine]
best = None
for _ in range(5):
    start = time.perf_counter()
    for _ in range(20000):
        getpid(number)
    took = (time.perf_counter() - start) / 20000
    best = took if best is None else min(best, took)
print(best)
'''
    timings = {}
    for filtered in (False, True):
        proc = subprocess.run([PYTHON, "-I", "-S", "-", json.dumps({"filter": filtered})],
                              input=SOURCE + "\n" + loop, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        timings[filtered] = float(proc.stdout)
    extra_ns = (timings[True] - timings[False]) * 1e9
    print("getpid via ctypes: %.0f ns unfiltered, %.0f ns filtered (+%.0f ns)" % (
        timings[False] * 1e9, timings[True] * 1e9, extra_ns))
    assert extra_ns < 5000


def test_probes_are_fast():
    start = time.monotonic()
    run_probes(True)
    assert time.monotonic() - start < 5


INIT_SOURCE = (ROOT / "module_utils" / "nslab_init.py").read_text()
# What the init does before running a container's command, then the attack from inside:
# a new user namespace gives back every capability, with them a new cgroup namespace and
# a mount of the cgroup v1 pids hierarchy, whose root is the container's own cgroup, and
# its limit is rewritten.
ATTACK = r'''
import json, os, subprocess, sys
config = json.loads(sys.argv[1])
with open(os.path.join(config["cgroup"], "cgroup.procs"), "w") as handle:
    handle.write(str(os.getpid()))
drop_capabilities(config["capabilities"])              # nslab_init's; sets no_new_privs
if config["filter"]:
    seccomp_install(config["capabilities"])
attack = subprocess.run(
    ["unshare", "-U", "-r", "-C", "-m", "sh", "-c",
     'mount -t cgroup -o pids cgroup "$0" && echo max > "$0/pids.max"', config["mnt"]],
    capture_output=True, text=True)
print(json.dumps([attack.returncode, attack.stderr.strip()]))
'''


def pids_hierarchy():
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields, _, rest = line.partition(" - ")
            fstype, _source, options = rest.split()[:3]
            if fstype == "cgroup" and "pids" in options.split(","):
                return fields.split()[4]
    return None


@pytest.mark.parametrize("filtered", [False, True], ids=["unfiltered", "filtered"])
def test_a_container_cannot_raise_its_own_pids_limit(lab, tmp_path, filtered):
    """Without the filter the attack works (so this test can fail); with it the limit
    holds. The cgroup is this test's own, below nslab/<lab>; the mount happens in the
    attacker's private mount namespace."""
    hierarchy = pids_hierarchy()
    if not hierarchy:
        pytest.skip("no cgroup v1 pids hierarchy")
    cgroup = os.path.join(hierarchy, "nslab", lab.name, "attacker")
    os.makedirs(cgroup)
    with open(os.path.join(cgroup, "pids.max"), "w") as handle:
        handle.write("20")
    (tmp_path / "mnt").mkdir()
    config = {"filter": filtered, "capabilities": DEFAULT_CAPABILITIES, "cgroup": cgroup,
              "mnt": str(tmp_path / "mnt")}
    proc = subprocess.run([PYTHON, "-I", "-S", "-", json.dumps(config)],
                          input=SOURCE + "\n" + INIT_SOURCE + "\n" + ATTACK,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    returncode, stderr = json.loads(proc.stdout)
    with open(os.path.join(cgroup, "pids.max")) as handle:
        limit = handle.read().strip()
    if filtered:
        assert returncode != 0 and "Operation not permitted" in stderr
        assert limit == "20"
    else:
        assert (returncode, limit) == (0, "max"), stderr

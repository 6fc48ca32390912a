#!/usr/bin/env python3
"""The raw floor: the kernel work of an nslab lab of N busybox nodes on one bridge, done by
a plain script with no planning, no ownership records and no idempotence checks.

    floor.py build N      build the lab, print {"build": seconds}
    floor.py destroy N    destroy it, print {"destroy": seconds}
    floor.py run N        build then destroy in one process, print both

Standard library only; run as root. Per node i (1..N):

- an overlayfs root over a shared busybox base (/var/lib/nslab-bench/base, built once and
  kept, not timed), mounted with mount(2) through ctypes;
- memory, pids and cpu cgroups with limits (64M, 64 pids, cpu quota 50000/100000), plain file
  writes under /sys/fs/cgroup/<controller>/nslab/bench-floor/n<i> (cgroup v1) or
  /sys/fs/cgroup/nslab/bench-floor/n<i> (v2);
- a net namespace nsbf-<i> and a veth pair: host end nsbfv<i> on the bridge nsbfloor0,
  the other end eth0 inside with 10.252.x.y/20 (a bridge holds at most 1,024 ports, so
  nodes 1001-2000 go on nsbfloor1, 10.252.16.0/20, and so on). One host `ip -batch -` makes every
  namespace and pair; one `nsenter --net=... ip -batch -` per namespace configures the
  inside (run 16 at a time);
- an init: `nsenter --net=/run/netns/nsbf-<i> unshare --fork --pid --mount --uts --ipc
  --cgroup --kill-child --mount-proc=ROOT/proc chroot ROOT /bin/sleep 100000`, started in a
  new session; the child joins the cgroups (writes its pid to cgroup.procs) before exec, so
  the init and everything it forks are inside.

Teardown kills every process in the bench's cgroups, deletes the namespaces with one
`ip -batch`, waits until the host veth ends are gone, unmounts the overlays, removes the
cgroups (deepest first), the directories and the bridge. A failed build is torn down too.
Only nslab/bench-floor/ cgroups, nsbf* links, nsbf-* namespaces, nsbfloor0 and
/var/lib/nslab-bench/floor are ever touched.
"""

import ctypes
import ctypes.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

BRIDGE = "nsbfloor%d"        # one per PER_BRIDGE nodes: a Linux bridge takes 1,024 ports
PER_BRIDGE = 1000
NS_PREFIX = "nsbf-"
VETH_PREFIX = "nsbfv"
ROOT = "/var/lib/nslab-bench"
BASE = ROOT + "/base"
FLOOR = ROOT + "/floor"
CGROUP_FS = "/sys/fs/cgroup"
CGROUP_REL = "nslab/bench-floor"
CONTROLLERS = ("memory", "pids", "cpu")
LIMITS_V1 = {"memory": [("memory.limit_in_bytes", str(64 << 20))],
             "pids": [("pids.max", "64")],
             "cpu": [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000")]}
LIMITS_V2 = [("memory.max", str(64 << 20)), ("pids.max", "64"), ("cpu.max", "50000 100000")]
NET_BASE = (10 << 24) | (252 << 16)            # 10.252.0.0/20, host 10.252.0.1; then .16.0/20
PARALLEL = 16

# --- mount(2) through ctypes (the pattern of module_utils/nslab_syscalls.py) -------------
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
MNT_DETACH = 2


def _check(result, what, path):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)), path)


def mount(source, target, fstype=None, flags=0, data=None):
    enc = lambda v: v.encode() if isinstance(v, str) else v   # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags),
                       enc(data)), "mount", target)


def umount2(target, flags=0):
    _check(_libc.umount2(target.encode(), flags), "umount2", target)


# --- helpers ----------------------------------------------------------------------------
def segment(i):
    return (i - 1) // PER_BRIDGE


def dotted(n):
    return "%d.%d.%d.%d" % (n >> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255)


def gateway_of(s):
    return dotted(NET_BASE + (s << 12) + 1)    # bridge s: 10.252.(16 s).1


def ip_of(i):
    s = segment(i)                             # node 1 gets .0.2, node 1001 .16.2
    return dotted(NET_BASE + (s << 12) + 1 + i - s * PER_BRIDGE)


def run(cmd, data=None):
    proc = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode,
                                                    proc.stderr.strip()[-2000:]))
    return proc.stdout


def cgroup_v2():
    return os.path.exists(CGROUP_FS + "/cgroup.controllers")


def cgroup_dirs(name=None):
    """The bench's cgroup directories for one node (or the bench-floor parents)."""
    rel = CGROUP_REL + ("/" + name if name else "")
    if cgroup_v2():
        return [os.path.join(CGROUP_FS, rel)]
    return [os.path.join(CGROUP_FS, c, rel) for c in CONTROLLERS]


def parallel(cmds_and_inputs):
    """Run (argv, stdin text) pairs, PARALLEL at a time; raise on the first failure."""
    pending = list(cmds_and_inputs)
    running = []
    errors = []
    while pending or running:
        while pending and len(running) < PARALLEL:
            argv, data = pending.pop(0)
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, universal_newlines=True)
            p.stdin.write(data)
            p.stdin.close()
            running.append((argv, p))
        argv, p = running.pop(0)
        err = p.stderr.read()
        if p.wait() != 0:
            errors.append("%s: %s" % (" ".join(argv), err.strip()))
    if errors:
        raise RuntimeError("%d command(s) failed, first: %s" % (len(errors), errors[0]))


# --- the base ---------------------------------------------------------------------------
def ensure_base():
    """/var/lib/nslab-bench/base: /bin/busybox and a symlink per applet; built once."""
    stamp = os.path.join(BASE, ".done")
    if os.path.exists(stamp):
        return
    busybox = shutil.which("busybox") or "/bin/busybox"
    if os.path.exists(BASE):
        shutil.rmtree(BASE)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc",
              "root", "run", "var"):
        os.makedirs(os.path.join(BASE, d))
    shutil.copy2(busybox, os.path.join(BASE, "bin/busybox"))
    for applet in run([busybox, "--list-full"]).split():
        path = os.path.join(BASE, applet)
        if not os.path.lexists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink("/bin/busybox", path)
    with open(os.path.join(BASE, "etc/hostname"), "w") as f:
        f.write("floor\n")
    open(stamp, "w").close()


# --- build ------------------------------------------------------------------------------
def build(n, phases=None):
    ensure_base()
    t0 = time.monotonic()
    phases = {} if phases is None else phases
    mark = [t0]

    def phase(name):
        now = time.monotonic()
        phases[name] = now - mark[0]
        mark[0] = now
    # 1. the jails: an overlay per node over the shared base
    os.makedirs(FLOOR, exist_ok=True)
    for i in range(1, n + 1):
        d = "%s/n%d" % (FLOOR, i)
        for sub in ("upper", "work", "root"):
            os.makedirs(os.path.join(d, sub))
        mount("overlay", d + "/root", "overlay", 0,
              "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (BASE, d, d))
    phase("overlays")
    # 2. the cgroups with their limits (the parents nslab and nslab/bench-floor as needed;
    #    an existing nslab/ is left as it is)
    v2 = cgroup_v2()
    for parent in cgroup_dirs():
        os.makedirs(parent, exist_ok=True)
    if v2:
        with open(os.path.join(CGROUP_FS, "nslab/cgroup.subtree_control"), "w") as f:
            f.write("+memory +pids +cpu")
        with open(os.path.join(CGROUP_FS, CGROUP_REL, "cgroup.subtree_control"), "w") as f:
            f.write("+memory +pids +cpu")
    for i in range(1, n + 1):
        for controller, d in zip(CONTROLLERS, cgroup_dirs("n%d" % i)):
            os.mkdir(d)
            for fname, value in (LIMITS_V2 if v2 else LIMITS_V1[controller]):
                with open(os.path.join(d, fname), "w") as f:
                    f.write(value)
    phase("cgroups")
    # 3. the bridge, the namespaces and the veth pairs: one host ip -batch
    lines = []
    for s in range(segment(n) + 1 if n else 0):
        lines += ["link add %s type bridge" % (BRIDGE % s),
                  "link set %s addrgenmode none" % (BRIDGE % s),
                  "addr add %s/20 dev %s" % (gateway_of(s), BRIDGE % s),
                  "link set %s up" % (BRIDGE % s)]
    for i in range(1, n + 1):
        ns, v = NS_PREFIX + str(i), VETH_PREFIX + str(i)
        lines += ["netns add %s" % ns,
                  "link add %s type veth peer name eth0 netns %s" % (v, ns),
                  "link set %s addrgenmode none" % v,
                  "link set %s master %s" % (v, BRIDGE % segment(i)),
                  "link set %s up" % v]
    run(["ip", "-batch", "-"], "\n".join(lines) + "\n")
    phase("host_ip_batch")
    # 4. the inside of each namespace: one ip -batch each, entered with nsenter
    inside = "link set eth0 addrgenmode none\naddr add %s/20 dev eth0\n" \
             "link set eth0 up\nlink set lo up\n"
    parallel([(["nsenter", "--net=/run/netns/%s%d" % (NS_PREFIX, i), "ip", "-batch", "-"],
               inside % ip_of(i)) for i in range(1, n + 1)])
    phase("netns_ip_batch")
    # 5. the inits, each joining its cgroups before exec
    for i in range(1, n + 1):
        procs = [os.path.join(d, "cgroup.procs") for d in cgroup_dirs("n%d" % i)]

        def join(procs=procs):
            pid = str(os.getpid())
            for p in procs:
                with open(p, "w") as f:
                    f.write(pid)
        root = "%s/n%d/root" % (FLOOR, i)
        subprocess.Popen(["nsenter", "--net=/run/netns/%s%d" % (NS_PREFIX, i),
                          "unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--cgroup",
                          "--kill-child", "--mount-proc=%s/proc" % root,
                          "chroot", root, "/bin/sleep", "100000"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=join,
                         close_fds=True)
    # done when every init runs sleep inside its jail (pid 1 of its pid namespace)
    wait_inits(n)
    phase("inits")
    return time.monotonic() - t0


def cgroup_pids(i):
    d = cgroup_dirs("n%d" % i)[0]
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def wait_inits(n, timeout=120):
    deadline = time.monotonic() + timeout
    for i in range(1, n + 1):
        while True:
            comms = []
            for pid in cgroup_pids(i):
                try:
                    with open("/proc/%d/comm" % pid) as f:
                        comms.append(f.read().strip())
                except OSError:
                    pass
            if "sleep" in comms:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("init of n%d did not start (cgroup has %s)" % (i, comms))
            time.sleep(0.002)


# --- destroy ----------------------------------------------------------------------------
def existing_nodes():
    """Node numbers with anything left: a jail dir, a cgroup or a namespace."""
    found = set()
    if os.path.isdir(FLOOR):
        found.update(int(x[1:]) for x in os.listdir(FLOOR) if x[1:].isdigit())
    for parent in cgroup_dirs():
        if os.path.isdir(parent):
            found.update(int(x[1:]) for x in os.listdir(parent)
                         if x.startswith("n") and x[1:].isdigit())
    if os.path.isdir("/run/netns"):
        found.update(int(x[len(NS_PREFIX):]) for x in os.listdir("/run/netns")
                     if x.startswith(NS_PREFIX) and x[len(NS_PREFIX):].isdigit())
    return found


def destroy(n=None):
    """Tear down nodes 1..n and whatever else of the floor's is there."""
    t0 = time.monotonic()
    nodes = sorted(existing_nodes() | set(range(1, (n or 0) + 1)))
    errors = []
    # 1. kill the inits (and anything else in the bench's cgroups)
    for i in nodes:
        for pid in cgroup_pids(i):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # 2. the namespaces: one ip -batch (-force: go on past missing ones)
    names = [NS_PREFIX + str(i) for i in nodes if os.path.exists("/run/netns/%s%d" % (NS_PREFIX, i))]
    if names:
        try:
            run(["ip", "-force", "-batch", "-"], "".join("netns del %s\n" % x for x in names))
        except RuntimeError as e:
            errors.append(str(e))
    # 3. wait until the host ends are gone (they go when each namespace is freed)
    deadline = time.monotonic() + 120
    while any(os.path.exists("/sys/class/net/%s%d" % (VETH_PREFIX, i)) for i in nodes):
        if time.monotonic() > deadline:
            errors.append("host veth ends still present after 120 s")
            break
        time.sleep(0.005)
    # 4. the overlays and the cgroups (wait for the killed processes to leave them)
    for i in nodes:
        root = "%s/n%d/root" % (FLOOR, i)
        if os.path.ismount(root):
            try:
                umount2(root)
            except OSError:
                umount2(root, MNT_DETACH)
    for i in nodes:
        for d in cgroup_dirs("n%d" % i):
            if not os.path.isdir(d):
                continue
            deadline = time.monotonic() + 30
            while True:
                try:
                    os.rmdir(d)
                    break
                except OSError as e:           # EBUSY until the killed processes are gone
                    if time.monotonic() > deadline:
                        errors.append("rmdir %s: %s" % (d, e))
                        break
                    time.sleep(0.005)
    for d in cgroup_dirs():                    # nslab/bench-floor itself; nslab/ is left
        if os.path.isdir(d):
            try:
                os.rmdir(d)
            except OSError as e:
                errors.append("rmdir %s: %s" % (d, e))
    # 5. the directories and the bridge
    if os.path.isdir(FLOOR):
        for i in nodes:
            if os.path.ismount("%s/n%d/root" % (FLOOR, i)):
                errors.append("%s/n%d/root is still mounted" % (FLOOR, i))
        if not errors:
            shutil.rmtree(FLOOR)
    for bridge in sorted(b for b in os.listdir("/sys/class/net")
                         if re.fullmatch(BRIDGE.replace("%d", r"\d+"), b)):
        try:
            run(["ip", "link", "del", bridge])
        except RuntimeError as e:
            errors.append(str(e))
    if errors:
        raise RuntimeError("floor teardown incomplete: " + "; ".join(errors))
    return time.monotonic() - t0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("build", "destroy", "run") or not argv[2].isdigit():
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    if os.geteuid() != 0:
        sys.stderr.write("floor.py: run as root\n")
        return 1
    n = int(argv[2])
    out = {"tool": "floor", "n": n}
    if argv[1] in ("build", "run"):
        ok = False
        try:
            out["phases"] = {}
            out["build"] = build(n, out["phases"])
            ok = True
        finally:
            if not ok:
                try:
                    destroy(n)
                except Exception as e:         # report the build's error, not this one
                    sys.stderr.write("floor.py: cleanup after failed build: %s\n" % e)
    if argv[1] in ("destroy", "run"):
        out["destroy"] = destroy(n)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

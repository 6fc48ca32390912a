#!/usr/bin/python3
"""Mininet's side of the benchmark: one LinuxBridge switch s1 and N hosts h1..hN, no
controller, through Mininet's Python API. Run with Debian's /usr/bin/python3 (package
`mininet`; `bridge-utils` is installed with apt if brctl is missing). Prints JSON:
{"build": seconds of net.build() + net.start(), "destroy": seconds of net.stop()}.

    /usr/bin/python3 bench/mininet_run.py N

Host settings. Mininet() calls Mininet.init() -> mininet.util.fixLimits(), which raises
host sysctls (fs.file-max, net.core.[rw]mem_max, tcp_[rw]mem, neigh gc_thresh1-3,
netdev_max_backlog, route.max_size, kernel.pty.max). This script marks Mininet as already
initialised so fixLimits never runs, raises only its own RLIMIT_NOFILE, and checks that
those sysctls and net.bridge.bridge-nf-call-* / ip_forward read the same after the run
(exit 3 if not). LinuxBridge is used with its default stp=False: no STP; its setup() only
reads the bridge-nf-call sysctls.

Cleanup: net.stop() removes s1 and every veth; if anything named s1 or s1-eth<i> / h<i>-eth0
is left (Mininet made them: the script refuses to start if any exists beforehand), it is
deleted, and the hosts' shells are killed.
"""

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time

SYSCTLS = ["fs.file-max", "net.core.wmem_max", "net.core.rmem_max", "net.ipv4.tcp_rmem",
           "net.ipv4.tcp_wmem", "net.core.netdev_max_backlog",
           "net.ipv4.neigh.default.gc_thresh1", "net.ipv4.neigh.default.gc_thresh2",
           "net.ipv4.neigh.default.gc_thresh3", "net.ipv4.route.max_size", "kernel.pty.max",
           "net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables",
           "net.bridge.bridge-nf-call-ip6tables", "net.bridge.bridge-nf-call-arptables"]
OURS = re.compile(r"^(s1|s1-eth\d+|h\d+-eth\d+)(@\S+)?$")


def sysctls():
    values = {}
    for name in SYSCTLS:
        try:
            with open("/proc/sys/" + name.replace(".", "/")) as f:
                values[name] = " ".join(f.read().split())
        except OSError:
            values[name] = None
    return values


def our_links():
    out = subprocess.run(["ip", "-br", "link"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return [line.split()[0].split("@")[0] for line in out.splitlines()
            if line.split() and OURS.match(line.split()[0])]


def ensure_brctl():
    if shutil.which("brctl"):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "bridge-utils"]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)


def main(argv):
    if len(argv) != 2 or not argv[1].isdigit():
        sys.stderr.write("usage: /usr/bin/python3 mininet_run.py N\n")
        return 2
    if os.geteuid() != 0:
        sys.stderr.write("mininet_run.py: run as root\n")
        return 1
    n = int(argv[1])
    ensure_brctl()
    before = our_links()
    if before:
        sys.stderr.write("mininet_run.py: links %s already exist; not ours, refusing to run\n"
                         % " ".join(before[:10]))
        return 1

    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.nodelib import LinuxBridge
    from mininet.topo import SingleSwitchTopo

    setLogLevel("warning")
    # Skip Mininet.init(): it would run fixLimits() and rewrite host sysctls. Only this
    # process's own open-file limit is raised (a shell, a pty and pipes per node).
    Mininet.inited = True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 16384) if hard != resource.RLIM_INFINITY else 16384)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    settings = sysctls()
    out = {"tool": "mininet", "n": n}
    net = Mininet(topo=SingleSwitchTopo(n), switch=LinuxBridge, controller=None, build=False,
                  autoSetMacs=False, ipBase="10.254.0.0/20")
    stopped = False
    try:
        t0 = time.monotonic()
        net.build()
        net.start()
        out["build"] = time.monotonic() - t0
        # sanity, not timed: every host has its eth0 up with an address, s1 has N ports
        s1 = net.get("s1")
        ports = s1.cmd("ls /sys/class/net/s1/brif | wc -l").strip()
        if ports != str(n):
            raise RuntimeError("s1 has %s ports, expected %d" % (ports, n))
        stp = s1.cmd("cat /sys/class/net/s1/bridge/stp_state").strip()
        out["stp_state"] = int(stp) if stp.isdigit() else stp
        t0 = time.monotonic()
        net.stop()
        stopped = True
        out["destroy"] = time.monotonic() - t0
    finally:
        if not stopped:
            try:
                net.stop()
            except Exception as e:              # noqa: BLE001 - go on with the cleanup
                sys.stderr.write("mininet_run.py: net.stop() failed: %s\n" % e)
            for host in net.hosts + net.switches:
                if host.shell and host.shell.poll() is None:
                    host.shell.kill()
        left = our_links()
        if left:
            sys.stderr.write("mininet_run.py: removing %d leftover link(s) Mininet made\n"
                             % len(left))
            subprocess.run(["ip", "-force", "-batch", "-"], universal_newlines=True,
                           input="".join("link del %s\n" % x for x in left if x != "s1") +
                           ("link del s1\n" if "s1" in left else ""))
            out["leftover_links"] = len(left)
    after = sysctls()
    changed = {k: [settings[k], after[k]] for k in SYSCTLS if settings[k] != after[k]}
    out["sysctls_changed"] = changed
    print(json.dumps(out))
    return 3 if changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""lab.yml from a topology file: isolation from inside, reachability by name, limits,
repair of what was broken by hand, nodes added and removed alone, complete destroy."""

import json
import os
import time

from helpers.ansible_runs import build, changed, failed
from helpers.kernel import sh
from helpers.lab import BUSYBOX_SKIP

pytestmark = BUSYBOX_SKIP


def topology(lab, nodes=("a", "b", "c")):
    spec = {
        "lab": lab.name,
        "defaults": {"jail": {"source": "busybox"},
                     "limits": {"memory": "64M", "cpus": 0.5, "pids": 64}},
        "networks": {"lan": {"subnet": "10.251.70.0/24"}},
        "nodes": dict((n, {"networks": ["lan"]}) for n in nodes),
        "links": [],
    }
    if "c" in nodes:
        # c tries 40 processes at once under a limit of 20, then idles
        spec["nodes"]["c"]["limits"] = {"pids": 20}
        spec["nodes"]["c"]["command"] = [
            # busybox sh gives up at the first failed fork: do it in a subshell
            "sh", "-c", "(for i in $(seq 1 40); do sleep 1 & done; wait) 2> /tmp/forks; "
                        "echo done >> /tmp/forks; exec sleep 100000"]
    if "a" in nodes and "c" in nodes:
        spec["links"] = [{"endpoints": ["a:eth1", "c:eth1"], "subnet": "10.251.79.0/30"}]
    return spec


def pid_of(lab, node):
    with open("/run/nslab/%s/containers/%s.json" % (lab.name, node)) as handle:
        return json.load(handle)["pid"]


def inside(lab, node, *argv):
    """Run argv inside a node: all its namespaces and its root (its own busybox)."""
    return sh("nsenter", "--target", str(pid_of(lab, node)), "--all", *argv, check=False)


def wait_for(path, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and text in open(path).read():
            return open(path).read()
        time.sleep(0.1)
    raise AssertionError("%s never said %r" % (path, text))


def test_a_lab_is_built_converged_repaired_and_destroyed(lab, tmp_path):
    spec = topology(lab)
    first = build(lab, tmp_path, spec)
    assert not failed(first), failed(first)
    assert set(changed(first)) == {"bridges", "jails", "namespaces", "cgroups", "veths",
                                   "containers"}

    # inside: own hostname, neighbours by name over the bridge, the p2p link, nothing else
    assert inside(lab, "a", "hostname").stdout.strip() == "a"
    assert inside(lab, "a", "ping", "-c", "1", "-W", "2", "b").returncode == 0
    assert inside(lab, "b", "ping", "-c", "1", "-W", "2", "c").returncode == 0
    assert inside(lab, "a", "ping", "-c", "1", "-W", "2", "10.251.79.2").returncode == 0
    assert "10.251.70." in inside(lab, "a", "cat", "/etc/hosts").stdout
    unreachable = inside(lab, "a", "ping", "-c", "1", "-W", "1", "10.251.80.1")
    assert unreachable.returncode != 0          # no route out of the lab's subnets
    assert sorted(os.listdir("/proc/%d/root/proc" % pid_of(lab, "b"))).count("1") == 1
    # limits hold: c's command (in c's cgroup, unlike an nsenter from the host) could not
    # fork past its 20 processes
    forks = wait_for("/proc/%d/root/tmp/forks" % pid_of(lab, "c"), "done")
    assert "can't fork" in forks or "Resource temporarily unavailable" in forks
    with open("/sys/fs/cgroup/pids/nslab/%s/c/pids.max" % lab.name) as handle:
        assert handle.read().strip() == "20"

    assert changed(build(lab, tmp_path, spec)) == {}

    # broken by hand: b's init killed, a's host-side veth deleted -> only they are repaired
    os.kill(pid_of(lab, "b"), 9)
    a_end = [l for l in sh("ip", "-br", "link").stdout.split() if l.startswith(lab.name + "-a-")]
    sh("ip", "link", "del", a_end[0].split("@")[0])
    pid_c = pid_of(lab, "c")
    repaired = changed(build(lab, tmp_path, spec))
    assert set(repaired) == {"veths", "containers"}
    assert repaired["containers"] == ["start container 'b' (its init died)"]
    assert pid_of(lab, "c") == pid_c
    assert inside(lab, "a", "ping", "-c", "1", "-W", "2", "b").returncode == 0

    # node a removed from the file: only a goes, b and c keep their addresses and processes
    address_b = inside(lab, "b", "ip", "addr").stdout
    smaller = build(lab, tmp_path, topology(lab, nodes=("b", "c")))
    assert not failed(smaller), failed(smaller)
    assert not os.path.exists("/run/netns/%s-a" % lab.name)
    assert pid_of(lab, "c") == pid_c and inside(lab, "b", "ip", "addr").stdout == address_b
    assert "eth1" not in inside(lab, "c", "ip", "link").stdout

    destroyed = build(lab, tmp_path, topology(lab, nodes=("b", "c")), state="absent")
    assert not failed(destroyed), failed(destroyed)
    left = lab.leftovers()
    assert left == [], "\n".join(left)


def test_an_invalid_topology_changes_nothing_anywhere(lab, tmp_path):
    spec = topology(lab)
    spec["nodes"]["a"]["networks"] = {"lan": "10.251.71.5"}
    spec["links"] = [["a:eth1", "ghost:eth0"]]
    results = build(lab, tmp_path, spec)
    bad = failed(results)
    assert len(bad) == 1 and "Validate the whole topology" in bad[0]["_task"]
    assert "10.251.71.5 is outside 10.251.70.0/24" in bad[0]["msg"]
    assert "unknown node 'ghost'" in bad[0]["msg"]
    assert not any(r.get("changed") for r in results)
    assert lab.leftovers() == []

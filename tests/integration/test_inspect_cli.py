"""``./nslab inspect``: every node of a running lab read from the kernel and nslab's records
(state, the init's pid, addresses, limits and usage from its cgroup files), as a table and
as JSON; a lab that does not exist or a bad name is one line and a non-zero exit."""

import json
import os
import subprocess
import time

from helpers.kernel import sh
from helpers.paths import ROOT

NSLAB = str(ROOT / "nslab")
CGROUP = "/sys/fs/cgroup"


def nslab_inspect(*args):
    return subprocess.run([NSLAB, "inspect", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def inspected(lab):
    done = nslab_inspect(lab, "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["version"] == 1 and list(document["labs"]) == [lab]
    return dict((n["name"], n) for n in document["labs"][lab]["nodes"])


def cgroup_file(lab, node, controller, name):
    with open(os.path.join(CGROUP, controller, "nslab", lab, node, name)) as handle:
        return handle.read()


def test_the_json_lists_the_nodes_as_the_kernel_has_them(running_lab):
    lab = running_lab.name
    nodes = inspected(lab)
    assert sorted(nodes) == ["a", "b", "c", "d"]
    for name in "abc":
        node = nodes[name]
        assert node["state"] == "running" and node["here"] is True
        with open("/proc/%d/cmdline" % node["pid"], "rb") as handle:
            assert b"nslab:%s:%s" % (lab.encode(), name.encode()) in handle.read()
        # the pid is the node's init: pid 1 of its own pid namespace
        with open("/proc/%d/status" % node["pid"]) as handle:
            nspid = [l for l in handle if l.startswith("NSpid:")][0].split()
        assert nspid[-1] == "1", nspid
        inside = json.loads(sh("ip", "-j", "addr", "show", netns=node["netns"]).stdout)
        assert node["addresses"] == sorted(
            "%s/%s" % (a["local"], a["prefixlen"]) for link in inside
            if link["ifname"] != "lo" for a in link["addr_info"])
        assert 0 <= node["uptime_seconds"] < 3600
        assert abs(time.time() - node["uptime_seconds"] - node["started_at"]) < 60
    assert nodes["d"]["state"] == "stopped" and nodes["d"]["pid"] is None
    assert nodes["d"]["uptime_seconds"] is None


def test_limits_and_usage_are_the_cgroup_files(running_lab):
    lab = running_lab.name
    nodes = inspected(lab)
    assert nodes["a"]["limits"] == {"memory": 64 * 2**20, "pids": 64, "cpus": 0.5}
    assert nodes["c"]["limits"]["memory"] == 32 * 2**20
    for name in "abc":
        node, usage = nodes[name], nodes[name]["usage"]
        assert usage["pids"] == int(cgroup_file(lab, name, "pids", "pids.current"))
        assert usage["pids"] >= 1
        memory = int(cgroup_file(lab, name, "memory", "memory.usage_in_bytes"))
        # an idle busybox node: the figure moves a little between the two reads
        assert 0 < usage["memory_bytes"] and abs(usage["memory_bytes"] - memory) < 2**20
        cpu_usec = int(cgroup_file(lab, name, "cpuacct", "cpuacct.usage")) // 1000
        assert 0 < usage["cpu_usec"] <= cpu_usec
        assert int(cgroup_file(lab, name, "memory", "memory.limit_in_bytes")) == \
            node["limits"]["memory"]


def test_the_table_names_every_node(running_lab):
    lab = running_lab.name
    nodes = inspected(lab)
    done = nslab_inspect(lab)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["LAB", "NODE", "HOST", "STATE", "PID", "ADDRESSES", "MEMORY",
                                "PIDS", "CPU", "UPTIME"]
    rows = dict((l.split()[1], l.split()) for l in lines[1:] if l.split()[0] == lab)
    assert sorted(rows) == ["a", "b", "c", "d"]
    for name in "abc":
        assert rows[name][3] == "running" and rows[name][4] == str(nodes[name]["pid"])
        assert rows[name][5] == ",".join(nodes[name]["addresses"])
    assert rows["c"][6].endswith("/32M") and rows["a"][7].endswith("/64")
    assert rows["d"][3:5] == ["stopped", "-"]
    # without a name: every lab, this one included
    every = nslab_inspect("--json")
    assert every.returncode == 0 and lab in json.loads(every.stdout)["labs"]


def test_a_missing_lab_or_a_bad_name_is_one_line_and_fails():
    missing = nslab_inspect("nosuchlab-%d" % os.getpid())
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == "nslab inspect: no lab 'nosuchlab-%d' on this host\n" % os.getpid()
    bad = nslab_inspect("../etc", "--json")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "LAB: lab name '../etc' is invalid" in bad.stderr

"""What the kernel reports: links, mounts, cgroups, processes, nftables rules."""

import json
import os
import shutil
import subprocess


def sh(*argv, check=True, netns=None):
    if netns:
        argv = ("nsenter", "--net=/run/netns/%s" % netns) + argv
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def ip_links(netns=None):
    out = sh("ip", "-j", "-d", "link", "show", netns=netns).stdout
    return dict((link["ifname"], link) for link in json.loads(out or "[]"))


def nsfs_mounts():
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if " - nsfs " in line]


def cgroup_mounts():
    """Mount points of every cgroup v1 and v2 hierarchy."""
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle
                if line.partition(" - ")[2].split()[0] in ("cgroup", "cgroup2")]


def lab_cgroup_dirs(lab_name):
    """``<hierarchy>/nslab/<lab>`` wherever it exists: the only cgroups a test may make."""
    return [d for d in (os.path.join(m, "nslab", lab_name) for m in cgroup_mounts())
            if os.path.isdir(d)]


def mounts_under(path):
    """Mount points at or below ``path`` (octal escapes left as they are: nslab's paths
    have none), in mount order."""
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    return [m for m in points if m == path or m.startswith(path + "/")]


def proc_status(pid):
    """/proc/<pid>/status as {field: value}."""
    with open("/proc/%d/status" % pid) as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


def proc_children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
        return [int(p) for p in handle.read().split()]


def nft_rules(family, netns=None):
    """[(comment, handle)] of the rules in nslab's table of ``family`` ([] without one)."""
    if shutil.which("nft") is None:
        return []
    proc = sh("nft", "-j", "list", "table", family, "nslab", check=False, netns=netns)
    if proc.returncode != 0:
        return []
    return [(item["rule"].get("comment", ""), item["rule"]["handle"])
            for item in json.loads(proc.stdout)["nftables"] if "rule" in item]


def rule_chains(family):
    """{handle: chain} of the rules in nslab's table of ``family``."""
    proc = sh("nft", "-j", "list", "table", family, "nslab", check=False)
    if proc.returncode != 0:
        return {}
    return dict((item["rule"]["handle"], item["rule"]["chain"])
                for item in json.loads(proc.stdout)["nftables"] if "rule" in item)


def hosts_on_an_underlay(lab, underlay):
    """Net namespaces h1 and h2 of ``lab`` acting as two hosts, joined by a veth (u1, u2)
    that holds their ``underlay`` addresses ({"h1": ..., "h2": ...}, a /24)."""
    for host in ("h1", "h2"):
        sh("ip", "netns", "add", lab.n(host))
        sh("ip", "link", "set", "lo", "up", netns=lab.n(host))
    sh("ip", "link", "add", lab.n("u1"), "netns", lab.n("h1"), "type", "veth",
       "peer", lab.n("u2"), "netns", lab.n("h2"))
    for host, end in (("h1", "u1"), ("h2", "u2")):
        sh("ip", "addr", "add", underlay[host] + "/24", "dev", lab.n(end), netns=lab.n(host))
        sh("ip", "link", "set", lab.n(end), "up", netns=lab.n(host))

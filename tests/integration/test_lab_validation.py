"""lab.yml with bad topologies (issue #16): each class of bad input fails before anything
changes (rc != 0, no traceback, the whole list of problems from nslab_topology, the host
unchanged as the kernel reports it), a "billion laughs" file fails in seconds, and
state=absent removes a built lab from a file that no longer validates."""

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from helpers.ansible_runs import ansible_env, task_results
from helpers.kernel import ip_links
from helpers.lab import BUSYBOX_SKIP
from helpers.paths import ROOT

# Subnets of this file: 10.213.192.0/21 (this engineer's share of 10.213.160.0/19).
LAN = "10.213.192.0/24"
LINK = "10.213.193.0/30"
BIN = sys.executable.rsplit("/", 1)[0]


def good(lab):
    return {
        "lab": lab.name,
        "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "32M", "pids": 32}},
        "networks": {"lan": {"subnet": LAN}},
        "nodes": {"a": {"networks": ["lan"]}, "b": {"networks": ["lan"]}},
        "links": [{"endpoints": ["a:eth1", "b:eth1"], "subnet": LINK}],
    }


def run_lab(lab, tmp_path, text, state="present", timeout=120):
    """ansible-playbook lab.yml on ``text`` (a topology file's content): (rc, task
    results, stdout + stderr)."""
    path = tmp_path / ("%s.yml" % lab.name)
    path.write_text(text if isinstance(text, str) else yaml.safe_dump(text))
    argv = ["%s/ansible-playbook" % BIN, str(ROOT / "lab.yml"),
            "-e", json.dumps({"lab": str(path), "state": state})]
    # A session of its own: on timeout the whole run goes, Ansible's workers too.
    proc = subprocess.Popen(argv, cwd=ROOT, env=ansible_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        kill_runs_of(str(path))        # Ansible's workers leave the session
        raise AssertionError("lab.yml still ran after %d s" % timeout)
    return proc.returncode, task_results(stdout), stdout + stderr


def kill_runs_of(marker):
    """SIGKILL every process whose command line holds ``marker`` (this test's file)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as handle:
                    if marker.encode() in handle.read():
                        os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def host_uplink():
    """(interface, address/prefix) of an IPv4 address on a host interface nslab does not
    own, or None."""
    for name, link in ip_links().items():
        if link.get("ifalias", "").startswith("nslab:"):
            continue
        out = subprocess.run(["ip", "-j", "addr", "show", "dev", name], capture_output=True,
                             text=True).stdout
        for entry in json.loads(out or "[]"):
            for addr in entry.get("addr_info", []):
                if addr.get("family") == "inet" and addr.get("scope") == "global":
                    return name, "%s/%s" % (addr["local"], addr["prefixlen"])
    return None


def ip_forward():
    with open("/proc/sys/net/ipv4/ip_forward") as handle:
        return handle.read().strip()


def broken(lab, case):
    """The good topology broken one way; (topology, fragments the failure must hold)."""
    spec = good(lab)
    if case == "names-hostname-caps-env-limits-jail-types":
        spec["nodes"]["c\n"] = {"networks": ["lan"]}
        spec["nodes"]["a"].update(hostname="a_1", cap_add=["CAP_FLY"], env={"A=B": "x"},
                                  limits={"cpu_weight": "high"},
                                  jail={"source": "busybox", "pth": "/bin/busybox"})
        spec["nodes"]["b"]["limits"] = ["memory", "32M"]
        return spec, ["nodes.c\n: node name 'c\\n' is invalid",
                      "nodes.a.hostname: hostname 'a_1' is invalid",
                      "nodes.a.cap_add[0]: 'CAP_FLY' is not a capability",
                      "nodes.a.env: variable name 'A=B' is invalid",
                      "nodes.a.limits.cpu_weight: 'high' is a string; expected an integer",
                      "nodes.a.jail: unknown key 'pth'",
                      "nodes.b.limits: ['memory', '32M'] is a list; expected a mapping"]
    if case == "lab-name":
        # nslab_info reads every lab instead (it would refuse the name): one error, by path
        spec["lab"] = lab.name + "\n"
        spec["nodes"]["a"]["hostname"] = "a_1"
        return spec, ["lab: lab name '%s\\n' is invalid" % lab.name,
                      "nodes.a.hostname: hostname 'a_1' is invalid"]
    if case == "nat-string":
        spec["networks"]["lan"]["nat"] = "false"
        return spec, ["networks.lan.nat: 'false' is a string; expected true or false"]
    if case == "host-critical-subnets":
        spec["networks"]["lan"]["subnet"] = "0.0.0.0/0"
        spec["links"][0]["subnet"] = "127.0.0.0/8"
        return spec, ["networks.lan.subnet: 0.0.0.0/0 overlaps 0.0.0.0/8",
                      "links[0].subnet: 127.0.0.0/8 overlaps 127.0.0.0/8 (loopback)"]
    if case == "host-uplink-subnet":
        uplink = host_uplink()
        if uplink is None:
            pytest.skip("the host has no IPv4 address of its own to collide with")
        network = ipaddress.ip_interface(uplink[1]).network
        spec["networks"]["lan"]["subnet"] = str(network)
        del spec["links"][0]["subnet"]
        return spec, ["networks.lan.subnet: %s overlaps the host's own address %s on %s" % (
            network, uplink[1], uplink[0])]
    if case == "jail-command":
        # as host root in a plain chroot: mounts /proc in the host's mount namespace
        spec["nodes"]["a"]["jail"] = {"source": "busybox", "command": [
            "sh", "-c", "mount -t proc proc /proc && cat /proc/1/cmdline"]}
        return spec, ["nodes.a.jail.command: a jail's command runs as the host's root"]
    raise AssertionError(case)


@BUSYBOX_SKIP
@pytest.mark.parametrize("case", ["names-hostname-caps-env-limits-jail-types", "lab-name",
                                  "nat-string",
                                  "host-critical-subnets", "host-uplink-subnet",
                                  "jail-command"])
def test_a_bad_topology_fails_before_anything_changes(lab, tmp_path, case):
    spec, fragments = broken(lab, case)
    forward = ip_forward()
    rc, results, output = run_lab(lab, tmp_path, spec)
    assert rc != 0
    assert "Traceback" not in output
    failed = [r for r in results if r["_status"] == "failed"]
    assert len(failed) == 1, failed
    assert failed[0]["_task"].endswith("Validate the whole topology and compile this host's "
                                       "share (before anything changes)")
    for fragment in fragments:
        assert fragment in failed[0]["msg"], (fragment, failed[0]["msg"])
    assert not any(e in failed[0]["msg"] for e in ("object has no attribute", "TypeError"))
    # Nothing ran after it, and before it only what reads: on one host the compile reads
    # the host itself (nslab_info's reads are for a lab over several hosts).
    ran = [(r["_task"].split(" : ")[-1], r["_status"]) for r in results]
    assert ran[-2:] == [("Read what the lab has now on its hosts", "skipped"),
                        ("Validate the whole topology and compile this host's share (before "
                         "anything changes)", "failed")]
    assert all(t.startswith(("Validating arguments", "Load the topology"))
               for t, _status in ran[:-2]), ran
    assert not any(r.get("changed") for r in results)
    assert lab.leftovers() == []         # no link, netns, mount, cgroup, state or data dir
    assert ip_forward() == forward


LAUGHS = """lab: %s
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize("text,message", [
    (LAUGHS, "the YAML has more than 100000 nodes once its aliases are expanded"),
    ("- lab: x\n", "the top level is a list; expected one mapping"),
])
def test_a_hostile_or_malformed_file_fails_at_loading_in_seconds(lab, tmp_path, text,
                                                                   message):
    start = time.monotonic()
    rc, results, output = run_lab(lab, tmp_path, text.replace("%s", lab.name), timeout=60)
    assert time.monotonic() - start < 60
    assert rc != 0 and "Traceback" not in output
    failed = [r for r in results if r["_status"] == "failed"]
    assert len(failed) == 1 and failed[0]["_task"].endswith("Load the topology")
    assert message in failed[0]["msg"]
    assert lab.leftovers() == []


@BUSYBOX_SKIP
def test_absent_removes_a_built_lab_from_a_file_that_no_longer_validates(lab, tmp_path):
    rc, results, output = run_lab(lab, tmp_path, good(lab))
    assert rc == 0, output
    assert sorted(n for n in ip_links() if n.startswith(lab.name)) == sorted(
        [lab.n("lan"), lab.n("a-0"), lab.n("b-0")])
    broken_spec, _fragments = broken(lab, "names-hostname-caps-env-limits-jail-types")
    broken_spec["networks"]["lan"]["nat"] = "no"
    broken_spec["nodes"]["a"]["jail"]["command"] = ["id"]
    broken_spec["links"] = "a:eth1 b:eth1"

    # present with it: refused, the lab as it was
    before = dict((n, l["ifindex"]) for n, l in ip_links().items() if n.startswith(lab.name))
    rc, results, output = run_lab(lab, tmp_path, broken_spec)
    assert rc != 0 and not any(r.get("changed") for r in results)
    assert dict((n, l["ifindex"]) for n, l in ip_links().items()
                if n.startswith(lab.name)) == before

    # absent with it: only its lab name counts; everything the host has of the lab goes
    rc, results, output = run_lab(lab, tmp_path, broken_spec, state="absent")
    assert rc == 0, output
    assert "Traceback" not in output
    left = lab.leftovers()
    assert left == [], "\n".join(left)

"""lab.yml over the test fleet (three Debian system containers reached by real SSH): a lab
spread over two hosts, then a third host added (nothing moves), one host rebuilt alone
under --limit, nodes reaching each other across hosts by name and over a link's tunnel,
and the lab removed from every host. Then one host down mid-life: the others finish and
the run names it, nothing moves; once it is back a rerun rebuilds its share as it was."""

import json
import shutil
import subprocess

import pytest
import yaml

from helpers.ansible_runs import ansible_env, run_module, run_playbook, task_results
from helpers.paths import BIN, ROOT

# Ranges only these tests use (one per test's fleet); nothing routes to or from them.
SUBNET = "10.213.251"
DOWN_SUBNET = "10.213.246"
HOSTS = ["h1", "h2", "h3"]
WIDE = {
    "lab": "wide",
    "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "64M", "pids": 64}},
    "networks": {"lan": {"subnet": "10.251.101.0/24"}},
    "nodes": {"n1": {"networks": ["lan"]}, "n2": {"networks": ["lan"]},
              "n3": {"networks": ["lan"]}},
    "links": [{"endpoints": ["n1:eth1", "n2:eth1"], "subnet": "10.251.102.0/30"}],
}

pytestmark = pytest.mark.skipif(not shutil.which("ssh"), reason="needs the ssh client")


def fleet_vars(lab, state="present", subnet=SUBNET):
    return {"nslab_fleet_lab": lab.name, "state": state,
            "nslab_fleet_bridge_address": subnet + ".1/24",
            "nslab_fleet_hosts": [{"name": h, "address": "%s.%d" % (subnet, 11 + i)}
                                  for i, h in enumerate(HOSTS)]}


def run_lab_yml(inventory, topology, pattern, *args, **extra):
    """lab.yml's return code and its task results."""
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", inventory, str(ROOT / "lab.yml"),
         "-e", json.dumps(dict(extra, lab=str(topology), nslab_hosts=pattern))] + list(args),
        cwd=ROOT, env=ansible_env(), capture_output=True, text=True)
    results = task_results(proc.stdout)
    assert results, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.returncode, results


def lab_yml(inventory, topology, pattern, *args, **extra):
    returncode, results = run_lab_yml(inventory, topology, pattern, *args, **extra)
    failed = [r for r in results if r["_status"] in ("failed", "unreachable")]
    assert returncode == 0 and not failed, failed
    return results


def changed(results):
    return sorted(set((r["_host"], r["_task"].split(" : ")[-1]) for r in results
                      if r.get("changed")))


def view(results):
    """The lab-wide view lab.yml prints at the end."""
    return [r for r in results if r["_task"].endswith("One view of the lab over its hosts")][
        0]["fleet"]["wide"]


def on(fleet_dir, host, command, subnet=SUBNET):
    address = "%s.%d" % (subnet, 11 + HOSTS.index(host))
    return subprocess.run(
        ["ssh", "-i", fleet_dir + "/id_ed25519", "-o", "UserKnownHostsFile=%s/known_hosts"
         % fleet_dir, "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "root@" + address, command],
        capture_output=True, text=True, timeout=60)


def in_node(fleet_dir, host, node, command, enter="--all", subnet=SUBNET):
    """Run a command in a node: in all its namespaces and root (its busybox), or with
    ``enter="--net"`` the fleet host's own tools in the node's net namespace."""
    pid = ("$(python3 -c 'import json; print(json.load(open(\"/run/nslab/wide/containers/"
           "%s.json\"))[\"pid\"])')" % node)
    return on(fleet_dir, host, "nsenter --target %s %s %s" % (pid, enter, command), subnet)


def test_a_lab_spread_over_the_fleet(lab, tmp_path):
    assert run_playbook("fleet.yml", fleet_vars(lab)).returncode == 0
    fleet_dir = "/var/lib/nslab/%s/ssh" % lab.name
    inventory = fleet_dir + "/inventory.yml"
    topology = tmp_path / "wide.yml"
    topology.write_text(yaml.safe_dump(WIDE))
    try:
        # two hosts first: n1 and n3 on h1, n2 on h2 (the least loaded, in order)
        first = lab_yml(inventory, topology, "h1:h2")
        where = dict((n, v["host"]) for n, v in view(first)["nodes"].items())
        assert where == {"n1": "h1", "n2": "h2", "n3": "h1"}
        assert all(v["state"] == "running" for v in view(first)["nodes"].values())
        assert in_node(fleet_dir, "h1", "n1", "ping -c1 -W2 n2").returncode == 0
        assert in_node(fleet_dir, "h2", "n2", "ping -c1 -W2 n3").returncode == 0
        assert in_node(fleet_dir, "h1", "n1", "ping -c1 -W2 10.251.102.2").returncode == 0
        link = json.loads(in_node(fleet_dir, "h1", "n1", "ip -j -d link show eth1",
                                  enter="--net").stdout)[0]
        assert link["linkinfo"]["info_kind"] == "vxlan" and link["mtu"] == 1450

        # a third host joins: nothing moves or restarts; the others only get a new peer
        pids = dict((n, v["pid"]) for n, v in view(first)["nodes"].items())
        wider = dict(WIDE, nodes=dict(WIDE["nodes"], n4={"networks": ["lan"]}))
        topology.write_text(yaml.safe_dump(wider))
        grown = lab_yml(inventory, topology, lab.name)
        nodes = view(grown)["nodes"]
        assert dict((n, nodes[n]["pid"]) for n in pids) == pids
        assert nodes["n4"]["host"] == "h3"
        assert in_node(fleet_dir, "h3", "n4", "ping -c1 -W2 n1").returncode == 0
        assert changed(lab_yml(inventory, topology, lab.name)) == []

        # h2's share broken by hand, rebuilt alone: nothing else is touched
        assert on(fleet_dir, "h2", "ip link del wide-lan-vx").returncode == 0
        repaired = lab_yml(inventory, topology, lab.name, "--limit", "h2")
        assert changed(repaired) == [
            ("h2", "Tunnels to the lab's other hosts (networks stretched, links across hosts)")]
        assert in_node(fleet_dir, "h1", "n1", "ping -c1 -W2 n2").returncode == 0

        removed = lab_yml(inventory, topology, lab.name, state="absent")
        assert set(h for h, _task in changed(removed)) == set(HOSTS)
        for host in HOSTS:
            left = on(fleet_dir, host, "ls /run/nslab /var/lib/nslab 2>/dev/null; "
                                       "ip -br link | grep -c wide")
            assert left.stdout.split()[-1] == "0", (host, left.stdout)
    finally:
        assert run_playbook("fleet.yml", fleet_vars(lab, "absent")).returncode == 0
    assert not lab.leftovers()


def test_one_host_down_the_others_finish_and_it_comes_back_as_it_was(lab, tmp_path):
    assert run_playbook("fleet.yml", fleet_vars(lab, subnet=DOWN_SUBNET)).returncode == 0
    fleet_dir = "/var/lib/nslab/%s/ssh" % lab.name
    inventory = fleet_dir + "/inventory.yml"
    topology = tmp_path / "wide.yml"
    topology.write_text(yaml.safe_dump(WIDE))

    def ping(host, node, target):
        return in_node(fleet_dir, host, node, "ping -c1 -W2 " + target,
                       subnet=DOWN_SUBNET).returncode == 0
    try:
        built = view(lab_yml(inventory, topology, lab.name))["nodes"]
        where = dict((n, v["host"]) for n, v in built.items())
        assert where == {"n1": "h1", "n2": "h2", "n3": "h3"}

        # a real outage: h3's init (its sshd) stops, and with it h3's nested lab
        assert run_module("nslab_container", {"lab": lab.name, "name": "h3",
                                              "state": "stopped"})["changed"]
        returncode, results = run_lab_yml(inventory, topology, lab.name)
        assert returncode != 0
        unreachable = [r for r in results if r["_status"] == "unreachable" and r["_host"] == "h3"]
        assert unreachable and "10.213.246.13" in unreachable[0]["msg"]
        assert not [r for r in results if r["_status"] == "failed"]
        # h1 and h2 finished their share (the plan kept, the view read) and changed nothing
        kept = [r["_host"] for r in results if r["_task"].endswith("Keep the lab-wide plan on "
                "each host (placement and addresses stay while one is down)")]
        assert sorted(kept) == ["h1", "h2"] and changed(results) == []
        during = view(results)
        assert during["hosts"]["h3"] == {"unreachable": True}
        assert during["nodes"]["n3"]["state"] == "unknown"
        assert dict((n, (v["host"], v["addresses"])) for n, v in during["nodes"].items()) == \
            dict((n, (v["host"], v["addresses"])) for n, v in built.items())
        # the two up hosts reach each other, over the stretched network and the link's tunnel
        assert ping("h1", "n1", "n2") and ping("h2", "n2", "10.251.102.1")

        # h3 back (restarted, its nested lab gone): a rerun rebuilds n3 there, as it was
        assert run_playbook("fleet.yml", fleet_vars(lab, subnet=DOWN_SUBNET)).returncode == 0
        back = view(lab_yml(inventory, topology, lab.name))["nodes"]
        assert back["n3"]["host"] == "h3" and back["n3"]["state"] == "running"
        assert back["n3"]["addresses"] == built["n3"]["addresses"]
        assert ping("h3", "n3", "n1") and ping("h1", "n1", "n3") and ping("h2", "n2", "n3")
        assert changed(lab_yml(inventory, topology, lab.name)) == []

        removed = lab_yml(inventory, topology, lab.name, state="absent")
        assert set(h for h, _task in changed(removed)) == set(HOSTS)
        for host in HOSTS:
            # the kept plan goes too
            left = on(fleet_dir, host, "find /run/nslab /var/lib/nslab -mindepth 1",
                      DOWN_SUBNET)
            assert left.stdout == "", (host, left.stdout)
    finally:
        assert run_playbook("fleet.yml", fleet_vars(lab, "absent", DOWN_SUBNET)).returncode == 0
    assert not lab.leftovers()

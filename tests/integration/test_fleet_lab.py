"""lab.yml over the test fleet (three Debian system containers reached by real SSH): a lab
spread over two hosts, then a third host added (nothing moves), one host rebuilt alone
under --limit, nodes reaching each other across hosts by name and over a link's tunnel,
and the lab removed from every host. Then one host down mid-life: the others finish and
the run names it, nothing moves; once it is back a rerun rebuilds its share as it was.
The fleet is the session's (the ``fleet`` fixture); each test builds a lab of its own
name in it and removes it."""

import json
import subprocess

import yaml

from helpers.ansible_runs import ansible_env, run_module, task_results
from helpers.paths import BIN, ROOT


def lab_spec(name, third):
    """Three busybox nodes on one network, n1 and n2 also on a point-to-point link; the
    addresses are in 10.251.<third>.0/24 and 10.251.<third + 1>.0/30 (inside the fleet's
    hosts only: nothing on this machine routes them)."""
    return {
        "lab": name,
        "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "64M", "pids": 64}},
        "networks": {"lan": {"subnet": "10.251.%d.0/24" % third}},
        "nodes": {"n1": {"networks": ["lan"]}, "n2": {"networks": ["lan"]},
                  "n3": {"networks": ["lan"]}},
        "links": [{"endpoints": ["n1:eth1", "n2:eth1"],
                   "subnet": "10.251.%d.0/30" % (third + 1)}],
    }


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


def view(results, name):
    """The lab-wide view lab.yml prints at the end."""
    return [r for r in results if r["_task"].endswith("One view of the lab over its hosts")][
        0]["fleet"][name]


def in_node(fleet, host, lab_name, node, command, enter="--all"):
    """Run a command in a node: in all its namespaces and root (its busybox), or with
    ``enter="--net"`` the fleet host's own tools in the node's net namespace."""
    pid = ("$(python3 -c 'import json; print(json.load(open(\"/run/nslab/%s/containers/"
           "%s.json\"))[\"pid\"])')" % (lab_name, node))
    return fleet.ssh(host, "nsenter --target %s %s %s" % (pid, enter, command))


def test_a_lab_spread_over_the_fleet(fleet, tmp_path):
    inventory, hosts = fleet.inventory, fleet.hosts
    spec = lab_spec("wide", 101)
    topology = tmp_path / "wide.yml"
    topology.write_text(yaml.safe_dump(spec))

    def ping(host, node, target):
        return in_node(fleet, host, "wide", node, "ping -c1 -W2 " + target).returncode == 0

    # two hosts first: n1 and n3 on h1, n2 on h2 (the least loaded, in order)
    first = lab_yml(inventory, topology, "h1:h2")
    where = dict((n, v["host"]) for n, v in view(first, "wide")["nodes"].items())
    assert where == {"n1": "h1", "n2": "h2", "n3": "h1"}
    assert all(v["state"] == "running" for v in view(first, "wide")["nodes"].values())
    assert ping("h1", "n1", "n2")
    assert ping("h2", "n2", "n3")
    assert ping("h1", "n1", "10.251.102.2")
    link = json.loads(in_node(fleet, "h1", "wide", "n1", "ip -j -d link show eth1",
                              enter="--net").stdout)[0]
    assert link["linkinfo"]["info_kind"] == "vxlan" and link["mtu"] == 1450

    # a third host joins: nothing moves or restarts; the others only get a new peer
    pids = dict((n, v["pid"]) for n, v in view(first, "wide")["nodes"].items())
    wider = dict(spec, nodes=dict(spec["nodes"], n4={"networks": ["lan"]}))
    topology.write_text(yaml.safe_dump(wider))
    grown = lab_yml(inventory, topology, fleet.lab.name)
    nodes = view(grown, "wide")["nodes"]
    assert dict((n, nodes[n]["pid"]) for n in pids) == pids
    assert nodes["n4"]["host"] == "h3"
    assert ping("h3", "n4", "n1")
    assert changed(lab_yml(inventory, topology, fleet.lab.name)) == []

    # h2's share broken by hand, rebuilt alone: nothing else is touched
    assert fleet.ssh("h2", "ip link del wide-lan-vx").returncode == 0
    repaired = lab_yml(inventory, topology, fleet.lab.name, "--limit", "h2")
    assert changed(repaired) == [
        ("h2", "Tunnels to the lab's other hosts (networks stretched, links across hosts)")]
    assert ping("h1", "n1", "n2")

    removed = lab_yml(inventory, topology, fleet.lab.name, state="absent")
    assert set(h for h, _task in changed(removed)) == set(hosts)
    for host in hosts:
        left = fleet.ssh(host, "ls /run/nslab /var/lib/nslab 2>/dev/null; "
                               "ip -br link | grep -c wide")
        assert left.stdout.split()[-1] == "0", (host, left.stdout)


def test_one_host_down_the_others_finish_and_it_comes_back_as_it_was(fleet, tmp_path):
    inventory, hosts, lab_name = fleet.inventory, fleet.hosts, "down"
    topology = tmp_path / "down.yml"
    topology.write_text(yaml.safe_dump(lab_spec(lab_name, 103)))

    def ping(host, node, target):
        return in_node(fleet, host, lab_name, node, "ping -c1 -W2 " + target).returncode == 0

    built = view(lab_yml(inventory, topology, fleet.lab.name), lab_name)["nodes"]
    where = dict((n, v["host"]) for n, v in built.items())
    assert where == {"n1": "h1", "n2": "h2", "n3": "h3"}

    # a real outage: h3's init (its sshd) stops, and with it h3's nested lab
    assert run_module("nslab_container", {"lab": fleet.lab.name, "name": "h3",
                                          "state": "stopped"})["changed"]
    try:
        returncode, results = run_lab_yml(inventory, topology, fleet.lab.name)
        assert returncode != 0
        unreachable = [r for r in results if r["_status"] == "unreachable" and r["_host"] == "h3"]
        assert unreachable and fleet.address("h3") in unreachable[0]["msg"]
        assert not [r for r in results if r["_status"] == "failed"]
        # h1 and h2 finished their share (the plan kept, the view read) and changed nothing
        kept = [r["_host"] for r in results if r["_task"].endswith("Keep the lab-wide plan on "
                "each host (placement and addresses stay while one is down)")]
        assert sorted(kept) == ["h1", "h2"] and changed(results) == []
        during = view(results, lab_name)
        assert during["hosts"]["h3"] == {"unreachable": True}
        assert during["nodes"]["n3"]["state"] == "unknown"
        assert dict((n, (v["host"], v["addresses"])) for n, v in during["nodes"].items()) == \
            dict((n, (v["host"], v["addresses"])) for n, v in built.items())
        # the two up hosts reach each other, over the stretched network and the link's tunnel
        assert ping("h1", "n1", "n2") and ping("h2", "n2", "10.251.104.1")
    finally:
        # h3 back (restarted, its nested lab gone), for this test and the fleet's next users
        assert recap_ok(fleet.playbook())

    back = view(lab_yml(inventory, topology, fleet.lab.name), lab_name)["nodes"]
    assert back["n3"]["host"] == "h3" and back["n3"]["state"] == "running"
    assert back["n3"]["addresses"] == built["n3"]["addresses"]
    assert ping("h3", "n3", "n1") and ping("h1", "n1", "n3") and ping("h2", "n2", "n3")
    assert changed(lab_yml(inventory, topology, fleet.lab.name)) == []

    removed = lab_yml(inventory, topology, fleet.lab.name, state="absent")
    assert set(h for h, _task in changed(removed)) == set(hosts)
    for host in hosts:
        # the kept plan goes too
        left = fleet.ssh(host, "find /run/nslab /var/lib/nslab -mindepth 1")
        assert left.stdout == "", (host, left.stdout)


def recap_ok(results):
    """No task of a playbook run failed or was unreachable."""
    return not [r for r in results if r["_status"] in ("failed", "unreachable")]

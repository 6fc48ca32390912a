"""The nslab inventory plugin on a real lab (``running_lab``): the hosts and groups it lists
are the lab's nodes, and ``ansible -m raw`` through them runs inside each running node (its
hostname, its cgroups); the stopped node is listed and reported, not skipped."""

import ipaddress
import json
import subprocess

import pytest

from helpers.ansible_runs import ansible_env, task_results
from helpers.lab import RUNNING_LAB_LINK
from helpers.paths import BIN, ROOT


@pytest.fixture
def source(running_lab, tmp_path):
    """An inventory source restricted to running_lab (other labs may run on this machine)."""
    path = tmp_path / "nslab.yml"
    # With the Constructable options users expect (compose, groups, keyed_groups).
    path.write_text("plugin: nslab.lab.nslab\nlabs: [%s]\n"
                    "compose: {mgmt_address: nslab_addresses | first}\n"
                    "groups: {small: (nslab_limits.memory | default(0)) < 67108864}\n"
                    "keyed_groups: [{key: nslab_state, prefix: state}]\n" % running_lab.name)
    return str(path)


def plain(value):
    """A value of ``ansible-inventory --list``, where strings read from the machine (never
    templates: the plugin does not mark them trusted) are shown as {"__ansible_unsafe": s}."""
    if isinstance(value, dict):
        if list(value) == ["__ansible_unsafe"]:
            return value["__ansible_unsafe"]
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def inventory(*args):
    proc = subprocess.run([str(BIN / "ansible-inventory")] + list(args), cwd=ROOT,
                          env=ansible_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_inventory_lists_exactly_the_labs_nodes(running_lab, source):
    listed = plain(json.loads(inventory("-i", source, "--list")))
    name = running_lab.name
    nodes = ["%s/%s" % (name, n) for n in "abcd"]
    assert sorted(listed["_meta"]["hostvars"]) == nodes
    assert sorted(listed[name]["hosts"]) == nodes
    assert sorted(listed["%s_lan" % name]["hosts"]) == nodes
    assert sorted(listed["nslab_running"]["hosts"]) == nodes[:3]
    assert listed["nslab_stopped"]["hosts"] == [nodes[3]]
    assert listed["small"]["hosts"] == [nodes[2]]
    assert listed["state_stopped"]["hosts"] == [nodes[3]]
    hostvars = listed["_meta"]["hostvars"]
    assert hostvars[nodes[1]]["mgmt_address"] == hostvars[nodes[1]]["nslab_addresses"][0]
    for node in "abcd":
        host_vars = hostvars["%s/%s" % (name, node)]
        assert host_vars["ansible_connection"] == "nslab.lab.nslab"
        assert host_vars["nslab_node"] == node and host_vars["nslab_lab"] == name
        assert host_vars["nslab_interfaces"]["eth0"]["network"] == "lan"
    assert hostvars[nodes[3]]["nslab_state"] == "stopped"
    assert hostvars[nodes[3]]["nslab_pid"] is None
    assert hostvars[nodes[2]]["nslab_limits"]["memory"] == 32 * 2 ** 20
    assert hostvars[nodes[0]]["nslab_limits"]["memory"] == 64 * 2 ** 20
    # The point-to-point link a:eth1 - c:eth1: its addresses, no network.
    assert hostvars[nodes[0]]["nslab_interfaces"]["eth1"]["network"] is None
    link = ipaddress.ip_network(RUNNING_LAB_LINK)
    assert hostvars[nodes[0]]["nslab_interfaces"]["eth1"]["addresses"] == [
        "%s/%d" % (next(link.hosts()), link.prefixlen)]


def test_the_ready_source_shows_the_lab_in_the_graph(running_lab):
    graph = inventory("-i", "inventory/nslab.yml", "--graph")
    assert "@%s:" % running_lab.name in graph
    for node in "abcd":
        assert "%s/%s\n" % (running_lab.name, node) in graph


def cgroup_lines(text):
    """{controllers: path} of a /proc/<pid>/cgroup."""
    return dict(line.split(":", 2)[1:] for line in text.strip().splitlines())


def test_raw_runs_in_each_running_node_and_the_stopped_one_is_reported(running_lab, source):
    name = running_lab.name
    proc = subprocess.run(
        [str(BIN / "ansible"), "-i", source, name, "-m", "raw",
         "-a", "hostname; echo ---; cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup"],
        cwd=ROOT, env=ansible_env(), capture_output=True, text=True)
    results = dict((r["_host"], r) for r in task_results(proc.stdout))
    assert sorted(results) == ["%s/%s" % (name, n) for n in "abcd"], proc.stdout + proc.stderr
    pids = dict((h, v["nslab_pid"]) for h, v in plain(json.loads(
        inventory("-i", source, "--list")))["_meta"]["hostvars"].items())
    for node in "abc":
        host = "%s/%s" % (name, node)
        result = results[host]
        assert result["_status"] == "ok" and result["rc"] == 0, result
        hostname, inside_self, inside_init = result["stdout"].split("---")
        assert hostname.strip() == node
        with open("/proc/%d/cgroup" % pids[host]) as handle:
            outside_init = cgroup_lines(handle.read())
        # The node's cgroups, seen from the host, are nslab's; inside its cgroup namespace
        # (rooted at them) the raw command sits at the root of each, where its init is.
        nslab_controllers = [c for c, path in outside_init.items()
                             if path == "/nslab/%s/%s" % (name, node)]
        assert {"memory", "pids"} <= set(",".join(nslab_controllers).split(","))
        inside = cgroup_lines(inside_self)
        assert inside == cgroup_lines(inside_init)
        for controllers in nslab_controllers:
            assert inside[controllers] == "/", (controllers, inside)
    stopped = results["%s/d" % name]
    assert stopped["_status"] == "unreachable"
    assert "container 'd' is not running" in stopped["msg"]

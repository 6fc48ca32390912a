"""Topology validation and compilation (pure)."""

import copy

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import (
    compile_lab, short_ifname, validate)

DEMO = {
    "lab": "demo",
    "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "64M", "cpus": 0.5,
                                                          "pids": 64}},
    "networks": {"lan": {"subnet": "10.213.1.0/24"}},
    "nodes": {
        "apt101": {"networks": ["lan"]},
        "apt102": {"networks": {"lan": "10.213.1.12"}},
        "apt103": {"networks": ["lan"], "limits": {"memory": "32M"},
                   "command": ["httpd", "-f", "-p", "80"]},
    },
    "links": [["apt101:eth1", "apt103:eth1"]],
}


def test_the_issue_example_is_valid():
    assert validate(DEMO) == []


def test_every_problem_is_listed_at_once():
    bad = copy.deepcopy(DEMO)
    bad["colour"] = "blue"
    bad["networks"]["dmz"] = {"subnet": "10.213.1.128/25"}             # overlaps lan
    bad["networks"]["odd"] = {"subnet": "10.0.0.1/24"}                 # host bits set
    bad["nodes"]["apt102"]["networks"]["lan"] = "10.213.2.5"           # outside
    bad["nodes"]["apt104"] = {"networks": {"lan": "10.213.1.1"}}       # the host's address
    bad["nodes"]["apt105"] = {"networks": ["wan"], "limits": {"memory": "lots", "cpus": 0}}
    bad["nodes"]["Bad_Name"] = {}
    bad["links"].append(["apt101:eth1", "ghost:eth0"])
    bad["links"].append(["apt101:eth0", "apt103:eth9"])
    problems = validate(bad)
    expected = [
        "topology: unknown key 'colour'",
        "networks.dmz.subnet: 10.213.1.128/25 overlaps networks.lan",
        "networks.odd.subnet: '10.0.0.1/24' is not a network",
        "nodes.apt102.networks.lan: 10.213.2.5 is outside 10.213.1.0/24",
        "nodes.apt104.networks.lan: 10.213.1.1 is reserved",
        "nodes.apt105.networks: unknown network 'wan'",
        "nodes.apt105.limits.memory: size 'lots' is invalid",
        "nodes.apt105.limits.cpus: 0 is invalid",
        "nodes.Bad_Name: node name 'Bad_Name' is invalid",
        "links[1]: unknown node 'ghost'",
        "links[1]: interface eth1 of node apt101 is already used",
        "links[2]: interface eth0 of node apt101 is already used",
    ]
    for fragment in expected:
        assert any(p.startswith(fragment) for p in problems), (fragment, problems)
    assert len(problems) == len(expected)


def test_duplicate_address_and_self_link():
    bad = copy.deepcopy(DEMO)
    bad["nodes"]["apt101"]["networks"] = {"lan": "10.213.1.12"}
    bad["links"] = [["apt101:eth1", "apt101:eth2"]]
    problems = validate(bad)
    assert any("nodes.apt102.networks.lan: 10.213.1.12 is already used by node apt101" in p for p in problems)
    assert any("both ends are on node apt101" in p for p in problems)


def test_compile_allocates_in_order_around_explicit_addresses():
    lab = compile_lab(DEMO)
    addresses = dict((v["peer"]["netns"], v["peer"]["addresses"]) for v in lab["veths"]
                     if "bridge" in v)
    assert addresses == {"demo-apt101": ["10.213.1.2/24"], "demo-apt102": ["10.213.1.12/24"],
                         "demo-apt103": ["10.213.1.3/24"]}
    assert lab["bridges"] == [{"name": "demo-lan", "addresses": ["10.213.1.1/24"],
                               "nat": False, "ipv6": False}]
    assert lab["hosts"] == {"apt101": "10.213.1.2", "apt102": "10.213.1.12",
                            "apt103": "10.213.1.3"}
    p2p = lab["veths"][-1]
    assert p2p == {"name": "eth1", "netns": "demo-apt101",
                   "peer": {"name": "eth1", "netns": "demo-apt103"}}
    limits = dict((l["name"], l) for l in lab["cgroups"])
    assert limits["apt103"]["memory"] == "32M" and limits["apt103"]["pids"] == 64
    assert lab["containers"][2]["command"] == ["httpd", "-f", "-p", "80"]
    assert lab["containers"][2]["jail"] == lab["containers"][2]["cgroup"] == "apt103"
    assert all(len(v["name"].encode()) <= 15 for v in lab["veths"])


def test_addresses_are_sticky_when_a_node_goes():
    before = compile_lab(DEMO)["hosts"]
    smaller = copy.deepcopy(DEMO)
    del smaller["nodes"]["apt101"]
    smaller["links"] = []
    current = {"netns_addresses": dict(("demo-" + n, [a + "/24"]) for n, a in before.items())}
    after = compile_lab(smaller, current)["hosts"]
    assert after == {"apt102": "10.213.1.12", "apt103": "10.213.1.3"}
    # without the current addresses apt103 would have moved to .2
    assert compile_lab(smaller)["hosts"]["apt103"] == "10.213.1.2"


def test_link_subnet_gives_addresses():
    topo = copy.deepcopy(DEMO)
    topo["links"] = [{"endpoints": ["apt101:eth1", "apt103:eth1"], "subnet": "10.213.9.0/30"}]
    assert validate(topo) == []
    p2p = compile_lab(topo)["veths"][-1]
    assert p2p["addresses"] == ["10.213.9.1/30"]
    assert p2p["peer"]["addresses"] == ["10.213.9.2/30"]


@pytest.mark.parametrize("parts", [("demo", "lan"), ("a-very-long-lab", "backbone", "3")])
def test_short_ifnames_fit_and_are_stable(parts):
    name = short_ifname(*parts)
    assert len(name.encode()) <= 15 and name == short_ifname(*parts)
    assert name.startswith(parts[0][:3])


def test_what_the_file_no_longer_names_is_removed_alone():
    full = compile_lab(DEMO)
    current = {
        "containers": [{"name": n} for n in full["nodes"]],
        "namespaces": full["namespaces"],
        "bridges": full["bridges"] + [{"name": "demo-old"}],
        "veths": [{"name": v["name"], "netns": v.get("netns")} for v in full["veths"]]
        + [{"name": v["peer"]["name"], "netns": v["peer"]["netns"]} for v in full["veths"]],
        "jails": [{"name": n} for n in full["nodes"]],
        "cgroups": [{"name": n} for n in full["nodes"]],
    }
    assert compile_lab(DEMO, current)["remove"] == {
        "containers": [], "namespaces": [], "bridges": [{"name": "demo-old"}], "veths": [],
        "jails": [], "cgroups": [], "vxlans": []}
    smaller = copy.deepcopy(DEMO)
    del smaller["nodes"]["apt103"]
    smaller["links"] = []
    remove = compile_lab(smaller, current)["remove"]
    assert remove["containers"] == [{"name": "apt103"}]
    assert remove["namespaces"] == [{"name": "demo-apt103"}]
    assert remove["jails"] == remove["cgroups"] == [{"name": "apt103"}]
    # the host end of apt103's eth0 and the p2p end left in apt101 go; ends inside the
    # removed namespace go with it
    assert remove["veths"] == [{"name": "demo-apt103-0", "netns": None},
                               {"name": "eth1", "netns": "demo-apt101"}]

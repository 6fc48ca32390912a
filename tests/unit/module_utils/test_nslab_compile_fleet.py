"""A lab over several hosts (pure): placement, stickiness, lab-wide addresses, VNIs, MTUs,
and each host's share."""

import copy

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import TopologyError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import (
    compile_lab, derive_vni, validate)

from helpers.fleet_topology import LAB, built, compile_all, fleet


def test_every_host_compiles_the_same_plan_and_builds_only_its_share():
    shares = compile_all(LAB, fleet())
    plans = [(s["nodes"], s["networks"], s["links"], s["hosts"]) for s in shares.values()]
    assert all(p == plans[0] for p in plans)
    # e is pinned to h1; the others go in file order to the least loaded host, the first
    # in the fleet's order on a tie
    assert dict((n, v["host"]) for n, v in shares["h1"]["nodes"].items()) == {
        "a": "h2", "b": "h3", "c": "h1", "d": "h2", "e": "h1"}
    assert [c["name"] for c in shares["h2"]["containers"]] == ["a", "d"]
    assert [n["name"] for n in shares["h3"]["namespaces"]] == ["wide-b"]
    built_nodes = sorted(c["name"] for s in shares.values() for c in s["containers"])
    assert built_nodes == sorted(LAB["nodes"])


def test_networks_are_stretched_with_a_reported_vni_and_mtu():
    shares = compile_all(LAB, fleet())
    lan = shares["h1"]["networks"]["lan"]
    assert lan["vni"] == derive_vni("wide", "network/lan", set())
    assert lan["mtu"] == 1450 and lan["hosts"] == ["h1", "h2", "h3"]
    assert shares["h1"]["networks"]["dmz"]["hosts"] == ["h1", "h3"]
    # h2 has no member of dmz: no bridge, no tunnel for it
    assert [b["name"] for b in shares["h2"]["bridges"]] == ["wide-lan"]
    vx = dict((v["name"], v) for v in shares["h2"]["vxlans"])["wide-lan-vx"]
    assert vx == {"name": "wide-lan-vx", "vni": lan["vni"], "local": "192.0.2.12",
                  "peers": ["192.0.2.11", "192.0.2.13"], "bridge": "wide-lan", "mtu": 1450}
    # the MTU reaches the bridge and the nodes' veths, so the containers use it
    assert all(b["mtu"] == 1450 for b in shares["h2"]["bridges"])
    assert all(v["mtu"] == 1450 for v in shares["h2"]["veths"] if "bridge" in v)
    vnis = [n["vni"] for n in shares["h1"]["networks"].values()]
    vnis += [l["vni"] for l in shares["h1"]["links"] if l["tunnel"]]
    assert len(set(vnis)) == len(vnis) == 3


def test_the_smallest_underlay_mtu_sets_the_segments_and_ipv6_costs_more():
    members = fleet()
    members[2]["underlay"]["mtu"] = 1400
    assert compile_lab(LAB, fleet=members, host="h1")["networks"]["lan"]["mtu"] == 1350
    v6 = fleet(prefix="2001:db8::")
    assert compile_lab(LAB, fleet=v6, host="h1")["networks"]["lan"]["mtu"] == 1430
    too_big = copy.deepcopy(LAB)
    too_big["networks"]["lan"]["mtu"] = 1500
    with pytest.raises(TopologyError, match="networks.lan.mtu: 1500 does not fit in VXLAN over "
                                         "the hosts' underlay; expected at most 1450"):
        compile_lab(too_big, fleet=fleet(), host="h1")


def test_a_link_across_hosts_is_a_tunnel_of_its_own_and_one_within_a_host_a_veth():
    shares = compile_all(LAB, fleet())
    across, within = shares["h1"]["links"]
    assert across["hosts"] == ["h2", "h3"] and across["tunnel"] and across["mtu"] == 1450
    assert within == {"endpoints": ["a:eth2", "d:eth1"], "hosts": ["h2", "h2"],
                      "tunnel": False}
    assert {"name": "eth2", "netns": "wide-a", "peer": {"name": "eth1", "netns": "wide-d"}} \
        in shares["h2"]["veths"]
    end = [v for v in shares["h2"]["vxlans"] if v["name"] == "eth1"][0]
    assert end == {"name": "eth1", "netns": "wide-a", "vni": across["vni"],
                   "local": "192.0.2.12", "peers": ["192.0.2.13"], "mtu": 1450,
                   "addresses": ["10.213.9.1/30"]}
    other = [v for v in shares["h3"]["vxlans"] if v["name"] == "eth2"][0]
    assert other["netns"] == "wide-b" and other["peers"] == ["192.0.2.12"]
    assert other["addresses"] == ["10.213.9.2/30"] and other["vni"] == across["vni"]
    apart = copy.deepcopy(LAB)
    apart["nodes"]["d"]["host"] = "h3"
    vxlans = compile_lab(apart, fleet=fleet(), host="h3")["vxlans"]
    assert [(v["name"], v["netns"], v["peers"], v["addresses"]) for v in vxlans
            if v.get("netns") == "wide-d"] == [("eth1", "wide-d", ["192.0.2.12"], [])]


def test_addresses_are_unique_lab_wide_and_bridges_take_them_from_the_top():
    shares = compile_all(LAB, fleet())
    lan = shares["h1"]["networks"]["lan"]["bridge_addresses"]
    assert lan == {"h1": "10.213.1.254/24", "h2": "10.213.1.253/24",
                   "h3": "10.213.1.252/24"}
    assert shares["h2"]["bridges"][0]["addresses"] == ["10.213.1.253/24"]
    used = [a for s in shares.values() for b in s["bridges"] for a in b["addresses"]]
    used += [i["address"] for n in shares["h1"]["nodes"].values() for i in n["interfaces"]
             if i["address"]]
    assert len(used) == len(set(used))
    assert shares["h1"]["hosts"] == {"a": "10.213.1.2", "b": "10.213.1.3", "c": "10.213.1.4",
                                     "d": "10.213.1.50", "e": "10.213.2.3"}


def test_a_host_added_moves_nothing_and_renumbers_nothing():
    currents = built(LAB, fleet())
    bigger = copy.deepcopy(LAB)
    bigger["nodes"]["f"] = {"networks": ["lan"]}
    after = compile_all(bigger, fleet(("h1", "h2", "h3", "h4"), currents))
    before = compile_all(LAB, fleet())["h1"]
    for name in LAB["nodes"]:
        assert after["h1"]["nodes"][name] == before["nodes"][name]
    assert after["h1"]["nodes"]["f"]["host"] == "h4"          # the least loaded host
    assert after["h1"]["networks"]["lan"]["bridge_addresses"]["h2"] == "10.213.1.253/24"
    assert after["h1"]["networks"]["lan"]["bridge_addresses"]["h4"] == "10.213.1.251/24"
    # each existing host gets the new one as a peer, and removes nothing
    assert "192.0.2.14" in after["h2"]["vxlans"][0]["peers"]
    assert all(not any(s["remove"].values()) for s in after.values())


def test_a_running_node_stays_where_it_is_and_a_pinned_one_moves():
    currents = built(LAB, fleet())
    # b runs on h3; without that it would be placed on h1 by a fleet in another order
    reordered = compile_lab(LAB, fleet=fleet(("h3", "h2", "h1"), currents), host="h1")
    assert reordered["nodes"]["b"]["host"] == "h3"
    moved = copy.deepcopy(LAB)
    moved["nodes"]["b"]["host"] = "h1"
    shares = compile_all(moved, fleet(currents=currents))
    assert shares["h1"]["nodes"]["b"]["host"] == "h1"
    assert shares["h3"]["remove"]["containers"] == [{"name": "b"}]
    assert shares["h3"]["remove"]["namespaces"] == [{"name": "wide-b"}]
    # its addresses went with it
    assert shares["h1"]["hosts"]["b"] == "10.213.1.3"
    assert [i["address"] for i in shares["h1"]["nodes"]["b"]["interfaces"]][:2] == [
        "10.213.1.3/24", "10.213.2.2/24"]


def test_a_newcomer_never_takes_a_running_nodes_address():
    currents = built(LAB, fleet())
    earlier = copy.deepcopy(LAB)
    earlier["nodes"] = dict([("z", {"networks": ["lan"]})] + list(LAB["nodes"].items()))
    shares = compile_all(earlier, fleet(currents=currents))
    assert shares["h1"]["hosts"]["a"] == "10.213.1.2"
    assert shares["h1"]["hosts"]["z"] == "10.213.1.5"


def test_one_host_compiles_as_before():
    unpinned = dict(LAB, nodes=dict((n, dict((k, v) for k, v in node.items() if k != "host"))
                                    for n, node in LAB["nodes"].items()))
    local = [{"name": "localhost", "current": {}}]
    alone = compile_lab(unpinned, fleet=local, host="localhost")
    legacy = compile_lab(unpinned)
    with pytest.raises(TopologyError, match="nodes.e.host: 'h1' is not one of the lab's hosts "
                                         r"\(localhost\)"):
        compile_lab(LAB, fleet=local, host="localhost")
    assert alone["vxlans"] == [] and alone["bridges"] == legacy["bridges"]
    assert alone["veths"] == legacy["veths"] and alone["hosts"] == legacy["hosts"]
    assert alone["bridges"][0]["addresses"] == ["10.213.1.1/24"]


def test_errors_name_the_host_and_what_was_expected():
    with pytest.raises(TopologyError, match=r"host: 'h9' is not one of the lab's hosts"):
        compile_lab(LAB, fleet=fleet(), host="h9")
    stray = copy.deepcopy(LAB)
    stray["nodes"]["a"]["host"] = "h7"
    with pytest.raises(TopologyError, match=r"nodes.a.host: 'h7' is not one of the lab's hosts "
                                            r"\(h1, h2, h3\)"):
        compile_lab(stray, fleet=fleet(), host="h1")
    members = fleet()
    members[1]["underlay"] = {"address": "fleet2.example", "mtu": None}
    members[2]["underlay"]["mtu"] = None
    with pytest.raises(TopologyError) as err:
        compile_lab(LAB, fleet=members, host="h1")
    assert "fleet.h2.underlay: 'fleet2.example' is not an IP address" in str(err.value)
    assert "fleet.h3.underlay: no interface of the host holds 192.0.2.13" in str(err.value)
    assert err.value.paths == ["fleet.h2.underlay", "fleet.h3.underlay"]
    assert err.value.details()["problems"][0].startswith("fleet.h2.underlay: ")


def test_explicit_vnis_are_checked_and_kept():
    topo = copy.deepcopy(LAB)
    topo["networks"]["lan"]["vni"] = 100
    topo["links"][0]["vni"] = 100
    topo["networks"]["dmz"]["vni"] = 0
    problems = validate(topo)
    assert "networks.dmz.vni: 0 is not a VXLAN network identifier; expected 1-16777215" in problems
    assert "links[0].vni: VNI 100 is already used by networks.lan.vni" in problems
    topo["links"][0]["vni"] = 101
    del topo["networks"]["dmz"]["vni"]
    assert validate(topo) == []
    plan = compile_lab(topo, fleet=fleet(), host="h1")
    assert plan["networks"]["lan"]["vni"] == 100 and plan["links"][0]["vni"] == 101

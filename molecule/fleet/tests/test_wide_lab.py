"""labs/wide.yml spread over the three fleet hosts, checked over SSH on each of them."""

import ipaddress
import json
import pathlib
import sys

import pytest
import testinfra

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
from nslab_verify import containers, in_container, lab_view  # noqa: E402

LAB = "wide"
NODES = ["w1", "w2", "w3", "w4", "w5", "w6"]


@pytest.fixture(scope="module")
def fleet(pytestconfig):
    """{fleet host name: (testinfra host, its share of the lab as nslab_info reads it)}."""
    hosts = testinfra.get_hosts(["ansible://fleet"],
                                ansible_inventory=pytestconfig.option.ansible_inventory)
    return {h.ansible.get_variables()["inventory_hostname"]: (h, lab_view(h, LAB))
            for h in hosts}


@pytest.fixture(scope="module")
def placed(fleet):
    """{node: (testinfra host it runs on, its container view)}."""
    return {name: (host, node) for host, view in fleet.values()
            for name, node in containers(view).items()}


def test_every_node_runs_on_exactly_one_host_and_every_host_has_some(fleet, placed):
    assert sorted(placed) == NODES
    assert sum(len(containers(view)) for _, view in fleet.values()) == len(NODES)
    assert all(containers(view) for _, view in fleet.values())
    assert all(node["state"] == "running" for _, node in placed.values())


def test_bridges_are_joined_to_every_other_host_by_vxlan(host, fleet):
    me = host.ansible.get_variables()["inventory_hostname"]
    others = sorted(h.ansible.get_variables()["ansible_host"]
                    for name, (h, _) in fleet.items() if name != me)
    bridges = lab_view(host, LAB)["bridges"]
    assert bridges and {b["name"] for b in bridges} <= {"wide-dmz", "wide-lan"}
    for bridge in bridges:
        ports = json.loads(host.check_output("ip -j -d link show master %s" % bridge["name"]))
        vxlans = [p for p in ports if p["linkinfo"]["info_kind"] == "vxlan"]
        assert len(vxlans) == 1, ports
        assert vxlans[0]["mtu"] == 1450 and bridge["mtu"] == 1450
        fdb = json.loads(host.check_output("bridge -j fdb show dev %s" % vxlans[0]["ifname"]))
        assert sorted(e["dst"] for e in fdb if e["mac"] == "00:00:00:00:00:00") == others


def shared_addresses(node, other):
    """``other``'s addresses on the networks ``node`` is on too."""
    mine = [ipaddress.ip_interface(a).network for a in node["addresses"]]
    return [a.split("/")[0] for a in other["addresses"]
            if any(ipaddress.ip_interface(a).ip in net for net in mine)]


def test_each_node_here_reaches_its_neighbours_on_every_host(host, placed):
    here = containers(lab_view(host, LAB))
    assert here
    for node in here.values():
        targets = [(other, address) for other, (_, view) in placed.items()
                   if other != node["name"] for address in shared_addresses(node, view)]
        assert targets, node
        for other, address in targets:
            ping = in_container(host, node, "ping -c1 -W3 %s" % address)
            assert ping.rc == 0, (node["name"], other, address, ping.stdout, ping.stderr)


def test_names_resolve_across_hosts(placed):
    (w1_host, w1), (w2_host, _) = placed["w1"], placed["w2"]
    assert w1_host is not w2_host
    assert in_container(w1_host, w1, "ping -c1 -W3 w2").rc == 0


def test_the_cross_host_link_is_a_tunnel_that_carries_traffic(placed):
    (w1_host, w1), (w2_host, _) = placed["w1"], placed["w2"]
    assert w1_host is not w2_host
    eth1 = json.loads(w1_host.check_output("ip -j -d -n %s link show eth1" % w1["netns"]))
    assert eth1[0]["linkinfo"]["info_kind"] == "vxlan"
    assert in_container(w1_host, w1, "ping -c1 -W3 10.213.8.2").rc == 0


def test_http_between_nodes_on_two_hosts(placed):
    (client_host, client), (server_host, _) = placed["w5"], placed["w6"]
    assert client_host is not server_host
    page = in_container(client_host, client, "wget -q -O - http://w6/hosts")
    assert page.rc == 0 and "w6" in page.stdout

"""A compiled lab grows linearly with its nodes (issue #12): the result every host's
modules receive, and the addresses it hands out, must not carry each node's view of every
other node. Sizes, not times: nothing here depends on the machine's load."""

import ipaddress
import json

import pytest

from ansible_collections.nslab.lab.plugins.lookup.nslab_node_files import node_facts
from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import (
    compile_lab, lowest_free)


def one_network(n):
    return {"lab": "scale", "defaults": {"jail": {"source": "busybox"},
                                         "limits": {"memory": "64M", "pids": 64}},
            "networks": {"lan": {"subnet": "10.213.0.0/20"}},
            "nodes": dict(("n%d" % i, {"networks": ["lan"]}) for i in range(1, n + 1))}


def test_compiled_lab_bytes_per_node_do_not_grow_with_the_lab():
    small, large = (len(json.dumps(compile_lab(one_network(n)))) / n for n in (100, 2000))
    # A few bytes more per node for longer names and addresses; a quadratic part (every
    # node's neighbours) would make it 20 times larger.
    assert large < small * 1.1, (small, large)


def test_node_facts_are_made_only_for_the_nodes_asked_for():
    lab = compile_lab(one_network(300))
    facts = node_facts(lab, ["n7"])
    assert list(facts) == ["n7"]
    assert len(facts["n7"]["neighbours"]) == 299
    assert {n["name"] for n in facts["n7"]["neighbours"]} == set(lab["nodes"]) - {"n7"}


def test_every_node_gets_its_own_lowest_free_address_in_order():
    lab = compile_lab(one_network(2000))
    addresses = [lab["nodes"]["n%d" % i]["interfaces"][0]["address"] for i in (1, 2, 2000)]
    assert addresses == ["10.213.0.2/20", "10.213.0.3/20", "10.213.7.209/20"]
    assert len(set(lab["hosts"].values())) == 2000


def slow_lowest_free(subnet, taken):
    reserved = {subnet.network_address, subnet.broadcast_address, subnet.network_address + 1}
    return next((ip for ip in subnet.hosts() if ip not in reserved and ip not in taken), None)


@pytest.mark.parametrize("subnet", ["10.0.0.0/24", "10.0.0.0/30", "10.0.0.0/31",
                                    "10.0.0.0/32", "fd00::/126", "fd00::/64"])
def test_lowest_free_from_a_start_matches_a_scan_from_the_first_host(subnet):
    net = ipaddress.ip_network(subnet)
    base = net.network_address
    for taken in (set(), {base + 2}, {base + 2, base + 3, base + 5}):
        expected = slow_lowest_free(net, taken)
        assert lowest_free(net, taken) == expected
        if expected is not None:       # a start at or below the answer finds the same one
            assert lowest_free(net, taken, base + 2) == expected


def current_read(veths=(), routes=None):
    """nslab_info's view of a lab on a host, as much of it as the planner reads."""
    return {"veths": list(veths), "netns_routes": routes or {}, "netns_addresses": {}}


HOST_END = {"name": "scale-n1-0", "netns": None, "up": True, "qdisc": "noqueue"}


def test_link_and_route_modules_are_left_out_when_nothing_is_theirs_to_do():
    lab = compile_lab(one_network(3), current_read([HOST_END]))
    assert lab["conditions"] == [] and lab["routes"] == []


@pytest.mark.parametrize("current, links_kept, routes_kept", [
    ({}, True, True),                                            # no read: both run
    (current_read([dict(HOST_END, qdisc="netem")]), True, False),   # a netem to undo
    (current_read([dict(HOST_END, qdisc="tbf")]), True, False),     # someone else's qdisc
    (current_read([dict(HOST_END, up=False)]), True, False),        # an end left down
    (current_read([{"name": "x", "netns": None, "up": True}]), True, True),  # older read
    (current_read([HOST_END], {"scale-n1": [{"to": "10.9.0.0/16", "via": "10.213.0.1"}]}),
     False, True),                                               # an nslab route to remove
])
def test_link_and_route_modules_run_when_the_host_has_something_of_theirs(
        current, links_kept, routes_kept):
    lab = compile_lab(one_network(3), current)
    assert (len(lab["conditions"]) == 3) == links_kept
    assert (len(lab["routes"]) == 3) == routes_kept


@pytest.mark.parametrize("key, value, kept", [
    ("netem", {"delay": "10ms"}, "conditions"), ("state", "down", "conditions")])
def test_a_file_that_asks_for_netem_or_a_link_down_keeps_the_link_module(key, value, kept):
    topology = one_network(2)
    topology["nodes"]["n1"] = {"networks": {"lan": {key: value}}}
    lab = compile_lab(topology, current_read())
    assert len(lab[kept]) == 2 and lab["routes"] == []


def test_a_file_that_asks_for_a_route_keeps_the_route_module():
    topology = one_network(2)
    topology["nodes"]["n1"] = {"networks": ["lan"],
                               "routes": [{"to": "10.9.0.0/16", "via": "10.213.0.1"}]}
    lab = compile_lab(topology, current_read())
    assert lab["conditions"] == [] and len(lab["routes"]) == 2


NO_PORTS = {"ports": [], "port_guards": []}


@pytest.mark.parametrize("held, ports", [
    ({}, []),                                                     # no read: the module runs
    (NO_PORTS, None),                                             # nothing to do: left out
    (dict(NO_PORTS, ports=["tcp *:8080 -> node n1 10.213.0.2:80"]), []),   # to remove
    (dict(NO_PORTS, port_guards=["scale-lan"]), []),              # a guard to remove
])
def test_the_ports_module_is_left_out_only_when_nothing_is_its_to_do(held, ports):
    current = dict(current_read(), **held)
    assert compile_lab(one_network(2), current)["ports"] == ports


def test_a_file_that_publishes_a_port_keeps_the_ports_module():
    topology = one_network(2)
    topology["nodes"]["n1"] = {"networks": ["lan"], "ports": ["8080:80"]}
    lab = compile_lab(topology, dict(current_read(), **NO_PORTS))
    assert [p["port"] for p in lab["ports"]] == ["8080:80"]

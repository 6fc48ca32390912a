"""The lab of the nslab_lab scenario (topology.yml), from the kernel's side and inside."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
from nslab_verify import (addresses_in, containers, host_namespaces, in_container,  # noqa: E402
                          lab_view, memory_limit, pids_limit, process_namespaces)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def nodes(host):
    found = containers(lab_view(host, "mollab"))
    assert sorted(found) == ["desk", "router", "web"]
    assert all(node["state"] == "running" for node in found.values())
    return found


def test_nodes_are_isolated(host, nodes):
    outside = host_namespaces(host)
    for node in nodes.values():
        inside = process_namespaces(host, node["pid"])
        assert all(inside[ns] != outside[ns] for ns in outside), node["name"]
        assert in_container(host, node, "hostname").stdout.strip() == node["name"]


def test_limits_from_defaults_and_per_node(host, nodes):
    assert memory_limit(host, nodes["router"]["pid"]) == 56 * MIB
    assert memory_limit(host, nodes["desk"]["pid"]) == 40 * MIB
    assert all(pids_limit(host, node["pid"]) == 48 for node in nodes.values())


def test_addresses(host, nodes):
    router = addresses_in(host, nodes["router"]["netns"])
    assert router["eth0"] == ["10.213.65.2/24"] and router["eth1"] == ["10.213.66.2/24"]
    assert addresses_in(host, nodes["web"]["netns"])["eth0"] == ["10.213.66.80/24"]
    assert addresses_in(host, nodes["desk"]["netns"])["eth1"] == ["10.213.67.1/30"]


def test_nodes_reach_each_other_by_name(host, nodes):
    assert in_container(host, nodes["desk"], "ping -c1 -W2 router").rc == 0
    assert in_container(host, nodes["router"], "ping -c1 -W2 web").rc == 0


def test_the_point_to_point_link_carries_http(host, nodes):
    page = in_container(host, nodes["desk"], "wget -q -O - http://10.213.67.2/hosts")
    assert page.rc == 0 and "10.213.66.80\tweb" in page.stdout.splitlines()

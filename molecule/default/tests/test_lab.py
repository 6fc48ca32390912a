"""The default scenario's lab (the demo topology, by lab.yml), seen from the kernel and inside."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
from nslab_verify import (addresses_in, containers, host_namespaces, in_container,  # noqa: E402
                          lab_view, memory_limit, pids_limit, process_namespaces)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def lab(host):
    return lab_view(host, "mdemo")


@pytest.fixture(scope="module")
def nodes(lab):
    found = containers(lab)
    assert sorted(found) == ["apt101", "apt102", "apt103"]
    assert all(node["state"] == "running" for node in found.values())
    return found


def test_one_bridge_with_the_first_address(lab):
    assert [(b["name"], b["addresses"]) for b in lab["bridges"]] == [
        ("mdemo-lan", ["10.213.71.1/24"])]


def test_each_node_has_its_own_namespaces_and_hostname(host, nodes):
    outside = host_namespaces(host)
    for node in nodes.values():
        inside = process_namespaces(host, node["pid"])
        assert all(inside[ns] != outside[ns] for ns in outside), node["name"]
        assert in_container(host, node, "hostname").stdout.strip() == node["name"]


def test_limits(host, nodes):
    assert memory_limit(host, nodes["apt101"]["pid"]) == 64 * MIB
    assert memory_limit(host, nodes["apt103"]["pid"]) == 32 * MIB
    assert all(pids_limit(host, node["pid"]) == 64 for node in nodes.values())


def test_addresses(host, nodes):
    assert addresses_in(host, nodes["apt102"]["netns"])["eth0"] == ["10.213.71.12/24"]
    apt101 = addresses_in(host, nodes["apt101"]["netns"])
    assert apt101["eth1"] == ["10.213.79.1/30"]


def test_nodes_reach_each_other_by_name_over_the_bridge(host, nodes):
    assert in_container(host, nodes["apt101"], "ping -c1 -W2 apt102").rc == 0
    assert in_container(host, nodes["apt102"], "ping -c1 -W2 apt103").rc == 0


def test_apt103_serves_http_over_the_point_to_point_link(host, nodes):
    page = in_container(host, nodes["apt101"], "wget -q -O - http://10.213.79.2/hosts")
    assert page.rc == 0 and "10.213.71.12\tapt102" in page.stdout.splitlines()


def test_the_jail_is_the_root_inside(host, nodes):
    listing = in_container(host, nodes["apt102"], "ls /").stdout.split()
    assert {"bin", "etc", "proc"} <= set(listing)
    assert "work" not in listing and "home" not in listing

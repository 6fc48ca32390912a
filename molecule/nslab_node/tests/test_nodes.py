"""The nodes of the nslab_node scenario, from the kernel's side and from inside."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
from nslab_verify import (addresses_in, containers, host_namespaces, in_container,  # noqa: E402
                          lab_view, memory_limit, pids_limit, process_namespaces)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def nodes(host):
    found = containers(lab_view(host, "molnode"))
    assert sorted(found) == ["client", "web"]
    return found


def test_each_container_has_its_own_namespaces(host, nodes):
    outside = host_namespaces(host)
    seen = []
    for node in nodes.values():
        inside = process_namespaces(host, node["pid"])
        assert all(inside[ns] != outside[ns] for ns in outside), (node["name"], inside)
        seen.append(inside)
    assert all(seen[0][ns] != seen[1][ns] for ns in outside)


def test_hostname_inside(host, nodes):
    assert in_container(host, nodes["web"], "hostname").stdout.strip() == "web"
    assert in_container(host, nodes["client"], "hostname").stdout.strip() == "cli"


def test_the_cgroup_limits_are_in_the_kernel(host, nodes):
    assert memory_limit(host, nodes["web"]["pid"]) == 48 * MIB
    assert pids_limit(host, nodes["web"]["pid"]) == 32
    assert memory_limit(host, nodes["client"]["pid"]) == 24 * MIB
    assert pids_limit(host, nodes["client"]["pid"]) == 16


def test_addresses_on_the_containers_interfaces(host):
    assert addresses_in(host, "molnode-web")["eth0"] == ["10.213.63.10/24"]
    assert addresses_in(host, "molnode-client")["eth0"] == ["10.213.63.20/24"]


def test_the_client_reaches_the_web_node_over_the_bridge(host, nodes):
    page = in_container(host, nodes["client"], "wget -q -O - http://10.213.63.10/motd")
    assert page.rc == 0 and page.stdout == "built by the nslab_node scenario\n"


def test_the_root_inside_is_the_jail(host, nodes):
    listing = in_container(host, nodes["client"], "ls /").stdout.split()
    assert "motd" in in_container(host, nodes["client"], "ls /etc").stdout.split()
    assert "work" not in listing and "home" not in listing
    init = in_container(host, nodes["client"], "cat /proc/1/cmdline").stdout
    # PID 1 is nslab's init: its label is a whole argument (the last one with a content;
    # the launcher's spare argument bytes may follow it as empty ones)
    assert [a for a in init.split("\0") if a][-1] == "nslab:molnode:client"

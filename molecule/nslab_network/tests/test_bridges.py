"""The bridges of the nslab_network scenario, as the kernel reports them."""

import json

import pytest


@pytest.fixture(scope="module")
def wanted(host):
    return host.ansible.get_variables()["nslab_network_bridges"]


@pytest.fixture(scope="module")
def bridges(host):
    links = json.loads(host.check_output("ip -j -d address show type bridge"))
    return {link["ifname"]: link for link in links}


def test_every_bridge_exists_up_and_owned_by_the_lab(wanted, bridges):
    for bridge in wanted:
        link = bridges[bridge["name"]]
        assert link["linkinfo"]["info_kind"] == "bridge"
        assert link.get("ifalias") == "nslab:molnet:bridge"
        assert "UP" in link["flags"]


def test_addresses_and_mtu(wanted, bridges):
    for bridge in wanted:
        link = bridges[bridge["name"]]
        have = {"%s/%s" % (a["local"], a["prefixlen"]) for a in link["addr_info"]
                if a.get("scope") == "global"}
        assert have == set(bridge["addresses"])
        assert link["mtu"] == bridge.get("mtu", 1500)


def test_stp_as_asked(wanted, bridges):
    for bridge in wanted:
        stp = bridges[bridge["name"]]["linkinfo"]["info_data"]["stp_state"]
        assert stp == (1 if bridge.get("stp") else 0)


def test_the_address_answers(host):
    assert host.run("ping -c1 -W2 10.213.61.1").rc == 0

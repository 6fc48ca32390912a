"""Parsing of captured ``ip -j -d -batch`` output (link show + addr show)."""

from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import (
    is_veth_pair, json_documents, link_view, parse_links)

from helpers.paths import UNIT_FIXTURES as FIXTURES


def host():
    return parse_links((FIXTURES / "host_links.json").read_text())


def netns():
    return parse_links((FIXTURES / "netns_links.json").read_text())


def test_two_documents_are_merged_per_link():
    text = (FIXTURES / "host_links.json").read_text()
    assert len(json_documents(text)) == 2
    links = host()
    bridge = links["t1-br"]
    # addresses come from "addr show", the IPv6 mode from "link show"
    assert bridge.addresses == ["10.250.0.1/24"]
    assert bridge.addrgenmode == "none"


def test_bridge_fields():
    bridge = host()["t1-br"]
    assert bridge.kind == "bridge"
    assert bridge.stp is False
    assert bridge.alias == "nslab:t1:bridge"
    assert bridge.up is True
    assert bridge.peer_ifindex is None


def test_veth_host_end_points_at_its_peer_in_a_netns():
    links = host()
    end = links["t1-va"]
    assert end.kind == "veth"
    assert end.master == "t1-br"
    assert end.peer_netnsid is not None
    peer = netns()["eth0"]
    assert is_veth_pair(end, peer)
    assert not is_veth_pair(links["t1-vb"], peer)


def test_physical_link_has_no_kind_and_default_addrgenmode():
    eth0 = host()["eth0"]
    assert eth0.kind is None
    assert eth0.mac == "02:fc:00:00:00:01"


def test_link_local_addresses_are_not_managed():
    lo = host()["lo"]
    assert "127.0.0.1/8" in lo.managed_addresses()
    fake = parse_links('[{"ifindex": 9, "ifname": "x", "addr_info": ['
                       '{"family": "inet6", "local": "fe80::1", "prefixlen": 64},'
                       '{"family": "inet6", "local": "fd00::1", "prefixlen": 64}]}]')["x"]
    assert fake.addresses == ["fe80::1/64", "fd00::1/64"]
    assert fake.managed_addresses() == ["fd00::1/64"]
    assert fake.addrgenmode == "eui64"


def test_link_view_limits_keys_and_reports_absent():
    assert link_view(None, ["state", "mtu"]) == {"state": "absent"}
    view = link_view(host()["t1-br"], ["state", "addresses", "ipv6"])
    assert view == {"state": "present", "addresses": ["10.250.0.1/24"], "ipv6": False}

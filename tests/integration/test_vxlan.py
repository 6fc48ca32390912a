"""nslab_vxlan against the real kernel: two test-made net namespaces play two hosts joined
by an underlay veth; a lab network's bridge on each is stretched over VXLAN, and a
point-to-point link between a node on each becomes a tunnel of its own."""

import json

import pytest

from helpers.kernel import hosts_on_an_underlay, ip_links, sh

UNDERLAY = {"h1": "10.251.90.1", "h2": "10.251.90.2"}


@pytest.fixture
def hosts(lab, module):
    """Hosts h1 and h2 (net namespaces) on an underlay; node namespaces a, c (on h1) and
    b, d (on h2); the lab bridge on each host with a node's eth0 on it."""
    hosts_on_an_underlay(lab, UNDERLAY)
    assert module("nslab_namespace", dict(lab=lab.name, namespaces=[
        dict(name=lab.n(n)) for n in "abcd"]))["changed"]
    for host, node, address in (("h1", "a", "10.251.91.1/24"), ("h2", "b", "10.251.91.2/24")):
        assert module("nslab_bridge", dict(lab=lab.name, name=lab.n("br"), mtu=1450),
                      netns=lab.n(host))["changed"]
        assert module("nslab_veth", dict(lab=lab.name, name=lab.n("v" + node),
                                         bridge=lab.n("br"), mtu=1450,
                                         peer=dict(name="eth0", netns=lab.n(node),
                                                   addresses=[address])),
                      netns=lab.n(host))["changed"]
    return lab


def network(lab, host, **extra):
    other = UNDERLAY["h2" if host == "h1" else "h1"]
    return dict(dict(lab=lab.name, name=lab.n("vx"), vni=4242, local=UNDERLAY[host],
                     peers=[other], bridge=lab.n("br"), mtu=1450), **extra)


def p2p(lab, host):
    node, other, address = (("c", "h2", "10.251.92.1/30") if host == "h1"
                            else ("d", "h1", "10.251.92.2/30"))
    return dict(lab=lab.name, name="eth1", netns=lab.n(node), vni=977, local=UNDERLAY[host],
                peers=[UNDERLAY[other]], addresses=[address], mtu=1450)


def fdb(netns, dev):
    out = sh("bridge", "-j", "fdb", "show", "dev", dev, netns=netns).stdout
    return sorted(e["dst"] for e in json.loads(out or "[]")
                  if e["mac"] == "00:00:00:00:00:00" and "dst" in e)


def ping(netns, address):
    return sh("ping", "-c", "1", "-W", "2", address, netns=netns, check=False).returncode == 0


def udp_ports(netns):
    out = sh("ss", "-Hlun", netns=netns).stdout
    return [line.split()[3].rsplit(":", 1)[1] for line in out.splitlines()]


def test_a_network_spans_two_hosts(hosts, module):
    lab, h1, h2 = hosts, hosts.n("h1"), hosts.n("h2")
    checked = module("nslab_vxlan", network(lab, "h1"), check=True, diff=True, netns=h1)
    assert checked["changed"] and checked["diff"]["after"]["host/" + lab.n("vx")]["vni"] == 4242
    assert lab.n("vx") not in ip_links(h1)
    assert not ping(lab.n("a"), "10.251.91.2")        # nothing joins the two bridges yet

    for host in ("h1", "h2"):
        result = module("nslab_vxlan", network(lab, host), netns=lab.n(host))
        assert result["changed"], result
        assert result["actions"][0] == "create vxlan '%s' (VNI 4242, port 4789, local %s)" % (
            lab.n("vx"), UNDERLAY[host])
    device = ip_links(h1)[lab.n("vx")]
    data = device["linkinfo"]["info_data"]
    assert (device["linkinfo"]["info_kind"], data["id"], data["local"], data["port"]) == (
        "vxlan", 4242, "10.251.90.1", 4789)
    assert device["master"] == lab.n("br") and device["mtu"] == 1450
    assert device["ifalias"] == "nslab:%s:vxlan" % lab.name
    assert fdb(h1, lab.n("vx")) == ["10.251.90.2"] and fdb(h2, lab.n("vx")) == ["10.251.90.1"]
    assert ping(lab.n("a"), "10.251.91.2") and ping(lab.n("b"), "10.251.91.1")
    # a full-size frame of the lab's MTU crosses, with DF set: the MTU leaves room for VXLAN
    assert sh("ping", "-c", "1", "-W", "2", "-M", "do", "-s", str(1450 - 28), "10.251.91.2",
              netns=lab.n("a"), check=False).returncode == 0

    again = module("nslab_vxlan", network(lab, "h1"), netns=h1)
    assert again["changed"] is False and again["actions"] == []
    assert again["vxlans"][0]["peers"] == ["10.251.90.2"]

    # a third host joins: one peer more, nothing else changes; then it leaves again
    three = network(lab, "h1", peers=["10.251.90.2", "10.251.90.3"])
    assert module("nslab_vxlan", three, netns=h1)["actions"] == [
        "add peer 10.251.90.3 to vxlan '%s'" % lab.n("vx")]
    assert fdb(h1, lab.n("vx")) == ["10.251.90.2", "10.251.90.3"]
    assert module("nslab_vxlan", network(lab, "h1"), netns=h1)["actions"] == [
        "remove peer 10.251.90.3 from vxlan '%s'" % lab.n("vx")]
    assert fdb(h1, lab.n("vx")) == ["10.251.90.2"]

    # a new VNI cannot be set on a device: it is made again
    renumbered = module("nslab_vxlan", network(lab, "h1", vni=4243), netns=h1)
    assert renumbered["actions"][0].startswith("delete vxlan '%s' to make it again" % lab.n("vx"))
    assert ip_links(h1)[lab.n("vx")]["linkinfo"]["info_data"]["id"] == 4243
    assert fdb(h1, lab.n("vx")) == ["10.251.90.2"]

    gone = module("nslab_vxlan", dict(lab=lab.name, name=lab.n("vx"), state="absent"),
                  netns=h1)
    assert gone["changed"] and lab.n("vx") not in ip_links(h1)
    assert not ping(lab.n("a"), "10.251.91.2")


def test_a_point_to_point_link_between_two_hosts(hosts, module):
    lab, h1 = hosts, hosts.n("h1")
    for host in ("h1", "h2"):
        assert module("nslab_vxlan", p2p(lab, host), netns=lab.n(host))["changed"]
    inside = ip_links(lab.n("c"))["eth1"]
    assert inside["linkinfo"]["info_kind"] == "vxlan" and inside["mtu"] == 1450
    assert inside["linkinfo"]["info_data"]["id"] == 977
    assert inside["ifalias"] == "nslab:%s:vxlan" % lab.name
    assert "eth1" not in ip_links(h1)
    assert fdb(lab.n("c"), "eth1") == ["10.251.90.2"]
    assert ping(lab.n("c"), "10.251.92.2") and ping(lab.n("d"), "10.251.92.1")
    # the tunnel's UDP socket stayed in the host it was made from, not in the node
    assert "4789" in udp_ports(h1) and "4789" not in udp_ports(lab.n("c"))
    assert module("nslab_vxlan", p2p(lab, "h1"), netns=h1)["changed"] is False

    removed = module("nslab_vxlan", dict(lab=lab.name, name="eth1", netns=lab.n("c"),
                                         state="absent"), netns=h1)
    assert removed["actions"] == ["delete vxlan 'eth1' in netns '%s'" % lab.n("c")]
    assert "eth1" not in ip_links(lab.n("c"))
    assert "4789" not in udp_ports(h1)


def test_a_foreign_vxlan_is_refused_and_left_alone(hosts, module):
    h1 = hosts.n("h1")
    sh("ip", "link", "add", hosts.n("vx"), "type", "vxlan", "id", "4242", "dstport", "4789",
       netns=h1)
    result = module("nslab_vxlan", network(hosts, "h1"), netns=h1)
    assert result["_status"] == "failed"
    assert "vxlan '%s' exists and is not nslab's" % hosts.n("vx") in result["msg"]
    device = ip_links(h1)[hosts.n("vx")]
    assert "master" not in device and "ifalias" not in device
    bad = module("nslab_vxlan", dict(network(hosts, "h1"), vni=0, peers=["10.251.90.1",
                                                                        "nowhere"]), netns=h1)
    assert bad["_status"] == "failed"
    assert "vni: 0 is not a VXLAN network identifier; expected 1-16777215" in bad["msg"]
    assert "peers[1]: 'nowhere' is not an IP address" in bad["msg"]
    assert "peers: 10.251.90.1 is this host's own address" in bad["msg"]

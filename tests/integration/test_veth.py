"""nslab_veth against the real kernel: pairs on a bridge, point-to-point, repair, rollback."""

import pytest

from helpers.kernel import ip_links, nft_rules, sh


@pytest.fixture
def topo(lab, module):
    """Two namespaces (a, b) and a bridge of the test lab."""
    assert module("nslab_namespace", dict(lab=lab.name, namespaces=[
        dict(name=lab.n("a")), dict(name=lab.n("b"))]))["changed"]
    assert module("nslab_bridge", dict(lab=lab.name, name=lab.n("br"),
                                       addresses=["10.251.20.1/24"]))["changed"]
    return lab


def pairs(lab):
    return dict(lab=lab.name, veths=[
        dict(name=lab.n("va"), bridge=lab.n("br"), mtu=1400,
             peer=dict(name="eth0", netns=lab.n("a"), addresses=["10.251.20.11/24"])),
        dict(name=lab.n("vb"), bridge=lab.n("br"), mtu=1400,
             peer=dict(name="eth0", netns=lab.n("b"), addresses=["10.251.20.12/24"])),
        dict(name="eth1", netns=lab.n("a"), addresses=["10.251.21.1/30"],
             peer=dict(name="eth1", netns=lab.n("b"), addresses=["10.251.21.2/30"])),
    ])


def ping(netns, address):
    return sh("ping", "-c", "1", "-W", "2", address, netns=netns, check=False).returncode == 0


def test_check_mode_creates_nothing(topo, module):
    result = module("nslab_veth", pairs(topo), check=True, diff=True)
    assert result["changed"] is True
    assert result["actions"][0].startswith("create veth '%s'" % topo.n("va"))
    assert topo.n("va") not in ip_links()
    assert [l for l in ip_links(topo.n("a"))] == ["lo"]


def test_pairs_reach_each_other_over_the_bridge_and_the_p2p_link(topo, module):
    result = module("nslab_veth", pairs(topo), diff=True)
    assert result["changed"] is True
    host = ip_links()
    inside_a, inside_b = ip_links(topo.n("a")), ip_links(topo.n("b"))
    # host end on the bridge, tagged; peer renamed eth0 inside; MTU on both ends
    assert host[topo.n("va")]["master"] == topo.n("br")
    assert host[topo.n("va")]["ifalias"] == "nslab:%s:veth" % topo.name
    assert inside_a["eth0"]["ifalias"] == "nslab:%s:veth" % topo.name
    assert host[topo.n("va")]["mtu"] == inside_a["eth0"]["mtu"] == 1400
    assert inside_a["eth0"]["link_index"] == host[topo.n("va")]["ifindex"]
    # the point-to-point pair never touched the host
    assert "eth1" in inside_a and "eth1" in inside_b and "eth1" not in host
    # only eth0/eth1 and lo inside: its own view of the network
    assert sorted(inside_a) == ["eth0", "eth1", "lo"]
    assert ping(topo.n("a"), "10.251.20.12")      # a -> b over the bridge
    assert ping(topo.n("b"), "10.251.20.11")
    assert ping(topo.n("a"), "10.251.21.2")       # a -> b over the p2p link
    assert result["veths"][0]["peer"]["addresses"] == ["10.251.20.11/24"]

    again = module("nslab_veth", pairs(topo))
    assert again["changed"] is False and again["actions"] == []


def test_deleted_or_changed_by_hand_is_repaired(topo, module):
    module("nslab_veth", pairs(topo))
    sh("ip", "link", "del", "dev", topo.n("va"))                       # cable cut
    sh("ip", "addr", "add", "10.251.20.99/24", "dev", "eth0", netns=topo.n("b"))
    result = module("nslab_veth", pairs(topo))
    assert result["changed"] is True
    assert "create veth '%s' with peer 'eth0' in netns '%s'" % (
        topo.n("va"), topo.n("a")) in result["actions"]
    assert "remove address 10.251.20.99/24 from veth 'eth0' in netns '%s'" % (
        topo.n("b")) in result["actions"]
    assert not any("eth1" in a for a in result["actions"])            # the rest untouched
    assert ping(topo.n("a"), "10.251.20.12")
    assert module("nslab_veth", pairs(topo))["changed"] is False


def test_absent_removes_both_ends(topo, module):
    module("nslab_veth", pairs(topo))
    result = module("nslab_veth", dict(lab=topo.name, name="eth1", netns=topo.n("a"),
                                       state="absent"))
    assert result["actions"] == ["delete veth 'eth1' in netns '%s'" % topo.n("a")]
    assert "eth1" not in ip_links(topo.n("a")) and "eth1" not in ip_links(topo.n("b"))
    # deleting the namespaces removes their veths; their host ends are gone at once
    module("nslab_namespace", dict(lab=topo.name, namespaces=[
        dict(name=topo.n("a")), dict(name=topo.n("b"))], state="absent"))
    assert topo.n("va") not in ip_links() and topo.n("vb") not in ip_links()
    # so removing the pairs once their namespaces are gone leaves only their ports'
    # anti-spoofing rules to remove (the kernel does not know them), then nothing
    absent = dict(pairs(topo), veths=[dict(v, state="absent") for v in pairs(topo)["veths"]])
    result = module("nslab_veth", absent)
    assert result["actions"] == [
        "remove the anti-spoofing rules of port '%s' of bridge '%s'" % (topo.n(v), topo.n("br"))
        for v in ("va", "vb")], result
    assert not any(c.startswith("nslab:%s:" % topo.name) for c, _h in nft_rules("bridge"))
    result = module("nslab_veth", absent)
    assert result["changed"] is False and result["actions"] == [], result


def test_failure_half_way_is_rolled_back(topo, module):
    # IPv6 off inside namespace b (a test-owned namespace): adding an IPv6 address there
    # fails in the kernel after the pairs were created and partly configured.
    sh("sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
                   "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6", netns=topo.n("b"))
    args = pairs(topo)
    args["veths"][1]["peer"]["addresses"].append("fd00:251::12/64")
    result = module("nslab_veth", args)
    assert result["_status"] == "failed"
    assert "fd00:251::12/64" in result["msg"] and "rolled back" in result["msg"]
    assert result["rolled_back"]
    assert result.get("rollback_errors") == []
    for name in (topo.n("va"), topo.n("vb")):
        assert name not in ip_links()
    assert sorted(ip_links(topo.n("a"))) == ["lo"] and sorted(ip_links(topo.n("b"))) == ["lo"]
    # the ports' anti-spoofing rules, in place before the ports were, went with them
    assert not any(c.startswith("nslab:%s:" % topo.name) for c, _h in nft_rules("bridge"))


def test_refusals_change_nothing(topo, module):
    sh("ip", "link", "add", topo.n("hb"), "type", "bridge")            # not nslab's
    cases = [
        (dict(name=topo.n("v1"), bridge=topo.n("hb"), peer=dict(name="eth0", netns=topo.n("a"))),
         "is not a bridge of lab"),
        (dict(name=topo.n("v1"), peer=dict(name="eth0", netns=topo.n("nope"))),
         "'%s' does not exist" % topo.n("nope")),
        (dict(name=topo.n("v1"), addresses=["10.251.20.1/24"],
              peer=dict(name="eth0", netns=topo.n("a"))),
         "10.251.20.1 is already on interface '%s'" % topo.n("br")),
        (dict(name="x" * 16, peer=dict(name="eth0", netns=topo.n("a"))), "at most 15"),
        (dict(name=topo.n("v1"), peer=dict(name="eth0", netns=topo.n("a"), bridge=topo.n("br"))),
         "cannot be used for an end in netns"),
        (dict(name=topo.n("v1")), "peer: missing"),
    ]
    for item, expected in cases:
        result = module("nslab_veth", dict(item, lab=topo.name))
        assert result["_status"] == "failed", item
        assert expected in result["msg"], (expected, result["msg"])
    assert topo.n("v1") not in ip_links()
    assert sorted(ip_links(topo.n("a"))) == ["lo"]
    other = module("nslab_veth", dict(lab="otherlab", name=topo.n("v1"),
                                      peer=dict(name="eth0", netns=topo.n("a"))))
    assert "owned by nslab lab '%s'" % topo.name in other["msg"]


def test_check_mode_before_the_namespace_exists_only_warns(lab, module):
    result = module("nslab_veth", dict(lab=lab.name, name=lab.n("v"),
                                       peer=dict(name="eth0", netns=lab.n("later"))), check=True)
    assert result["_status"] == "ok" and result["changed"] is True
    assert any("does not exist yet" in w for w in result["warnings"])

"""nat: true, proven with traffic, entirely inside namespaces this test makes.

The module runs inside a test namespace "gw" (its host). Behind its bridge sits a
"container" namespace; on its other side an "uplink" namespace that has no route back to
the bridge's subnet, so a ping from the container reaches the uplink only if nslab's
masquerade rule rewrites the source. The real host's rules and sysctls are never touched.
"""

import shutil

import pytest

from helpers.kernel import sh

pytestmark = pytest.mark.skipif(shutil.which("nft") is None,
                                reason="nft (Debian package nftables) is not installed")


def forwarding(netns=None):
    return sh("cat", "/proc/sys/net/ipv4/ip_forward", netns=netns).stdout.strip()


@pytest.fixture
def gateway(lab):
    gw, up, box = lab.n("gw"), lab.n("up"), lab.n("c")
    for ns in (gw, up, box):
        sh("ip", "netns", "add", ns)
    # A new namespace takes the host's IPv4 forwarding (devconf_inherit_init_net=0): the
    # "host" gw starts with it off, whatever the real host has.
    sh("sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward", netns=gw)
    sh("ip", "link", "add", "uplink0", "netns", gw, "type", "veth", "peer", "eth0", "netns", up)
    sh("ip", "link", "add", "port0", "netns", gw, "type", "veth", "peer", "eth0", "netns", box)
    sh("ip", "addr", "add", "192.0.2.1/24", "dev", "uplink0", netns=gw)
    sh("ip", "addr", "add", "192.0.2.2/24", "dev", "eth0", netns=up)
    sh("ip", "addr", "add", "10.251.30.2/24", "dev", "eth0", netns=box)
    for ns, dev in ((gw, "uplink0"), (gw, "port0"), (up, "eth0"), (box, "eth0")):
        sh("ip", "link", "set", dev, "up", netns=ns)
    sh("ip", "route", "add", "default", "via", "10.251.30.1", netns=box)
    return lab


def ping_uplink(lab):
    return sh("ping", "-c", "1", "-W", "1", "192.0.2.2", netns=lab.n("c"),
              check=False).returncode == 0


def test_nat_masquerades_the_bridge_subnet(gateway, module):
    lab, gw = gateway, gateway.n("gw")
    host_forwarding = forwarding()
    args = dict(lab=lab.name, name=lab.n("br"), addresses=["10.251.30.1/24"])
    assert module("nslab_bridge", args, netns=gw)["changed"] is True
    sh("ip", "link", "set", "port0", "master", lab.n("br"), netns=gw)
    assert not ping_uplink(lab)               # no NAT, no forwarding: nothing gets out

    check = module("nslab_bridge", dict(args, nat=True), netns=gw, check=True)
    assert check["changed"] is True and forwarding(gw) == "0"
    result = module("nslab_bridge", dict(args, nat=True), netns=gw, diff=True)
    assert result["actions"] == [
        "masquerade 10.251.30.0/24 from bridge '%s' to the host's uplink" % lab.n("br"),
        "enable IPv4 forwarding (net.ipv4.ip_forward=1, host-wide)"]
    assert any("IPv4 forwarding was off" in w for w in result["warnings"])
    assert result["bridges"][0]["nat"] is True
    assert result["diff"]["before"][lab.n("br")]["nat"] is False
    assert forwarding(gw) == "1"
    assert ping_uplink(lab)
    rules = sh("nft", "list", "table", "ip", "nslab", netns=gw).stdout
    assert 'comment "nslab:%s:%s:10.251.30.0/24"' % (lab.name, lab.n("br")) in rules
    assert module("nslab_bridge", dict(args, nat=True), netns=gw)["changed"] is False

    off = module("nslab_bridge", args, netns=gw)
    assert off["actions"] == ["stop masquerading 10.251.30.0/24 from bridge '%s'" % lab.n("br")]
    assert sh("nft", "list", "table", "ip", "nslab", netns=gw, check=False).returncode != 0
    assert not ping_uplink(lab)
    assert forwarding() == host_forwarding     # the real host was never touched

"""Isolation from the host and anti-spoofing on lab bridges, proven with real traffic.

Everything happens inside namespaces the test makes: a "host" namespace plays the host
(the modules run inside it, so nslab's nftables tables are that namespace's), with a dummy
"uplink" (an unused veth) holding an address and a listening TCP socket; node namespaces hang off the lab
bridge. The real host's rules, neighbours and sysctls are never touched.
Subnets: 10.213.184.0/22 (this test's share of the integration range).
"""

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest

from conftest import sh

pytestmark = pytest.mark.skipif(shutil.which("nft") is None,
                                reason="nft (Debian package nftables) is not installed")

UPLINK_IP = "10.213.187.1"          # the "host's" other address
UPLINK6_IP = "fd00:213:187::1"
BRIDGE_IP, NODE_A_IP, NODE_B_IP = "10.213.184.1", "10.213.184.11", "10.213.184.12"
BRIDGE6_IP, NODE_A6_IP = "fd00:213:184::1", "fd00:213:184::11"
PORT = 8022


@pytest.fixture
def host(lab):
    """A namespace that plays the host: lo up, an uplink with IPv4 and IPv6 addresses,
    and a TCP listener on every address (so "reachable" means the host's stack answered)."""
    ns = lab.n("host")
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "set", "lo", "up", netns=ns)
    # No dummy driver on every kernel: a veth whose peer stays unused does as well.
    sh("ip", "link", "add", "uplink0", "type", "veth", "peer", "uplink1", netns=ns)
    sh("ip", "addr", "add", UPLINK_IP + "/24", "dev", "uplink0", netns=ns)
    sh("ip", "addr", "add", UPLINK6_IP + "/64", "dev", "uplink0", "nodad", netns=ns)
    sh("ip", "link", "set", "uplink1", "up", netns=ns)
    sh("ip", "link", "set", "uplink0", "up", netns=ns)
    listener = subprocess.Popen(
        ["nsenter", "--net=/run/netns/%s" % ns, sys.executable, "-c",
         "import socket, time\n"
         "s = socket.socket(socket.AF_INET6)\n"
         "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
         "s.bind(('::', %d)); s.listen(64)\n"
         "while True:\n    c, _ = s.accept(); c.close()\n" % PORT])
    try:
        yield lab
    finally:
        listener.kill()
        listener.wait()


def node(lab, name, address, address6=None):
    """A node namespace with eth0 plugged into the host namespace's lab bridge by hand
    (the veth module is not under test here)."""
    ns, hostns = lab.n(name), lab.n("host")
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", "p" + name, "netns", hostns, "type", "veth", "peer", "eth0",
       "netns", ns)
    sh("ip", "link", "set", "p" + name, "master", lab.n("br"), "up", netns=hostns)
    sh("ip", "addr", "add", address + "/22", "dev", "eth0", netns=ns)
    if address6:
        sh("ip", "addr", "add", address6 + "/64", "dev", "eth0", "nodad", netns=ns)
    sh("ip", "link", "set", "eth0", "up", netns=ns)
    sh("ip", "route", "add", "default", "via", BRIDGE_IP, netns=ns)
    if address6:
        sh("ip", "-6", "route", "add", "default", "via", BRIDGE6_IP, netns=ns)
    return ns


def pings(netns, address):
    return sh("ping", "-c", "1", "-W", "1", address, netns=netns,
              check=False).returncode == 0


def connects(netns, address):
    family = "AF_INET6" if ":" in address else "AF_INET"
    code = ("import socket\ns = socket.socket(socket.%s)\ns.settimeout(1)\n"
            "s.connect(('%s', %d))\n" % (family, address, PORT))
    return sh(sys.executable, "-c", code, netns=netns, check=False).returncode == 0


def test_isolate_host_leaves_only_the_bridge_reachable(host, module):
    lab, hostns = host, host.n("host")
    args = dict(lab=lab.name, name=lab.n("br"), ipv6=True,
                addresses=[BRIDGE_IP + "/22", BRIDGE6_IP + "/64"])
    assert module("nslab_bridge", args, netns=hostns)["changed"] is True
    a = node(lab, "a", NODE_A_IP, NODE_A6_IP)
    b = node(lab, "b", NODE_B_IP)
    # The bridge's IPv6 address answers once its duplicate address detection is over.
    deadline = time.monotonic() + 5
    while not pings(a, BRIDGE6_IP) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Without the option the node reaches the host's uplink: the test can fail.
    for address in (UPLINK_IP, UPLINK6_IP, BRIDGE_IP, BRIDGE6_IP):
        assert pings(a, address) and connects(a, address), address

    on = dict(args, isolate_host=True)
    check = module("nslab_bridge", on, netns=hostns, check=True, diff=True)
    assert check["changed"] is True
    assert check["diff"]["before"][lab.n("br")]["isolate_host"] is False
    assert check["diff"]["after"][lab.n("br")]["isolate_host"] is True
    assert sh("nft", "list", "table", "inet", "nslab", netns=hostns,
              check=False).returncode != 0                  # check mode made nothing
    result = module("nslab_bridge", on, netns=hostns, diff=True)
    assert result["actions"] == [
        "isolate the host from bridge '%s': its nodes reach only the bridge's own "
        "addresses" % lab.n("br")]
    assert result["bridges"][0]["isolate_host"] is True
    rules = json.loads(sh("nft", "-j", "list", "table", "inet", "nslab",
                          netns=hostns).stdout)["nftables"]
    assert [r["rule"]["comment"] for r in rules if "rule" in r] == [
        "nslab:%s:%s:isolate-host" % (lab.name, lab.n("br"))]

    for address in (UPLINK_IP, UPLINK6_IP, "127.0.0.1"):
        assert not pings(a, address), address
        assert not connects(a, address), address
    for address in (BRIDGE_IP, BRIDGE6_IP):
        assert pings(a, address) and connects(a, address), address
    assert pings(a, NODE_B_IP) and pings(b, NODE_A_IP)     # neighbours: bridged, untouched
    assert module("nslab_bridge", on, netns=hostns)["changed"] is False

    off = module("nslab_bridge", args, netns=hostns, diff=True)
    assert off["actions"] == ["stop isolating the host from bridge '%s'" % lab.n("br")]
    assert sh("nft", "list", "table", "inet", "nslab", netns=hostns,
              check=False).returncode != 0                  # the emptied table went
    assert pings(a, UPLINK_IP) and connects(a, UPLINK_IP)
    assert module("nslab_bridge", args, netns=hostns)["changed"] is False


def test_removing_an_isolated_bridge_removes_its_rule(host, module):
    lab, hostns = host, host.n("host")
    args = dict(lab=lab.name, name=lab.n("br"), addresses=[BRIDGE_IP + "/22"],
                isolate_host=True)
    assert module("nslab_bridge", args, netns=hostns)["changed"] is True
    gone = module("nslab_bridge", dict(args, state="absent"), netns=hostns)
    assert gone["actions"] == ["delete bridge '%s'" % lab.n("br"),
                               "stop isolating the host from bridge '%s'" % lab.n("br")]
    assert sh("nft", "list", "table", "inet", "nslab", netns=hostns,
              check=False).returncode != 0
    assert module("nslab_bridge", dict(args, state="absent"), netns=hostns)["changed"] is False

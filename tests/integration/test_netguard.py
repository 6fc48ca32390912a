"""Isolation from the host and anti-spoofing on lab bridges, proven with real traffic.

Everything happens inside namespaces the test makes: a "host" namespace plays the host
(the modules run inside it, so nslab's nftables tables are that namespace's), with a dummy
"uplink" (an unused veth) holding an address and a listening TCP socket; node namespaces hang off the lab
bridge. The real host's rules, neighbours and sysctls are never touched.
Subnets: 10.213.184.0/22 (this test's share of the integration range).
"""

import json
import shutil
import subprocess
import sys
import time

import pytest

from helpers.kernel import nft_rules, sh

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


SPOOF = r"""
import socket, struct, sys
mac = lambda text: bytes.fromhex(text.replace(":", ""))
own_mac, victim_mac, victim_ip, target_ip = sys.argv[1:5]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
everyone = b"\xff" * 6
# An ARP request to the host that claims the victim's IP for this node's MAC...
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac(own_mac),
                  socket.inet_aton(victim_ip), b"\0" * 6, socket.inet_aton(target_ip))
s.send(everyone + mac(own_mac) + b"\x08\x06" + arp)
# ...and a frame that claims the victim's MAC (the bridge learns its port from it).
s.send(everyone + mac(victim_mac) + b"\x88\xb5" + b"nslab spoofing test".ljust(46, b"\0"))
"""


def eth0_mac(netns):
    return json.loads(sh("ip", "-j", "link", "show", "eth0", netns=netns).stdout)[0]["address"]


def neighbour_mac(hostns, bridge, ip):
    entries = json.loads(sh("ip", "-j", "neigh", "show", ip, "dev", bridge,
                            netns=hostns).stdout or "[]")
    return entries[0].get("lladdr") if entries else None


def fdb_port(hostns, bridge, mac):
    entries = json.loads(sh("bridge", "-j", "fdb", "show", "br", bridge,
                            netns=hostns).stdout or "[]")
    ports = [e["ifname"] for e in entries if e.get("mac") == mac and "self" not in
             e.get("flags", [])]
    return ports[0] if ports else None


def nodes_on_bridge(lab, module, antispoof):
    hostns = lab.n("host")
    assert module("nslab_namespace", dict(lab=lab.name, namespaces=[
        dict(name=lab.n("a")), dict(name=lab.n("b"))]), netns=hostns)["changed"]
    assert module("nslab_bridge", dict(lab=lab.name, name=lab.n("br"),
                                       addresses=[BRIDGE_IP + "/22"]), netns=hostns)["changed"]
    return dict(lab=lab.name, veths=[
        dict(name=lab.n("va"), bridge=lab.n("br"), antispoof=antispoof,
             peer=dict(name="eth0", netns=lab.n("a"), addresses=[NODE_A_IP + "/22"])),
        dict(name=lab.n("vb"), bridge=lab.n("br"), antispoof=antispoof,
             peer=dict(name="eth0", netns=lab.n("b"), addresses=[NODE_B_IP + "/22"]))])


@pytest.mark.parametrize("antispoof", [False, True])
def test_a_node_cannot_poison_its_neighbours_arp_or_the_bridge_fdb(host, module, antispoof):
    lab, hostns, bridge = host, host.n("host"), host.n("br")
    a, b = lab.n("a"), lab.n("b")
    pairs = nodes_on_bridge(lab, module, antispoof)
    assert module("nslab_veth", pairs, netns=hostns)["changed"] is True
    mac_a, mac_b = eth0_mac(a), eth0_mac(b)
    assert pings(a, NODE_B_IP) and pings(hostns, NODE_B_IP) and pings(b, BRIDGE_IP)
    assert neighbour_mac(hostns, bridge, NODE_B_IP) == mac_b
    assert fdb_port(hostns, bridge, mac_b) == lab.n("vb")
    time.sleep(1.2)     # past the neighbour entry's locktime (1 s): an update may override

    sh(sys.executable, "-c", SPOOF, mac_a, mac_b, NODE_B_IP, BRIDGE_IP, netns=a)
    time.sleep(0.2)
    poisoned = neighbour_mac(hostns, bridge, NODE_B_IP) == mac_a
    stolen = fdb_port(hostns, bridge, mac_b) == lab.n("va")
    # Without the guard both lies are learnt (so this test can fail); with it, neither.
    assert (poisoned, stolen) == (not antispoof, not antispoof), (
        neighbour_mac(hostns, bridge, NODE_B_IP), fdb_port(hostns, bridge, mac_b), mac_a, mac_b)
    sh("ip", "neigh", "flush", "dev", bridge, netns=hostns)
    assert pings(b, NODE_A_IP) and pings(hostns, NODE_A_IP)   # honest traffic flows


def test_antispoof_rules_converge_and_go_with_their_pair(host, module):
    lab, hostns = host, host.n("host")
    pairs = nodes_on_bridge(lab, module, True)
    check = module("nslab_veth", pairs, netns=hostns, check=True, diff=True)
    assert check["changed"] is True
    assert check["diff"]["after"]["host/%s" % lab.n("va")]["antispoof"] is True
    assert nft_comments(hostns) == []                       # check mode made nothing

    result = module("nslab_veth", pairs, netns=hostns)
    mac_a = eth0_mac(lab.n("a"))
    assert ("guard port '%s' of bridge '%s' against spoofing: source MAC %s, ARP sender "
            "IPv4 %s" % (lab.n("va"), lab.n("br"), mac_a, NODE_A_IP)
            ) in result["actions"]
    assert result["veths"][0]["antispoof"] is True
    assert result["veths"][0]["peer"]["mac"] == mac_a
    assert len(nft_comments(hostns)) == 6
    assert module("nslab_veth", pairs, netns=hostns)["changed"] is False

    # A node that changes its MAC (it has CAP_NET_ADMIN) is cut off; the next run sets it back.
    sh("ip", "link", "set", "eth0", "address", "02:00:00:00:00:99", netns=lab.n("a"))
    assert not pings(lab.n("a"), NODE_B_IP)
    again = module("nslab_veth", pairs, netns=hostns)
    assert again["actions"] == ["set MAC of veth 'eth0' in netns '%s' from 02:00:00:00:00:99 "
                                "to %s" % (lab.n("a"), mac_a)]
    assert pings(lab.n("a"), NODE_B_IP)

    # A changed address changes the rule; turning the guard off removes the rules.
    moved = json.loads(json.dumps(pairs))
    moved["veths"][0]["peer"]["addresses"] = ["10.213.184.21/22"]
    changed = module("nslab_veth", moved, netns=hostns)
    assert ("update the guard of port '%s' of bridge '%s' against spoofing: source MAC %s, "
            "ARP sender IPv4 10.213.184.21" % (lab.n("va"), lab.n("br"), mac_a)
            ) in changed["actions"]
    assert pings(lab.n("a"), NODE_B_IP)      # the new address is the ARP sender allowed
    assert len(nft_comments(hostns)) == 6
    off = module("nslab_veth", dict(moved, veths=[dict(moved["veths"][0], antispoof=False)]),
                 netns=hostns)
    assert off["actions"] == ["remove the anti-spoofing rules of port '%s' of bridge '%s'" % (
        lab.n("va"), lab.n("br"))]
    assert off["veths"][0]["antispoof"] is False
    assert len(nft_comments(hostns)) == 3

    gone = module("nslab_veth", dict(pairs, veths=[dict(v, state="absent")
                                                   for v in pairs["veths"]]), netns=hostns)
    assert "remove the anti-spoofing rules of port '%s' of bridge '%s'" % (
        lab.n("vb"), lab.n("br")) in gone["actions"]
    assert sh("nft", "list", "table", "bridge", "nslab", netns=hostns,
              check=False).returncode != 0                  # the emptied table went


def nft_comments(hostns):
    return [c for c, _h in nft_rules("bridge", netns=hostns)]


def test_removing_a_bridge_removes_its_ports_rules(host, module):
    """A lab torn down by deleting its namespaces (their veths go with them, nslab_veth
    never runs) leaves its ports' rules to the bridge's removal."""
    lab, hostns = host, host.n("host")
    pairs = nodes_on_bridge(lab, module, True)
    assert module("nslab_veth", pairs, netns=hostns)["changed"] is True
    assert module("nslab_namespace", dict(lab=lab.name, namespaces=[
        dict(name=lab.n("a")), dict(name=lab.n("b"))], state="absent"),
        netns=hostns)["changed"] is True
    assert len(nft_comments(hostns)) == 6
    args = dict(lab=lab.name, name=lab.n("br"), state="absent")
    check = module("nslab_bridge", args, netns=hostns, check=True)
    assert len(nft_comments(hostns)) == 6
    gone = module("nslab_bridge", args, netns=hostns)
    assert gone["actions"] == check["actions"] == [
        "delete bridge '%s'" % lab.n("br")] + [
        "remove the anti-spoofing rules of port '%s' of bridge '%s'" % (lab.n(v), lab.n("br"))
        for v in ("va", "vb")]
    assert sh("nft", "list", "table", "bridge", "nslab", netns=hostns,
              check=False).returncode != 0
    assert module("nslab_bridge", args, netns=hostns)["changed"] is False

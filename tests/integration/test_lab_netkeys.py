"""lab.yml with the network keys (issue #11): routes (IPv4 and IPv6) in the kernel's main
table of each node, a nat network's default route, two subnets routed through a node that
forwards, a rerun that changes nothing, routes taken out of the file removed, and bad
values refused with nothing changed."""

import json

import pytest

from helpers.ansible_runs import build, changed, failed, run_module
from helpers.kernel import sh
from helpers.lab import BUSYBOX_SKIP

pytestmark = BUSYBOX_SKIP

# Subnets of this file: 10.213.176.0/22 (this engineer's share of 10.213.160.0/19).
LAN = "10.213.176.0/24"
DMZ = "10.213.177.0/24"
P2P = "10.213.178.0/30"
V6 = "fd00:213:176::/64"


IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


@pytest.fixture(autouse=True)
def host_forwarding():
    """lan's ``nat: true`` turns this host's IPv4 forwarding on and leaves it on (other labs
    may rely on it, as nslab_bridge documents); the machine's own value is put back."""
    with open(IP_FORWARD) as handle:
        before = handle.read()
    yield
    with open(IP_FORWARD, "w") as handle:
        handle.write(before)


def topology(lab):
    return {
        "lab": lab.name,
        "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "32M", "pids": 32}},
        "networks": {"lan": {"subnet": LAN, "nat": True}, "dmz": {"subnet": DMZ},
                     "v6": {"subnet": V6}},
        "nodes": {
            # behind the nat network: its default route is the bridge's address
            "h1": {"networks": {"lan": {"address": "10.213.176.11"}, "v6": "fd00:213:176::11"},
                   "routes": [{"to": DMZ, "via": "10.213.176.2"},
                              {"to": "fd00:213:9::/48", "via": "fd00:213:176::2"}]},
            "r": {"networks": {"lan": "10.213.176.2", "dmz": "10.213.177.2"}},
            # the gateway shorthand: its default route is the router
            "h2": {"networks": {"dmz": {"address": "10.213.177.12",
                                        "gateway": "10.213.177.2"}},
                   # via the p2p link, which is up: added
                   "routes": [{"to": "10.213.179.0/24", "via": "10.213.178.1"}]},
        },
        "links": [{"endpoints": ["r:eth5", "h2:eth5"], "subnet": P2P}],
    }


def routes(lab, node, family="-4"):
    """{dst: (gateway, protocol)} of the node's main table, as the kernel reports it."""
    out = sh("ip", family, "-j", "route", "show", "table", "main",
             netns="%s-%s" % (lab.name, node)).stdout
    return dict((r["dst"], (r.get("gateway"), r.get("protocol"))) for r in json.loads(out))


def ping(lab, node, address):
    return sh("ping", "-c", "1", "-W", "2", address, netns="%s-%s" % (lab.name, node),
              check=False).returncode == 0


def test_routes_are_set_converged_and_removed(lab, tmp_path):
    spec = topology(lab)
    first = build(lab, tmp_path, spec)
    assert not failed(first), [r["msg"] for r in failed(first)]
    assert "routes" in changed(first)

    assert routes(lab, "h1") == {
        "default": ("10.213.176.1", "213"), DMZ: ("10.213.176.2", "213"),
        LAN: (None, "kernel")}
    assert routes(lab, "h1", "-6")["fd00:213:9::/48"] == ("fd00:213:176::2", "213")
    assert routes(lab, "h2") == {
        "default": ("10.213.177.2", "213"), "10.213.179.0/24": ("10.213.178.1", "213"),
        DMZ: (None, "kernel"), P2P: (None, "kernel")}
    # r is on the nat network too
    assert routes(lab, "r") == {"default": ("10.213.176.1", "213"), LAN: (None, "kernel"),
                                DMZ: (None, "kernel"), P2P: (None, "kernel")}

    # h1 and h2 are on different subnets: only r, forwarding, joins them (a new netns
    # inherits the host's ip_forward: set both ways by hand)
    sh("sysctl", "-w", "net.ipv4.ip_forward=0", netns="%s-r" % lab.name)
    assert not ping(lab, "h1", "10.213.177.12")
    sh("sysctl", "-w", "net.ipv4.ip_forward=1", netns="%s-r" % lab.name)
    assert ping(lab, "h1", "10.213.177.12")
    assert ping(lab, "h2", "10.213.176.11")

    rerun = build(lab, tmp_path, spec)
    assert not failed(rerun), failed(rerun)
    assert changed(rerun) == {}

    # a route nslab did not add is left alone, even on a destination it once routed
    sh("ip", "route", "add", "10.213.179.128/25", "via", "10.213.176.2",
       netns="%s-h1" % lab.name)
    # routes out of the file: nslab's are removed, the nat default stays
    del spec["nodes"]["h1"]["routes"]
    spec["nodes"]["h2"]["networks"]["dmz"] = "10.213.177.12"
    del spec["nodes"]["h2"]["routes"]
    third = build(lab, tmp_path, spec)
    assert not failed(third), failed(third)
    assert sorted(changed(third)["routes"]) == [
        "delete route 10.213.177.0/24 via 10.213.176.2 in netns '%s-h1' (no longer listed)"
        % lab.name,
        "delete route 10.213.179.0/24 via 10.213.178.1 in netns '%s-h2' (no longer listed)"
        % lab.name,
        "delete route default via 10.213.177.2 in netns '%s-h2' (no longer listed)" % lab.name,
        "delete route fd00:213:9::/48 via fd00:213:176::2 in netns '%s-h1' (no longer listed)"
        % lab.name]
    assert routes(lab, "h1") == {"default": ("10.213.176.1", "213"), LAN: (None, "kernel"),
                                 # ip leaves out the default protocol, boot
                                 "10.213.179.128/25": ("10.213.176.2", None)}
    assert routes(lab, "h2") == {DMZ: (None, "kernel"), P2P: (None, "kernel")}

    # a destination another owner routes is refused, by name; nothing changes
    spec["nodes"]["h1"]["routes"] = [{"to": "10.213.179.128/25", "via": "10.213.176.3"}]
    refused = build(lab, tmp_path, spec)
    assert [r["msg"].split(":")[0] for r in failed(refused)] == [
        "Failed to converge routes of lab '%s'" % lab.name]
    assert "10.213.179.128/25 in netns '%s-h1' is already routed by via 10.213.176.2 " \
        "(proto boot)" % lab.name in failed(refused)[0]["msg"]
    assert routes(lab, "h1")["10.213.179.128/25"] == ("10.213.176.2", None)

    # the module alone: check and diff mode change nothing, then the change is made once
    wanted = {"lab": lab.name, "nodes": [{"netns": "%s-h2" % lab.name, "routes": [
        {"to": "default", "via": "10.213.177.3"}, {"to": "fd00:9::/32", "via": "10.213.177.4"}]}]}
    checked = run_module("nslab_route", wanted, check=True, diff=True)
    assert "via: 10.213.177.4 is IPv4 but to fd00:9::/32 is IPv6" in checked["msg"]
    wanted["nodes"][0]["routes"].pop()
    checked = run_module("nslab_route", wanted, check=True, diff=True)
    assert checked["changed"] and checked["actions"] == [
        "add route default via 10.213.177.3 in netns '%s-h2'" % lab.name]
    assert checked["diff"] == {"before": {"%s-h2" % lab.name: []}, "after": {
        "%s-h2" % lab.name: [{"to": "default", "via": "10.213.177.3"}]}}
    assert "default" not in routes(lab, "h2")
    assert run_module("nslab_route", wanted)["changed"]
    assert routes(lab, "h2")["default"] == ("10.213.177.3", "213")
    assert not run_module("nslab_route", wanted)["changed"]


def qdiscs(netns, dev):
    """The root qdiscs of a device as ``tc -j qdisc show dev`` reports them."""
    out = sh("tc", "-j", "qdisc", "show", "dev", dev, netns=netns).stdout
    return [(q["kind"], q.get("options", {}).get("delay", {}).get("delay"))
            for q in json.loads(out or "[]") if q.get("root")]


def is_up(netns, dev):
    out = sh("ip", "-j", "link", "show", "dev", dev, netns=netns).stdout
    return "UP" in json.loads(out)[0]["flags"]


def rtt_ms(lab, node, address, count=5):
    out = sh("ping", "-c", str(count), "-i", "0.2", "-W", "2", address,
             netns="%s-%s" % (lab.name, node)).stdout
    return float(out.rsplit("=", 1)[1].split("/")[1])      # rtt min/avg/max/mdev: avg


def netem_available():
    """Can this kernel add a netem qdisc? Probed on lo of a throwaway namespace."""
    return sh("unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
              "1ms", check=False).returncode == 0


NO_NETEM = pytest.mark.skipif(not netem_available(), reason="this kernel has no netem qdisc "
                              "(CONFIG_NET_SCH_NETEM is not set)")


def test_link_state_is_converged_and_restored(lab, tmp_path):
    spec = topology(lab)
    spec["nodes"]["h1"]["networks"]["v6"] = {"address": "fd00:213:176::11", "state": "down"}
    spec["links"][0]["state"] = "down"
    first = build(lab, tmp_path, spec)
    assert not failed(first), [r["msg"] for r in failed(first)]
    h1, h2, r = ("%s-%s" % (lab.name, n) for n in ("h1", "h2", "r"))
    # state down: both ends, of the attachment (node and bridge port) and of the link
    assert not is_up(h1, "eth1") and not is_up(None, "%s-h1-1" % lab.name)
    assert not is_up(r, "eth5") and not is_up(h2, "eth5")
    assert is_up(h1, "eth0") and is_up(h2, "eth0")
    # h2's route through the link that is down waits for it: not in the kernel, no failure
    assert "10.213.179.0/24" not in routes(lab, "h2")

    rerun = build(lab, tmp_path, spec)
    assert not failed(rerun), failed(rerun)
    assert changed(rerun) == {}
    assert not is_up(r, "eth5") and not is_up(h1, "eth1")

    # the keys taken out: both up again, the waiting route added, nothing restarted
    pids = dict((n, open("/run/nslab/%s/containers/%s.json" % (lab.name, n)).read())
                for n in ("h1", "h2", "r"))
    del spec["nodes"]["h1"]["networks"]["v6"]["state"]
    del spec["links"][0]["state"]
    third = build(lab, tmp_path, spec)
    assert not failed(third), [r["msg"] for r in failed(third)]
    assert set(changed(third)) <= {"veths", "links", "routes"}
    assert "containers" not in changed(third)
    assert pids == dict((n, open("/run/nslab/%s/containers/%s.json" % (lab.name, n)).read())
                        for n in ("h1", "h2", "r"))
    assert is_up(h1, "eth1") and is_up(None, "%s-h1-1" % lab.name)
    assert is_up(r, "eth5") and is_up(h2, "eth5")
    assert routes(lab, "h2")["10.213.179.0/24"] == ("10.213.178.1", "213")
    assert changed(build(lab, tmp_path, spec)) == {}


@NO_NETEM
def test_netem_is_converged_and_removed(lab, tmp_path):
    spec = topology(lab)
    spec["nodes"]["h1"]["networks"]["lan"]["netem"] = {"delay": "20ms"}
    first = build(lab, tmp_path, spec)
    assert not failed(first), [r["msg"] for r in failed(first)]
    h1 = "%s-h1" % lab.name
    # a flat netem: the egress of both ends, the node's and the host's on the bridge
    assert qdiscs(h1, "eth0") == [("netem", 0.02)]
    assert qdiscs(None, "%s-h1-0" % lab.name) == [("netem", 0.02)]
    delayed = rtt_ms(lab, "h1", "10.213.176.1")
    assert 40 <= delayed < 60, delayed                        # 20 ms each way
    assert changed(build(lab, tmp_path, spec)) == {}

    del spec["nodes"]["h1"]["networks"]["lan"]["netem"]
    third = build(lab, tmp_path, spec)
    assert set(changed(third)) == {"links"}
    assert qdiscs(h1, "eth0")[0][0] != "netem"
    assert qdiscs(None, "%s-h1-0" % lab.name)[0][0] != "netem"
    assert rtt_ms(lab, "h1", "10.213.176.1") < 10
    assert changed(build(lab, tmp_path, spec)) == {}


BAD = [
    (("links", 0, "netem"), {"delay": "-20ms"}, "links[0].netem.delay: "),
    (("links", 0, "netem"), {"loss": "150%"}, "links[0].netem.loss: "),
    (("links", 0, "netem"), {"rate": "10"}, "links[0].netem.rate: "),
    (("nodes", "h1", "routes", 0, "via"), "10.213.150.1",
     "nodes.h1.routes[0].via: 10.213.150.1 is on no subnet the node is attached to"),
    (("nodes", "h2", "networks", "dmz", "gateway"), "10.213.176.1",
     "nodes.h2.networks.dmz.gateway: 10.213.176.1 is not a host address of 10.213.177.0/24"),
    (("links", 0, "state"), "off", "links[0].state: 'off' is a string; expected up or down"),
]


def test_a_bad_value_is_refused_and_nothing_changes(lab, tmp_path):
    assert not failed(build(lab, tmp_path, topology(lab)))
    before = dict((n, (routes(lab, n), routes(lab, n, "-6"))) for n in ("h1", "h2", "r"))
    for path, value, problem in BAD:
        spec = topology(lab)
        target = spec
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        results = build(lab, tmp_path, spec)
        assert [r["_task"] for r in failed(results)] == [
            "nslab.lab.nslab_lab : Validate the whole topology and compile this host's share "
            "(before anything changes)"]
        assert problem in failed(results)[0]["msg"]
        assert changed(results) == {}
        assert before == dict((n, (routes(lab, n), routes(lab, n, "-6")))
                              for n in ("h1", "h2", "r"))

"""lab.yml with the network keys (issue #11): routes (IPv4 and IPv6) in the kernel's main
table of each node, a nat network's default route, two subnets routed through a node that
forwards, a rerun that changes nothing, routes taken out of the file removed, and bad
values refused with nothing changed."""

import json

import yaml

from conftest import BUSYBOX_SKIP, run_playbook, sh

pytestmark = BUSYBOX_SKIP

# Subnets of this file: 10.213.176.0/22 (this engineer's share of 10.213.160.0/19).
LAN = "10.213.176.0/24"
DMZ = "10.213.177.0/24"
P2P = "10.213.178.0/30"
V6 = "fd00:213:176::/64"


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


def build(lab, tmp_path, spec, state="present"):
    path = tmp_path / ("%s.yml" % lab.name)
    path.write_text(yaml.safe_dump(spec))
    return run_playbook("lab.yml", {"lab": str(path), "state": state}, json_results=True)


def changed(results):
    return dict((r["_task"].split(" : ")[-1], r.get("actions", True))
                for r in results if r.get("changed"))


def failed(results):
    return [r for r in results if r["_status"] == "failed"]


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
    assert "The nodes' static routes (nslab's own, proto 213)" in changed(first)

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
    sh("ip", "route", "add", "10.213.180.0/24", "via", "10.213.176.2",
       netns="%s-h1" % lab.name)
    # routes out of the file: nslab's are removed, the nat default stays
    del spec["nodes"]["h1"]["routes"]
    spec["nodes"]["h2"]["networks"]["dmz"] = "10.213.177.12"
    del spec["nodes"]["h2"]["routes"]
    third = build(lab, tmp_path, spec)
    assert not failed(third), failed(third)
    assert sorted(changed(third)["The nodes' static routes (nslab's own, proto 213)"]) == [
        "delete route 10.213.177.0/24 via 10.213.176.2 in netns '%s-h1' (no longer listed)"
        % lab.name,
        "delete route 10.213.179.0/24 via 10.213.178.1 in netns '%s-h2' (no longer listed)"
        % lab.name,
        "delete route default via 10.213.177.2 in netns '%s-h2' (no longer listed)" % lab.name,
        "delete route fd00:213:9::/48 via fd00:213:176::2 in netns '%s-h1' (no longer listed)"
        % lab.name]
    assert routes(lab, "h1") == {"default": ("10.213.176.1", "213"), LAN: (None, "kernel"),
                                 # ip leaves out the default protocol, boot
                                 "10.213.180.0/24": ("10.213.176.2", None)}
    assert routes(lab, "h2") == {DMZ: (None, "kernel"), P2P: (None, "kernel")}

    # a destination another owner routes is refused, by name; nothing changes
    spec["nodes"]["h1"]["routes"] = [{"to": "10.213.180.0/24", "via": "10.213.176.3"}]
    refused = build(lab, tmp_path, spec)
    assert [r["_task"].split(" : ")[-1] for r in failed(refused)] == [
        "The nodes' static routes (nslab's own, proto 213)"]
    assert "10.213.180.0/24 in netns '%s-h1' is already routed by via 10.213.176.2 " \
        "(proto boot)" % lab.name in failed(refused)[0]["msg"]
    assert routes(lab, "h1")["10.213.180.0/24"] == ("10.213.176.2", None)


BAD = [
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
            "nslab_lab : Validate the whole topology and compile this host's share (before "
            "anything changes)"]
        assert problem in failed(results)[0]["msg"]
        assert changed(results) == {}
        assert before == dict((n, (routes(lab, n), routes(lab, n, "-6")))
                              for n in ("h1", "h2", "r"))

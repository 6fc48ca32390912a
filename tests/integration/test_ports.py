"""Port publishing (a node's ``ports``) against the real kernel: a busybox node serving
HTTP, reached through a host port from the host (bridge address and 127.0.0.1) and from a
namespace the test makes; converged, refused when clashing, removed with the key and with
the lab; the 127.0.0.1 guard proven by the attack it stops."""

import json
import secrets
import socket
import subprocess

import yaml

from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import bridge_name
from helpers.ansible_runs import build, changed, failed, run_module, run_playbook
from helpers.kernel import nft_rules, sh
from helpers.lab import BUSYBOX, BUSYBOX_SKIP, Lab

pytestmark = BUSYBOX_SKIP

SUBNET = "10.213.188.0/24"          # this engineer's share: 10.213.188.0/22
BRIDGE_IP = "10.213.188.1"
CLIENT = ("10.213.189.1", "10.213.189.2")     # host end, namespace end (a /30)
PAGE = "page-of-web"


def free_port():
    """A host port nobody listens on (nslab's DNAT would hide a listener anyway)."""
    while True:
        port = 20000 + secrets.randbelow(20000)
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue


def topology(lab, ports, more_nodes=None, isolate_host=None):
    # No nat: it would turn the host's IPv4 forwarding on, for every test on the machine;
    # connections through the host are tested in a gateway namespace instead.
    lan = {"subnet": SUBNET}
    if isolate_host is not None:
        lan["isolate_host"] = isolate_host
    nodes = {"web": {"networks": ["lan"], "command": [
        "sh", "-c", "mkdir -p /www && echo %s > /www/index.html && exec httpd -f -p 80 "
                    "-h /www" % PAGE]}}
    if ports is not None:
        nodes["web"]["ports"] = ports
    nodes.update(more_nodes or {})
    return {"lab": lab.name, "defaults": {"jail": {"source": "busybox"}},
            "networks": {"lan": lan}, "nodes": nodes}


def get(address, port, netns=None, timeout=3):
    """The body of GET / over a plain TCP connection (from ``netns`` when given), or the
    error."""
    code = ("import socket,sys\n"
            "s=socket.create_connection((%r,%d),timeout=%d)\n"
            "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
            "data=b''\n"
            "while True:\n"
            "    chunk=s.recv(4096)\n"
            "    if not chunk: break\n"
            "    data+=chunk\n"
            "sys.stdout.write(data.decode(errors='replace'))\n" % (address, port, timeout))
    proc = sh("python3", "-c", code, check=False, netns=netns)
    return proc.stdout if proc.returncode == 0 else "ERROR " + proc.stderr.strip()[-200:]


def lab_rules(lab):
    """{(chain, comment)} of the lab's rules in ``inet nslab``."""
    proc = sh("nft", "-j", "list", "table", "inet", "nslab", check=False)
    if proc.returncode != 0:
        return set()
    return set((i["rule"]["chain"], i["rule"].get("comment", ""))
               for i in json.loads(proc.stdout)["nftables"]
               if "rule" in i and i["rule"].get("comment", "").startswith(
                   "nslab:%s:" % lab.name))


def route_localnet(lab):
    """The lab's bridge and its route_localnet."""
    name = bridge_name(lab.name, "lan")
    with open("/proc/sys/net/ipv4/conf/%s/route_localnet" % name) as handle:
        return name, int(handle.read())


def client_namespace(lab, gateway, addresses=CLIENT):
    """A namespace of the test's, joined to ``gateway`` (a namespace acting as the host)
    by a veth: another machine."""
    ns, gw_end, ns_end = lab.n("cl"), lab.n("ch"), lab.n("cn")
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", gw_end, "netns", gateway, "type", "veth", "peer", ns_end,
       "netns", ns)
    sh("ip", "addr", "add", addresses[0] + "/30", "dev", gw_end, netns=gateway)
    sh("ip", "link", "set", gw_end, "up", netns=gateway)
    sh("ip", "addr", "add", addresses[1] + "/30", "dev", ns_end, netns=ns)
    sh("ip", "link", "set", ns_end, "up", netns=ns)
    sh("ip", "link", "set", "lo", "up", netns=ns)
    return ns


def test_a_published_port_reaches_the_node_converges_and_goes(lab, tmp_path):
    port, local_port = free_port(), free_port()
    spec = topology(lab, ["%d:80" % port, "127.0.0.1:%d:80/tcp" % local_port])

    path = tmp_path / ("%s.yml" % lab.name)
    path.write_text(yaml.safe_dump(spec))
    checked = run_playbook("lab.yml", {"lab": str(path)}, check=True, json_results=True)
    assert not failed(checked), failed(checked)
    assert any("publish every host address:%d/tcp" % port in a for a in changed(checked)[
        "Published ports (host port -> node, in nslab's own nftables table)"])
    assert lab_rules(lab) == set()

    first = build(lab, tmp_path, spec)
    assert not failed(first), failed(first)
    actions = changed(first)["Published ports (host port -> node, in nslab's own nftables table)"]
    assert any("every host address:%d/tcp -> node web" % port in a for a in actions)
    assert any("route_localnet=1" in a for a in actions)
    rules = lab_rules(lab)
    for key in ("tcp:*:%d" % port, "tcp:127.0.0.1:%d" % local_port):
        comment = "nslab:%s:web:publish:%s" % (lab.name, key)
        assert {(c, comment) for c in ("ports-prerouting", "ports-output",
                                       "ports-postrouting")} <= rules
    bridge, localnet = route_localnet(lab)
    assert localnet == 1
    assert ("ports-guard", "nslab:%s:%s:localnet:daddr" % (lab.name, bridge)) in rules

    # from the host: its address on the bridge, and 127.0.0.1 (both publications)
    assert PAGE in get(BRIDGE_IP, port)
    assert PAGE in get("127.0.0.1", port)
    assert PAGE in get("127.0.0.1", local_port)
    # the loopback-only one is not on the host's other addresses
    assert PAGE not in get(BRIDGE_IP, local_port, timeout=1)

    assert changed(build(lab, tmp_path, spec)) == {}

    # the key removed: every rule of the lab's ports goes, route_localnet is cleared
    without = build(lab, tmp_path, topology(lab, None))
    assert not failed(without), failed(without)
    assert set(changed(without)) == {
        "Published ports (host port -> node, in nslab's own nftables table)"}
    assert lab_rules(lab) == set()
    assert route_localnet(lab)[1] == 0
    assert PAGE not in get(BRIDGE_IP, port, timeout=1)
    assert changed(build(lab, tmp_path, topology(lab, None))) == {}

    # back, then the lab destroyed: no rule of the lab is left
    assert not failed(build(lab, tmp_path, spec))
    assert lab_rules(lab)
    destroyed = build(lab, tmp_path, spec, state="absent")
    assert not failed(destroyed), failed(destroyed)
    assert lab_rules(lab) == set()
    assert not [c for c, _h in nft_rules("inet") if c.startswith("nslab:%s:" % lab.name)]


def test_a_port_published_twice_is_refused_and_nothing_changes(lab, tmp_path):
    port = free_port()
    twice = topology(lab, ["%d:80" % port], more_nodes={
        "other": {"networks": ["lan"], "ports": ["0.0.0.0:%d:8080" % port, "70000:80",
                                                  "1:2/sctp"]}})
    results = build(lab, tmp_path, twice)
    problems = "\n".join(failed(results)[0]["problems"])
    # the file is written with sorted keys: "other" comes first
    assert "nodes.web.ports[0]: every host address:%d/tcp is already published by " \
        "nodes.other.ports[0]" % port in problems
    assert "nodes.other.ports[1]" in problems and "out of range 1-65535" in problems
    assert "nodes.other.ports[2]" in problems and "sctp" in problems
    assert lab_rules(lab) == set()
    assert not any(r.get("changed") for r in results)


def test_a_port_another_lab_publishes_is_refused(lab, tmp_path):
    port = free_port()
    assert not failed(build(lab, tmp_path, topology(lab, ["%d:80" % port])))
    before = lab_rules(lab)
    other = Lab()
    try:
        result = run_module("nslab_ports", {"lab": other.name, "ports": [
            {"node": "n", "port": "%s:%d:80" % (BRIDGE_IP, port), "address": "10.213.188.9",
             "bridge": "lo"}]})
    finally:
        other.cleanup()
    other_lab = other.name
    assert result["_status"] == "failed"
    assert "ports[0]" in result["msg"] and "by lab '%s'" % lab.name in result["msg"]
    assert lab_rules(lab) == before
    assert not [c for c, _h in nft_rules("inet") if c.startswith("nslab:%s:" % other_lab)]


def test_the_loopback_guard_stops_a_node_reaching_the_hosts_loopback(lab, tmp_path):
    """route_localnet on the bridge would let the bridge's machines reach the host's
    127.0.0.1 services: shown to work without the guard rules, refused with them."""
    port = free_port()
    spec = topology(lab, ["%d:80" % port], isolate_host=False)
    assert not failed(build(lab, tmp_path, spec))
    bridge, localnet = route_localnet(lab)
    assert localnet == 1
    # a machine on the bridge (the test's own namespace) that routes 127.0.0.1 to the host
    ns, host_end, ns_end = lab.n("at"), lab.n("ah"), lab.n("an")
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", host_end, "type", "veth", "peer", ns_end, "netns", ns)
    sh("ip", "link", "set", host_end, "master", bridge, "up")
    sh("ip", "addr", "add", "10.213.188.200/24", "dev", ns_end, netns=ns)
    sh("ip", "link", "set", ns_end, "up", netns=ns)
    sh("sysctl", "-qw", "net.ipv4.conf.%s.route_localnet=1" % ns_end, netns=ns)
    sh("ip", "route", "del", "table", "local", "127.0.0.0/8", "dev", "lo", check=False,
       netns=ns)
    sh("ip", "route", "del", "table", "local", "127.0.0.1", "dev", "lo", check=False,
       netns=ns)
    sh("ip", "route", "add", "127.0.0.1/32", "via", BRIDGE_IP, "dev", ns_end, netns=ns)
    # a service of the host's loopback (the test's own)
    with socket.socket() as service:
        service.bind(("127.0.0.1", 0))
        service.listen(8)
        secret_port = service.getsockname()[1]
        service.settimeout(3)

        def reached():
            proc = sh("python3", "-c", "import socket; socket.create_connection(("
                      "'127.0.0.1', %d), timeout=2)" % secret_port, check=False, netns=ns)
            if proc.returncode == 0:
                service.accept()[0].close()
            return proc.returncode == 0

        assert not reached()
        # without nslab's guard rules (deleted by hand), the attack works
        for item in json.loads(sh("nft", "-j", "list", "chain", "inet", "nslab",
                                  "ports-guard").stdout)["nftables"]:
            rule = item.get("rule")
            if rule and rule.get("comment", "").startswith("nslab:%s:" % lab.name):
                sh("nft", "delete", "rule", "inet", "nslab", "ports-guard", "handle",
                   str(rule["handle"]))
        assert reached()
        # a rerun puts them back
        again = changed(build(lab, tmp_path, spec))
        assert list(again) == [
            "Published ports (host port -> node, in nslab's own nftables table)"]
        assert not reached()


def test_bridge_isolation_going_leaves_the_published_ports(lab, tmp_path):
    """``inet nslab`` holds nslab_bridge's input chain and the ports' chains: the bridge's
    last isolation rule going must not take the table, and the ports, with it."""
    port = free_port()
    assert not failed(build(lab, tmp_path, topology(lab, ["%d:80" % port],
                                                    isolate_host=True)))
    published = lab_rules(lab)
    assert ("input", "nslab:%s:%s:isolate-host" % (lab.name, bridge_name(lab.name, "lan"))) \
        in published
    unisolated = build(lab, tmp_path, topology(lab, ["%d:80" % port], isolate_host=False))
    assert not failed(unisolated), failed(unisolated)
    assert lab_rules(lab) == set(r for r in published if r[0] != "input")
    assert PAGE in get(BRIDGE_IP, port)


def test_the_module_alone_check_diff_rerun_and_absent(lab):
    """nslab_ports by itself on a bridge of the test's: check mode changes nothing, the
    diff says what is published, a rerun changes nothing, absent takes it all back."""
    bridge = lab.n("br")
    sh("ip", "link", "add", bridge, "type", "bridge")
    port = free_port()
    args = {"lab": lab.name, "ports": [
        {"node": "n1", "port": "%d:80" % port, "address": "10.213.190.2/24", "bridge": bridge}]}
    expected = ["every host address:%d/tcp -> node n1 10.213.190.2:80" % port]

    checked = run_module("nslab_ports", args, check=True, diff=True)
    assert checked["changed"] and checked["diff"]["after"]["published"] == expected
    assert lab_rules(lab) == set()
    with open("/proc/sys/net/ipv4/conf/%s/route_localnet" % bridge) as handle:
        assert handle.read().strip() == "0"

    done = run_module("nslab_ports", args, diff=True)
    assert done["changed"] and done["published"] == expected
    assert done["diff"] == {"before": {"published": []}, "after": {"published": expected}}
    assert len(lab_rules(lab)) == 5            # 3 for the port, 2 guards of the bridge
    with open("/proc/sys/net/ipv4/conf/%s/route_localnet" % bridge) as handle:
        assert handle.read().strip() == "1"
    again = run_module("nslab_ports", args)
    assert not again["changed"] and again["actions"] == []

    bad = run_module("nslab_ports", dict(args, ports=[dict(args["ports"][0], port="80")]))
    assert bad["_status"] == "failed" and "ports[0].port: '80' is invalid" in bad["msg"]
    assert len(lab_rules(lab)) == 5

    assert run_module("nslab_ports", {"lab": lab.name, "state": "absent"},
                      check=True)["changed"]
    assert len(lab_rules(lab)) == 5
    gone = run_module("nslab_ports", {"lab": lab.name, "state": "absent"})
    assert gone["changed"] and gone["published"] == []
    assert lab_rules(lab) == set()
    with open("/proc/sys/net/ipv4/conf/%s/route_localnet" % bridge) as handle:
        assert handle.read().strip() == "0"
    assert not run_module("nslab_ports", {"lab": lab.name, "state": "absent"})["changed"]


def test_a_port_through_a_gateway_namespace_from_another_machine(lab, tmp_path):
    """The module in a namespace of the test's acting as the host (its own forwarding on,
    the real host's untouched): another machine reaches the node through the gateway's
    address, the gateway itself through 127.0.0.1."""
    gw, node = lab.n("gw"), lab.n("nd")
    for ns in (gw, node):
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", "lo", "up", netns=ns)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=gw)
    bridge = lab.n("br")
    sh("ip", "link", "add", bridge, "type", "bridge", netns=gw)
    sh("ip", "addr", "add", "10.213.191.1/24", "dev", bridge, netns=gw)
    sh("ip", "link", "set", bridge, "up", netns=gw)
    sh("ip", "link", "add", lab.n("nh"), "netns", gw, "type", "veth", "peer", lab.n("nn"),
       "netns", node)
    sh("ip", "link", "set", lab.n("nh"), "master", bridge, "up", netns=gw)
    sh("ip", "addr", "add", "10.213.191.2/24", "dev", lab.n("nn"), netns=node)
    sh("ip", "link", "set", lab.n("nn"), "up", netns=node)
    client = client_namespace(lab, gw, ("10.213.190.1", "10.213.190.2"))
    (tmp_path / "index.html").write_text(PAGE + "\n")
    server = subprocess.Popen(["nsenter", "--net=/run/netns/%s" % node, BUSYBOX, "httpd",
                               "-f", "-p", "80", "-h", str(tmp_path)])
    try:
        port = free_port()
        args = {"lab": lab.name, "ports": [
            {"node": "n1", "port": "%d:80" % port, "address": "10.213.191.2",
             "bridge": bridge}]}
        done = run_module("nslab_ports", args, netns=gw)
        assert done["changed"] and not done.get("warnings")
        assert PAGE in get("10.213.190.1", port, netns=client)       # another machine
        assert PAGE in get("127.0.0.1", port, netns=gw)              # the "host" itself
        assert PAGE in get("10.213.191.1", port, netns=gw)
        assert not run_module("nslab_ports", args, netns=gw)["changed"]
        gone = run_module("nslab_ports", {"lab": lab.name, "state": "absent"}, netns=gw)
        assert gone["changed"]
        assert sh("nft", "list", "table", "inet", "nslab", netns=gw, check=False).returncode
        assert PAGE not in get("10.213.190.1", port, netns=client, timeout=1)
    finally:
        server.kill()
        server.wait()

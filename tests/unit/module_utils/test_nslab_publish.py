"""Port publishing, pure parts: the ports syntax, lab-wide clashes, the plan against a
captured ``nft -j list table inet nslab`` (rules made by nslab_ports' own script in a
private network namespace, beside another lab's port and nslab_bridge's isolation rule),
and the topology key."""

import json

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_nft import (
    HOST_TABLE, isolate_rule, parse_table as parse_host_table, plan_rules, script as host_script)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_publish import (
    ANY, PortSpec, Published, Table, conflict_problems, lab_clash_problems, parse_port,
    parse_table, plan_ports, port_problems, script, undo_script, view)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import compile_lab, validate

from helpers.paths import UNIT_FIXTURES

FIXTURE = (UNIT_FIXTURES / "nft_inet_nslab_ports.json").read_text()
BRIDGE = "nslab-br1"
CAPTURED = [Published("web", parse_port("8080:80"), "10.213.188.2", BRIDGE),
            Published("web", parse_port("127.0.0.1:2222:22/tcp"), "10.213.188.2", BRIDGE),
            Published("dns", parse_port("192.0.2.1:5353:53/udp"), "10.213.188.3", BRIDGE)]


@pytest.mark.parametrize("text, spec", [
    ("8080:80", PortSpec(None, 8080, 80, "tcp")),
    ("127.0.0.1:2222:22/tcp", PortSpec("127.0.0.1", 2222, 22, "tcp")),
    ("5353:53/udp", PortSpec(None, 5353, 53, "udp")),
    ("0.0.0.0:1:65535", PortSpec(None, 1, 65535, "tcp")),
])
def test_docker_syntax_is_parsed(text, spec):
    assert parse_port(text) == spec


@pytest.mark.parametrize("value, why", [
    ("80", "not of the form"),
    (80, "a bare port"),
    ("0:80", "HOST port 0 is out of range"),
    ("8080:65536", "NODE port 65536 is out of range"),
    ("8080:80/sctp", "protocol 'sctp' is not tcp or udp"),
    ("300.1.1.1:8080:80", "'300.1.1.1' is not an IPv4 address"),
    ("[::1]:8080:80", "not of the form"),
    (["8080:80"], "not a string"),
])
def test_bad_entries_say_why_and_what_is_expected(value, why):
    problems = port_problems("nodes.web.ports", [value])
    assert len(problems) == 1
    assert problems[0].startswith("nodes.web.ports[0]: ")
    assert why in problems[0] and "[HOST_IP:]HOST_PORT:NODE_PORT[/tcp|udp]" in problems[0]


def test_a_port_published_twice_clashes_and_every_address_clashes_with_one():
    published = [("a[0]", parse_port("8080:80")), ("b[0]", parse_port("127.0.0.1:8080:81")),
                 ("b[1]", parse_port("8080:80/udp")), ("c[0]", parse_port("10.0.0.1:9:9")),
                 ("c[1]", parse_port("10.0.0.2:9:9")), ("c[2]", parse_port("10.0.0.1:9:8"))]
    problems = lab_clash_problems(published)
    assert len(problems) == 2
    assert problems[0].startswith("b[0]: 127.0.0.1:8080/tcp is already published by a[0]")
    assert problems[1].startswith("c[2]: 10.0.0.1:9/tcp is already published by c[0]")


def test_the_captured_table_is_converged_for_what_made_it():
    table = parse_table(FIXTURE)
    assert len(table.rules) == 13
    plan = plan_ports("demo", CAPTURED, table, {BRIDGE: 1})
    assert not plan and script(plan) == [] and plan.summaries == []
    assert view("demo", table) == [
        "127.0.0.1:2222/tcp -> node web 10.213.188.2:22",
        "192.0.2.1:5353/udp -> node dns 10.213.188.3:53",
        "every host address:8080/tcp -> node web 10.213.188.2:80"]


def test_one_port_dropped_deletes_its_three_rules_only():
    table = parse_table(FIXTURE)
    plan = plan_ports("demo", CAPTURED[:2], table, {BRIDGE: 1})
    assert plan.add == []
    assert sorted((r.chain, r.comment) for r in plan.delete) == [
        (c, "nslab:demo:dns:publish:udp:192.0.2.1:5353")
        for c in ("ports-output", "ports-postrouting", "ports-prerouting")]
    assert plan.summaries == ["stop publishing 192.0.2.1:5353/udp"]
    assert plan.delete_chains == []
    commands = script(plan)
    assert all(list(c) == ["delete"] for c in commands) and len(commands) == 3


def test_a_moved_node_replaces_its_rules():
    table = parse_table(FIXTURE)
    moved = [Published("web", CAPTURED[0].spec, "10.213.188.9", BRIDGE)] + CAPTURED[1:]
    plan = plan_ports("demo", moved, table, {BRIDGE: 1})
    assert sorted(r.chain for r in plan.add) == sorted(r.chain for r in plan.delete) == [
        "ports-output", "ports-postrouting", "ports-prerouting"]
    assert set(r.comment for r in plan.add) == {"nslab:demo:web:publish:tcp:*:8080"}
    assert plan.summaries == [
        "update every host address:8080/tcp -> node web 10.213.188.9:80/tcp"]


def test_absent_removes_the_labs_rules_and_localnet_but_no_one_elses():
    table = parse_table(FIXTURE)
    plan = plan_ports("demo", [], table, {BRIDGE: 1})
    assert len(plan.delete) == 11 and plan.add == []
    assert all(r.comment.startswith("nslab:demo:") for r in plan.delete)
    assert plan.localnet_off == [BRIDGE] and plan.localnet_on == []
    # the other lab's port keeps ports-prerouting, nslab_bridge's rule keeps input
    assert plan.delete_chains == ["ports-guard", "ports-output", "ports-postrouting"]
    commands = script(plan)
    assert {"delete": {"chain": {"family": "inet", "table": "nslab", "name": "ports-guard"}}} \
        in commands
    assert not any("table" in list(c.values())[0] for c in commands)


def test_the_last_rules_take_their_chains_and_leave_the_table():
    data = json.loads(FIXTURE)
    data["nftables"] = [i for i in data["nftables"] if "rule" not in i or i["rule"].get(
        "comment", "").startswith("nslab:demo:web:")]
    plan = plan_ports("demo", [], parse_table(json.dumps(data)), {BRIDGE: 1})
    commands = script(plan)
    assert sorted(c["delete"]["chain"]["name"] for c in commands if "chain" in c["delete"]) \
        == ["ports-guard", "ports-output", "ports-postrouting", "ports-prerouting"]
    # another lab's run may be adding to inet nslab now: nslab_shared removes it once empty
    assert not any("table" in c["delete"] for c in commands)


def test_a_new_loopback_port_adds_the_guard_and_sets_localnet():
    plan = plan_ports("demo", CAPTURED[:1], Table(), {BRIDGE: 0})
    assert plan.localnet_on == [BRIDGE]
    assert script(plan)[0] == {"add": {"table": {"family": "inet", "name": "nslab"}}}
    assert plan.add_chains == ["ports-guard", "ports-prerouting", "ports-output",
                               "ports-postrouting"]
    assert sorted(r.comment for r in plan.add if r.chain == "ports-guard") == [
        "nslab:demo:%s:localnet:daddr" % BRIDGE, "nslab:demo:%s:localnet:saddr" % BRIDGE]
    # a port on one non-loopback address needs neither
    plan = plan_ports("demo", CAPTURED[2:], Table(), {BRIDGE: 0})
    assert plan.localnet_on == [] and not [r for r in plan.add if r.chain == "ports-guard"]


def test_another_labs_port_is_a_conflict_naming_that_lab():
    table = parse_table(FIXTURE)
    mine = [Published("n", parse_port("9090:80"), "10.213.188.4", BRIDGE),
            Published("n", parse_port("192.0.2.8:9090:80"), "10.213.188.4", BRIDGE),
            Published("n", parse_port("192.0.2.7:9090:80/udp"), "10.213.188.4", BRIDGE)]
    problems = conflict_problems("demo", mine, table)
    assert len(problems) == 1
    assert problems[0].startswith("ports[0]: every host address:9090/tcp (node n) is "
                                  "already published on this host by lab 'other' (node n1")
    assert conflict_problems("other", mine, table) == []


def test_undo_takes_back_what_a_plan_did():
    table = parse_table(FIXTURE)
    plan = plan_ports("demo", CAPTURED[:2], table, {BRIDGE: 1})
    undo = undo_script(plan, table)
    restored = [c["add"]["rule"] for c in undo if "rule" in c.get("add", {})]
    assert sorted(r["chain"] for r in restored) == [
        "ports-output", "ports-postrouting", "ports-prerouting"]
    assert all("handle" not in r for r in restored)


def test_bridge_isolation_never_drops_the_table_that_holds_published_ports():
    """nslab_bridge's plan for ``input`` removes its last rule there, never ``inet nslab``
    (which would take the published ports with it): an empty table goes in nslab_shared."""
    current = parse_host_table(FIXTURE, HOST_TABLE)
    plan = plan_rules(HOST_TABLE, [], current, lambda comment: True)
    assert all("table" not in list(c.values())[0] for c in host_script(plan))
    assert len(plan.delete) == 1 and len(current) == 1
    wanted = plan_rules(HOST_TABLE, [isolate_rule("demo", BRIDGE)], current, lambda c: True)
    assert not wanted


def topology(ports, networks=("lan",), more=None):
    nodes = {"web": {"networks": list(networks), "ports": ports}}
    nodes.update(more or {})
    return {"lab": "demo", "networks": {"lan": {"subnet": "10.213.188.0/24"},
                                        "v6": {"subnet": "fd00:213::/64"}},
            "nodes": nodes}


def test_the_topology_key_is_validated_with_the_rest():
    assert validate(topology(["8080:80", "127.0.0.1:2222:22/tcp"])) == []
    problems = validate(topology(["8080:80", "99999:80"], more={
        "dns": {"networks": ["lan"], "ports": ["8080:53/tcp"]},
        "lonely": {"ports": ["9000:80"]},
        "six": {"networks": ["v6"], "ports": ["9001:80"]}}))
    assert any(p.startswith("nodes.web.ports[1]: '99999:80' is invalid (HOST port 99999 is "
                            "out of range 1-65535)") for p in problems)
    assert any(p.startswith("nodes.dns.ports[0]: every host address:8080/tcp is already "
                            "published by nodes.web.ports[0]") for p in problems)
    assert any(p.startswith("nodes.lonely.ports: node lonely has ports but no network")
               for p in problems)
    assert any(p.startswith("nodes.six.ports: node six's first network v6 is fd00:213::/64, "
                            "not IPv4") for p in problems)
    assert any("nodes.x.ports: 8080 is not a list" in p
               for p in validate(topology([], more={"x": {"networks": ["lan"],
                                                          "ports": 8080}})))


def test_compile_leads_each_port_to_the_first_networks_address():
    compiled = compile_lab(topology(["8080:80", "5353:53/udp"], networks=("lan", "v6")))
    bridge = compiled["bridges"][0]["name"]
    assert compiled["ports"] == [
        {"node": "web", "port": "8080:80", "address": "10.213.188.2", "bridge": bridge},
        {"node": "web", "port": "5353:53/udp", "address": "10.213.188.2", "bridge": bridge}]
    assert compile_lab(topology(None))["ports"] == []
    assert ANY == "*"

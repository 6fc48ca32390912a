"""nslab's filter rules in nftables: parsing ``nft -j`` output (captured from nft 1.0.6)
and planning the difference (pure functions)."""

from ansible_collections.nslab.lab.plugins.module_utils.nslab_links import (
    UNMANAGED, Iface, VethSpec, derived_mac)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_nft import (
    BRIDGE_TABLE, HOST_TABLE, KernelRule, isolate_rule, parse_comment, parse_table, plan_rules,
    port_rules, script, undo_script)

from helpers.paths import UNIT_FIXTURES as FIXTURES


def kernel(table, name):
    return parse_table((FIXTURES / name).read_text(), table)


def everything(_comment):
    return True


def test_the_kernels_rules_read_back_equal_to_what_nslab_writes():
    rules = kernel(BRIDGE_TABLE, "nft_bridge_nslab.json")
    wanted = port_rules("l", "br0", "nsl-l-a0", "02:00:00:00:00:0A", ["10.0.0.11/24",
                                                                       "fd00::11/64"])
    assert [r.comment for r in rules[:3]] == [w.comment for w in wanted]
    assert [r.signature for r in rules[:3]] == [w.signature() for w in wanted]
    # one allowed sender (0.0.0.0 only) is listed by nft as a value, not a set
    assert rules[3].signature == port_rules("l", "br0", "nsl-l-b0", "02:00:00:00:00:0b",
                                            [])[2].signature()
    assert rules[4].comment == ""                 # a rule nslab did not write is kept apart
    host = kernel(HOST_TABLE, "nft_inet_nslab.json")
    assert [r.signature for r in host] == [isolate_rule("l", "br0").signature()]


def test_matching_rules_mean_nothing_to_do():
    host = kernel(HOST_TABLE, "nft_inet_nslab.json")
    plan = plan_rules(HOST_TABLE, [isolate_rule("l", "br0")], host, everything)
    assert not plan and script(plan) == []


def test_a_rule_whose_content_differs_is_replaced_in_one_script():
    rules = kernel(BRIDGE_TABLE, "nft_bridge_nslab.json")
    wanted = port_rules("l", "br0", "nsl-l-a0", "02:00:00:00:00:0a", ["10.0.0.12/24"])
    plan = plan_rules(BRIDGE_TABLE, wanted, rules, lambda c: False)
    assert [r.comment for r in plan.add] == ["nslab:l:br0:port:nsl-l-a0:arp-ip"]
    assert [r.handle for r in plan.replace] == [rules[2].handle]
    assert plan.delete == []
    commands = script(plan, "add")
    assert commands[0] == {"add": {"table": {"family": "bridge", "name": "nslab"}}}
    assert commands[2] == {"delete": {"rule": {"family": "bridge", "table": "nslab",
                                               "chain": "prerouting",
                                               "handle": rules[2].handle}}}
    added = commands[3]["add"]["rule"]
    assert added["comment"] == "nslab:l:br0:port:nsl-l-a0:arp-ip"
    assert added["expr"][1]["match"]["right"] == {"set": ["0.0.0.0", "10.0.0.12"]}
    assert script(plan, "delete") == []


def test_only_owned_stale_rules_go_and_never_the_table():
    rules = kernel(BRIDGE_TABLE, "nft_bridge_nslab.json")

    def port_b(comment):
        parsed = parse_comment(comment)
        return bool(parsed) and parsed[3] == "nsl-l-b0"

    plan = plan_rules(BRIDGE_TABLE, [], rules, port_b)
    assert [r.comment for r in plan.delete] == ["nslab:l:br0:port:nsl-l-b0:arp-ip"]
    # the uncommented rule is never nslab's, even for an owner that takes everything
    plan = plan_rules(BRIDGE_TABLE, [], rules, everything)
    assert len(plan.delete) == 4
    # the last rules go one by one; the emptied table stays for nslab_shared's tidy
    plan = plan_rules(BRIDGE_TABLE, [], rules[:4], everything)
    assert script(plan) == [{"delete": {"rule": {
        "family": "bridge", "table": "nslab", "chain": "prerouting", "handle": r.handle}}}
        for r in rules[:4]]


def test_undo_removes_what_was_added_and_restores_what_was_removed():
    rules = kernel(BRIDGE_TABLE, "nft_bridge_nslab.json")
    wanted = port_rules("l", "br0", "nsl-l-a0", "02:00:00:00:00:0a", ["10.0.0.12/24"])
    plan = plan_rules(BRIDGE_TABLE, wanted, rules, lambda c: False)
    after = rules[:2] + rules[3:] + [KernelRule(
        comment=wanted[2].comment, handle=99, signature=wanted[2].signature(), raw={})]
    commands = undo_script(plan, after)
    assert commands[0] == {"delete": {"rule": {"family": "bridge", "table": "nslab",
                                               "chain": "prerouting", "handle": 99}}}
    restored = commands[-1]["add"]["rule"]
    assert "handle" not in restored and restored["comment"] == rules[2].comment
    assert restored["expr"] == rules[2].raw["expr"]


def test_comments_name_lab_bridge_and_port():
    assert parse_comment("nslab:l:br0:port:p0:mac") == ("l", "br0", "port", "p0", "mac")
    assert parse_comment("nslab:l:br0:isolate-host") == ("l", "br0", "isolate-host", None,
                                                         None)
    assert parse_comment("nslab:l:br0:10.0.0.0/24")[2] == "10.0.0.0/24"   # a NAT rule
    assert parse_comment("docker:x") is None and parse_comment("") is None


def test_port_rules_allow_the_nodes_ipv4_addresses_and_arp_probes():
    rules = port_rules("l", "br0", "p0", "02:AA:00:00:00:01",
                       ["10.0.0.2/24", "10.0.1.2/24", "fd00::2/64", "10.0.0.2/24"])
    assert rules[0].matches[1].values == ("02:aa:00:00:00:01",)
    assert rules[2].matches[1].values == ("0.0.0.0", "10.0.0.2", "10.0.1.2")


def test_derived_macs_are_stable_local_unicast_and_distinct():
    mac = derived_mac("lab", "lab-a", "eth0")
    assert mac == derived_mac("lab", "lab-a", "eth0")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01            # locally administered, unicast
    assert len({derived_mac("lab", "lab-%d" % i, "eth0") for i in range(1000)}) == 1000
    assert derived_mac("lab", "lab-a", "eth1") != mac != derived_mac("lab2", "lab-a", "eth0")


def test_only_a_node_plugged_into_a_bridge_has_a_port_to_guard():
    node = Iface("eth0", netns="ns", master=None)
    port = Iface("p0", master="br0")
    assert VethSpec(port, node).bridge_port() == (port, node)
    assert VethSpec(node, port).bridge_port() == (port, node)
    assert VethSpec(Iface("eth1", netns="a", master=None),
                    Iface("eth1", netns="b", master=None)).bridge_port() is None
    assert VethSpec(port, Iface("p1", master="br1")).bridge_port() is None
    assert VethSpec(port, Iface("p1", master=UNMANAGED)).bridge_port() == (
        port, Iface("p1", master=UNMANAGED))



def test_undo_of_a_first_rule_removes_that_rule_and_leaves_the_table():
    wanted = [isolate_rule("l", "br0")]
    plan = plan_rules(HOST_TABLE, wanted, [], everything)
    after = kernel(HOST_TABLE, "nft_inet_nslab.json")
    assert undo_script(plan, after) == [{"delete": {"rule": {
        "family": "inet", "table": "nslab", "chain": "input", "handle": 2}}}]

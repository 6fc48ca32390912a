"""Planning bridges and veth pairs against kernel snapshots (pure functions)."""

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import OwnershipError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import Link
from ansible_collections.nslab.lab.plugins.module_utils.nslab_links import (
    BridgeSpec, Iface, VethSpec, address_problems, plan_bridges, plan_veths)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_plan import (
    CREATE, DELETE, ordered_steps)


def link(name, kind="bridge", alias="nslab:lab:bridge", **kw):
    values = dict(name=name, ifindex=kw.pop("ifindex", 10), kind=kind, mtu=1500,
                  mac="02:00:00:00:00:01", up=True, alias=alias, master=None, peer_ifindex=None,
                  peer_netnsid=None, addrgenmode="none", stp=False if kind == "bridge" else None,
                  addresses=[])
    values.update(kw)
    return Link(**values)


def commands(actions):
    return [(s.netns, " ".join(s.argv)) for s in ordered_steps(actions)]


def test_new_bridge_is_created_tagged_addressed_and_up_in_phase_order():
    spec = BridgeSpec(Iface("br0", addresses=["10.0.0.1/24"], mtu=9000), stp=True)
    actions = plan_bridges([spec], {}, "lab")
    assert [a.summary for a in actions][0] == "create bridge 'br0'"
    assert commands(actions) == [
        (None, "link add name br0 mtu 9000 type bridge stp_state 1"),
        (None, "link set dev br0 alias nslab:lab:bridge"),
        (None, "link set dev br0 addrgenmode none"),
        (None, "addr add 10.0.0.1/24 dev br0"),
        (None, "link set dev br0 up"),
    ]


def test_converged_bridge_plans_nothing():
    spec = BridgeSpec(Iface("br0", addresses=["10.0.0.1/24"]))
    current = {"br0": link("br0", addresses=["10.0.0.1/24", "fe80::1/64"])}
    assert plan_bridges([spec], current, "lab") == []


def test_bridge_drift_is_repaired_with_undo_steps():
    spec = BridgeSpec(Iface("br0", addresses=["10.0.0.1/24"], mtu=1400), stp=False)
    current = {"br0": link("br0", addresses=["10.0.0.9/24"], up=False, stp=True,
                           addrgenmode="eui64")}
    actions = plan_bridges([spec], current, "lab")
    summaries = [a.summary for a in actions]
    assert summaries == [
        "turn STP off on bridge 'br0'",
        "set MTU of bridge 'br0' from 1500 to 1400",
        "turn off IPv6 address generation on bridge 'br0'",
        # the old address goes first: with it, as the subnet's primary, go its secondaries
        "remove address 10.0.0.9/24 from bridge 'br0'",
        "add address 10.0.0.1/24 to bridge 'br0'",
        "bring bridge 'br0' up",
    ]
    undo = [s.undo[1] for a in actions for s in a.steps]
    assert ["link", "set", "dev", "br0", "mtu", "1500"] in undo
    assert ["addr", "add", "10.0.0.9/24", "dev", "br0"] in undo


@pytest.mark.parametrize("alias,owner", [
    (None, "not nslab's"),
    ("docker", "not nslab's"),
    ("nslab:other:bridge", "lab 'other'"),
])
def test_foreign_bridges_are_refused_for_any_state(alias, owner):
    for state in ("present", "absent"):
        with pytest.raises(OwnershipError) as err:
            plan_bridges([BridgeSpec(Iface("br0"), state=state)],
                         {"br0": link("br0", alias=alias)}, "lab")
        assert owner in str(err.value) and "'br0'" in str(err.value)


def test_absent_bridge_is_deleted_only_when_present():
    spec = BridgeSpec(Iface("br0"), state="absent")
    assert plan_bridges([spec], {}, "lab") == []
    actions = plan_bridges([spec], {"br0": link("br0")}, "lab")
    assert commands(actions) == [(None, "link del dev br0")]


def veth_pair(end_ns=None, peer_ns="ns1", alias="nslab:lab:veth"):
    end = link("v0", kind="veth", alias=alias, ifindex=7, peer_ifindex=2, peer_netnsid=0,
               master="br0")
    peer = link("eth0", kind="veth", alias=alias, ifindex=2, peer_ifindex=7, peer_netnsid=0,
                addresses=["10.0.0.2/24"])
    return {end_ns: {"v0": end}, peer_ns: {"eth0": peer}}


def veth_spec(**kw):
    return VethSpec(end=Iface("v0", master="br0"),
                    peer=Iface("eth0", netns="ns1", addresses=["10.0.0.2/24"]), **kw)


def test_new_pair_is_created_from_the_host_directly_into_the_namespace():
    actions = plan_veths([veth_spec()], {None: {}, "ns1": {}}, "lab")
    cmds = commands(actions)
    assert cmds[0] == (None, "link add name v0 type veth peer name eth0 netns ns1")
    assert (None, "link set dev v0 master br0") in cmds
    assert ("ns1", "addr add 10.0.0.2/24 dev eth0") in cmds
    # Each end goes up last in its own namespace (one process each after the creation).
    host = [c for ns, c in cmds if ns is None]
    inside = [c for ns, c in cmds if ns == "ns1"]
    assert host[-1] == "link set dev v0 up" and inside[-1] == "link set dev eth0 up"
    assert cmds == [c for c in cmds if c[0] is None] + [c for c in cmds if c[0] == "ns1"]
    create = ordered_steps(actions)[0]
    assert create.phase == CREATE and create.undo == (None, ["link", "del", "dev", "v0"])


def test_converged_pair_plans_nothing():
    assert plan_veths([veth_spec()], veth_pair(), "lab") == []


def test_rewired_pair_is_deleted_and_recreated():
    tables = veth_pair()
    tables["ns1"]["eth0"].peer_ifindex = 99      # eth0's peer is no longer v0
    actions = plan_veths([veth_spec()], tables, "lab")
    cmds = commands(actions)
    assert cmds[:2] == [(None, "link del dev v0"), ("ns1", "link del dev eth0")]
    assert cmds[2][1].startswith("link add name v0")
    assert ordered_steps(actions)[0].phase == DELETE


def test_absent_pair_deletes_one_end_only():
    spec = veth_spec(state="absent")
    assert commands(plan_veths([spec], veth_pair(), "lab")) == [(None, "link del dev v0")]
    assert plan_veths([spec], {None: {}, "ns1": {}}, "lab") == []


def test_foreign_peer_name_in_namespace_is_refused():
    tables = {None: {}, "ns1": {"eth0": link("eth0", kind="veth", alias=None)}}
    with pytest.raises(OwnershipError) as err:
        plan_veths([veth_spec()], tables, "lab")
    assert "netns 'ns1'" in str(err.value)


def test_address_problems_find_duplicates_and_foreign_users():
    a = Iface("a", netns="ns1", addresses=["10.0.0.2/24"])
    b = Iface("b", netns="ns1", addresses=["10.0.0.2/24"])
    c = Iface("c", netns="ns2", addresses=["10.0.0.2/24"])     # other namespace: fine
    tables = {"ns1": {}, "ns2": {"lo": link("lo", kind=None, addresses=["10.0.0.2/8"])}}
    problems = address_problems([a, b, c], tables)
    assert any("requested for both 'a' and 'b'" in p for p in problems)
    assert any("already on interface 'lo'" in p and "ns2" in p for p in problems)
    assert len(problems) == 2


def test_nat_rules_are_planned_per_subnet_and_removed_with_their_bridge():
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_nat import (
        nat_subnets, plan_nat, rule_comment)

    assert nat_subnets(["10.0.0.1/24", "fd00::1/64", "10.0.0.2/24"]) == ["10.0.0.0/24"]
    comment = rule_comment("lab", "br0", "10.0.0.0/24")
    summaries, lines = plan_nat({comment: ("br0", "10.0.0.0/24")}, {}, "lab", ["br0"])
    assert summaries == ["masquerade 10.0.0.0/24 from bridge 'br0' to the host's uplink"]
    assert lines[0] == "add table ip nslab"
    assert lines[-1] == ('add rule ip nslab postrouting ip saddr 10.0.0.0/24 oifname != "br0" '
                         'masquerade comment "nslab:lab:br0:10.0.0.0/24"')
    assert plan_nat({comment: ("br0", "10.0.0.0/24")}, {comment: 4}, "lab", ["br0"]) == ([], [])
    # another bridge's (or lab's) rule is left alone; the table stays while it has rules
    other = rule_comment("other", "br9", "10.9.0.0/24")
    summaries, lines = plan_nat({}, {comment: 4, other: 5}, "lab", ["br0"])
    assert lines == ["delete rule ip nslab postrouting handle 4"]
    # its last rule going leaves the table: another lab's run may be adding to it now
    summaries, lines = plan_nat({}, {comment: 4}, "lab", ["br0"])
    assert lines == ["delete rule ip nslab postrouting handle 4"]


def test_nat_undo_puts_the_table_back_as_it_was():
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_nat import rule_comment, undo_nat

    mine, gone = rule_comment("lab", "br0", "10.0.0.0/24"), rule_comment("lab", "br1",
                                                                        "10.1.0.0/24")
    other = rule_comment("other", "br9", "10.9.0.0/24")
    wanted = {mine: ("br0", "10.0.0.0/24")}
    # The rule it added goes; the table stays (nslab_shared removes it once empty).
    assert undo_nat(wanted, {}, {mine: 7}, "lab") == [
        "delete rule ip nslab postrouting handle 7"]
    assert undo_nat(wanted, {}, {}, "lab") == []
    # ...unless another lab added a rule meanwhile: then only this run's rule goes.
    assert undo_nat(wanted, {}, {mine: 7, other: 8}, "lab") == [
        "delete rule ip nslab postrouting handle 7"]
    # Added rules go by handle, the lab's deleted ones come back; other labs' rules are
    # theirs (one deleted meanwhile is not made again).
    lines = undo_nat(wanted, {other: 5, gone: 6, other + "x": 9}, {other: 5, mine: 7}, "lab")
    assert lines[0] == "delete rule ip nslab postrouting handle 7"
    assert lines[1:3] == ["add table ip nslab", "add chain ip nslab postrouting { type nat "
                          "hook postrouting priority srcnat; policy accept; }"]
    assert lines[3] == ('add rule ip nslab postrouting ip saddr 10.1.0.0/24 oifname != "br1" '
                        'masquerade comment "nslab:lab:br1:10.1.0.0/24"')
    assert len(lines) == 4


def test_nat_rules_are_parsed_from_nft_json():
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_nat import parse_rules

    text = ('{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "ip", '
            '"name": "nslab", "handle": 1}}, {"rule": {"family": "ip", "table": "nslab", '
            '"chain": "postrouting", "handle": 2, "comment": "nslab:l:br0:10.0.0.0/24", '
            '"expr": []}}, {"rule": {"family": "ip", "table": "nslab", "chain": '
            '"postrouting", "handle": 3, "expr": []}}]}')
    assert parse_rules(text) == {"nslab:l:br0:10.0.0.0/24": 2}

"""VXLAN planning (pure) over links parsed from captured ``ip -j -d link show`` output."""

import json

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import OwnershipError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import parse_links
from ansible_collections.nslab.lab.plugins.module_utils.nslab_links import UNMANAGED, Iface
from ansible_collections.nslab.lab.plugins.module_utils.nslab_tunnels import (
    VxlanSpec, peers_of, plan_vxlans)

# Captured from iproute2 6.1 on Linux 6.18 (one device, trimmed of unused keys).
CAPTURED = json.dumps([{
    "ifindex": 2, "ifname": "lab-lan-vx", "flags": ["BROADCAST", "MULTICAST", "UP"],
    "mtu": 1450, "address": "16:77:f1:d1:d7:56", "ifalias": "nslab:lab:vxlan",
    "master": "lab-lan", "inet6_addr_gen_mode": "none",
    "linkinfo": {"info_kind": "vxlan", "info_data": {
        "id": 42, "local": "192.0.2.11", "port_range": {"low": 0, "high": 0}, "port": 4789,
        "learning": True, "ttl": 0, "df": "unset", "ageing": 300}}}])
FDB = [{"mac": "00:00:00:00:00:00", "dst": "192.0.2.12", "flags": ["self"],
        "state": "permanent"},
       {"mac": "0a:00:00:00:00:01", "dst": "192.0.2.12", "flags": ["self"]}]


def spec(**changes):
    fields = dict(iface=Iface(name="lab-lan-vx", mtu=1450, master="lab-lan"), vni=42,
                  local="192.0.2.11", peers=["192.0.2.12"])
    fields.update(changes)
    return VxlanSpec(**fields)


def summaries(actions):
    return [a.summary for a in actions]


def test_the_parser_reads_the_tunnel_and_learned_entries_are_not_peers():
    link = parse_links(CAPTURED)["lab-lan-vx"]
    assert link.vxlan == {"vni": 42, "local": "192.0.2.11", "port": 4789, "learning": True}
    assert peers_of(FDB) == ["192.0.2.12"]


def test_a_converged_device_plans_nothing_and_peers_are_converged_exactly():
    tables = {None: parse_links(CAPTURED)}
    fdbs = {(None, "lab-lan-vx"): FDB}
    assert plan_vxlans([spec()], tables, fdbs, "lab") == []
    actions = plan_vxlans([spec(peers=["192.0.2.13"])], tables, fdbs, "lab")
    assert summaries(actions) == ["add peer 192.0.2.13 to vxlan 'lab-lan-vx'",
                                  "remove peer 192.0.2.12 from vxlan 'lab-lan-vx'"]
    step = actions[0].steps[0]
    assert (step.tool, step.argv) == ("bridge", ["fdb", "append", "00:00:00:00:00:00", "dev",
                                                 "lab-lan-vx", "dst", "192.0.2.13"])


def test_a_new_vni_makes_the_device_again():
    tables = {None: parse_links(CAPTURED)}
    actions = plan_vxlans([spec(vni=43)], tables, {(None, "lab-lan-vx"): FDB}, "lab")
    assert summaries(actions)[:2] == [
        "delete vxlan 'lab-lan-vx' to make it again (VNI 43, port 4789, local 192.0.2.11, "
        "now VNI 42, port 4789, local 192.0.2.11)",
        "create vxlan 'lab-lan-vx' (VNI 43, port 4789, local 192.0.2.11)"]
    assert summaries(actions)[-1] == "add peer 192.0.2.12 to vxlan 'lab-lan-vx'"


def test_an_end_in_a_namespace_is_created_from_the_host():
    end = VxlanSpec(iface=Iface(name="eth1", netns="lab-a", mtu=1450, master=UNMANAGED,
                                addresses=["10.0.9.1/30"]), vni=977, local="192.0.2.11",
                    peers=["192.0.2.12"])
    actions = plan_vxlans([end], {None: {}, "lab-a": {}}, {}, "lab")
    create = actions[0].steps[0]
    assert create.netns is None and create.argv == [
        "link", "add", "name", "eth1", "netns", "lab-a", "mtu", "1450", "type", "vxlan",
        "id", "977", "dstport", "4789", "local", "192.0.2.11"]
    assert create.undo == ("lab-a", ["link", "del", "dev", "eth1"])
    assert all(s.netns == "lab-a" for a in actions[1:] for s in a.steps)


def test_a_foreign_device_is_refused():
    foreign = parse_links(CAPTURED.replace("nslab:lab:vxlan", "someone else"))
    with pytest.raises(OwnershipError, match="vxlan 'lab-lan-vx' exists and is not nslab's"):
        plan_vxlans([spec(state="absent")], {None: foreign}, {}, "lab")

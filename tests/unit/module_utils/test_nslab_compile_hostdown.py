"""A lab over several hosts with one host down or back empty (pure): the plan each host
keeps (its record) holds the down host's share in place, nothing moves or renumbers, and
the host gets its nodes back with their addresses."""

import copy

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import TopologyError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import compile_lab, fleet_view

from helpers.fleet_topology import LAB, as_current, compile_all, fleet


def built_with_records(topology, members):
    """What each host has once its share is built and its record kept."""
    shares = compile_all(topology, members)
    return dict((h, dict(as_current(s), record=s["record"])) for h, s in shares.items())


def with_records(members):
    """fleet members as nslab_topology passes them: each with its kept record."""
    return [dict(m, record=(m.get("current") or {}).get("record")) for m in members]


def down(members, host):
    return [{"name": m["name"], "unreachable": True} if m["name"] == host else m
            for m in members]


def test_every_host_keeps_the_same_record_and_a_rerun_keeps_its_generation():
    shares = compile_all(LAB, fleet())
    records = [s["record"] for s in shares.values()]
    assert all(r == records[0] for r in records) and records[0]["generation"] == 1
    assert records[0]["nodes"]["b"] == {
        "host": "h3", "addresses": {"lan": "10.213.1.3/24", "dmz": "10.213.2.2/24"}}
    assert records[0]["hosts"]["h2"] == {"address": "192.0.2.12", "mtu": 1500}
    again = compile_all(LAB, with_records(fleet(currents=built_with_records(LAB, fleet()))))
    assert all(s["record"] == records[0] for s in again.values())
    bigger = copy.deepcopy(LAB)
    bigger["nodes"]["f"] = {"networks": ["lan"]}
    grown = compile_lab(bigger, fleet=with_records(fleet(currents=built_with_records(
        LAB, fleet()))), host="h1")
    assert grown["record"]["generation"] == 2


def test_a_host_down_moves_nothing_and_its_addresses_go_to_nobody():
    before = compile_all(LAB, fleet())["h1"]
    members = down(with_records(fleet(currents=built_with_records(LAB, fleet()))), "h3")
    bigger = copy.deepcopy(LAB)
    # a newcomer first in the file would take b's addresses if h3's share were forgotten
    bigger["nodes"] = dict([("z", {"networks": ["lan", "dmz"]})] + list(LAB["nodes"].items()))
    shares = dict((h, compile_lab(bigger, fleet=members, host=h)) for h in ("h1", "h2"))
    for name in LAB["nodes"]:
        assert shares["h1"]["nodes"][name] == before["nodes"][name]
    assert shares["h1"]["nodes"]["z"]["host"] != "h3"           # never given new nodes
    assert shares["h1"]["hosts"]["z"] not in before["hosts"].values()
    assert shares["h1"]["networks"]["lan"]["bridge_addresses"] == \
        before["networks"]["lan"]["bridge_addresses"]
    # the down host stays a peer (its underlay comes from the record); nothing is removed
    assert "192.0.2.13" in shares["h2"]["vxlans"][0]["peers"]
    assert all(not any(s["remove"].values()) for s in shares.values())
    assert shares["h1"]["nodes"]["b"]["host"] == "h3"


def test_a_host_back_without_its_nodes_gets_them_back_with_their_addresses():
    before = compile_all(LAB, fleet())
    currents = built_with_records(LAB, fleet())
    currents["h3"] = {}                     # restarted: its nested lab and record are gone
    # in this order, a fresh placement would put b on h1
    members = with_records(fleet(("h3", "h2", "h1"), currents))
    again = dict((m["name"], compile_lab(LAB, fleet=members, host=m["name"])) for m in members)
    assert again["h1"]["nodes"] == before["h1"]["nodes"]
    assert [c["name"] for c in again["h3"]["containers"]] == ["b"]
    assert again["h3"]["bridges"] == before["h3"]["bridges"]
    for key in ("nodes", "networks", "links"):
        assert again["h3"]["record"][key] == before["h1"]["record"][key]


def test_the_newest_record_wins():
    currents = built_with_records(LAB, fleet())
    stale = copy.deepcopy(currents["h1"]["record"])
    stale["nodes"]["b"]["addresses"]["lan"] = "10.213.1.99/24"
    stale["generation"] = 0
    currents["h1"]["record"] = stale
    members = down(with_records(fleet(currents=currents)), "h3")
    assert compile_lab(LAB, fleet=members, host="h1")["hosts"]["b"] == "10.213.1.3"


def test_an_unreachable_host_no_record_knows_is_refused_by_name():
    members = down(fleet(), "h2")
    with pytest.raises(TopologyError, match="fleet.h2: unreachable, and no reachable host has a "
                                         "record of the lab that names it"):
        compile_lab(LAB, fleet=members, host="h1")


def test_the_view_marks_an_unreachable_host_and_its_recorded_nodes():
    currents = built_with_records(LAB, fleet())
    results = [{"item": "h1", "labs": {"wide": currents["h1"]}},
               {"item": "h3", "unreachable": True}]
    view = fleet_view(results)["wide"]
    assert view["hosts"]["h3"] == {"unreachable": True}
    assert view["nodes"]["b"] == {"host": "h3", "state": "unknown", "pid": None,
                                  "addresses": ["10.213.1.3/24", "10.213.2.2/24"]}

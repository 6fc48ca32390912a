"""The network keys of a topology (issue #11): an attachment's options (address, gateway,
netem, state), a node's routes, a nat network's default route, a link's netem and state.
Validation lists every problem by its key's path; compilation gives nslab_route its
``nodes``. And nslab_routes' parsing and planning, on captured ``ip -j`` output."""

import copy
import ipaddress

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_routes import (
    PROTO, desired_routes, parse_routes, plan_routes, up_subnets)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import compile_lab, validate

from helpers.paths import ROOT

LAB = {
    "lab": "nk",
    "networks": {"lan": {"subnet": "10.213.176.0/24", "nat": True},
                 "dmz": {"subnet": "10.213.177.0/24"},
                 "v6": {"subnet": "fd00:213:176::/64"}},
    "nodes": {
        "h1": {"networks": ["lan"]},
        "h2": {"networks": {"dmz": {"address": "10.213.177.12", "gateway": "10.213.177.1"}}},
        "r1": {"networks": {"lan": "10.213.176.2", "dmz": {"address": "10.213.177.2"},
                            "v6": None},
               "routes": [{"to": "10.9.0.0/16", "via": "10.213.177.254"},
                          {"to": "default", "via": "fd00:213:176::1"},
                          {"to": "10.213.178.0/30", "via": "10.213.179.2"}]},
        "r2": {"networks": ["dmz"]},
    },
    "links": [{"endpoints": ["r1:eth5", "r2:eth5"], "subnet": "10.213.179.0/30"}],
}


def changed(path, value):
    spec = copy.deepcopy(LAB)
    *parents, last = path.split("/")
    target = spec
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[int(last) if isinstance(target, list) else last] = value
    return spec


def test_the_example_is_valid():
    assert validate(LAB) == []


def test_the_list_and_address_forms_stay_valid():
    assert validate(changed("nodes/h2/networks", {"dmz": "10.213.177.12"})) == []
    assert validate(changed("nodes/h2/networks", ["dmz"])) == []


@pytest.mark.parametrize("path,value,problem", [
    ("nodes/r1/routes/0/via", "10.213.180.1",
     "nodes.r1.routes[0].via: 10.213.180.1 is on no subnet the node is attached to "
     "(network lan: 10.213.176.0/24, network dmz: 10.213.177.0/24, network v6: "
     "fd00:213:176::/64, links[0]: 10.213.179.0/30); expected an address of one of them"),
    ("nodes/r1/routes/0/via", "10.213.177.255",
     "nodes.r1.routes[0].via: 10.213.177.255 is not a host address of 10.213.177.0/24"),
    ("nodes/r1/routes/0/via", "gw", "nodes.r1.routes[0].via: 'gw' is a string; expected an "
     "IP address"),
    ("nodes/r1/routes/0/to", "10.9.0.1/16", "nodes.r1.routes[0].to: '10.9.0.1/16' is a "
     "string; expected default or a network in CIDR form with its host bits zero"),
    ("nodes/r1/routes/0/to", "fd00:9::/32", "nodes.r1.routes[0].via: 10.213.177.254 is IPv4 "
     "but to fd00:9::/32 is IPv6; expected one family"),
    ("nodes/r1/routes/0", {"to": "10.9.0.0/16"}, "nodes.r1.routes[0].via: missing; expected"),
    ("nodes/r1/routes/0", {"to": "10.9.0.0/16", "via": "10.213.177.254", "dev": "eth0"},
     "nodes.r1.routes[0]: unknown key 'dev'; expected one of to, via"),
    ("nodes/r1/routes/0", "default", "nodes.r1.routes[0]: 'default' is a string; expected a "
     "mapping like {to: default, via: 10.213.1.1}"),
    ("nodes/r1/routes", {"to": "default"}, "nodes.r1.routes: {'to': 'default'} is a mapping; "
     "expected a list of routes"),
    ("nodes/r1/routes/0/to", "10.213.178.0/30", "nodes.r1.routes[2].to: 10.213.178.0/30 is "
     "already routed by nodes.r1.routes[0]; expected each destination once"),
    ("nodes/r1/routes/0/to", "0.0.0.0/0", None),          # the IPv4 default: valid
    ("nodes/h2/networks/dmz/gateway", "10.213.176.1",
     "nodes.h2.networks.dmz.gateway: 10.213.176.1 is not a host address of 10.213.177.0/24"),
    ("nodes/h2/networks/dmz/gateway", 5, "nodes.h2.networks.dmz.gateway: 5 is an integer; "
     "expected an address of 10.213.177.0/24"),
    ("nodes/h2/networks/dmz/state", "off", "nodes.h2.networks.dmz.state: 'off' is a string; "
     "expected up or down"),
    ("nodes/h2/networks/dmz/mtu", 1400, "nodes.h2.networks.dmz: unknown key 'mtu'; expected "
     "one of address, gateway, netem, state"),
    ("nodes/h2/networks/dmz/address", "10.213.176.5",
     "nodes.h2.networks.dmz.address: 10.213.176.5 is outside 10.213.177.0/24"),
    ("links/0/state", True, "links[0].state: True is a boolean; expected up or down"),
    # netem: nslab_netem's own rules, each named by the topology's key path
    ("links/0/netem", {"delay": "-5ms"}, "links[0].netem.delay: "),
    ("links/0/netem", {"loss": "150%"}, "links[0].netem.loss: "),
    ("links/0/netem", {"rate": 10}, "links[0].netem.rate: "),
    ("links/0/netem", {"rate": "10"}, "links[0].netem.rate: "),
    ("links/0/netem", "20ms", "links[0].netem: expected a mapping"),
    ("nodes/h2/networks/dmz/netem", {"egress": {"delay": "1h"}},
     "nodes.h2.networks.dmz.netem.egress.delay: "),
    ("links/0/netem", {"delay": "20ms", "jitter": "2ms", "loss": "1%", "rate": "10mbit",
                       "corrupt": "0.1%", "duplicate": "1%", "reorder": "25%"}, None),
    ("nodes/h2/networks/dmz/netem", {"egress": {"rate": "1mbit"}, "ingress": {"delay": "5ms"}},
     None),
])
def test_a_bad_network_key_is_named_by_its_path(path, value, problem):
    problems = validate(changed(path, value))
    if problem is None:
        assert problems == []
    else:
        assert any(p.startswith(problem) for p in problems), problems


def test_a_gateway_and_a_default_route_of_one_family_clash():
    spec = changed("nodes/h2/routes", [{"to": "default", "via": "10.213.177.3"}])
    assert validate(spec) == [
        "nodes.h2.routes[0]: a second IPv4 default route (nodes.h2.networks.dmz.gateway has "
        "one); expected one per family"]


def test_every_problem_is_listed_at_once():
    spec = changed("nodes/r1/routes", [{"to": "default", "via": "10.1.1.1"},
                                       {"to": "x", "via": "10.213.176.9"}])
    spec["nodes"]["h2"]["networks"]["dmz"]["state"] = "sideways"
    spec["links"][0]["state"] = "off"
    problems = validate(spec)
    assert [p.split(":")[0] for p in problems] == [
        "nodes.h2.networks.dmz.state", "nodes.r1.routes[0].via", "nodes.r1.routes[1].to",
        "links[0].state"]


def routes_of(compiled):
    return dict((n["netns"], n["routes"]) for n in compiled["routes"])


def test_compile_gives_every_node_its_routes():
    routes = routes_of(compile_lab(LAB))
    assert routes == {
        # lan is nat: its bridge (the subnet's first address) is the default route
        "nk-h1": [{"to": "default", "via": "10.213.176.1"}],
        "nk-h2": [{"to": "default", "via": "10.213.177.1"}],
        # the IPv6 default does not stop the IPv4 one through the nat network
        "nk-r1": [{"to": "10.9.0.0/16", "via": "10.213.177.254"},
                  {"to": "default", "via": "fd00:213:176::1"},
                  {"to": "10.213.178.0/30", "via": "10.213.179.2"},
                  {"to": "default", "via": "10.213.176.1"}],
        # listed with none: nslab's routes taken out of the file are removed
        "nk-r2": [],
    }


def test_a_node_with_its_own_default_route_keeps_it_on_a_nat_network():
    spec = changed("nodes/h1/routes", [{"to": "0.0.0.0/0", "via": "10.213.176.9"}])
    assert routes_of(compile_lab(spec))["nk-h1"] == [{"to": "default", "via": "10.213.176.9"}]
    spec = changed("nodes/h1/networks", {"lan": {"gateway": "10.213.176.7"}})
    assert routes_of(compile_lab(spec))["nk-h1"] == [{"to": "default", "via": "10.213.176.7"}]


def test_every_attachment_and_link_gets_its_netem_and_state():
    spec = changed("links/0/netem", {"delay": "20ms"})
    spec["links"][0]["state"] = "down"
    spec["nodes"]["h2"]["networks"]["dmz"]["netem"] = {"egress": {"rate": "10mbit"}}
    compiled = compile_lab(spec)
    assert compiled["conditions"] == [
        {"node": "h1", "interface": "eth0", "netem": None, "state": "up"},
        {"node": "h2", "interface": "eth0", "netem": {"egress": {"rate": "10mbit"}},
         "state": "up"},
        {"node": "r1", "interface": "eth0", "netem": None, "state": "up"},
        {"node": "r1", "interface": "eth1", "netem": None, "state": "up"},
        {"node": "r1", "interface": "eth2", "netem": None, "state": "up"},
        {"node": "r2", "interface": "eth0", "netem": None, "state": "up"},
        # a link: seen from its first endpoint
        {"node": "r1", "interface": "eth5", "netem": {"delay": "20ms"}, "state": "down"}]
    # nslab_veth leaves the up/down state of that pair alone (nslab_link keeps it down)
    assert [v["name"] for v in compiled["veths"] if v.get("keep_state")] == ["eth5"]
    spec["links"][0]["state"] = "up"
    assert [v for v in compile_lab(spec)["veths"] if v.get("keep_state")] == []


def test_the_attachment_mapping_keeps_addresses():
    compiled = compile_lab(LAB)
    assert compiled["nodes"]["h2"]["interfaces"][0]["address"] == "10.213.177.12/24"
    assert compiled["nodes"]["r1"]["interfaces"][1]["address"] == "10.213.177.2/24"


# Captured from `ip -j -d -batch -` (route show table all, link show, addr show), trimmed.
ROUTES = (
    '[{"dst":"default","gateway":"10.213.176.2","dev":"va","protocol":"213","flags":[]},'
    '{"dst":"10.9.0.0/16","gateway":"10.213.176.2","dev":"va","protocol":"213","flags":[]},'
    '{"dst":"10.213.176.0/30","dev":"va","protocol":"kernel","scope":"link",'
    '"prefsrc":"10.213.176.1","flags":[]},'
    '{"type":"local","dst":"10.213.176.1","dev":"va","table":"local","protocol":"kernel",'
    '"scope":"host","prefsrc":"10.213.176.1","flags":[]},'
    '{"dst":"fd00:213::/64","dev":"va","protocol":"kernel","metric":256,"flags":[],'
    '"pref":"medium"},'
    '{"dst":"default","gateway":"fd00:213::2","dev":"va","protocol":"213","metric":1024,'
    '"flags":[],"pref":"medium"},'
    '{"dst":"10.7.0.0/16","gateway":"10.213.176.2","dev":"va","protocol":"boot","flags":[]}]'
)
LINKS = (
    '[{"ifindex":2,"ifname":"va","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],'
    '"mtu":1500,"operstate":"UP","linkinfo":{"info_kind":"veth"},'
    '"addr_info":[{"family":"inet","local":"10.213.176.1","prefixlen":30},'
    '{"family":"inet6","local":"fd00:213::1","prefixlen":64}]},'
    '{"ifindex":3,"ifname":"vb","flags":["BROADCAST","MULTICAST"],"mtu":1500,'
    '"linkinfo":{"info_kind":"veth"},'
    '"addr_info":[{"family":"inet","local":"10.213.178.1","prefixlen":30}]}]'
)


def test_parse_routes_keeps_the_main_table_of_both_families():
    routes = parse_routes(ROUTES)
    assert [(r.family, r.to, r.via, r.owned) for r in routes] == [
        (4, "default", "10.213.176.2", True), (4, "10.9.0.0/16", "10.213.176.2", True),
        (4, "10.213.176.0/30", None, False), (6, "fd00:213::/64", None, False),
        (6, "default", "fd00:213::2", True), (4, "10.7.0.0/16", "10.213.176.2", False)]


def test_gateways_are_reachable_on_up_interfaces_only():
    assert up_subnets(LINKS) == [ipaddress.ip_network("10.213.176.0/30"),
                                 ipaddress.ip_network("fd00:213::/64")]


def plan(desired):
    return plan_routes("nk-r1", desired_routes(desired), parse_routes(ROUTES),
                       up_subnets(LINKS))


def test_a_converged_namespace_plans_nothing():
    actions, waiting, conflicts = plan([
        {"to": "default", "via": "10.213.176.2"}, {"to": "10.9.0.0/16", "via": "10.213.176.2"},
        {"to": "default", "via": "fd00:213::2"}])
    assert (actions, waiting, conflicts) == ([], [], [])


def test_plan_adds_changes_and_deletes_only_nslab_routes():
    actions, waiting, conflicts = plan([
        {"to": "default", "via": "10.213.176.3"}, {"to": "10.8.0.0/16", "via": "10.213.176.2"},
        {"to": "10.6.0.0/16", "via": "10.213.178.2"}])
    assert [a.summary for a in actions] == [
        "change route default in netns 'nk-r1': via 10.213.176.3, was via 10.213.176.2",
        "add route 10.8.0.0/16 via 10.213.176.2 in netns 'nk-r1'",
        "delete route 10.9.0.0/16 via 10.213.176.2 in netns 'nk-r1' (no longer listed)",
        "delete route default via fd00:213::2 in netns 'nk-r1' (no longer listed)"]
    assert actions[1].command == ["route", "add", "10.8.0.0/16", "via", "10.213.176.2",
                                  "proto", str(PROTO)]
    assert actions[3].command == ["route", "del", "default", "via", "fd00:213::2", "proto",
                                  str(PROTO)]
    # vb, which holds 10.213.178.1/30, is down: the route waits; it is not a change
    assert [(r.to, r.via) for r in waiting] == [("10.6.0.0/16", "10.213.178.2")]
    assert conflicts == []


def test_a_route_of_another_owner_is_a_conflict_never_clobbered():
    actions, _waiting, conflicts = plan([{"to": "10.7.0.0/16", "via": "10.213.176.2"},
                                         {"to": "10.213.176.0/30", "via": "10.213.176.2"}])
    assert [(new.to, old.proto) for new, old in conflicts] == [
        ("10.7.0.0/16", "boot"), ("10.213.176.0/30", "kernel")]
    assert all(a.command[1] == "del" for a in actions)


def test_the_published_schema_takes_the_network_keys_and_refuses_bad_ones():
    import json

    import jsonschema
    schema = json.loads((ROOT / "docs" /
                         "topology.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    spec = changed("links/0/netem", {"delay": "20ms", "jitter": "2ms", "loss": "1%",
                                     "rate": "10mbit", "corrupt": "0.1%"})
    spec["links"][0]["state"] = "down"
    spec["nodes"]["h2"]["networks"]["dmz"]["netem"] = {"egress": {"rate": "1Mbit"}}
    spec["nodes"]["h2"]["networks"]["dmz"]["state"] = "up"
    assert validate(spec) == []
    assert [e.message for e in validator.iter_errors(spec)] == []
    for path, value in [("links/0/netem", {"rate": "10"}), ("links/0/netem", {"delay": "-5ms"}),
                        ("links/0/state", "off"), ("nodes/r1/routes/0", {"to": "default"}),
                        ("nodes/h2/networks/dmz/mtu", 1400),
                        ("links/0/netem", {"egress": {"loss": "1"}})]:
        bad = changed(path, value)
        assert validate(bad), path
        assert list(validator.iter_errors(bad)), (path, value)

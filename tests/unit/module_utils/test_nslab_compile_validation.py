"""One validation pass over the whole topology (issue #16): every key any module will
receive, with its type, range and form; each problem names the key's path and the
expected form, and no bad input reaches Python's own errors."""

import copy

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import (
    compile_lab, removal_plan, validate)

from helpers.topology_cases import BAD, GOOD, with_change

PYTHON_ERRORS = ("object has no attribute", "not supported between", "unhashable",
                 "Traceback", "object is not", "NoneType")


def test_the_good_topology_is_valid():
    assert validate(GOOD) == []


@pytest.mark.parametrize("path,value,start,fragment", BAD,
                         ids=[("%s=%r" % (b[0], b[1]))[:60] for b in BAD])
def test_a_bad_input_is_one_problem_naming_its_path_and_the_expected_form(
        path, value, start, fragment):
    problems = validate(with_change(path, value))
    assert len(problems) == 1, problems
    assert problems[0].startswith(start), problems
    assert fragment in problems[0], problems
    assert not any(e in problems[0] for e in PYTHON_ERRORS), problems


def test_everything_wrong_at_once_is_listed_at_once():
    spec = copy.deepcopy(GOOD)
    spec["networks"]["lan"]["nat"] = "false"
    spec["nodes"]["web1"]["hostname"] = "web_1"
    spec["nodes"]["web1"]["cap_add"] = ["FLY"]
    spec["nodes"]["web1"]["limits"]["cpu_weight"] = "x"
    spec["nodes"]["web2"]["jail"] = {"source": "busybox", "command": ["id"]}
    problems = validate(spec)
    assert [p.split(":")[0] for p in problems] == [
        "networks.lan.nat", "nodes.web1.limits.cpu_weight", "nodes.web1.cap_add[0]",
        "nodes.web1.hostname", "nodes.web2.jail.command"]


@pytest.mark.parametrize("value", [None, [], "lab: x", 3, [{"lab": "x"}]])
def test_a_top_level_that_is_not_a_mapping_is_one_problem(value):
    assert validate(value) == ["topology: %r is %s; expected a mapping with lab, networks, "
                               "nodes and links" % (value, {
                                   type(None): "null", list: "a list", str: "a string",
                                   int: "an integer"}[type(value)])]


def test_a_problem_from_defaults_is_named_once_not_per_node():
    spec = with_change("defaults/jail", {"source": "busybox", "mirror": "http://x/"})
    assert validate(spec) == ["defaults.jail.mirror: only used with source 'debootstrap' "
                              "(source is 'busybox')"]


def test_a_node_jail_of_another_source_does_not_inherit_the_defaults_keys_silently():
    spec = with_change("defaults/jail", {"source": "debootstrap", "suite": "bookworm"})
    spec["nodes"]["web1"]["jail"] = {"source": "tarball", "path": "/srv/root.tar"}
    assert validate(spec) == ["defaults.jail.suite: only used with source 'debootstrap' "
                              "(source is 'tarball')"]


def test_a_subnet_the_host_uses_on_its_own_interface_is_refused():
    hosts = [("eth0", "192.0.2.2/24"), ("lo", "127.0.0.1/8"), ("eth1", "10.213.192.77/16")]
    problems = validate(GOOD, host_addresses=hosts)
    assert problems == [
        "networks.lan.subnet: 10.213.192.0/24 overlaps the host's own address "
        "10.213.192.77/16 on eth1; expected a subnet that no interface of the host uses",
        "links[0].subnet: 10.213.193.0/30 overlaps the host's own address 10.213.192.77/16 "
        "on eth1; expected a subnet that no interface of the host uses"]
    assert validate(GOOD, host_addresses=hosts[:2]) == []


def test_a_subnet_inside_the_hosts_own_subnet_is_refused():
    spec = with_change("networks/lan/subnet", "192.0.2.0/25")
    spec["nodes"]["web2"]["networks"] = ["lan"]
    assert validate(spec, host_addresses=[("eth0", "192.0.2.200/24")]) == [
        "networks.lan.subnet: 192.0.2.0/25 overlaps the host's own address 192.0.2.200/24 "
        "on eth0; expected a subnet that no interface of the host uses"]


def test_new_keys_are_compiled_into_the_module_items():
    spec = copy.deepcopy(GOOD)
    spec["networks"]["lan"].update(isolate_host=True, antispoof=False)
    spec["networks"]["dmz"] = {"subnet": "10.213.195.0/24"}
    spec["nodes"]["web1"]["networks"] = ["lan", "dmz"]
    spec["links"][0]["endpoints"] = ["web1:eth2", "web2:eth1"]
    spec["nodes"]["web1"]["disk"] = "512M"
    spec["nodes"]["web2"]["jail"] = {"source": "directory", "path": "/srv/rootfs",
                                     "keep_setuid": True}
    assert validate(spec) == []
    lab = compile_lab(spec)
    bridges = dict((b["name"], b) for b in lab["bridges"])
    assert bridges["demo-lan"]["isolate_host"] is True
    assert "isolate_host" not in bridges["demo-dmz"]       # the module's default: off
    by_bridge = dict(((v.get("bridge"), v["peer"]["netns"]), v) for v in lab["veths"])
    assert by_bridge[("demo-lan", "demo-web1")]["antispoof"] is False
    assert by_bridge[("demo-lan", "demo-web2")]["antispoof"] is False
    assert "antispoof" not in by_bridge[("demo-dmz", "demo-web1")]   # the default: on
    assert "antispoof" not in by_bridge[(None, "demo-web2")]         # a p2p link
    jails = dict((j["name"], j) for j in lab["jails"])
    assert jails["web1"] == {"name": "web1", "source": "busybox", "disk": "512M"}
    assert jails["web2"] == {"name": "web2", "source": "directory", "path": "/srv/rootfs",
                             "keep_setuid": True}


def test_defaults_disk_applies_to_every_node_unless_it_has_its_own():
    spec = with_change("defaults/disk", "1G")
    spec["nodes"]["web2"]["disk"] = 268435456
    jails = dict((j["name"], j) for j in compile_lab(spec)["jails"])
    assert jails["web1"]["disk"] == "1G" and jails["web2"]["disk"] == 268435456


def test_absent_plans_from_what_the_host_has_not_from_the_file():
    current = {"containers": [{"name": "web1"}, {"name": "gone"}],
               "namespaces": [{"name": "demo-web1"}, {"name": "demo-gone"}],
               "bridges": [{"name": "demo-lan"}],
               "veths": [{"name": "demo-web1-0", "netns": None},
                         {"name": "eth0", "netns": "demo-web1"}],
               "vxlans": [{"name": "demo-lan-vx", "netns": None}],
               "jails": [{"name": "web1"}, {"name": "gone"}],
               "cgroups": [{"name": "web1"}]}
    plan = removal_plan("demo", current)
    assert plan["containers"] == plan["jails"] == plan["bridges"] == []
    assert plan["remove"] == {
        "containers": [{"name": "gone"}, {"name": "web1"}],
        "namespaces": [{"name": "demo-gone"}, {"name": "demo-web1"}],
        "bridges": [{"name": "demo-lan"}],
        "veths": [{"name": "demo-web1-0", "netns": None}],
        "jails": [{"name": "gone"}, {"name": "web1"}],
        "cgroups": [{"name": "web1"}],
        "vxlans": [{"name": "demo-lan-vx", "netns": None}]}
    assert removal_plan("demo", {})["remove"] == dict(
        (k, []) for k in ("containers", "namespaces", "bridges", "veths", "jails", "cgroups",
                          "vxlans"))


@pytest.mark.parametrize("current, ports, record", [
    ({}, [], None),                                             # an older read: ports run
    ({"ports": [], "port_guards": [], "record": None}, None, None),
    ({"ports": ["tcp *:80 -> node a 10.0.0.2:80"], "port_guards": []}, [], None),
    ({"ports": [], "port_guards": ["demo-lan"]}, [], None),
    ({"ports": [], "port_guards": [], "record": {"generation": 3}}, None, {"generation": 3}),
])
def test_absent_leaves_ports_and_record_out_when_the_host_holds_none(current, ports, record):
    """destroy runs nslab_ports and nslab_record only for what the host holds (issue #12)."""
    plan = removal_plan("demo", current)
    assert plan["ports"] == ports and plan["record"] == record


def paths(value, prefix=()):
    """Every path (tuple of keys and indexes) into a nested value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, prefix + (index,))


ANY_VALUE = [None, True, 0, -1, 1.5, float("nan"), "", "x\n", "max", [], {}, ["a"], [1],
             {"k": "v"}, {1: 2}]


RICH = copy.deepcopy(GOOD)
RICH["nodes"]["web1"]["jail"] = {"source": "debootstrap", "suite": "bookworm", "variant": "minbase",
                            "include": ["iproute2"], "mirror": "http://deb.debian.org/debian",
                            "overlay": True}
RICH["nodes"]["web2"].update(jail={"source": "tarball", "path": "/srv/r.tar",
                                   "keep_setuid": False}, disk="1G", host="h1",
                             limits={"io": [{"device": "/dev/null", "read_bps": "1M"}],
                                     "cpuset": "0", "swap": 0})
RICH["networks"]["lan"].update(vni=7, isolate_host=True, antispoof=True)
RICH["links"].append(["web1:eth2", "web2:eth2"])


def any_disk(device):
    """A stand-in for nslab_cgroup's block_device: every string names disk 8:0."""
    return "8:0", None


def test_no_value_anywhere_makes_the_validator_or_the_compiler_raise():
    checked = 0
    for base in (GOOD, RICH):
        assert validate(base, resolve=any_disk) == []
        for path in paths(base):
            for value in ANY_VALUE:
                spec = copy.deepcopy(base)
                if not path:
                    spec = value
                else:
                    target = spec
                    for key in path[:-1]:
                        target = target[key]
                    target[path[-1]] = value
                problems = validate(spec, resolve=any_disk)          # raises nothing
                assert all(isinstance(p, str) and ": " in p for p in problems), (path, value)
                assert not any(e in p for p in problems for e in PYTHON_ERRORS), problems
                if not problems:
                    compile_lab(spec)              # a valid topology compiles
                checked += 1
    assert checked > 1500

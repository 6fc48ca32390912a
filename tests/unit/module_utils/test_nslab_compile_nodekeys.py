"""A node's content and privileges in the topology (issue #11): files, binds, sysctls,
exec, userns, privileged. Each bad value is one problem naming its key path and the
expected form; a valid node compiles into what nslab_container, nslab_sysctl and
nslab_exec take."""

import copy

import pytest

from ansible_collections.nslab.lab.plugins.lookup.nslab_node_files import node_facts
from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import (
    compile_lab, validate)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_sysctls import sysctl_problem

from helpers.paths import ROOT

GOOD = {
    "lab": "nk",
    "networks": {"lan": {"subnet": "10.213.180.0/24"}},
    "nodes": {
        "r1": {"networks": {"lan": "10.213.180.12"},
               "files": [{"path": "/etc/frr/frr.conf", "template": "templates/frr.conf.j2",
                          "mode": "0640"},
                         {"path": "/etc/motd", "content": "hello\n"}],
               "binds": [{"path": "/data", "source": "/srv/data", "readonly": True},
                         {"path": "/scratch"}],
               "sysctls": {"net.ipv4.ip_forward": 1,
                           "net.ipv4.tcp_rmem": "4096 87380 6291456"},
               "exec": ["ip route", "echo hi"],
               "userns": True},
        "r2": {"networks": ["lan"], "privileged": False},
        "h1": {"networks": ["lan"]},
    },
    "links": [{"endpoints": ["r1:eth1", "r2:eth1"], "subnet": "10.213.181.0/30"}],
}


def node(**changes):
    spec = copy.deepcopy(GOOD)
    for key, value in changes.items():
        spec["nodes"]["r1"][key] = value
    return spec


def test_good_topology_is_valid():
    assert validate(GOOD) == []


@pytest.mark.parametrize("key, value, where, expected", [
    ("files", {"path": "/etc/motd"}, "nodes.r1.files:", "expected a list"),
    ("files", [{"path": "etc/motd", "content": "x"}], "nodes.r1.files[0].path:",
     "not absolute"),
    ("files", [{"path": "/etc/../../motd", "content": "x"}], "nodes.r1.files[0].path:",
     "normal form"),
    ("files", [{"path": "/", "content": "x"}], "nodes.r1.files[0].path:", "not /"),
    ("files", [{"path": "/proc/sys/kernel/x", "content": "x"}], "nodes.r1.files[0].path:",
     "outside /proc"),
    ("files", [{"path": "/etc/a", "content": "x", "template": "a.j2"}], "nodes.r1.files[0]:",
     "both content and template"),
    ("files", [{"path": "/etc/a"}], "nodes.r1.files[0]:", "neither content nor template"),
    ("files", [{"content": "x"}], "nodes.r1.files[0].path: missing", "absolute path"),
    ("files", [{"path": "/etc/a", "content": 5}], "nodes.r1.files[0].content:", "a string"),
    ("files", [{"path": "/etc/a", "template": ""}], "nodes.r1.files[0].template:",
     "relative to the topology file"),
    ("files", [{"path": "/etc/a", "content": "x", "mode": 416}], "nodes.r1.files[0].mode:",
     "quoted octal"),
    ("files", [{"path": "/etc/a", "content": "x", "mode": "4755"}],
     "nodes.r1.files[0].mode:", "\"0777\""),
    ("files", [{"path": "/etc/a", "content": "x", "mode": "rw"}],
     "nodes.r1.files[0].mode:", "\"0640\""),
    ("files", [{"path": "/etc/a", "content": "x", "owner": "root"}], "nodes.r1.files[0]:",
     "unknown key 'owner'"),
    ("files", [{"path": "/etc/a", "content": "x"}, {"path": "/etc/a", "content": "y"}],
     "nodes.r1.files[1].path:", "already written by nodes.r1.files[0]"),
    ("binds", [{"path": "data"}], "nodes.r1.binds[0].path:", "not absolute"),
    ("binds", [{"path": "/a/../../etc"}], "nodes.r1.binds[0].path:", "normal form"),
    ("binds", [{"path": "/dev/sda"}], "nodes.r1.binds[0].path:", "outside /proc"),
    ("binds", [{"path": "/x", "source": "/srv/../etc"}], "nodes.r1.binds[0].source:",
     "normal form"),
    ("binds", [{"path": "/x", "source": "/"}], "nodes.r1.binds[0].source:", "other than /"),
    ("binds", [{"path": "/x", "source": "/run/nslab/nk"}], "nodes.r1.binds[0].source:",
     "/run/nslab"),
    ("binds", [{"path": "/x", "readonly": "yes"}], "nodes.r1.binds[0].readonly:",
     "true or false"),
    ("binds", [{"path": "/x"}, {"path": "/x"}], "nodes.r1.binds[1].path:", "bound twice"),
    ("sysctls", {"kernel.panic": 1}, "nodes.r1.sysctls.kernel.panic:", "host-wide"),
    ("sysctls", {"vm.swappiness": 10}, "nodes.r1.sysctls.vm.swappiness:", "net.*"),
    ("sysctls", {"net.ipv4.neigh.default.gc_thresh3": 4096},
     "nodes.r1.sysctls.net.ipv4.neigh.default.gc_thresh3:", "not per net namespace"),
    ("sysctls", {"kernel.shmmax": 1}, "nodes.r1.sysctls.kernel.shmmax:", "IPC or UTS"),
    ("sysctls", {"net/ipv4/ip_forward": 1}, "nodes.r1.sysctls.net/ipv4/ip_forward:",
     "dotted names"),
    ("sysctls", {"net.ipv4..x": 1}, "nodes.r1.sysctls.net.ipv4..x:", "dotted names"),
    ("sysctls", {"net.ipv4.ip_forward": True}, "nodes.r1.sysctls.net.ipv4.ip_forward:",
     "an integer or a one-line string"),
    ("sysctls", {"net.ipv4.ip_forward": "1\n0"}, "nodes.r1.sysctls.net.ipv4.ip_forward:",
     "one-line"),
    ("sysctls", ["net.ipv4.ip_forward=1"], "nodes.r1.sysctls:", "a mapping"),
    ("exec", "ip route", "nodes.r1.exec:", "a list of shell commands"),
    ("exec", ["ip route", 5], "nodes.r1.exec:", "a list of shell commands"),
    ("exec", [" "], "nodes.r1.exec[0]:", "empty"),
    ("userns", "yes", "nodes.r1.userns:", "true or false"),
    ("privileged", 1, "nodes.r1.privileged:", "true or false"),
])
def test_bad_value_is_one_problem_naming_its_key(key, value, where, expected):
    problems = validate(node(**{key: value}))
    assert len(problems) == 1, problems
    assert problems[0].startswith(where), problems
    assert expected in problems[0], problems


def test_every_problem_is_listed_at_once():
    spec = node(files=[{"path": "rel", "content": "x", "template": "t.j2"}],
                sysctls={"kernel.panic": 1}, userns="no")
    spec["nodes"]["r2"]["binds"] = [{"path": "/x", "source": "/srv/../../etc"}]
    problems = validate(spec)
    assert sorted(p.split(":")[0] for p in problems) == sorted([
        "nodes.r1.userns", "nodes.r1.files[0].path", "nodes.r1.files[0]",
        "nodes.r1.sysctls.kernel.panic", "nodes.r2.binds[0].source"]), problems


def test_userns_and_privileged_together_are_refused():
    problems = validate(node(privileged=True))
    assert problems == ["nodes.r1: userns and privileged are both true; expected at most one "
                        "(a privileged node keeps the host's root)"]


@pytest.mark.parametrize("name", ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding",
                                  "net.ipv4.conf.eth0.rp_filter", "net.core.somaxconn",
                                  "net.ipv4.tcp_congestion_control"])
def test_net_sysctls_are_the_nodes_own(name):
    assert sysctl_problem("x", name) is None


def test_compile_passes_content_keys_to_their_modules():
    lab = compile_lab(GOOD)
    containers = dict((c["name"], c) for c in lab["containers"])
    r1 = containers["r1"]
    assert r1["files"] == {
        "/etc/frr/frr.conf": {"template": "templates/frr.conf.j2", "mode": "0640",
                              "restart": True},
        "/etc/motd": {"content": "hello\n", "mode": "0644", "restart": True}}
    assert r1["binds"] == [{"path": "/data", "source": "/srv/data", "readonly": True},
                           {"path": "/scratch"}]
    assert r1["userns"] is True and "privileged" not in r1
    assert containers["r2"]["privileged"] is False
    for key in ("files", "binds", "userns"):
        assert key not in containers["h1"]
    # nslab_container takes neither: they go to nslab_sysctl and nslab_exec.
    assert "sysctls" not in r1 and "exec" not in r1
    assert lab["sysctls"] == [{"netns": "nk-r1", "sysctls": {
        "net.ipv4.ip_forward": "1", "net.ipv4.tcp_rmem": "4096 87380 6291456"}}]
    assert lab["execs"] == [{"name": "r1", "commands": ["ip route", "echo hi"]}]


def test_compile_without_content_keys_has_empty_lists():
    spec = copy.deepcopy(GOOD)
    for key in ("files", "binds", "sysctls", "exec", "userns"):
        del spec["nodes"]["r1"][key]
    del spec["nodes"]["r2"]["privileged"]
    lab = compile_lab(spec)
    assert lab["sysctls"] == [] and lab["execs"] == []
    assert all(set(c) == {"name", "netns", "jail", "cgroup", "hostname", "command", "env",
                          "cap_add", "cap_drop"} for c in lab["containers"])


def test_node_facts_give_addresses_and_neighbours():
    lab = compile_lab(GOOD)
    assert "node_facts" not in lab          # made per templated node by the lookup
    nodes = node_facts(lab, ["r1", "r2", "h1"])
    assert nodes["r1"]["addresses"] == {"lan": "10.213.180.12"}
    r2_lan = nodes["r2"]["addresses"]["lan"]
    assert {"network": "lan", "name": "r2", "interface": "eth0", "peer_interface": "eth0",
            "address": r2_lan} in nodes["r1"]["neighbours"]
    assert {"link": 0, "name": "r2", "interface": "eth1", "peer_interface": "eth1",
            "address": "10.213.181.2"} in nodes["r1"]["neighbours"]
    assert {"link": 0, "name": "r1", "interface": "eth1", "peer_interface": "eth1",
            "address": "10.213.181.1"} in nodes["r2"]["neighbours"]
    assert [n["name"] for n in nodes["h1"]["neighbours"]] == ["r1", "r2"]
    assert dict((k, nodes["r1"][k]) for k in ("name", "lab", "hostname", "netns")) == {
        "name": "r1", "lab": "nk", "hostname": "r1", "netns": "nk-r1"}


# The schema sees each value alone: what only the validator checks (across keys).
SCHEMA_BLIND = {("userns", "privileged")}


@pytest.mark.parametrize("key, value", [
    ("files", [{"path": "etc/motd", "content": "x"}]),
    ("files", [{"path": "/etc/../../motd", "content": "x"}]),
    ("files", [{"path": "/proc/x", "content": "x"}]),
    ("files", [{"path": "/etc/a", "content": "x", "template": "a.j2"}]),
    ("files", [{"path": "/etc/a", "content": "x", "mode": "4755"}]),
    ("binds", [{"path": "/x", "source": "/srv/../etc"}]),
    ("binds", [{"path": "/x", "source": "/run/nslab/x"}]),
    ("sysctls", {"kernel.panic": 1}),
    ("sysctls", {"net.ipv4.neigh.default.gc_thresh3": 1}),
    ("exec", ["ip route", 5]),
    ("userns", "yes"),
])
def test_the_schema_refuses_what_the_validator_refuses(key, value):
    import json

    import jsonschema
    schema = json.loads((ROOT / "docs" /
                         "topology.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(GOOD))
    topology = node(**{key: value})
    assert validate(topology)
    assert list(validator.iter_errors(topology))

"""The nslab inventory plugin's pure part: a lab's view (nslab_labview's ``lab_info``,
captured from a real lab) turned into hosts, groups and host variables."""

import copy
import importlib.util
import json
import pathlib

import pytest

from helpers.paths import ROOT, UNIT_FIXTURES

SPEC = importlib.util.spec_from_file_location("nslab_inventory",
                                              ROOT / "plugins" / "inventory" / "nslab.py")
plugin = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(plugin)

from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import bridge_name, host_end_name  # noqa: E402

# lab.yml's build of invcap (busybox a, b, c, d on lan 10.213.160.0/24, a:eth1-c:eth1 on
# 10.213.161.0/30, c limited to 32M), d then stopped; read by cli/nslab_cli.read_labs.
VIEW = json.loads((UNIT_FIXTURES / "labview_single_host.json").read_text())


def build(labs, this_host="labhost"):
    return plugin.inventory_of(labs, this_host, bridge_name, host_end_name)


def test_every_node_is_a_host_reached_through_the_nslab_connection():
    built = build({"invcap": VIEW})
    assert sorted(built["hosts"]) == ["invcap/a", "invcap/b", "invcap/c", "invcap/d"]
    for name, host_vars in built["hosts"].items():
        assert host_vars["ansible_connection"] == "nslab.lab.nslab"
        assert "%s/%s" % (host_vars["nslab_lab"], host_vars["nslab_node"]) == name
        assert host_vars["nslab_host"] == "labhost"


def test_groups_per_lab_network_and_state_a_stopped_node_kept():
    groups = build({"invcap": VIEW})["groups"]
    assert groups == {
        "invcap": ["invcap/a", "invcap/b", "invcap/c", "invcap/d"],
        "invcap_lan": ["invcap/a", "invcap/b", "invcap/c", "invcap/d"],
        "nslab_running": ["invcap/a", "invcap/b", "invcap/c"],
        "nslab_stopped": ["invcap/d"],
    }


def test_host_vars_addresses_interfaces_limits_state():
    hosts = build({"invcap": VIEW})["hosts"]
    a, c, d = hosts["invcap/a"], hosts["invcap/c"], hosts["invcap/d"]
    assert a["nslab_state"] == "running" and a["nslab_pid"] == 18005
    assert a["nslab_addresses"] == ["10.213.160.2/24", "10.213.161.1/30"]
    # eth1 is the point-to-point link to c: addresses, no network.
    assert a["nslab_interfaces"] == {
        "eth0": {"addresses": ["10.213.160.2/24"], "network": "lan"},
        "eth1": {"addresses": ["10.213.161.1/30"], "network": None}}
    assert a["nslab_networks"] == ["lan"]
    assert a["nslab_netns"] == "invcap-a" and a["nslab_cgroup"] == "a"
    assert a["nslab_limits"]["memory"] == 64 * 2 ** 20 and a["nslab_limits"]["pids"] == 64
    assert c["nslab_limits"]["memory"] == 32 * 2 ** 20
    assert d["nslab_state"] == "stopped" and d["nslab_pid"] is None
    assert d["nslab_addresses"] == ["10.213.160.5/24"]


def test_a_lab_without_nodes_lists_nothing_and_labs_do_not_mix():
    other = copy.deepcopy(VIEW)
    built = build({"invcap": VIEW, "other": {"containers": [], "bridges": [], "veths": []}})
    assert sorted(built["hosts"]) == sorted(build({"invcap": VIEW})["hosts"])
    assert "other" in built["groups"] and built["groups"]["other"] == []
    built = build({"invcap": VIEW, "x": other})
    assert sorted(built["groups"]["x"]) == ["x/a", "x/b", "x/c", "x/d"]
    assert sorted(built["groups"]["nslab_stopped"]) == ["invcap/d", "x/d"]


def test_a_bridge_name_shortened_with_a_hash_names_the_network_group():
    lab = "invcap-longer"                          # lab-lan no longer fits in 15 bytes
    long_bridge = bridge_name(lab, "lan")
    assert not long_bridge.startswith(lab + "-")
    view = copy.deepcopy(VIEW)
    for bridge in view["bridges"]:
        bridge["name"] = long_bridge
        bridge["ports"] = [host_end_name(lab, port.split("-")[1], "0") for port in bridge["ports"]]
    built = build({lab: view})
    assert built["groups"][lab + "_" + long_bridge] == [lab + "/" + n for n in "abcd"]
    assert built["hosts"][lab + "/a"]["nslab_networks"] == [long_bridge]


def multi_host_view():
    """VIEW as one host (fleet1) of a lab over two: its plan record places e on fleet2."""
    view = copy.deepcopy(VIEW)
    view["record"] = {
        "generation": 1,
        "hosts": {"fleet1": {"address": "192.0.2.1", "mtu": 1500},
                  "fleet2": {"address": "192.0.2.2", "mtu": 1500}},
        "nodes": dict([(n, {"host": "fleet1", "addresses": {"lan": "10.213.160.%d/24" % i}})
                       for i, n in enumerate("abcd", 2)]
                      + [("e", {"host": "fleet2", "addresses": {"lan": "10.213.160.6/24",
                                                                "wan": "10.213.162.2/24"}})]),
        "networks": {"lan": {"vni": 100, "bridge_addresses": {}},
                     "wan": {"vni": 101, "bridge_addresses": {}}},
        "links": [{"endpoints": ["a:eth1", "c:eth1"], "vni": None}],
    }
    return view


def test_a_lab_over_several_hosts_lists_every_node_of_its_plan():
    built = build({"invcap": multi_host_view()}, this_host="vm")
    hosts, groups = built["hosts"], built["groups"]
    assert sorted(hosts) == ["invcap/a", "invcap/b", "invcap/c", "invcap/d", "invcap/e"]
    # The plan's name for this host, not the machine's.
    assert hosts["invcap/a"]["nslab_host"] == "fleet1"
    e = hosts["invcap/e"]
    assert e["nslab_host"] == "fleet2" and e["nslab_state"] == "remote"
    assert e["nslab_addresses"] == ["10.213.160.6/24", "10.213.162.2/24"]
    assert e["nslab_networks"] == ["lan", "wan"]
    assert groups["invcap_on_fleet1"] == ["invcap/a", "invcap/b", "invcap/c", "invcap/d"]
    assert groups["invcap_on_fleet2"] == ["invcap/e"]
    assert groups["invcap_wan"] == ["invcap/e"]
    assert groups["nslab_remote"] == ["invcap/e"]
    assert "invcap/e" in groups["invcap_lan"] and "invcap/e" in groups["invcap"]


def test_a_single_host_lab_has_no_per_host_group():
    assert not [g for g in build({"invcap": VIEW})["groups"] if "_on_" in g]


@pytest.mark.parametrize("path, accepted", [
    ("inventory/nslab.yml", True), ("x/demo.nslab.yaml", True),
    ("inventory/localhost.yml", False), ("hosts.ini", False)])
def test_verify_file_takes_nslab_sources_only(tmp_path, path, accepted):
    target = tmp_path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("plugin: nslab.lab.nslab\n")
    assert bool(plugin.InventoryModule().verify_file(str(target))) is accepted


def test_documentation_renders_with_its_options_and_examples():
    import subprocess
    import sys

    import yaml
    proc = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-doc"), "-t",
                           "inventory", "-j", "nslab.lab.nslab"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "[WARNING]" not in proc.stderr
    doc = json.loads(proc.stdout)["nslab.lab.nslab"]
    assert {"plugin", "labs", "compose", "groups", "keyed_groups", "strict"} <= set(
        doc["doc"]["options"])
    assert yaml.safe_load(doc["examples"])["plugin"] == "nslab.lab.nslab"


@pytest.mark.parametrize("labs", ["../etc", "a/b", ".hidden"])
def test_a_lab_name_that_is_no_nslab_name_is_refused_before_anything_is_read(
        tmp_path, monkeypatch, labs):
    from ansible.errors import AnsibleParserError
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import inventory_loader

    def no_reading(_labs):
        raise AssertionError("the labs were read")

    source = tmp_path / "demo.nslab.yml"
    source.write_text("plugin: nslab.lab.nslab\nlabs: ['%s']\n" % labs)
    module = inventory_loader.get("nslab.lab.nslab")
    monkeypatch.setattr(module, "read_labs", no_reading)
    with pytest.raises(AnsibleParserError, match="labs: '%s' is not an nslab lab name" % (
            labs.replace(".", "[.]"))):
        module.parse(InventoryData(), DataLoader(), str(source), cache=False)

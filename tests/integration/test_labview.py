"""nslab_labview from the command line's side (cli/nslab_cli.py): the reading of a lab that
the inventory plugin, ``./nslab inspect`` and ``./nslab graph`` share, on a real lab."""

import json
import sys

from helpers.ansible_runs import run_module
from helpers.kernel import sh
from helpers.paths import ROOT

sys.path.insert(0, str(ROOT / "cli"))
import nslab_cli  # noqa: E402


def test_the_view_of_a_running_lab_is_the_kernels(running_lab):
    view = nslab_cli.read_labs(running_lab.name)[running_lab.name]
    containers = dict((c["name"], c) for c in view["containers"])
    assert sorted(containers) == ["a", "b", "c", "d"]
    assert containers["d"]["state"] == "stopped"
    for name in "abc":
        node = containers[name]
        assert node["state"] == "running", node
        with open("/proc/%d/cmdline" % node["pid"], "rb") as handle:
            assert b"nslab:%s:%s" % (running_lab.name.encode(), name.encode()) in handle.read()
        inside = json.loads(sh("ip", "-j", "addr", "show", netns=node["netns"]).stdout)
        kernel = sorted("%s/%s" % (a["local"], a["prefixlen"]) for link in inside
                        if link["ifname"] != "lo" for a in link["addr_info"])
        assert sorted(node["addresses"]) == kernel
    assert [b["name"] for b in view["bridges"]] == [running_lab.n("lan")]
    assert view["leftovers"] == []


def test_every_lab_is_read_when_none_is_named(running_lab):
    assert running_lab.name in nslab_cli.read_labs()


def test_nslab_topology_reads_the_host_itself_as_nslab_info_would(running_lab):
    """``read: true`` compiles, in one module run, what nslab_info's read of the host and
    nslab_topology's compile of that read give together (the two runs lab.yml still makes
    for a lab over several hosts): the same plan, the running nodes' addresses kept, the
    same packages; with state absent, the same removal."""
    packages = ["busybox-static", "nslab-no-such-package"]
    info = run_module("nslab_info", {"lab": running_lab.name, "brief": True,
                                     "packages": packages})
    assert info["packages"] == {"busybox-static": True, "nslab-no-such-package": False}
    for state in ("present", "absent"):
        given = run_module("nslab_topology", {
            "topology": running_lab.spec, "fleet": [dict(info, item="localhost")],
            "host": "localhost", "state": state})
        read = run_module("nslab_topology", {
            "topology": running_lab.spec, "read": True, "host": "localhost",
            "packages": packages, "state": state})
        assert given["_status"] == read["_status"] == "ok", (given, read)
        assert read["lab"] == given["lab"], state
        assert read["packages"] == info["packages"]
        assert read["changed"] is False
    assert sorted(c["name"] for c in read["lab"]["remove"]["containers"]) == list("abcd")
    compiled = run_module("nslab_topology", {
        "topology": running_lab.spec, "read": True, "host": "localhost"})["lab"]
    view = info["labs"][running_lab.name]
    assert not any(compiled["remove"].values()), compiled["remove"]
    for node in "abcd":
        netns = compiled["nodes"][node]["netns"]
        planned = sorted(i["address"] for i in compiled["nodes"][node]["interfaces"])
        assert planned == sorted(view["netns_addresses"][netns]), (node, compiled)


def test_nslab_topology_refuses_read_with_what_it_would_read(running_lab):
    result = run_module("nslab_topology", {
        "topology": running_lab.spec, "read": True, "host": "localhost",
        "current": {"netns_addresses": {}}})
    assert result["_status"] == "failed"
    assert result["problems"] == ["current: given with read; expected one of them (read "
                                  "reads what the host has of the lab itself)"], result
    assert "current: given with read" in result["msg"]

"""nslab_labview from the command line's side (cli/nslab_cli.py): the reading of a lab that
the inventory plugin, ``./nslab inspect`` and ``./nslab graph`` share, on a real lab."""

import json
import sys

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

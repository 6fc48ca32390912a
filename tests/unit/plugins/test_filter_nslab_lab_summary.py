"""The filter nslab_lab_summary: lab.yml's closing summary, from labs compile_lab plans
(one host; two hosts with a stretched network and a link's tunnel)."""

import sys

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import compile_lab
from helpers.paths import ROOT

sys.path.insert(0, str(ROOT / "plugins" / "filter"))

from nslab_lab_summary import FilterModule, lab_summary  # noqa: E402

ONE_HOST = {"lab": "demo", "defaults": {"jail": {"source": "busybox"}},
            "networks": {"lan": {"subnet": "10.213.1.0/24"}},
            "nodes": {"apt101": {"networks": ["lan"]},
                      "apt102": {"networks": {"lan": "10.213.1.12"}},
                      "solo": {"networks": []}},
            "links": [{"endpoints": ["solo:eth0", "apt101:eth1"], "subnet": "10.213.9.0/30"}]}
WIDE = {"lab": "wide",
        "networks": {"lan": {"subnet": "10.213.2.0/24"}},
        "nodes": {"w1": {"networks": ["lan"], "host": "h1"},
                  "w2": {"networks": ["lan"], "host": "h2"}},
        "links": [{"endpoints": ["w1:eth1", "w2:eth1"], "subnet": "10.213.8.0/30"}]}
FLEET = [{"name": "h1", "underlay": {"address": "192.0.2.11", "mtu": 1500}, "current": {}},
         {"name": "h2", "underlay": {"address": "192.0.2.12", "mtu": 1500}, "current": {}}]


def test_one_host_each_node_with_its_run_state_then_networks_and_links():
    lab = compile_lab(ONE_HOST, host="localhost")
    lines = lab_summary(lab, containers=[{"name": "apt101", "state": "running", "pid": 42},
                                         {"name": "solo", "state": "stopped", "pid": None}],
                        hosts=["localhost"], host="localhost")
    assert lines == [
        "lab demo: nodes 3, networks 1, links 1",
        "apt101  running  pid 42      on localhost  eth0 10.213.1.2/24 (lan), "
        "eth1 10.213.9.2/30 (link to solo:eth0)",
        "apt102  absent               on localhost  eth0 10.213.1.12/24 (lan)",
        "solo    stopped              on localhost  eth0 10.213.9.1/30 (link to apt101:eth1)",
        "network lan: bridge demo-lan 10.213.1.1/24, nodes apt101 apt102",
        "link solo:eth0 10.213.9.1/30 - apt101:eth1 10.213.9.2/30"]


def test_check_mode_says_so():
    lab = compile_lab(ONE_HOST, host="localhost")
    assert lab_summary(lab, check_mode=True)[0] == (
        "lab demo: nodes 3, networks 1, links 1 (check mode: as planned)")


def test_several_hosts_from_the_fleet_view_with_tunnels():
    lab = compile_lab(WIDE, fleet=FLEET, host="h1")
    fleet = {"wide": {"nodes": {"w2": {"state": "running", "pid": 8, "host": "h2"}}}}
    lines = lab_summary(lab, fleet=fleet, hosts=["h1", "h2"], host="h1")
    net, link = lab["networks"]["lan"], lab["links"][0]
    assert lines == [
        "lab wide: nodes 2, networks 1, links 1 over h1, h2",
        "w1  absent               on h1  eth0 10.213.2.2/24 (lan), "
        "eth1 10.213.8.1/30 (link to w2:eth1)",
        "w2  running  pid 8       on h2  eth0 10.213.2.3/24 (lan), "
        "eth1 10.213.8.2/30 (link to w1:eth1)",
        "network lan: bridge wide-lan h1 10.213.2.254/24, h2 10.213.2.253/24, nodes w1 w2, "
        "vni: %s, mtu: %s" % (net["vni"], net["mtu"]),
        "link w1:eth1 10.213.8.1/30 - w2:eth1 10.213.8.2/30 (vni: %s, mtu: %s, hosts h1 - h2)"
        % (link["vni"], link["mtu"])]


def test_a_lab_that_is_not_compiled_is_refused_by_name():
    with pytest.raises(AnsibleFilterError, match="nslab_lab_summary: the lab is not one "
                                                 "nslab_topology compiled"):
        lab_summary({"lab": "x", "nodes": {"a": {}}})
    assert FilterModule().filters() == {"nslab_lab_summary": lab_summary}

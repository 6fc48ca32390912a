"""A lab over two hosts, module by module: two test-made net namespaces play the hosts
(joined by an underlay veth); nslab_info reads each, nslab_topology compiles each host's
share from the same lab-wide input, and the network modules build it in each host. Nodes
on both hosts then reach each other over the stretched network and the tunnelled
point-to-point link. (Containers and jails are left out: the two "hosts" share one
filesystem here; the fleet tests run whole labs on separate hosts.)"""

import json
import os
import subprocess
import sys

import pytest
import yaml

from helpers.ansible_runs import ansible_env
from helpers.kernel import hosts_on_an_underlay, ip_links, sh
from helpers.lab import BUSYBOX_SKIP
from helpers.paths import BIN, ROOT

UNDERLAY = {"h1": "10.251.93.1", "h2": "10.251.93.2"}


@pytest.fixture
def hosts(lab):
    hosts_on_an_underlay(lab, UNDERLAY)
    return lab


def topology(lab):
    return {
        "lab": lab.name,
        "networks": {"lan": {"subnet": "10.251.94.0/24"}},
        "nodes": {"a": {"networks": ["lan"], "host": "h1"},
                  "b": {"networks": ["lan"], "host": "h2"},
                  "c": {"networks": ["lan"]}},
        "links": [{"endpoints": ["a:eth1", "b:eth1"], "subnet": "10.251.95.0/30"}],
    }


def ping(netns, address, size=None):
    extra = ["-M", "do", "-s", str(size)] if size else []
    return sh("ping", "-c", "1", "-W", "2", *extra, address, netns=netns,
              check=False).returncode == 0


def test_a_lab_over_two_hosts_is_one_network(hosts, module):
    lab = hosts
    fleet = []
    for host, address in UNDERLAY.items():
        info = module("nslab_info", dict(lab=lab.name, underlay=address), netns=lab.n(host))
        assert info["underlay"] == {"address": address, "device": lab.n("u" + host[1]),
                                    "mtu": 1500}
        fleet.append(dict(info, item=host))
    shares = dict((host, module("nslab_topology", dict(topology=topology(lab), fleet=fleet,
                                                       host=host))["lab"])
                  for host in UNDERLAY)
    plan = shares["h1"]
    assert dict((n, v["host"]) for n, v in plan["nodes"].items()) == {
        "a": "h1", "b": "h2", "c": "h1"}
    assert plan["networks"]["lan"]["mtu"] == 1450
    assert plan["links"][0]["tunnel"] and plan["links"][0]["mtu"] == 1450
    assert shares["h2"]["networks"] == plan["networks"] and shares["h2"]["hosts"] == plan["hosts"]

    for host, share in shares.items():
        assert module("nslab_namespace", dict(lab=lab.name, namespaces=share["namespaces"]))[
            "changed"]
        for name, items in (("nslab_bridge", "bridges"), ("nslab_veth", "veths"),
                            ("nslab_vxlan", "vxlans")):
            result = module(name, {"lab": lab.name, items: share[items]}, netns=lab.n(host))
            assert result["changed"], result

    address = dict((n, plan["hosts"][n]) for n in "abc")
    assert ping(lab.n("a"), address["b"]) and ping(lab.n("b"), address["c"])
    assert ping(lab.n("a"), "10.251.95.2")                  # the link's own tunnel
    # the stretched MTU reaches the nodes, and a full frame of it crosses unfragmented
    assert ip_links(lab.n("a"))["eth0"]["mtu"] == 1450
    assert ping(lab.n("c"), address["b"], size=1450 - 28)
    # each host's bridge has an address of its own on the one segment
    bridges = plan["networks"]["lan"]["bridge_addresses"]
    assert bridges == {"h1": "10.251.94.254/24", "h2": "10.251.94.253/24"}
    assert ping(lab.n("h1"), address["b"]) and ping(lab.n("h2"), "10.251.94.254")

    for host, share in shares.items():
        assert module("nslab_vxlan", {"lab": lab.name, "vxlans": share["vxlans"]},
                      netns=lab.n(host))["changed"] is False
    views = [dict(module("nslab_info", dict(lab=lab.name), netns=lab.n(h)), item=h)
             for h in UNDERLAY]
    merged = module("nslab_info", dict(lab=lab.name, fleet=views))["fleet"][lab.name]
    vni = plan["networks"]["lan"]["vni"]
    assert [(v["name"], v["vni"], v["peers"]) for v in merged["hosts"]["h2"]["vxlans"]
            if v["netns"] is None] == [("%s-lan-vx" % lab.name, vni, [UNDERLAY["h1"]])]
    assert [b["addresses"] for b in merged["hosts"]["h1"]["bridges"]] == [["10.251.94.254/24"]]

    # removed on each host: the tunnels go, and the nodes no longer reach across
    for host, share in shares.items():
        module("nslab_vxlan", {"lab": lab.name, "vxlans": share["vxlans"], "state": "absent"},
               netns=lab.n(host))
    assert not ping(lab.n("a"), address["b"])
    assert "eth1" not in ip_links(lab.n("a"))


def lab_yml(tmp_path, lab, *args):
    """lab.yml over hosts h1 and h2 (the fixture's namespaces): each is a local connection
    whose Python runs inside its namespace, with nslab_underlay its underlay address."""
    hosts = {}
    for host, address in UNDERLAY.items():
        wrapper = tmp_path / ("python-" + host)
        wrapper.write_text('#!/bin/sh\nexec nsenter --net=/run/netns/%s %s "$@"\n' % (
            lab.n(host), sys.executable))
        wrapper.chmod(0o755)
        hosts[host] = {"ansible_connection": "local", "nslab_underlay": address,
                       "ansible_python_interpreter": str(wrapper)}
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    spec = dict(topology(lab), defaults={"jail": {"source": "busybox"}})
    (tmp_path / "lab.yml").write_text(yaml.safe_dump(spec))
    # One fork: the two "hosts" share one filesystem, so they must not build the lab's
    # jail base at the same time (real hosts each have their own).
    argv = [str(BIN / "ansible-playbook"), "-f", "1", "-i", str(inventory),
            str(ROOT / "lab.yml"), "-e", "lab=%s" % (tmp_path / "lab.yml")] + list(args)
    return subprocess.run(argv, cwd=ROOT, env=dict(ansible_env(),
                                                   ANSIBLE_STDOUT_CALLBACK="default"),
                          capture_output=True, text=True)


def inside(lab, node, *argv):
    with open("/run/nslab/%s/containers/%s.json" % (lab.name, node)) as handle:
        pid = json.load(handle)["pid"]
    return sh("nsenter", "--target", str(pid), "--all", *argv, check=False)


@BUSYBOX_SKIP
def test_lab_yml_spreads_a_lab_over_two_hosts_and_removes_it_from_both(hosts, tmp_path):
    lab = hosts
    checked = lab_yml(tmp_path, lab, "--check")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert not os.path.exists("/run/netns/%s-a" % lab.name)

    built = lab_yml(tmp_path, lab)
    assert built.returncode == 0, built.stdout[-3000:]
    # a and c on h1, b on h2: by name over the stretched lan, and over the link's tunnel
    assert lab.n("a") + "-0" in ip_links(lab.n("h1")) and lab.n("b") + "-0" in ip_links(
        lab.n("h2"))
    assert inside(lab, "a", "ping", "-c", "1", "-W", "2", "b").returncode == 0
    assert inside(lab, "b", "ping", "-c", "1", "-W", "2", "c").returncode == 0
    assert inside(lab, "a", "ping", "-c", "1", "-W", "2", "10.251.95.2").returncode == 0
    assert "vni: " in built.stdout and "mtu: 1450" in built.stdout

    removed = lab_yml(tmp_path, lab, "-e", "state=absent")
    assert removed.returncode == 0, removed.stdout[-3000:]
    for host in UNDERLAY:
        assert sorted(ip_links(lab.n(host))) == sorted(["lo", lab.n("u" + host[1])])
    # nothing of the lab is left but the two test-made hosts themselves
    hosts_themselves = tuple("/run/netns/" + lab.n(h) for h in UNDERLAY)
    assert [l for l in lab.leftovers() if not l.endswith(hosts_themselves)
            and l not in ("netns " + lab.n(h) for h in UNDERLAY)] == []

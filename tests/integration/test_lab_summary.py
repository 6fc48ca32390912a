"""lab.yml ends every run with a summary of the lab, on a single host too: each node, where
it runs, its state (and pid) and addresses; the networks and links. On a single host it is
made from what the run registered (no extra read of the lab), checked here against the
kernel."""

import json
import re

import yaml

from helpers.ansible_runs import run_playbook
from helpers.kernel import sh

SUMMARY = "The lab, each node where it runs, its state and addresses; networks and links"
LAN, LINK = "10.213.162.0/24", "10.213.163.0/30"     # this test's share of 10.213.160.0/22


def summary(results):
    found = [r for r in results if r["_task"].endswith(SUMMARY)]
    assert len(found) == 1 and found[0]["_status"] == "ok", found
    return found[0]["msg"]


def kernel_addresses(netns):
    links = json.loads(sh("ip", "-j", "addr", "show", netns=netns).stdout)
    return dict((l["ifname"], "%s/%s" % (a["local"], a["prefixlen"])) for l in links
                if l["ifname"] != "lo" for a in l["addr_info"] if a["family"] == "inet")


def init_pid(lab, node):
    with open("/run/nslab/%s/containers/%s.json" % (lab, node)) as handle:
        return json.load(handle)["pid"]


def test_lab_yml_ends_with_a_summary_of_the_lab_on_a_single_host(lab, tmp_path):
    topology = tmp_path / "lab.yml"
    topology.write_text(yaml.safe_dump({
        "lab": lab.name,
        "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "64M", "pids": 64}},
        "networks": {"lan": {"subnet": LAN}},
        "nodes": {"a": {"networks": ["lan"]}, "b": {"networks": ["lan"]},
                  "core": {"networks": []}},
        "links": [{"endpoints": ["a:eth1", "core:eth0"], "subnet": LINK}],
    }))
    for run in ("build", "rerun"):
        results = run_playbook("lab.yml", {"lab": str(topology)}, json_results=True)
        assert not [r for r in results if r["_status"] in ("failed", "unreachable")]
        # Made from the run's own results: the reads done for a lab over several hosts are
        # not (their tasks are not even included).
        assert [r["_status"] for r in results
                if r["_task"].endswith("The lab over its hosts, once built")] == ["skipped"]
        assert not [r for r in results if r["_task"].endswith((
            "Read the lab on this host, once built", "One view of the lab over its hosts"))]
        lines = summary(results)
        assert lines[0] == "lab %s: nodes 3, networks 1, links 1" % lab.name, (run, lines)
        nodes = dict((line.split()[0], line) for line in lines[1:4])
        assert sorted(nodes) == ["a", "b", "core"]
        for node, line in nodes.items():
            fields = re.match(r"^(\S+) +(\S+) +pid (\d+) +on (\S+)  (.*)$", line)
            assert fields, line
            assert fields.group(2) == "running" and fields.group(4) == "localhost"
            assert int(fields.group(3)) == init_pid(lab.name, node)
            kernel = kernel_addresses(lab.n(node))
            shown = dict(re.findall(r"(eth\d) (\S+) \(", fields.group(5)))
            assert shown == kernel, (line, kernel)
        assert "eth0 %s (lan)" % kernel_addresses(lab.n("b"))["eth0"] in nodes["b"]
        assert "(link to core:eth0)" in nodes["a"] and "(link to a:eth1)" in nodes["core"]
        bridge = json.loads(sh("ip", "-j", "addr", "show", "dev", lab.n("lan")).stdout)[0]
        gateway = "%s/%s" % (bridge["addr_info"][0]["local"], bridge["addr_info"][0]["prefixlen"])
        assert lines[4] == "network lan: bridge %s %s, nodes a b" % (lab.n("lan"), gateway)
        assert lines[5] == "link a:eth1 %s - core:eth0 %s" % (
            kernel_addresses(lab.n("a"))["eth1"], kernel_addresses(lab.n("core"))["eth0"])
        assert len(lines) == 6
    assert not [r for r in results if r.get("changed")]          # the rerun changed nothing

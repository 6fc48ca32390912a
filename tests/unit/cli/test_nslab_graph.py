"""``./nslab graph``'s pure parts (cli/nslab_graph.py): view -> DOT text, on the view
nslab_labview read of running_lab (fixtures/graph_view_running_lab.json: a, b, c on lan,
a:eth1-c:eth1, d stopped), on a multi-host view made from what compile_lab plans for
labs/wide.yml's shape, with names that need escaping, and the HTML page around the SVG."""

import copy
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import compile_lab

from helpers.paths import ROOT, UNIT_FIXTURES

sys.path.insert(0, str(ROOT / "cli"))
import nslab_graph  # noqa: E402

CAPTURED = json.loads((UNIT_FIXTURES / "graph_view_running_lab.json").read_text())
LAB, VIEW, WIRES = CAPTURED["lab"], CAPTURED["view"], CAPTURED["wires"]
SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="graphviz's dot is not installed (./nslab graph installs it)")


def statements(dot):
    """{vertex id: attribute text} and [(a, b, attribute text)] of nslab_graph's DOT."""
    vertices = dict(re.findall(r'^\s*("(?:[^"\\]|\\.)*") \[(.*)\];$', dot, re.M))
    edges = re.findall(r'^\s*("(?:[^"\\]|\\.)*") -- ("(?:[^"\\]|\\.)*") \[(.*)\];$', dot, re.M)
    return vertices, edges


def svg_of(dot):
    done = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return ET.fromstring(done.stdout)


def test_the_captured_lab_every_node_the_network_and_each_wire():
    dot = nslab_graph.lab_dot(LAB, VIEW, WIRES)
    vertices, edges = statements(dot)
    assert sorted(v for v in vertices if v.startswith('"node:')) == [
        '"node:a"', '"node:b"', '"node:c"', '"node:d"']
    bridge = '"bridge::%s-lan"' % LAB
    assert 'label="network lan\\nbridge %s-lan\\n10.213.168.1/24"' % LAB in vertices[bridge]
    to_bridge = sorted((b, attrs) for a, b, attrs in edges if a == bridge)
    assert [b for b, _ in to_bridge] == ['"node:a"', '"node:b"', '"node:c"', '"node:d"']
    assert 'label="eth0\\n10.213.168.2/24"' in to_bridge[0][1]
    [link] = [(a, b, attrs) for a, b, attrs in edges if a.startswith('"node:')]
    assert link[:2] == ('"node:a"', '"node:c"')
    assert 'taillabel="eth1\\n10.213.169.253/30"' in link[2]
    assert 'headlabel="eth1\\n10.213.169.254/30"' in link[2]
    assert "cluster" not in dot                  # one host: no clusters


def test_a_stopped_node_is_drawn_grey_dashed_and_says_so():
    vertices, _ = statements(nslab_graph.lab_dot(LAB, VIEW, WIRES))
    assert 'style="rounded,dashed"' in vertices['"node:d"']
    assert 'label="d\\nstopped"' in vertices['"node:d"']
    assert 'style="rounded,filled"' in vertices['"node:a"']
    assert 'label="a\\nrunning"' in vertices['"node:a"']


@needs_dot
def test_graphviz_draws_it_with_every_name_as_text():
    root = svg_of(nslab_graph.lab_dot(LAB, VIEW, WIRES))
    texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
    for name in ("a", "b", "c", "d", "stopped", "network lan", "bridge %s-lan" % LAB,
                 "10.213.169.253/30", "10.213.169.254/30"):
        assert name in texts, (name, texts)


@pytest.mark.parametrize("text,quoted", [
    ('plain', '"plain"'),
    ('say "hi"', '"say \\"hi\\""'),
    ('back\\slash', '"back\\\\slash"'),
    ('two\nlines', '"two\\nlines"'),
    ('ends in \\', '"ends in \\\\"'),
    ('&lt;', '"&amp;lt;"'),
])
def test_quote(text, quoted):
    assert nslab_graph.quote(text) == quoted


@needs_dot
def test_names_that_need_escaping_reach_the_picture_as_written():
    """Quotes, backslashes, braces and markup in names (a view is read from files root
    writes, but the picture must not break on, nor be steered by, what it draws)."""
    view = copy.deepcopy(VIEW)
    odd = ['x"];evil[label="y', "back\\slash", "<b>&amp;</b>", "{}--;"]
    for node, name in zip(view["containers"], odd):
        node["name"] = name
    dot = nslab_graph.lab_dot('lab"\\', view, WIRES)
    root = svg_of(dot)
    texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
    for name in odd:
        assert name in texts, (name, texts)
    assert "evil" not in [g.find(SVG + "title").text for g in root.iter(SVG + "g")
                          if g.get("class") == "node"]
    assert 'nslab lab lab"\\' in texts


def test_network_names_only_when_sure():
    assert nslab_graph.network_name("demo", "demo-lan", None) == "lan"
    assert nslab_graph.network_name("demo", "other-lan", None) is None
    # A shortened name (head + hash) is not taken for a network called by the hash.
    assert nslab_graph.network_name("abcdefgh", "abcdefgh-3f2a1b", None) is None
    record = {"networks": {"a-very-long-network": {}}}
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import bridge_name
    long_bridge = bridge_name("abcdefgh", "a-very-long-network")
    assert nslab_graph.network_name("abcdefgh", long_bridge, record) == "a-very-long-network"


WIDE = {
    "lab": "wide",
    "networks": {"lan": {"subnet": "10.213.2.0/24"}, "dmz": {"subnet": "10.213.3.0/24"}},
    "nodes": {"w1": {"networks": ["lan"], "host": "h1"}, "w2": {"networks": ["lan"], "host": "h2"},
              "w3": {"networks": ["lan", "dmz"], "host": "h1"},
              "w5": {"networks": ["dmz"], "host": "h2"}},
    "links": [{"endpoints": ["w1:eth1", "w2:eth1"], "subnet": "10.213.8.0/30"}],
}
FLEET = [{"name": "h1", "underlay": {"address": "192.0.2.11", "mtu": 1500}, "current": {}},
         {"name": "h2", "underlay": {"address": "192.0.2.12", "mtu": 1500}, "current": {}}]


def view_of_share(share):
    """What nslab_labview reads on a host once ``share`` (compile_lab's) is built, and the
    veth pairs lab_wires finds there."""
    containers = [{"name": c["name"], "state": "running", "netns": c["netns"], "pid": 100 + i}
                  for i, c in enumerate(share["containers"])]
    veths, wires = [], []
    for veth in share["veths"]:
        peer = veth["peer"]
        veths.append({"name": veth["name"], "netns": veth.get("netns"),
                      "master": veth.get("bridge"), "addresses": veth.get("addresses", [])})
        veths.append({"name": peer["name"], "netns": peer["netns"], "master": None,
                      "addresses": peer.get("addresses", [])})
        wires.append([{"netns": veth.get("netns"), "name": veth["name"]},
                      {"netns": peer["netns"], "name": peer["name"]}])
    vxlans = [{"name": v["name"], "netns": v.get("netns"), "master": v.get("bridge"),
               "vni": v["vni"], "mtu": v["mtu"], "local": v["local"], "peers": v["peers"],
               "addresses": v.get("addresses", [])} for v in share["vxlans"]]
    bridges = [{"name": b["name"], "addresses": b["addresses"], "ports": []}
               for b in share["bridges"]]
    return {"containers": containers, "bridges": bridges, "veths": veths, "vxlans": vxlans,
            "record": share["record"], "namespaces": share["namespaces"]}, wires


def test_a_lab_over_two_hosts_clusters_planned_nodes_and_tunnels():
    share = compile_lab(WIDE, fleet=FLEET, host="h1")
    view, wires = view_of_share(share)
    here = nslab_graph.this_host(view["record"], view)
    assert here == "h1"
    dot = nslab_graph.lab_dot("wide", view, wires, here)
    vertices, edges = statements(dot)
    assert 'subgraph "cluster_h1"' in dot and 'subgraph "cluster_h2"' in dot
    assert 'label="host h1 (this host)\\nunderlay 192.0.2.11, MTU 1500"' in dot
    cluster_h2 = dot[dot.index('subgraph "cluster_h2"'):]
    cluster_h2 = cluster_h2[:cluster_h2.index("\n  }")]
    for remote in ("w2", "w5"):
        assert '"node:%s"' % remote in cluster_h2
        assert "as planned, not read from here" in vertices['"node:%s"' % remote]
    assert 'label="w1\\nrunning"' in vertices['"node:w1"']
    nets = share["networks"]
    mtu = nets["lan"]["mtu"]
    for net in ("lan", "dmz"):
        tunnel = [attrs for a, b, attrs in edges
                  if a == '"bridge:h1:wide-%s"' % net and b == '"bridge:h2:wide-%s"' % net]
        assert tunnel == [tunnel[0]]
        assert 'label="VXLAN VNI %d\\nMTU %d"' % (nets[net]["vni"], mtu) in tunnel[0]
    [cross] = [attrs for a, b, attrs in edges if (a, b) == ('"node:w1"', '"node:w2"')]
    link = share["links"][0]
    assert 'label="VXLAN VNI %d\\nMTU %d"' % (link["vni"], link["mtu"]) in cross
    assert 'taillabel="eth1\\n10.213.8.1/30"' in cross
    # Remote nodes reach their host's bridge with the planned address.
    w2 = [attrs for a, b, attrs in edges if (a, b) == ('"node:w2"', '"bridge:h2:wide-lan"')]
    assert w2 and share["record"]["nodes"]["w2"]["addresses"]["lan"] in w2[0]


@needs_dot
def test_graphviz_lays_out_the_clusters():
    share = compile_lab(WIDE, fleet=FLEET, host="h1")
    view, wires = view_of_share(share)
    root = svg_of(nslab_graph.lab_dot("wide", view, wires, "h1"))
    clusters = [g.find(SVG + "title").text for g in root.iter(SVG + "g")
                if g.get("class") == "cluster"]
    assert sorted(clusters) == ["cluster_h1", "cluster_h2"]


def test_this_host_by_the_underlay_address():
    record = {"hosts": {"h1": {"address": "192.0.2.11"}, "h2": {"address": "192.0.2.12"}}}
    assert nslab_graph.this_host(record, {"vxlans": []}, ["10.0.0.1", "192.0.2.12"]) == "h2"
    assert nslab_graph.this_host(record, {"vxlans": []}, ["10.0.0.1"]) is None
    assert nslab_graph.this_host(None, {"vxlans": []}) is None


SAMPLE_SVG = ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
              '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n'
              ' "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
              '<svg width="8pt" height="8pt" xmlns="http://www.w3.org/2000/svg" '
              'xmlns:xlink="http://www.w3.org/1999/xlink"><text>a</text></svg>\n')


def test_the_html_page_has_no_url_and_names_every_node():
    page = nslab_graph.html_page(LAB, VIEW, SAMPLE_SVG)
    assert not re.search(r"https?:|//[a-z]|\b(src|href)\s*=|url\(|@import", page, re.I)
    assert '<svg width="8pt" height="8pt"><text>a</text></svg>' in page
    for node in ("a", "b", "c", "d"):
        assert "<td>%s</td>" % node in page
    assert '<tr class="stopped"><td>d</td>' in page
    assert "<title>nslab lab %s</title>" % LAB in page


def test_the_html_page_escapes_names():
    view = copy.deepcopy(VIEW)
    view["containers"][0]["name"] = "<script>x</script>"
    page = nslab_graph.html_page("lab<i>", view, SAMPLE_SVG)
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<i>" not in page

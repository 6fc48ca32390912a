"""``./nslab graph`` on a real lab (``running_lab``: a, b, c on lan, the link a:eth1-c:eth1,
d stopped): the SVG graphviz draws, the self-contained HTML page as headless Chromium renders
it, the veth pairs as the kernel pairs them, and a lab that does not exist."""

import ipaddress
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser

import pytest

from helpers.kernel import sh
from helpers.lab import RUNNING_LAB_LINK
from helpers.paths import ROOT

sys.path.insert(0, str(ROOT / "cli"))
import nslab_cli  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
NODES = ("a", "b", "c", "d")


def graph(*args):
    return subprocess.run([str(ROOT / "nslab"), "graph"] + list(args), capture_output=True,
                          text=True, timeout=120, check=False)


def svg_texts(root):
    return ["".join(t.itertext()) for t in root.iter(SVG + "text")]


def svg_vertex(root, ident):
    """The <g class="node"> graphviz draws for the DOT vertex ``ident``."""
    for group in root.iter(SVG + "g"):
        title = group.find(SVG + "title")
        if group.get("class") == "node" and title is not None and title.text == ident:
            return group
    raise AssertionError("no vertex %s in the SVG" % ident)


def steady(view):
    """What must not change when a lab is only looked at."""
    return json.dumps({"containers": [(c["name"], c["state"], c.get("pid"), c["addresses"])
                                      for c in view["containers"]],
                       "bridges": view["bridges"], "veths": view["veths"],
                       "namespaces": view["namespaces"]}, sort_keys=True)


def test_the_kernels_veth_pairs(running_lab):
    nslab_cli.use_module_utils()
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_labview import lab_wires
    view = nslab_cli.read_labs(running_lab.name)[running_lab.name]
    wires = lab_wires(running_lab.name, nslab_cli.local_runner(), view)
    name = running_lab.name
    netns = dict((c["name"], c["netns"]) for c in view["containers"])
    bridge_ports = set(view["bridges"][0]["ports"])
    to_bridge = sorted(w[1]["netns"] for w in wires
                       if w[0]["netns"] is None and w[0]["name"] in bridge_ports)
    assert to_bridge == sorted(netns[n] for n in NODES)
    for host_end, node_end in (w for w in wires if w[0]["netns"] is None):
        assert node_end["name"] == "eth0"
        outside = json.loads(sh("ip", "-j", "link", "show", host_end["name"]).stdout)[0]
        inside = json.loads(sh("ip", "-j", "link", "show", "eth0",
                               netns=node_end["netns"]).stdout)[0]
        assert (outside["link_index"], inside["link_index"]) == (inside["ifindex"],
                                                                 outside["ifindex"])
    point_to_point = [w for w in wires if w[0]["netns"] and w[1]["netns"]]
    assert point_to_point == [[{"netns": "%s-a" % name, "name": "eth1"},
                               {"netns": "%s-c" % name, "name": "eth1"}]]


def test_the_svg_names_every_node_and_the_network_and_draws_d_stopped(running_lab, tmp_path):
    before = steady(nslab_cli.read_labs(running_lab.name)[running_lab.name])
    out = tmp_path / "lab.svg"
    done = graph(running_lab.name, "-o", str(out))
    assert done.returncode == 0, done.stderr
    root = ET.parse(str(out)).getroot()          # well-formed XML, or this raises
    assert root.tag == SVG + "svg"
    texts = svg_texts(root)
    for node in NODES:
        assert node in texts, (node, texts)
    assert "bridge %s" % running_lab.n("lan") in texts
    assert "network lan" in texts
    link = ipaddress.ip_network(RUNNING_LAB_LINK)
    ends = ["%s/%d" % (a, link.prefixlen) for a in list(link.hosts())[:2]]
    assert ends[0] in texts and ends[1] in texts            # both ends of a:eth1-c:eth1
    stopped = svg_vertex(root, "node:d")
    assert "stopped" in svg_texts(stopped)
    assert any(shape.get("stroke-dasharray") for shape in stopped.iter()
               if shape.tag in (SVG + "path", SVG + "polygon"))
    running = svg_vertex(root, "node:a")
    assert "running" in svg_texts(running)
    assert not any(shape.get("stroke-dasharray") for shape in running.iter())
    # Standard output without -o, the same picture; and nothing in the lab changed.
    plain = graph(running_lab.name)
    assert plain.returncode == 0 and ET.fromstring(plain.stdout).tag == SVG + "svg"
    assert steady(nslab_cli.read_labs(running_lab.name)[running_lab.name]) == before


def test_the_dot_text(running_lab, tmp_path):
    out = tmp_path / "lab.dot"
    assert graph(running_lab.name, "-o", str(out)).returncode == 0
    text = out.read_text()
    assert text.startswith('graph "nslab %s" {' % running_lab.name)
    assert '"node:a" -- "node:c"' in text


def png_pixels(data):
    """(width, height, rows of pixel tuples) of an 8-bit, non-interlaced RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    step = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(idat), width * step, [], bytearray(width * step)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc
                                      else corner)) & 0xFF
        rows.append([tuple(line[x:x + step]) for x in range(0, stride, step)])
        previous = line
    return width, height, rows


def chromium(tmp_path, *args):
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed (Debian package chromium; ./nslab test installs it)")
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu",
                           "--user-data-dir=%s" % (tmp_path / "chromium-profile")] + list(args),
                          capture_output=True, text=True, timeout=180, check=False)


class TextOf(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.hidden = [], 0

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in ("style", "script", "title")

    def handle_endtag(self, tag):
        self.hidden -= tag in ("style", "script", "title")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def visible_text(document):
    parser = TextOf()
    parser.feed(document)
    return " ".join(parser.parts)


def test_the_html_page_renders_offline_in_chromium(running_lab, tmp_path):
    page = tmp_path / "lab.html"
    done = graph(running_lab.name, "-o", str(page))
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    # Self-contained: no URL of any kind, so nothing is fetched and it reads offline.
    assert not re.search(r"https?:|//[a-z]|\b(src|href)\s*=|url\(|@import", text, re.I), \
        re.findall(r".{40}(?:https?:|//[a-z]|src=|href=|url\().{40}", text, re.I)
    shot = tmp_path / "lab.png"
    rendered = chromium(tmp_path, "--screenshot=%s" % shot, "--window-size=1200,1000",
                        page.as_uri())
    assert shot.exists(), rendered.stderr[-2000:]
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 1000)
    colours = set(pixel[:3] for row in rows for pixel in row)
    assert len(colours) > 50, len(colours)                  # text, boxes, fills: not blank
    # Drawn, not only written: the picture's fill colours are on the screen.
    assert (0xdb, 0xea, 0xfe) in colours and (0xfe, 0xf3, 0xc7) in colours
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page_text = " ".join(visible_text(dom.stdout[dom.stdout.index("<html"):]).split())
    for node in NODES:
        assert re.search(r"\b%s\b" % node, page_text)
    assert "nslab lab %s" % running_lab.name in page_text
    assert "stopped" in page_text and running_lab.n("lan") in page_text


def test_a_missing_lab_or_a_bad_name_is_one_line(running_lab):
    missing = graph("nosuchlab")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == "nslab graph: no lab 'nosuchlab' on this host\n"
    bad = graph("../etc")
    assert bad.returncode == 2 and "lab name '../etc' is invalid" in bad.stderr
    assert graph().returncode == 2
    assert graph(running_lab.name, "-o", "x.png").returncode == 2
    assert not os.path.exists("x.png")

#!/usr/bin/env python3
"""``./nslab graph LAB [-o FILE]``: a picture of a running lab, drawn by graphviz.

Built from what runs, read through nslab's one reader (module_utils/nslab_labview.py, the
code nslab_info returns): the lab's nodes with their state (a stopped node is drawn grey and
dashed), its networks (bridges, with the host's address), the veth pairs as the kernel pairs
them (``lab_wires``), each interface's name and addresses, and the point-to-point links. For
a lab over several hosts, the lab-wide plan each host keeps (``record``) adds every host as a
cluster, the nodes placed on the other hosts (as planned: they are not read from here) and
the VXLAN tunnels with their VNI and MTU. The topology file is not needed; nothing changes.

:func:`lab_dot` is a pure function, view -> DOT text (tests/unit/cli/test_nslab_graph.py); graphviz's
``dot`` lays it out. The output follows the file's extension: ``.svg``, ``.dot``, or ``.html``
(a self-contained page: the SVG inline, a title, a table of nodes and addresses, no external
resource of any kind). Without ``-o`` the SVG goes to standard output.
"""

import datetime
import html
import os
import re
import subprocess
import sys

import nslab_cli

USAGE = "usage: ./nslab graph LAB [-o FILE.svg|FILE.html|FILE.dot]\n"
FORMATS = (".svg", ".html", ".dot")

RUNNING = {"style": "rounded,filled", "fillcolor": "#dbeafe", "color": "#1e40af"}
STOPPED = {"style": "rounded,dashed", "color": "#9ca3af", "fontcolor": "#6b7280"}
ELSEWHERE = {"style": "rounded,dotted", "color": "#4b5563"}
NETWORK = {"shape": "box", "style": "filled", "fillcolor": "#fef3c7", "color": "#b45309"}
TUNNEL = {"style": "dashed", "color": "#7c3aed", "fontcolor": "#7c3aed", "fontsize": "10"}
LINK = {"color": "#c2410c", "penwidth": "2"}


def quote(text):
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as ``\\n``
    (centred lines in a label), and ``&`` as ``&amp;`` (graphviz decodes HTML entities in
    strings: ``&amp;`` in a name would otherwise be drawn as ``&``)."""
    text = str(text).replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"')
    return '"%s"' % text.replace("\r", "").replace("\n", "\\n")


def attributes(attrs):
    return ", ".join("%s=%s" % (k, quote(v)) for k, v in sorted(attrs.items()))


def lines(*parts):
    return "\n".join(p for p in parts if p)


def network_name(lab, bridge, record):
    """The topology's name of a network, from its bridge's name (``<lab>-<net>``, or the
    name the plan record maps), or None when the bridge name is a shortened hash."""
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import bridge_name
    for net in sorted(((record or {}).get("networks") or {})):
        if bridge_name(lab, net) == bridge:
            return net
    prefix = lab + "-"
    if bridge.startswith(prefix):
        candidate = bridge[len(prefix):]
        # A 15-byte name ending in -xxxxxx may be a shortened one: say only what is sure.
        if candidate and bridge_name(lab, candidate) == bridge and not (
                len(bridge) == 15 and re.search(r"-[0-9a-f]{6}$", bridge)):
            return candidate
    return None


def this_host(record, view, host_addresses=()):
    """This host's name in a multi-host lab's plan record: the one whose underlay address
    is the ``local`` of this host's VXLAN devices, or one of this host's addresses."""
    mine = set(v.get("local") for v in view.get("vxlans") or []) | set(host_addresses)
    for name, host in sorted(((record or {}).get("hosts") or {}).items()):
        if host.get("address") in mine:
            return name
    return None


class Graph:
    """DOT statements collected per cluster (None: outside any cluster)."""

    def __init__(self):
        self.vertices = {}      # cluster -> [statement]
        self.edges = []

    def vertex(self, cluster, ident, attrs):
        self.vertices.setdefault(cluster, []).append("%s [%s];" % (quote(ident), attributes(attrs)))

    def edge(self, a, b, attrs):
        self.edges.append("%s -- %s [%s];" % (quote(a), quote(b), attributes(attrs)))


def interface_label(name, addresses):
    return lines(name, *sorted(addresses or []))


def lab_dot(lab, view, wires, here=None):
    """DOT text of ``view`` (a lab as nslab_labview reads it), with ``wires``
    (``lab_wires``) and ``here``, this host's name in the lab's plan record (multi-host)."""
    record = view.get("record") or {}
    multi = bool(record.get("hosts"))
    here_cluster = here if multi else None
    graph = Graph()
    containers = dict((c["name"], c) for c in view.get("containers") or [])
    by_netns = dict((c.get("netns"), name) for name, c in containers.items() if c.get("netns"))
    interfaces = dict(((i.get("netns"), i["name"]), i)
                      for i in (view.get("veths") or []) + (view.get("vxlans") or []))
    bridges = dict((b["name"], b) for b in view.get("bridges") or [])

    for name, node in sorted(containers.items()):
        state = node.get("state", "unknown")
        attrs = dict(RUNNING if state == "running" else STOPPED, shape="box",
                     label=lines(name, state),
                     tooltip="node %s: %s" % (name, state))
        graph.vertex(here_cluster, "node:" + name, attrs)

    def bridge_id(host, bridge):
        return "bridge:%s:%s" % (host or "", bridge)

    for name, bridge in sorted(bridges.items()):
        net = network_name(lab, name, record)
        label = lines(net and "network %s" % net, "bridge %s" % name,
                      *sorted(bridge.get("addresses") or []))
        graph.vertex(here_cluster, bridge_id(here_cluster, name), dict(NETWORK, label=label))

    def end_of(end):
        """(vertex, label) for one end of a wire."""
        item = interfaces.get((end["netns"], end["name"])) or {}
        if end["netns"] in by_netns:
            return "node:" + by_netns[end["netns"]], interface_label(end["name"],
                                                                      item.get("addresses"))
        if end["netns"] is None and item.get("master") in bridges:
            return bridge_id(here_cluster, item["master"]), None
        ident = "iface:%s:%s" % (end["netns"] or "", end["name"])
        graph.vertex(here_cluster, ident, {"shape": "plain", "label": end["name"]})
        return ident, None

    for a, b in wires:
        (va, la), (vb, lb) = end_of(a), end_of(b)
        if la and lb:           # node to node: a point-to-point link
            graph.edge(va, vb, dict(LINK, taillabel=la, headlabel=lb, fontsize="10",
                                    tooltip="link %s:%s - %s:%s" % (
                                        va[5:], a["name"], vb[5:], b["name"])))
        else:
            graph.edge(va, vb, {"label": la or lb or "", "fontsize": "10"})

    if multi:
        add_hosts(graph, lab, view, record, here, containers, bridges, interfaces)

    out = ["graph %s {" % quote("nslab " + lab),
           "  graph [%s];" % attributes({
               "label": "nslab lab %s" % lab, "labelloc": "t", "fontsize": "18",
               "fontname": "Helvetica", "rankdir": "LR", "nodesep": "0.5", "ranksep": "1.2"}),
           "  node [fontname=\"Helvetica\", fontsize=\"11\"];",
           "  edge [fontname=\"Helvetica\"];"]
    for cluster in sorted(graph.vertices, key=lambda c: (c is not None, c or "")):
        if cluster is None:
            out += ["  " + s for s in graph.vertices[cluster]]
            continue
        host = record["hosts"].get(cluster) or {}
        label = lines("host %s%s" % (cluster, " (this host)" if cluster == here else ""),
                      host.get("address") and "underlay %s%s" % (
                          host["address"], host.get("mtu") and ", MTU %s" % host["mtu"] or ""))
        out += ["  subgraph %s {" % quote("cluster_" + cluster),
                "    graph [%s];" % attributes({"label": label, "style": "rounded",
                                                "color": "#6b7280"})]
        out += ["    " + s for s in graph.vertices[cluster]]
        out.append("  }")
    out += ["  " + s for s in graph.edges]
    out.append("}")
    return "\n".join(out) + "\n"


def add_hosts(graph, lab, view, record, here, containers, bridges, interfaces):
    """A multi-host lab: the other hosts' nodes and bridges as planned, and the tunnels."""
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import bridge_name
    networks = record.get("networks") or {}
    mtus = dict((v.get("master"), v.get("mtu")) for v in view.get("vxlans") or []
                if v.get("netns") is None)
    for name, node in sorted((record.get("nodes") or {}).items()):
        host = node.get("host")
        if host == here or name in containers:
            continue
        graph.vertex(host, "node:" + name, dict(ELSEWHERE, shape="box", label=lines(
            name, "on %s (as planned, not read from here)" % host)))
        for net, address in sorted((node.get("addresses") or {}).items()):
            graph.edge("node:" + name, "bridge:%s:%s" % (host, bridge_name(lab, net)),
                       {"label": address or "", "fontsize": "10"})
    for net, spec in sorted(networks.items()):
        bridge = bridge_name(lab, net)
        hosts = sorted((spec.get("bridge_addresses") or {}))
        for host in hosts:
            if host == here and bridge in bridges:
                continue
            graph.vertex(host, "bridge:%s:%s" % (host, bridge), dict(NETWORK, label=lines(
                "network %s" % net, "bridge %s" % bridge, spec["bridge_addresses"][host])))
        mtu = mtus.get(bridge)
        for i, a in enumerate(hosts):
            for b in hosts[i + 1:]:
                graph.edge("bridge:%s:%s" % (a, bridge), "bridge:%s:%s" % (b, bridge), dict(
                    TUNNEL, label=lines("VXLAN VNI %s" % spec.get("vni"),
                                        mtu and "MTU %s" % mtu)))
    nodes = record.get("nodes") or {}
    for link in record.get("links") or []:
        ends = [e.split(":", 1) for e in link.get("endpoints") or []]
        if len(ends) != 2 or link.get("vni") is None:
            continue            # a link within one host: drawn from its veth pair
        labels, mtu = [], None
        for node, ifname in ends:
            netns = (containers.get(node) or {}).get("netns")
            item = interfaces.get((netns, ifname)) if netns else None
            labels.append(interface_label(ifname, (item or {}).get("addresses")))
            mtu = mtu or (item or {}).get("mtu")
        if not all(n in nodes or n in containers for n, _ in ends):
            continue
        graph.edge("node:" + ends[0][0], "node:" + ends[1][0], dict(
            TUNNEL, penwidth="2", taillabel=labels[0], headlabel=labels[1],
            label=lines("VXLAN VNI %s" % link["vni"], mtu and "MTU %s" % mtu)))


def render_svg(dot_text):
    """graphviz's SVG of ``dot_text``; raises RuntimeError with dot's message."""
    try:
        done = subprocess.run(["dot", "-Tsvg"], input=dot_text.encode(), capture_output=True,
                              env=dict(os.environ, LC_ALL="C"), check=False)
    except FileNotFoundError:
        raise RuntimeError("graphviz's 'dot' is not installed (Debian package graphviz; "
                           "'./nslab graph' installs it)")
    if done.returncode != 0:
        raise RuntimeError("dot failed: %s" % done.stderr.decode(errors="replace").strip())
    return done.stdout.decode()


def inline_svg(svg):
    """The SVG as an element of an HTML page: no XML declaration, DOCTYPE (it names a DTD
    by URL) or namespace URLs, which HTML does not need for inline SVG."""
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    return re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)


def html_page(lab, view, svg, here=None):
    """A self-contained page: the title, the SVG inline, tables of nodes and networks."""
    e = html.escape
    record = view.get("record") or {}
    planned = dict((name, n.get("host")) for name, n in (record.get("nodes") or {}).items())
    rows = []
    for node in sorted(view.get("containers") or [], key=lambda c: c["name"]):
        ifaces = sorted([i for i in (view.get("veths") or []) + (view.get("vxlans") or [])
                         if i.get("netns") == node.get("netns") and node.get("netns")],
                        key=lambda i: i["name"])
        addresses = "<br>".join("%s %s" % (e(i["name"]), e(", ".join(i.get("addresses") or [])))
                                for i in ifaces)
        rows.append("<tr class=\"%s\"><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                    "</tr>" % (e(node.get("state", "")), e(node["name"]), e(here or "this host"),
                               e(node.get("state", "")), e(str(node.get("pid") or "")), addresses))
    for name, host in sorted(planned.items()):
        if any(c["name"] == name for c in view.get("containers") or []):
            continue
        addresses = "<br>".join("%s %s" % (e(net), e(a)) for net, a in sorted(
            (record["nodes"][name].get("addresses") or {}).items()))
        rows.append("<tr class=\"elsewhere\"><td>%s</td><td>%s</td><td>not read from here</td>"
                    "<td></td><td>%s</td></tr>" % (e(name), e(host or ""), addresses))
    nets = []
    for bridge in view.get("bridges") or []:
        net = network_name(lab, bridge["name"], record)
        nets.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
            e(net or ""), e(bridge["name"]), e(", ".join(bridge.get("addresses") or [])),
            e(", ".join(bridge.get("ports") or []))))
    taken = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>nslab lab %(lab)s</title>
<style>
body { font-family: Helvetica, Arial, sans-serif; margin: 1.5em; color: #111827; }
.picture svg { max-width: 100%%; height: auto; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #d1d5db; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #f3f4f6; }
tr.stopped td { color: #6b7280; font-style: italic; }
tr.elsewhere td { color: #4b5563; }
.legend span { display: inline-block; padding: 0.1em 0.6em; margin-right: 0.8em; }
</style>
</head>
<body>
<h1>nslab lab %(lab)s</h1>
<p>Read from the running lab on %(taken)s.</p>
<p class="legend"><span style="background:#dbeafe;border:1px solid #1e40af">node running</span>
<span style="border:1px dashed #9ca3af;color:#6b7280">node stopped</span>
<span style="background:#fef3c7;border:1px solid #b45309">network (bridge)</span>
<span style="border-bottom:2px solid #c2410c">point-to-point link</span>
<span style="border-bottom:1px dashed #7c3aed;color:#7c3aed">VXLAN tunnel</span></p>
<div class="picture">
%(svg)s
</div>
<h2>Nodes</h2>
<table>
<tr><th>node</th><th>host</th><th>state</th><th>pid</th><th>interfaces and addresses</th></tr>
%(rows)s
</table>
<h2>Networks</h2>
<table>
<tr><th>network</th><th>bridge</th><th>host address</th><th>ports</th></tr>
%(nets)s
</table>
</body>
</html>
""" % {"lab": e(lab), "taken": e(taken), "svg": inline_svg(svg), "rows": "\n".join(rows),
       "nets": "\n".join(nets)}


def fail(message, rc=1):
    sys.stderr.write("nslab graph: %s\n" % message)
    return rc


def main(args):
    output = None
    if len(args) == 3 and args[1] in ("-o", "--output"):
        output = args[2]
    elif len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("nslab graph: name one lab\n" + USAGE)
        return 2
    lab = args[0]
    if output is not None and not output.endswith(FORMATS):
        sys.stderr.write("nslab graph: -o %s: expected a file name ending in %s\n%s" % (
            output, ", ".join(FORMATS), USAGE))
        return 2
    nslab_cli.use_module_utils()
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_labview import (
        lab_wires, labs_on_host, read_labs)
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import lab_problem
    problem = lab_problem("LAB", lab)
    if problem:
        sys.stderr.write("nslab graph: %s\n%s" % (problem, USAGE))
        return 2
    if os.geteuid() != 0:
        return fail("reading a lab needs root (its namespaces and records)")
    runner = nslab_cli.local_runner()
    try:
        if lab not in labs_on_host(runner.read_links()):
            return fail("no lab '%s' on this host" % lab)
        labs, host_links = read_labs(runner, lab)
        view = labs[lab]
        wires = lab_wires(lab, runner, view)
        here = this_host(view.get("record"), view, [
            a.split("/")[0] for link in host_links.values() for a in link.addresses])
        dot_text = lab_dot(lab, view, wires, here)
        if output and output.endswith(".dot"):
            text = dot_text
        else:
            text = render_svg(dot_text)
            if output and output.endswith(".html"):
                text = html_page(lab, view, text, here)
    except RuntimeError as error:
        return fail(str(error))
    except Exception as error:      # noqa: BLE001 - one line, never a traceback
        return fail("could not read lab '%s': %s" % (lab, error))
    if output is None:
        sys.stdout.write(text)
        return 0
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(text)
    sys.stderr.write("nslab graph: wrote %s\n" % output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

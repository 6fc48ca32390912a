# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter nslab_lab_summary (documented in nslab_lab_summary.yml): lab.yml's closing
summary of a lab, one line per node, network and link. It was a Jinja template in the
nslab_lab role; at 500 nodes that template took most of a second of every run (issue #12)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def _line_of_node(name, node, now, width, host, members, ends, links):
    interfaces = []
    for iface in node.get("interfaces", []):
        if "network" in iface:
            members.setdefault(iface["network"], []).append(name)
            interfaces.append("%s %s (%s)" % (iface["name"], iface.get("address"),
                                              iface["network"]))
        else:
            end = "%s:%s" % (name, iface["name"])
            ends[end] = iface.get("address")
            others = [e for e in links[iface["link"]]["endpoints"] if e != end]
            interfaces.append("%s %s (link to %s)" % (iface["name"], iface.get("address") or "-",
                                                      "".join(others)))
    return "%-*s  %-7s  %-10s  on %s  %s" % (
        width, name, now.get("state") or "absent",
        "pid %s" % now["pid"] if now.get("pid") else "",
        now.get("host") or node.get("host") or host, ", ".join(interfaces))


def _line_of_network(name, net, multi, gateways, members):
    if not multi and net["bridge"] in gateways:
        addresses = " ".join(gateways[net["bridge"]])
    else:
        addresses = ", ".join("%s %s" % pair
                              for pair in sorted((net.get("bridge_addresses") or {}).items()))
    return "network %s: bridge %s %s, nodes %s%s" % (
        name, net["bridge"], addresses, " ".join(members.get(name, [])),
        ", vni: %s, mtu: %s" % (net["vni"], net.get("mtu")) if "vni" in net else "")


def _line_of_link(link, ends):
    shown = " - ".join("%s %s" % (end, ends.get(end) or "-") for end in link["endpoints"])
    tunnel = " (vni: %s, mtu: %s, hosts %s)" % (
        link.get("vni"), link.get("mtu"), " - ".join(link.get("hosts", [])))
    return "link %s%s" % (shown, tunnel if link.get("tunnel") else "")


def lab_summary(lab, containers=None, fleet=None, hosts=None, host="localhost",
                check_mode=False):
    """The summary's lines. ``lab``: nslab_topology's compiled lab; on one host,
    ``containers``: the nodes' run's container views (their state and pid); on several,
    ``fleet``: nslab_info's view of the lab over its ``hosts``."""
    try:
        hosts = list(hosts or [])
        multi = len(hosts) > 1
        if multi:
            seen = ((fleet or {}).get(lab["lab"]) or {}).get("nodes") or {}
        else:
            seen = dict((c["name"], c) for c in containers or [])
        gateways = dict((b["name"], b.get("addresses") or []) for b in lab.get("bridges", []))
        nodes, networks, links = lab["nodes"], lab["networks"], lab["links"]
        width = max([len(name) for name in nodes] or [4])
        lines = ["lab %s: nodes %d, networks %d, links %d%s%s" % (
            lab["lab"], len(nodes), len(networks), len(links),
            " over " + ", ".join(hosts) if multi else "",
            " (check mode: as planned)" if check_mode else "")]
        members, ends = {}, {}
        lines += [_line_of_node(name, nodes[name], seen.get(name) or {}, width, host, members,
                                ends, links)
                  for name in sorted(nodes)]
        lines += [_line_of_network(name, networks[name], multi, gateways, members)
                  for name in sorted(networks)]
        lines += [_line_of_link(link, ends) for link in links]
        return lines
    except (KeyError, TypeError, AttributeError, IndexError) as err:
        raise AnsibleFilterError("nslab_lab_summary: the lab is not one nslab_topology "
                                 "compiled (%s: %s)" % (type(err).__name__, err))


class FilterModule:
    def filters(self):
        return {"nslab_lab_summary": lab_summary}

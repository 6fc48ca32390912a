# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Static routes of a lab's nodes: parsed from ``ip -j route show table all``, planned,
applied with one ``ip -batch`` per namespace.

Ownership: every route nslab adds carries the routing protocol number ``PROTO`` (213).
The kernel keeps the number on the route and ``ip route show proto 213`` lists them, so
nslab touches only its own routes and leaves the kernel's (connected), a user's and a
routing daemon's alone. 0-4 are the kernel's own numbers and 8-198 are taken by known
daemons (iproute2's rt_protos, FRR's 186-198); 213 is in no such list. A dedicated table
was not chosen: it needs a policy rule and is looked up after main, so a node's routes
would not be where its users, ``ip route`` and FRR look for them.

A route is identified by its family and destination (``default`` or a CIDR) in the main
table. A route whose gateway lies on no subnet of an interface that is up in the
namespace cannot be added (the kernel refuses it, and removes such routes when their
interface goes down): it is reported as waiting, not as a change, and added by the
first run after its interface comes up.

Pure: no AnsibleModule, no subprocess.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import List, Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import (
    json_documents, parse_links)

PROTO = 213


@dataclass(frozen=True)
class Route:
    family: int                    # 4 or 6
    to: str                        # "default" or a CIDR in canonical form
    via: Optional[str]             # gateway address, None for a device route
    proto: str                     # as ip prints it: "kernel", "boot", "213", ...
    dev: Optional[str] = None

    @property
    def key(self):
        return (self.family, self.to)

    @property
    def owned(self):
        return self.proto == str(PROTO)

    def view(self):
        return {"to": self.to, "via": self.via}


def canonical_to(value, family=None):
    """``default`` or the CIDR's canonical text; the family comes from the network, or
    from ``family`` (a gateway's) for ``default``."""
    if value == "default":
        return family, "default"
    net = ipaddress.ip_network(value, strict=True)
    if net.prefixlen == 0:
        return net.version, "default"
    return net.version, str(net)


def read_namespace_text(runner, netns):
    """A namespace's routes (every table), links and addresses, in one read: parse_routes,
    parse_links and up_subnets each take what they need of it."""
    return runner.ip_json(["route", "link", "addr"], netns)


def parse_routes(text):
    """Unicast routes of the main table, from ``ip -j route show table all`` output."""
    routes = []
    for doc in json_documents(text):
        for item in doc:
            if "dst" not in item or item.get("table", "main") != "main":
                continue
            if item.get("type", "unicast") != "unicast":
                continue
            via = item.get("gateway")
            family = None
            if via:
                family = ipaddress.ip_address(via).version
            elif item["dst"] != "default":
                family = ipaddress.ip_network(item["dst"], strict=False).version
            if family is None:
                continue
            dst = item["dst"]
            to = "default" if dst == "default" else str(ipaddress.ip_network(dst, strict=False))
            routes.append(Route(family, to, via, str(item.get("protocol", "boot")),
                                item.get("dev")))
    return routes


def up_subnets(text):
    """The subnets of the addresses on interfaces that are up, from ``ip -j -d link show``
    plus ``addr show`` output: where a gateway can be reached."""
    return [ipaddress.ip_interface(a).network for link in parse_links(text).values()
            if link.up for a in link.managed_addresses()]


@dataclass
class RouteAction:
    summary: str
    command: List[str]             # one ``ip`` batch line, as argv
    undo: Optional[List[str]]      # the line that reverses it


def desired_routes(items):
    """[Route] of a namespace from the module's items ({to, via}), owned by nslab."""
    routes = []
    for item in items:
        family = ipaddress.ip_address(item["via"]).version
        family, to = canonical_to(item["to"], family)
        routes.append(Route(family, to, str(ipaddress.ip_address(item["via"])), str(PROTO)))
    return routes


def _reachable(via, subnets):
    ip = ipaddress.ip_address(via)
    return any(ip.version == s.version and ip in s for s in subnets)


def _line(verb, route):
    # No -4/-6 (ip -batch refuses them on a line): ip takes the family from the gateway.
    return ["route", verb, route.to, "via", route.via, "proto", str(PROTO)]


def plan_routes(netns, desired, current, subnets):
    """(actions, waiting, conflicts) for one namespace.

    ``actions`` add, replace or delete nslab's routes; ``waiting`` are desired routes whose
    gateway is on no up interface (left for a later run, not a change); ``conflicts`` are
    desired routes whose destination another owner already routes (never clobbered)."""
    have = dict((r.key, r) for r in current)
    wanted = dict((r.key, r) for r in desired)
    actions, waiting, conflicts = [], [], []
    for key, route in wanted.items():
        old = have.get(key)
        if old is not None and not old.owned:
            conflicts.append((route, old))
            continue
        if old is not None and old.via == route.via:
            continue
        if not _reachable(route.via, subnets):
            waiting.append(route)
            continue
        if old is None:
            actions.append(RouteAction(
                "add route %s via %s in netns '%s'" % (route.to, route.via, netns),
                _line("add", route),
                _line("del", route)))
        else:
            actions.append(RouteAction(
                "change route %s in netns '%s': via %s, was via %s" % (
                    route.to, netns, route.via, old.via),
                _line("replace", route),
                _line("replace", old)))
    for key, old in have.items():
        if old.owned and key not in wanted:
            line = ["route", "del", old.to] + (["via", old.via] if old.via else []) + [
                "proto", str(PROTO)]
            undo = (["route", "add", old.to, "via", old.via, "proto", str(PROTO)]
                    if old.via else None)
            actions.append(RouteAction(
                "delete route %s%s in netns '%s' (no longer listed)" % (
                    old.to, " via %s" % old.via if old.via else "", netns),
                line,
                undo if undo else None))
    return actions, waiting, conflicts


def routes_view(routes):
    """nslab's routes of a namespace, for results and diffs, sorted."""
    return sorted((r.view() for r in routes if r.owned),
                  key=lambda r: (r["to"] != "default", r["to"], r["via"] or ""))

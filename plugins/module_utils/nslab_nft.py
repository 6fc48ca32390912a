# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nslab's filtering rules in nftables: host isolation and anti-spoofing on lab bridges.

Two tables of nslab's own, one base chain each, never any other table or host setting:

- ``inet nslab``, chain ``input``: per bridge with ``isolate_host``, one rule
  ``iifname BR fib daddr type local fib daddr . iif type != local drop`` -- a packet that
  came in on the bridge for an address of the host that is not on the bridge itself is
  dropped (IPv4 and IPv6 alike, link-local included, whatever the addresses are).
- ``bridge nslab``, chain ``prerouting`` (before the bridge learns the source MAC): per
  bridge port of a node, frames must carry the node's MAC as ether source, and ARP must
  carry it as sender MAC and one of the node's IPv4 addresses (or 0.0.0.0) as sender IP.

Every rule is named by its comment ``nslab:<lab>:<bridge>:<what>`` (identity and ownership
tag, as for the NAT rules in ``ip nslab``). The kernel's rules are read with ``nft -j``,
compared by comment *and* content (a rule whose matches differ is replaced) and changed
with one ``nft -j -f -`` script, which the kernel applies atomically. Parsing and planning
are pure; running ``nft`` is left to the caller's runner.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import List, Tuple

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import CommandError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import NFT_TABLE


@dataclass(frozen=True)
class Table:
    family: str
    name: str
    chain: str
    hook: str


HOST_TABLE = Table("inet", NFT_TABLE, "input", "input")
BRIDGE_TABLE = Table("bridge", NFT_TABLE, "prerouting", "prerouting")

# The left-hand sides nslab's rules use, in nft syntax and as ``nft -j`` writes them.
LEFTS = {
    "iifname": {"meta": {"key": "iifname"}},
    "ether saddr": {"payload": {"protocol": "ether", "field": "saddr"}},
    "arp saddr ether": {"payload": {"protocol": "arp", "field": "saddr ether"}},
    "arp saddr ip": {"payload": {"protocol": "arp", "field": "saddr ip"}},
    "fib daddr type": {"fib": {"result": "type", "flags": ["daddr"]}},
    "fib daddr . iif type": {"fib": {"result": "type", "flags": ["daddr", "iif"]}},
}
_LEFT_NAMES = dict((json.dumps(v, sort_keys=True), k) for k, v in LEFTS.items())

ISOLATE = "isolate-host"
PORT = "port"


@dataclass(frozen=True)
class Match:
    left: str                  # a key of LEFTS
    op: str                    # "==" or "!="
    values: Tuple[str, ...]    # one value, or several (a set)

    def expr(self):
        right = self.values[0] if len(self.values) == 1 else {"set": list(self.values)}
        return {"match": {"op": self.op, "left": LEFTS[self.left], "right": right}}

    def signature(self):
        return (self.left, self.op, tuple(sorted(self.values)))


@dataclass(frozen=True)
class Rule:
    """A rule nslab wants: its comment, its matches and its verdict."""
    comment: str
    matches: Tuple[Match, ...]
    verdict: str = "drop"

    def signature(self):
        return tuple(m.signature() for m in self.matches) + (self.verdict,)

    def json(self, table):
        return {"family": table.family, "table": table.name, "chain": table.chain,
                "comment": self.comment,
                "expr": [m.expr() for m in self.matches] + [{self.verdict: None}]}


@dataclass(frozen=True)
class KernelRule:
    """A rule as ``nft -j`` reports it; ``raw`` is its JSON, kept to restore it."""
    comment: str
    handle: int
    signature: tuple
    raw: dict = field(compare=False, hash=False)


def expr_signature(expr):
    """The comparable form of a rule's ``expr`` list; a statement nslab does not write
    keeps its JSON, so it never equals a wanted rule's signature."""
    signature = []
    for statement in expr:
        match = statement.get("match") if isinstance(statement, dict) else None
        if match:
            left = _LEFT_NAMES.get(json.dumps(match.get("left"), sort_keys=True),
                                   json.dumps(match.get("left"), sort_keys=True))
            right = match.get("right")
            if isinstance(right, dict) and "set" in right:
                values = tuple(sorted(str(v) for v in right["set"]))
            else:
                values = (str(right),)
            signature.append((left, match.get("op"), values))
        elif isinstance(statement, dict) and len(statement) == 1 and \
                list(statement.values())[0] is None:
            signature.append(list(statement)[0])
        else:
            signature.append(json.dumps(statement, sort_keys=True))
    return tuple(signature)


def parse_table(text, table):
    """``nft -j list table FAMILY nslab`` -> [KernelRule] of the table's chain (every rule,
    with or without an nslab comment)."""
    rules = []
    for item in json.loads(text or "{}").get("nftables", []):
        rule = item.get("rule")
        if rule and rule.get("chain") == table.chain:
            rules.append(KernelRule(comment=rule.get("comment", ""), handle=rule["handle"],
                                    signature=expr_signature(rule.get("expr", [])), raw=rule))
    return rules


def read_table(runner, nft, table):
    """The table's rules, or [] when the table does not exist."""
    try:
        return parse_table(runner.run([nft, "-j", "list", "table", table.family, table.name]),
                           table)
    except CommandError as err:
        if "No such file or directory" in (err.stderr or ""):
            return []
        raise


def parse_comment(comment):
    """``nslab:<lab>:<bridge>:<what>[:<port>:<check>]`` -> (lab, bridge, what, port, check),
    or None for a comment that is not nslab's."""
    parts = comment.split(":")
    if len(parts) < 4 or parts[0] != "nslab":
        return None
    if parts[3] == PORT and len(parts) == 6:
        return parts[1], parts[2], PORT, parts[4], parts[5]
    return parts[1], parts[2], parts[3], None, None


# --- what nslab wants --------------------------------------------------------------------

def isolate_rule(lab, bridge):
    """Drop what arrives on ``bridge`` for a host address that is not on the bridge."""
    return Rule("nslab:%s:%s:%s" % (lab, bridge, ISOLATE), (
        Match("iifname", "==", (bridge,)),
        Match("fib daddr type", "==", ("local",)),
        Match("fib daddr . iif type", "!=", ("local",))))


def port_rules(lab, bridge, port, mac, addresses):
    """The anti-spoofing rules of one bridge port whose node has ``mac`` and
    ``addresses`` (CIDR strings; the IPv4 ones count, plus 0.0.0.0 for ARP probes)."""
    mac = mac.lower()
    ips = ["0.0.0.0"]
    for addr in addresses:
        ip = ipaddress.ip_interface(addr).ip
        if ip.version == 4 and str(ip) not in ips:
            ips.append(str(ip))
    base = "nslab:%s:%s:%s:%s:" % (lab, bridge, PORT, port)
    on_port = Match("iifname", "==", (port,))
    return [
        Rule(base + "mac", (on_port, Match("ether saddr", "!=", (mac,)))),
        Rule(base + "arp-mac", (on_port, Match("arp saddr ether", "!=", (mac,)))),
        Rule(base + "arp-ip", (on_port, Match("arp saddr ip", "!=", tuple(ips)))),
    ]


# --- planning ----------------------------------------------------------------------------

@dataclass
class NftPlan:
    """Changes to one table. ``replace`` holds kernel rules superseded by an ``add`` of
    the same comment; ``delete`` holds stale ones."""
    table: Table
    add: List[Rule] = field(default_factory=list)
    replace: List[KernelRule] = field(default_factory=list)
    delete: List[KernelRule] = field(default_factory=list)

    def __bool__(self):
        return bool(self.add or self.replace or self.delete)


def plan_rules(table, wanted, current, owned):
    """Compare ``wanted`` [Rule] with ``current`` [KernelRule].

    ``owned(comment)`` says whether a kernel rule not in ``wanted`` belongs to this run
    (and so goes); every other rule stays as it is. A wanted rule is kept only if exactly
    one kernel rule has its comment and the same content."""
    plan = NftPlan(table)
    by_comment = {}
    for rule in current:
        by_comment.setdefault(rule.comment, []).append(rule)
    wanted_comments = set()
    for rule in wanted:
        wanted_comments.add(rule.comment)
        have = by_comment.get(rule.comment, [])
        if len(have) == 1 and have[0].signature == rule.signature():
            continue
        plan.add.append(rule)
        plan.replace.extend(have)
    for rule in current:
        if rule.comment not in wanted_comments and rule.comment and owned(rule.comment):
            plan.delete.append(rule)
    return plan


def _table_json(table):
    return {"family": table.family, "name": table.name}


def _chain_json(table):
    return {"family": table.family, "table": table.name, "name": table.chain,
            "type": "filter", "hook": table.hook, "prio": 0 if table.hook == "input" else -200,
            "policy": "accept"}


def _delete_json(table, rule):
    return {"delete": {"rule": {"family": table.family, "table": table.name,
                                "chain": table.chain, "handle": rule.handle}}}


def script(plan, part="all"):
    """The ``nft -j -f -`` commands of a plan (a list of dicts; [] if nothing to do).

    ``part``: "all"; "add" (adds and replacements: what must be in place before a port
    exists); "delete" (stale rules: what may go after). A table left empty stays: another
    lab's run may be adding to it; nslab_shared removes it once no run is going."""
    table, commands = plan.table, []
    if part in ("all", "add") and plan.add:
        # "add" of an existing table or chain is a no-op in nft.
        commands += [{"add": {"table": _table_json(table)}},
                     {"add": {"chain": _chain_json(table)}}]
        commands += [_delete_json(table, r) for r in plan.replace]
        commands += [{"add": {"rule": r.json(table)}} for r in plan.add]
    if part in ("all", "delete"):
        commands += [_delete_json(table, r) for r in plan.delete]
    return commands


def undo_script(plan, after, part="all"):
    """Commands that restore the rules ``plan`` (the given ``part`` of it) removed and
    remove the ones it added; ``after`` is the table as read after applying."""
    table, commands = plan.table, []
    removed = []
    if part in ("all", "add"):
        added = set((r.comment, r.signature()) for r in plan.add)
        commands += [_delete_json(table, r) for r in after
                     if (r.comment, r.signature) in added]
        removed += plan.replace
    if part in ("all", "delete"):
        removed += plan.delete
    if removed:
        commands += [{"add": {"table": _table_json(table)}},
                     {"add": {"chain": _chain_json(table)}}]
        for rule in removed:
            raw = dict((k, v) for k, v in rule.raw.items() if k != "handle")
            commands.append({"add": {"rule": raw}})
    return commands


def apply_script(runner, nft, commands):
    if commands:
        runner.run([nft, "-j", "-f", "-"], data=json.dumps({"nftables": commands}))

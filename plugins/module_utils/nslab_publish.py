# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Port publishing: host ports DNATed to a node, in nslab's own table ``inet nslab``.

A published port is docker's ``[HOST_IP:]HOST_PORT:NODE_PORT[/tcp|udp]``. Its rules live
in four base chains of ``inet nslab`` that only port publishing uses (the table's ``input``
chain is nslab_bridge's; each side deletes the table only when every chain is empty):

- ``ports-prerouting`` (nat, dstnat) and ``ports-output`` (nat, for connections made on the
  host itself): ``ip daddr HOST_IP`` -- or ``meta nfproto ipv4 fib daddr type local``
  (every address of the host) -- ``PROTO dport HOST_PORT dnat ip to NODE:NODE_PORT``;
- ``ports-postrouting`` (nat, srcnat): ``oifname BRIDGE ct status dnat ip daddr NODE PROTO
  dport NODE_PORT masquerade``, so replies come back through the host whatever routes the
  node has (the node sees the bridge's address as the client);
- ``ports-guard`` (filter, prerouting, priority raw): for a bridge with ``route_localnet``
  (see below), ``iifname BRIDGE ip daddr 127.0.0.0/8 drop`` and the same for ``ip saddr``.

Connections to 127.0.0.1 from the host itself are DNATed out of the loopback range, which
the kernel refuses to route to another interface unless that interface has
``net.ipv4.conf.<if>.route_localnet=1``. nslab sets it on the lab's bridge only (never on
``all`` or another interface) while a port of that bridge listens on 127.0.0.1 or on every
address. The same setting would let the bridge's nodes send to the host's loopback
services (and forge loopback sources): the guard rules, added before it is set and removed
after it is cleared, drop exactly that. A bridge's guard rules are also nslab's record
that it set route_localnet there.

Every rule's comment is its identity and ownership tag:
``nslab:<lab>:<node>:publish:<proto>:<host_ip or *>:<host_port>`` for the three rules of a
port, ``nslab:<lab>:<bridge>:localnet:<daddr|saddr>`` for guards. Parsing and planning are
pure; running ``nft`` is left to the caller's runner.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import CommandError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import NFT_TABLE

TABLE_FAMILY = "inet"
TABLE_NAME = NFT_TABLE
ANY = "*"
PROTOS = ("tcp", "udp")
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
PORT_FORM = ("docker's [HOST_IP:]HOST_PORT:NODE_PORT[/tcp|udp] like \"8080:80\", "
             "\"127.0.0.1:2222:22/tcp\" or \"5353:53/udp\", ports 1-65535, HOST_IP an IPv4 "
             "address")

# name -> (type, hook, priority); the order in which a script creates them.
CHAINS = {
    "ports-guard": ("filter", "prerouting", -300),
    "ports-prerouting": ("nat", "prerouting", -100),
    "ports-output": ("nat", "output", -100),
    "ports-postrouting": ("nat", "postrouting", 100),
}
DNAT_CHAINS = ("ports-prerouting", "ports-output")
MASQ_CHAIN = "ports-postrouting"
GUARD_CHAIN = "ports-guard"

_PORT_RE = re.compile(r"(?:(?P<ip>[0-9.]+):)?(?P<host>[0-9]+):(?P<node>[0-9]+)"
                      r"(?:/(?P<proto>[a-z]+))?")


@dataclass(frozen=True)
class PortSpec:
    """One parsed ``ports`` entry."""
    host_ip: Optional[str]      # None: every address of the host
    host_port: int
    node_port: int
    proto: str = "tcp"

    def key(self):
        return (self.proto, self.host_ip or ANY, self.host_port)

    def text(self):
        return "%s%d:%d/%s" % (self.host_ip + ":" if self.host_ip else "", self.host_port,
                               self.node_port, self.proto)


def parse_port(value):
    """A ``ports`` entry -> PortSpec; ValueError saying what is wrong otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("a bare port; expected HOST_PORT:NODE_PORT")
    if not isinstance(value, str):
        raise ValueError("not a string")
    match = _PORT_RE.fullmatch(value.strip())
    if not match:
        raise ValueError("not of the form [HOST_IP:]HOST_PORT:NODE_PORT[/tcp|udp]")
    proto = match.group("proto") or "tcp"
    if proto not in PROTOS:
        raise ValueError("protocol '%s' is not tcp or udp" % proto)
    host_ip = match.group("ip")
    if host_ip is not None:
        try:
            host_ip = str(ipaddress.IPv4Address(host_ip))
        except ValueError:
            raise ValueError("'%s' is not an IPv4 address" % host_ip)
        if host_ip == "0.0.0.0":
            host_ip = None
    ports = []
    for which in ("host", "node"):
        number = int(match.group(which))
        if not 1 <= number <= 65535:
            raise ValueError("%s port %d is out of range 1-65535" % (which.upper(), number))
        ports.append(number)
    return PortSpec(host_ip, ports[0], ports[1], proto)


def clashes(one, other):
    """Whether two publications (PortSpec keys) catch the same packets: same protocol and
    port, and the same host address or one of them on every address."""
    (proto, ip, port), (other_proto, other_ip, other_port) = one, other
    return proto == other_proto and port == other_port and (ip == other_ip or ANY in (ip, other_ip))


def key_text(key):
    proto, ip, port = key
    return "%s:%d/%s" % ("every host address" if ip == ANY else ip, port, proto)


def port_problems(where, value):
    """Problems of a node's whole ``ports`` list (syntax, ranges, one HOST_IP:HOST_PORT
    twice in the list); each names ``where[i]`` and the expected form."""
    if value is None:
        return []
    if not isinstance(value, list):
        return ["%s: %r is not a list; expected a list of %s" % (where, value, PORT_FORM)]
    problems = []
    for index, entry in enumerate(value):
        try:
            parse_port(entry)
        except ValueError as err:
            problems.append("%s[%d]: %r is invalid (%s); expected %s" % (
                where, index, entry, err, PORT_FORM))
    return problems


def lab_clash_problems(published):
    """``published``: [(where, PortSpec)] over the whole lab, in order -> a problem for each
    entry that catches the same host address, port and protocol as an earlier one."""
    problems = []
    for position, (where, spec) in enumerate(published):
        for other_where, other in published[:position]:
            if clashes(spec.key(), other.key()):
                problems.append(
                    "%s: %s is already published by %s (%s); expected each "
                    "HOST_IP:HOST_PORT/proto once in the lab (a port on every address "
                    "clashes with the same port on any one address)" % (
                        where, key_text(spec.key()), other_where, other.text()))
                break
    return problems


# --- what nslab wants --------------------------------------------------------------------

@dataclass(frozen=True)
class Published:
    """A port as the module takes it: the node's address and bridge are compiled."""
    node: str
    spec: PortSpec
    address: str               # the node's IPv4 address (no prefix)
    bridge: str                # where the node's address is

    def comment(self, lab):
        proto, ip, port = self.spec.key()
        return "nslab:%s:%s:publish:%s:%s:%d" % (lab, self.node, proto, ip, port)

    def summary(self):
        return "%s -> node %s %s:%d/%s" % (
            key_text(self.spec.key()), self.node, self.address, self.spec.node_port,
            self.spec.proto)


@dataclass(frozen=True)
class WantedRule:
    chain: str
    comment: str
    expr: Tuple[str, ...]      # each statement as canonical JSON, comparable with the kernel's

    def json(self):
        return {"family": TABLE_FAMILY, "table": TABLE_NAME, "chain": self.chain,
                "comment": self.comment, "expr": [json.loads(s) for s in self.expr]}


def _canon(statement):
    return json.dumps(statement, sort_keys=True)


def _match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol, field_name):
    return {"payload": {"protocol": protocol, "field": field_name}}


def _meta(key):
    return {"meta": {"key": key}}


def dnat_expr(item):
    spec = item.spec
    expr = []
    if spec.host_ip:
        expr.append(_match(_payload("ip", "daddr"), spec.host_ip))
    else:
        # Every address of the host, and only the host's: forwarded traffic to the same
        # port elsewhere (the nodes' own) is left alone.
        expr.append(_match(_meta("nfproto"), "ipv4"))
        expr.append(_match({"fib": {"result": "type", "flags": ["daddr"]}}, "local"))
    expr.append(_match(_payload(spec.proto, "dport"), spec.host_port))
    expr.append({"dnat": {"family": "ip", "addr": item.address, "port": spec.node_port}})
    return tuple(_canon(s) for s in expr)


def masquerade_expr(item):
    expr = [_match(_meta("oifname"), item.bridge),
            _match({"ct": {"key": "status"}}, "dnat", op="in"),
            _match(_payload("ip", "daddr"), item.address),
            _match(_payload(item.spec.proto, "dport"), item.spec.node_port),
            {"masquerade": None}]
    return tuple(_canon(s) for s in expr)


def guard_rules(lab, bridge):
    rules = []
    for direction in ("daddr", "saddr"):
        expr = [_match(_meta("iifname"), bridge),
                _match(_payload("ip", direction), {"prefix": {"addr": "127.0.0.0", "len": 8}}),
                {"drop": None}]
        rules.append(WantedRule(GUARD_CHAIN, "nslab:%s:%s:localnet:%s" % (lab, bridge, direction),
                                tuple(_canon(s) for s in expr)))
    return rules


def needs_localnet(spec):
    """A port reachable on 127.0.0.1 from the host itself."""
    return spec.host_ip is None or ipaddress.IPv4Address(spec.host_ip) in LOOPBACK


def localnet_bridges(published):
    return sorted(set(p.bridge for p in published if needs_localnet(p.spec)))


def wanted_rules(lab, published):
    rules = []
    for item in published:
        comment = item.comment(lab)
        for chain in DNAT_CHAINS:
            rules.append(WantedRule(chain, comment, dnat_expr(item)))
        rules.append(WantedRule(MASQ_CHAIN, comment, masquerade_expr(item)))
    for bridge in localnet_bridges(published):
        rules.extend(guard_rules(lab, bridge))
    return rules


# --- what the kernel has -----------------------------------------------------------------

@dataclass(frozen=True)
class KernelRule:
    chain: str
    comment: str
    handle: int
    expr: Tuple[str, ...]
    raw: dict = field(default=None, compare=False, hash=False)   # to restore it


@dataclass
class Table:
    """``inet nslab`` as ``nft -j`` reports it: its chains and every rule of them."""
    exists: bool = False
    chains: List[str] = field(default_factory=list)
    rules: List[KernelRule] = field(default_factory=list)


def read_table(runner, nft):
    """``inet nslab`` now, empty when the table (or the nft command) does not exist."""
    if nft is None:
        return Table()
    try:
        return parse_table(runner.run([nft, "-j", "list", "table", TABLE_FAMILY, TABLE_NAME]))
    except CommandError as err:
        if "No such file or directory" in (err.stderr or ""):
            return Table()
        raise


def parse_table(text):
    table = Table()
    for item in json.loads(text or "{}").get("nftables", []):
        if "table" in item:
            table.exists = True
        elif "chain" in item:
            table.chains.append(item["chain"]["name"])
        elif "rule" in item:
            rule = item["rule"]
            table.rules.append(KernelRule(rule["chain"], rule.get("comment", ""),
                                          rule["handle"],
                                          tuple(_canon(s) for s in rule.get("expr", [])),
                                          rule))
    return table


def parse_comment(comment):
    """A port rule's comment -> (lab, node, (proto, host_ip, host_port)); a guard's ->
    (lab, bridge, None); anything else -> None."""
    parts = comment.split(":")
    if len(parts) == 7 and parts[0] == "nslab" and parts[3] == "publish" \
            and parts[6].isdigit():
        return parts[1], parts[2], (parts[4], parts[5], int(parts[6]))
    if len(parts) == 5 and parts[0] == "nslab" and parts[3] == "localnet":
        return parts[1], parts[2], None
    return None


def published_by(table, lab=None):
    """{key: (lab, node)} of the publications the table holds (all labs', or ``lab``'s)."""
    found = {}
    for rule in table.rules:
        parsed = parse_comment(rule.comment)
        if rule.chain == DNAT_CHAINS[0] and parsed and parsed[2] is not None \
                and (lab is None or parsed[0] == lab):
            found[parsed[2]] = (parsed[0], parsed[1])
    return found


def localnet_guarded(table, lab):
    """Bridges whose guard rules this lab has (so nslab set route_localnet there)."""
    found = set()
    for rule in table.rules:
        parsed = parse_comment(rule.comment)
        if rule.chain == GUARD_CHAIN and parsed and parsed[2] is None and parsed[0] == lab:
            found.add(parsed[1])
    return found


# --- planning ----------------------------------------------------------------------------

@dataclass
class PortsPlan:
    add: List[WantedRule] = field(default_factory=list)
    delete: List[KernelRule] = field(default_factory=list)
    add_chains: List[str] = field(default_factory=list)
    delete_chains: List[str] = field(default_factory=list)
    localnet_on: List[str] = field(default_factory=list)     # bridges
    localnet_off: List[str] = field(default_factory=list)
    summaries: List[str] = field(default_factory=list)

    def __bool__(self):
        return bool(self.add or self.delete or self.localnet_on or self.localnet_off
                    or self.delete_chains)


def conflict_problems(lab, published, table):
    """A problem for each port another nslab lab on this host already publishes."""
    problems = []
    others = dict((k, v) for k, v in published_by(table).items() if v[0] != lab)
    for index, item in enumerate(published):
        for key, (other_lab, other_node) in sorted(others.items()):
            if clashes(item.spec.key(), key):
                problems.append(
                    "ports[%d]: %s (node %s) is already published on this host by lab '%s' "
                    "(node %s, %s); expected a host port no other lab uses" % (
                        index, key_text(item.spec.key()), item.node, other_lab, other_node,
                        key_text(key)))
    return problems


def plan_ports(lab, published, table, localnet):
    """Compare what ``lab`` wants (``published``: [Published]; [] removes everything of
    the lab) with ``table``. ``localnet``: {bridge: route_localnet value now} of the
    bridges concerned (the wanted ones and the lab's guarded ones; a missing bridge is
    not there). Only rules whose comment names ``lab`` are ever deleted."""
    plan = PortsPlan()
    wanted = wanted_rules(lab, published)
    have = {}
    for rule in table.rules:
        have.setdefault((rule.chain, rule.comment), []).append(rule)
    wanted_ids = set()
    for rule in wanted:
        wanted_ids.add((rule.chain, rule.comment))
        current = have.get((rule.chain, rule.comment), [])
        if len(current) == 1 and current[0].expr == rule.expr:
            continue
        plan.add.append(rule)
        plan.delete.extend(current)
    mine = "nslab:%s:" % lab
    for rule in table.rules:
        parsed = parse_comment(rule.comment)
        if (rule.chain, rule.comment) not in wanted_ids and rule.comment.startswith(mine) \
                and parsed and rule.chain in CHAINS:
            plan.delete.append(rule)

    now = set(published_by(table, lab))
    after = dict((p.spec.key(), p) for p in published)
    changed_keys = set(r.comment for r in plan.add if r.chain != GUARD_CHAIN)
    for item in published:
        if item.comment(lab) in changed_keys:
            verb = "publish" if item.spec.key() not in now else "update"
            plan.summaries.append("%s %s" % (verb, item.summary()))
    for key in sorted(now - set(after)):
        plan.summaries.append("stop publishing %s" % key_text(key))

    wanted_localnet = set(localnet_bridges(published))
    for bridge in sorted(wanted_localnet):
        if localnet.get(bridge) == 0:
            plan.localnet_on.append(bridge)
            plan.summaries.append(
                "let bridge '%s' carry connections the host makes to 127.0.0.1 "
                "(net.ipv4.conf.%s.route_localnet=1, with rules dropping loopback addresses "
                "arriving on it)" % (bridge, bridge))
    for bridge in sorted(localnet_guarded(table, lab) - wanted_localnet):
        if localnet.get(bridge) == 1:
            plan.localnet_off.append(bridge)
            plan.summaries.append("clear net.ipv4.conf.%s.route_localnet" % bridge)

    deleted = set(r.handle for r in plan.delete)
    remaining = dict((c, 0) for c in table.chains)
    for rule in table.rules:
        if rule.handle not in deleted:
            remaining[rule.chain] = remaining.get(rule.chain, 0) + 1
    for rule in plan.add:
        remaining[rule.chain] = remaining.get(rule.chain, 0) + 1
    plan.add_chains = [c for c in CHAINS if any(r.chain == c for r in plan.add)
                       and c not in table.chains]
    # The table itself stays, even with nothing left in it: another lab's run may be adding
    # to it now. nslab_shared removes it once no run is going.
    plan.delete_chains = [c for c in CHAINS if c in table.chains and not remaining.get(c)]
    if plan.delete_chains and not plan.summaries:
        plan.summaries.append("remove nslab's empty port publishing chains")
    return plan


def _chain_json(name):
    kind, hook, prio = CHAINS[name]
    return {"family": TABLE_FAMILY, "table": TABLE_NAME, "name": name, "type": kind,
            "hook": hook, "prio": prio, "policy": "accept"}


def script(plan):
    """The ``nft -j -f -`` commands of a plan, applied atomically by the kernel."""
    table = {"family": TABLE_FAMILY, "name": TABLE_NAME}
    commands = []
    if plan.add:
        commands.append({"add": {"table": table}})
        commands += [{"add": {"chain": _chain_json(c)}} for c in plan.add_chains]
    commands += [{"delete": {"rule": {"family": TABLE_FAMILY, "table": TABLE_NAME,
                                      "chain": r.chain, "handle": r.handle}}}
                 for r in plan.delete]
    commands += [{"add": {"rule": r.json()}} for r in plan.add]
    commands += [{"delete": {"chain": {"family": TABLE_FAMILY, "table": TABLE_NAME,
                                       "name": c}}} for c in plan.delete_chains]
    return commands


def undo_script(plan, after):
    """Commands that take back an applied ``plan``: the rules it added go (found in
    ``after``, the table read again), the ones it deleted come back."""
    added = set((r.chain, r.comment, r.expr) for r in plan.add)
    commands = [{"delete": {"rule": {"family": TABLE_FAMILY, "table": TABLE_NAME,
                                     "chain": r.chain, "handle": r.handle}}}
                for r in after.rules if (r.chain, r.comment, r.expr) in added]
    if plan.delete:
        commands.append({"add": {"table": {"family": TABLE_FAMILY, "name": TABLE_NAME}}})
        chains = set(r.chain for r in plan.delete)
        commands += [{"add": {"chain": _chain_json(c)}} for c in CHAINS if c in chains]
        for rule in plan.delete:
            raw = dict((k, v) for k, v in (rule.raw or {}).items() if k != "handle")
            if raw:
                commands.append({"add": {"rule": raw}})
    return commands


def view(lab, table):
    """The lab's publications as the table has them: sorted texts like
    ``tcp *:8080 -> node web 10.213.1.2:80``."""
    found = []
    by_comment = dict((r.comment, r) for r in table.rules if r.chain == DNAT_CHAINS[0])
    for key, (_lab, node) in sorted(published_by(table, lab).items()):
        rule = by_comment.get("nslab:%s:%s:publish:%s:%s:%d" % ((lab, node) + key))
        target = "?"
        for statement in rule.expr if rule else ():
            dnat = json.loads(statement).get("dnat") if statement.startswith('{"dnat"') else None
            if dnat:
                target = "%s:%s" % (dnat.get("addr"), dnat.get("port"))
        found.append("%s -> node %s %s" % (key_text(key), node, target))
    return sorted(found)


def expected_view(published):
    return sorted("%s -> node %s %s:%d" % (key_text(p.spec.key()), p.node, p.address,
                                           p.spec.node_port) for p in published)

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Optional IPv4 masquerading of a bridge's subnets to the host's uplink, with nftables.

nslab keeps its rules in its own table ``ip nslab`` (chain ``postrouting``), one rule per
bridge subnet, each named by its comment ``nslab:<lab>:<bridge>:<subnet>``: the comment is
both the rule's identity and its ownership tag, so nslab never touches another rule.
Parsing and planning here are pure; the module runs the script with ``nft -f -``, which
applies it atomically (all or nothing).
"""

from __future__ import annotations

import ipaddress
import json

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import CommandError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import NFT_TABLE

TABLE = NFT_TABLE
CHAIN = "postrouting"
FORWARD_SYSCTL = "/proc/sys/net/ipv4/ip_forward"


def rule_comment(lab, bridge, subnet):
    return "nslab:%s:%s:%s" % (lab, bridge, subnet)


def nat_subnets(addresses):
    """The IPv4 networks of a bridge's addresses (IPv6 is routed, not masqueraded)."""
    nets = []
    for addr in addresses:
        iface = ipaddress.ip_interface(addr)
        if iface.version == 4 and str(iface.network) not in nets:
            nets.append(str(iface.network))
    return nets


def parse_rules(text):
    """``nft -j list table ip nslab`` -> {comment: handle} of nslab's rules."""
    rules = {}
    for item in json.loads(text or "{}").get("nftables", []):
        rule = item.get("rule")
        if rule and rule.get("chain") == CHAIN and rule.get("comment", "").startswith("nslab:"):
            rules[rule["comment"]] = rule["handle"]
    return rules


def plan_nat(wanted, current, lab, bridges):
    """Plan nft commands.

    ``wanted``: {comment: (bridge, subnet)} for this run's bridges with nat on;
    ``current``: {comment: handle} in the table; ``bridges``: names this run manages (a
    rule of one of them that is no longer wanted is removed; other bridges' rules stay).
    Returns (summaries, nft script lines). A table left empty stays (another lab's run may
    be adding to it); nslab_shared removes it once no run is going.
    """
    summaries, lines = [], []
    missing = [c for c in wanted if c not in current]
    stale = [c for c in current
             if c not in wanted and any(c.startswith("nslab:%s:%s:" % (lab, b)) for b in bridges)]
    if missing:
        # "add" is idempotent in nft: harmless when the table and chain exist.
        lines += _add_table()
    for comment in missing:
        bridge, subnet = wanted[comment]
        summaries.append("masquerade %s from bridge '%s' to the host's uplink" % (subnet, bridge))
        lines.append(_add_rule(comment))
    for comment in stale:
        summaries.append("stop masquerading %s from bridge '%s'" % (
            comment.split(":")[3], comment.split(":")[2]))
        lines.append("delete rule ip %s %s handle %d" % (TABLE, CHAIN, current[comment]))
    return summaries, lines


def _add_rule(comment):
    _nslab, _lab, bridge, subnet = comment.split(":", 3)
    return 'add rule ip %s %s ip saddr %s oifname != "%s" masquerade comment "%s"' % (
        TABLE, CHAIN, subnet, bridge, comment)


def _add_table():
    return ["add table ip %s" % TABLE,
            "add chain ip %s %s { type nat hook postrouting priority srcnat; "
            "policy accept; }" % (TABLE, CHAIN)]


def undo_nat(wanted, before, after, lab):
    """The nft script that takes back a plan_nat script: ``wanted``, ``before`` (its
    ``current``) and ``lab`` as given to plan_nat, ``after`` the table read after the
    script ran. The rules it added are deleted, and the lab's rules it deleted are added
    again (their comment says what they were). Rules of other labs stay as they are."""
    added = [c for c in after if c in wanted and c not in before]
    lines = ["delete rule ip %s %s handle %d" % (TABLE, CHAIN, after[c]) for c in added]
    gone = [c for c in before if c not in after and c.startswith("nslab:%s:" % lab)]
    if gone:
        lines += _add_table() + [_add_rule(c) for c in gone]
    return lines


def read_rules(runner, nft):
    try:
        return parse_rules(runner.run([nft, "-j", "list", "table", "ip", TABLE]))
    except CommandError as err:
        if "No such file or directory" in (err.stderr or ""):
            return {}
        raise


def forwarding_enabled():
    with open(FORWARD_SYSCTL) as handle:
        return handle.read().strip() == "1"


def enable_forwarding():
    with open(FORWARD_SYSCTL, "w") as handle:
        handle.write("1\n")

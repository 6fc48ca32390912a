# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Link impairment (netem) and link state: validation, canonical form, tc argv, parser, planner.

Pure: no AnsibleModule, no subprocess (``apply_actions`` runs commands through the caller's
``run``). Unit-tested on captured ``tc -j`` output
(tests/unit/fixtures/tc_*.json).

Syntax (the topology contract): a flat mapping ``{delay, jitter, loss, rate, corrupt,
duplicate, reorder}`` applies to the egress of BOTH ends of a veth (``delay: 20ms`` gives
~40 ms round trip); ``{egress: {...}, ingress: {...}}`` sets each direction, seen from the
node's end (``ingress`` of an end is the egress of its peer). Times: a number and ``us|ms|s``;
percentages: ``"1%"`` (0-100); rate: a number and ``bit kbit mbit gbit bps kbps mbps gbps``.

Canonical values (what ``normalize_netem`` returns and ``parse_root_qdiscs`` reads back) are
strings that tc accepts and that compare equal exactly when the kernel holds the same value:
times in whole microseconds written with the largest exact unit (``"20ms"``, ``"1500us"``),
percentages rounded to 4 decimals (``"0.1%"``), rates in bit/s truncated to whole bytes/s as
the kernel stores them (``"1mbps"`` -> ``"8mbit"``). Zero values are dropped; an empty or
all-zero direction is ``None`` (no impairment).

Ownership: nslab's qdisc is the ROOT qdisc of a veth end, kind netem, handle ``4e53:``
(ASCII "NS"). That handle is neither the ``1:`` people type by hand nor in the
``8000:``-``ffff:`` range the kernel picks for a qdisc added without a handle, so a netem some
other tool or person added is recognised as foreign. A root qdisc that is neither the
kernel's default (handle ``0:``, kind noqueue/pfifo_fast/fq_codel/mq) nor nslab's is foreign:
it is reported with the device's name, never replaced or deleted.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import CommandError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import json_documents
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog

NSLAB_HANDLE = "4e53:"
DEFAULT_HANDLE = "0:"
DEFAULT_KINDS = ("noqueue", "pfifo_fast", "fq_codel", "mq")

KEYS = ("delay", "jitter", "loss", "rate", "corrupt", "duplicate", "reorder")
PERCENT_KEYS = ("loss", "corrupt", "duplicate", "reorder")
DIRECTIONS = ("egress", "ingress")
# netem options tc sends as separate netlink attributes only when given: a ``tc qdisc
# change`` that omits them leaves the kernel's old value (seen in
# tc_qdisc_netem_after_change.json), so removing one needs delete + add.
STICKY_KEYS = ("rate", "corrupt", "reorder")

_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_TIME = re.compile(r"^%s\s*(us|ms|s)$" % _NUMBER)
_PERCENT = re.compile(r"^%s\s*%%$" % _NUMBER)
_RATE = re.compile(r"^%s\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$" % _NUMBER)
TIME_UNITS = {"us": 1, "ms": 1000, "s": 1000000}
RATE_UNITS = {"bit": 1, "kbit": 10 ** 3, "mbit": 10 ** 6, "gbit": 10 ** 9,
              "bps": 8, "kbps": 8 * 10 ** 3, "mbps": 8 * 10 ** 6, "gbps": 8 * 10 ** 9}
EXPECTED = {
    "delay": "a time: a number and us, ms or s (e.g. 20ms)",
    "jitter": "a time: a number and us, ms or s (e.g. 2ms)",
    "rate": "a rate: a number and bit, kbit, mbit, gbit, bps, kbps, mbps or gbps (e.g. 10mbit)",
}
for _key in PERCENT_KEYS:
    EXPECTED[_key] = 'a percentage from 0 to 100, written "1%"'
# The largest rate a u64 of bytes/s holds is far above any veth; 100 Gbit/s is a sane bound
# that still catches unit mistakes (a rate in bit/s typed as bps).
MAX_RATE_BIT = 10 ** 12
MAX_TIME_US = 3600 * 10 ** 6


# ---------------------------------------------------------------------------- validation

def _text(value):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return str(value).strip().lower()


def _time_us(value):
    match = _TIME.match(_text(value) or "")
    if not match:
        return None
    return int(round(float(match.group(1)) * TIME_UNITS[match.group(2)]))


def _percent(value):
    match = _PERCENT.match(_text(value) or "")
    if not match:
        return None
    return round(float(match.group(1)), 4)


def _rate_bytes(value):
    match = _RATE.match(_text(value) or "")
    if not match:
        return None
    # tc parses the rate in bit/s and stores whole bytes/s (truncated).
    return int(float(match.group(1)) * RATE_UNITS[match.group(2)] // 8)


def _direction_problems(where, value):
    if value is None:
        return []
    if not isinstance(value, dict):
        return ["%s: expected a mapping of %s, got %r" % (where, ", ".join(KEYS), value)]
    problems = []
    for key in sorted(value, key=str):
        if key not in KEYS:
            problems.append("%s: unknown key %r; expected some of %s" % (
                where, key, ", ".join(KEYS)))
            continue
        raw = value[key]
        if raw is None:
            continue
        if key in ("delay", "jitter"):
            parsed = _time_us(raw)
            bad = parsed is None or parsed > MAX_TIME_US
        elif key == "rate":
            parsed = _rate_bytes(raw)
            bad = parsed is None or parsed * 8 > MAX_RATE_BIT
        else:
            parsed = _percent(raw)
            bad = parsed is None or parsed > 100
        if bad:
            problems.append("%s.%s: %r is not %s" % (where, key, raw, EXPECTED[key]))
    if problems:
        return problems
    canonical = _canonical_direction(value) or {}
    for key in ("jitter", "reorder"):
        if key in canonical and "delay" not in canonical:
            problems.append("%s.%s: %r needs a delay greater than 0 (netem %s only "
                            "delayed packets)" % (where, key, value[key], "varies"
                                                  if key == "jitter" else "reorders"))
    return problems


def netem_problems(where, value):
    """Every problem of a netem value, each naming ``where`` and the expected form."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return ["%s: expected a mapping (%s, or egress/ingress of those), got %r" % (
            where, ", ".join(KEYS), value)]
    directional = [k for k in value if k in DIRECTIONS]
    if directional:
        others = sorted(str(k) for k in value if k not in DIRECTIONS)
        if others:
            return ["%s: either the keys egress/ingress or the keys %s, not both (got %s)" % (
                where, ", ".join(KEYS), ", ".join(others))]
        problems = []
        for direction in DIRECTIONS:
            problems.extend(_direction_problems("%s.%s" % (where, direction),
                                                value.get(direction)))
        return problems
    return _direction_problems(where, value)


# ---------------------------------------------------------------------------- canonical form

def format_time(us):
    for unit in ("s", "ms"):
        if us % TIME_UNITS[unit] == 0:
            return "%d%s" % (us // TIME_UNITS[unit], unit)
    return "%dus" % us


def format_percent(percent):
    return ("%.4f" % percent).rstrip("0").rstrip(".") + "%"


def format_rate(bytes_per_second):
    bits = bytes_per_second * 8
    for unit in ("gbit", "mbit", "kbit"):
        if bits % RATE_UNITS[unit] == 0:
            return "%d%s" % (bits // RATE_UNITS[unit], unit)
    return "%dbit" % bits


def _canonical_direction(value):
    if not value:
        return None
    out = {}
    for key in KEYS:
        raw = value.get(key)
        if raw is None:
            continue
        if key in ("delay", "jitter"):
            number = _time_us(raw)
            if number:
                out[key] = format_time(number)
        elif key == "rate":
            number = _rate_bytes(raw)
            if number:
                out[key] = format_rate(number)
        else:
            number = _percent(raw)
            if number:
                out[key] = format_percent(number)
    return out or None


def normalize_netem(value):
    """{"egress": {...}|None, "ingress": {...}|None} with canonical values.

    The value must be free of problems (``netem_problems``); a flat mapping gives both
    directions the same impairment.
    """
    if not value:
        return {"egress": None, "ingress": None}
    if any(k in DIRECTIONS for k in value):
        return {"egress": _canonical_direction(value.get("egress")),
                "ingress": _canonical_direction(value.get("ingress"))}
    canonical = _canonical_direction(value)
    return {"egress": canonical, "ingress": dict(canonical) if canonical else None}


def netem_equal(a, b):
    """True when two canonical directions hold the same impairment.

    ``tc -j`` prints times with 6 significant digits (1234567us reads back as 1.23457 s),
    so times compare within that precision; everything else compares exactly.
    """
    a, b = a or {}, b or {}
    if set(a) != set(b):
        return False
    for key in a:
        if key in ("delay", "jitter"):
            x, y = _time_us(a[key]), _time_us(b[key])
            if abs(x - y) > max(1, 1e-5 * max(x, y)):
                return False
        elif a[key] != b[key]:
            return False
    return True


def netem_argv(dev, netem, verb="add"):
    """tc argv (without the tc binary) that puts ``netem`` as nslab's root qdisc of ``dev``."""
    argv = ["qdisc", verb, "dev", dev, "root", "handle", NSLAB_HANDLE, "netem"]
    if "delay" in netem:
        argv += ["delay", netem["delay"]] + ([netem["jitter"]] if "jitter" in netem else [])
    for key in ("loss", "duplicate", "reorder", "corrupt", "rate"):
        if key in netem:
            argv += [key, netem[key]]
    return argv


def delete_argv(dev):
    return ["qdisc", "del", "dev", dev, "root", "handle", NSLAB_HANDLE]


# ---------------------------------------------------------------------------- parser

@dataclass
class RootQdisc:
    dev: Optional[str]
    kind: str
    handle: str
    netem: Optional[dict] = None          # canonical, for nslab's netem only
    options: dict = field(default_factory=dict)

    @property
    def owner(self):
        """"nslab", "default" (the kernel's own) or "foreign"."""
        if self.kind == "netem" and self.handle == NSLAB_HANDLE:
            return "nslab"
        if self.handle == DEFAULT_HANDLE and self.kind in DEFAULT_KINDS:
            return "default"
        return "foreign"

    def describe(self):
        return "%s %s" % (self.kind, self.handle)


def _fraction_percent(fraction):
    # tc -j prints a netem probability as a fraction of 1.
    return round(float(fraction) * 100, 4)


def netem_from_options(options):
    """Canonical direction from the ``options`` of a netem qdisc in ``tc -j`` output."""
    out = {}
    delay = options.get("delay") or {}
    if delay.get("delay"):
        out["delay"] = format_time(int(round(float(delay["delay"]) * 10 ** 6)))
        if delay.get("jitter"):
            out["jitter"] = format_time(int(round(float(delay["jitter"]) * 10 ** 6)))
    for key, json_key in (("loss", "loss-random"), ("duplicate", "duplicate"),
                          ("reorder", "reorder"), ("corrupt", "corrupt")):
        percent = _fraction_percent((options.get(json_key) or {}).get(key) or 0)
        if percent:
            out[key] = format_percent(percent)
    rate = (options.get("rate") or {}).get("rate")
    if rate:
        out["rate"] = format_rate(int(rate))
    # Loss models nslab never sets (state/gemodel) mark a qdisc nslab cannot describe.
    for json_key in ("loss-state", "loss-gemodel", "slot"):
        if json_key in options:
            out["unmanaged"] = json_key
    return out or None


def parse_root_qdiscs(text, dev=None):
    """{device: RootQdisc} from ``tc -j qdisc show [dev X]`` (pass ``dev`` for the latter).

    Only root qdiscs count (ingress/clsact and children are not nslab's business). A device
    the kernel lists with no root qdisc is absent from the result: treat it as default.
    """
    found: Dict[str, RootQdisc] = {}
    for doc in json_documents(text):
        for item in doc:
            if not item.get("root"):
                continue
            name = item.get("dev", dev)
            options = item.get("options") or {}
            qdisc = RootQdisc(dev=name, kind=item.get("kind", ""),
                              handle=item.get("handle", ""), options=options)
            if qdisc.kind == "netem":
                qdisc.netem = netem_from_options(options)
            found[name] = qdisc
    return found


# ---------------------------------------------------------------------------- planner

@dataclass
class EndState:
    """One veth end as read from the kernel."""
    netns: Optional[str]                  # None: the host's namespace
    dev: str
    qdisc: Optional[RootQdisc]            # None: no root qdisc listed (default)
    up: bool

    @property
    def netem(self):
        if self.qdisc is not None and self.qdisc.owner == "nslab":
            return self.qdisc.netem
        return None

    def view(self):
        return {"netns": self.netns, "device": self.dev,
                "qdisc": self.qdisc.describe() if self.qdisc else "none",
                "netem": self.netem, "state": "up" if self.up else "down"}


@dataclass
class EndDesired:
    netem: Optional[dict]                 # canonical, None: no impairment
    up: bool


@dataclass
class LinkAction:
    """One change to one end; ``argv`` and ``undo`` are (tool, argv) lists, in order."""
    summary: str
    netns: Optional[str]
    argv: List[List[str]]
    undo: List[List[str]]


def _where(end):
    return "%s%s" % (end.dev, " in netns '%s'" % end.netns if end.netns else " (host)")


def keep_addresses_argv(dev):
    """A ``sh`` argv that sets the device's IPv6 keep_addr_on_down to 1 in the namespace it
    runs in (nothing when the kernel has no IPv6 settings for it)."""
    return ["sh", "-c", 'f=/proc/sys/net/ipv6/conf/"$1"/keep_addr_on_down; '
            '[ ! -e "$f" ] || echo 1 > "$f"', "sh", dev]


def plan_end(end, desired):
    """(actions, problems, warnings) that take one end from ``end`` to ``desired``.

    A foreign root qdisc is a problem when an impairment is wanted on that end (nslab
    would have to replace it) and a warning otherwise (nothing of nslab's to remove there).
    """
    actions, problems, warnings = [], [], []
    qdisc = end.qdisc
    owner = qdisc.owner if qdisc else "default"
    if owner == "foreign":
        sentence = ("device %s has a foreign root qdisc (%s) that nslab did not create; "
                    "remove it by hand (tc qdisc del dev %s root) to let nslab manage it"
                    % (_where(end), qdisc.describe(), end.dev))
        (problems if desired.netem is not None else warnings).append(sentence)
    elif owner == "nslab" and qdisc.netem and "unmanaged" in qdisc.netem:
        problems.append("device %s: nslab's netem qdisc has a %s option nslab never sets; "
                        "remove it by hand" % (_where(end), qdisc.netem["unmanaged"]))
    if problems:
        return actions, problems, warnings
    current = end.netem
    want = desired.netem
    tc_undo_add = [["tc"] + netem_argv(end.dev, current)] if current else []
    if owner == "nslab" and want is None:
        actions.append(LinkAction("remove netem %s from %s" % (_show(current), _where(end)),
                                  end.netns, [["tc"] + delete_argv(end.dev)], tc_undo_add))
    elif want is not None and owner != "nslab":
        actions.append(LinkAction("add netem %s to %s" % (_show(want), _where(end)),
                                  end.netns, [["tc"] + netem_argv(end.dev, want)],
                                  [["tc"] + delete_argv(end.dev)]))
    elif want is not None and not netem_equal(current, want):
        summary = "change netem of %s from %s to %s" % (_where(end), _show(current), _show(want))
        undo = [["tc"] + delete_argv(end.dev)] + tc_undo_add
        if any(k in current and k not in want for k in STICKY_KEYS):
            argv = [["tc"] + delete_argv(end.dev), ["tc"] + netem_argv(end.dev, want)]
        else:
            argv = [["tc"] + netem_argv(end.dev, want, verb="change")]
        actions.append(LinkAction(summary, end.netns, argv, undo))
    if end.up != desired.up:
        state, old = ("up", "down") if desired.up else ("down", "up")
        # The kernel drops a device's IPv6 addresses when it goes down (IPv4 ones stay)
        # unless keep_addr_on_down is set; nslab_veth would add them back on every run.
        keep = [] if desired.up else [keep_addresses_argv(end.dev)]
        actions.append(LinkAction("set %s %s" % (_where(end), state), end.netns,
                                  keep + [["ip", "link", "set", "dev", end.dev, state]],
                                  [["ip", "link", "set", "dev", end.dev, old]]))
    return actions, problems, warnings


def _show(netem):
    if not netem:
        return "none"
    return " ".join("%s %s" % (k, netem[k]) for k in KEYS if k in netem)


def plan_link(node_end, peer_end, netem, state="up"):
    """(actions, problems, warnings) for one attachment (``node_end``, ``peer_end``: EndState).

    ``netem`` is the user's value (validated); its egress goes on the node's end, its
    ingress on the peer's end. ``state`` up/down applies to both ends.
    """
    normal = normalize_netem(netem)
    up = state != "down"
    actions, problems, warnings = [], [], []
    for end, want in ((node_end, normal["egress"]), (peer_end, normal["ingress"])):
        more, trouble, notes = plan_end(end, EndDesired(netem=want, up=up))
        actions.extend(more)
        problems.extend(trouble)
        warnings.extend(notes)
    if problems:
        return [], problems, warnings
    return actions, [], warnings


# ---------------------------------------------------------------------------- apply

def _undo(run, action):
    """Run an action's undo commands, all of them; a ``qdisc del`` followed by more
    commands may fail (the half-done action had already removed the qdisc) without being
    an error. Raises the first real failure once every command was tried."""
    failures = []
    for index, argv in enumerate(action.undo):
        try:
            run(action.netns, argv)
        except CommandError as err:
            if not (argv[1:3] == ["qdisc", "del"] and index + 1 < len(action.undo)):
                failures.append(err)
    if failures:
        raise failures[0]


def apply_actions(run, actions):
    """Run ``actions`` (one entry's) in order through ``run(netns, argv)``, which raises
    CommandError. On a failure, undo what was done, newest first (the failing action too
    when part of it ran: it is recorded once its first command ran), and raise ApplyError
    naming what was done and undone."""
    log = UndoLog()
    for action in actions:
        try:
            for index, argv in enumerate(action.argv):
                run(action.netns, argv)
                if index == 0:
                    log.record(action.summary, functools.partial(_undo, run, action))
        except CommandError as err:
            raise log.fail(err)
    return list(actions)

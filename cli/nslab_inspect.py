#!/usr/bin/env python3
"""``./nslab inspect [LAB] [--json]``: what runs in every lab on this host (or in one).

Read only through nslab's one reader (module_utils/nslab_labview.py, nslab_info's
``labs``): the kernel and nslab's records, never the topology file; nothing changes.

One row per node: its lab, host, state, init pid, addresses, memory / pids / CPU used
against the node's limits (its cgroup's files), and uptime. A lab over several hosts
keeps its plan record on each host (``/run/nslab/<lab>/plan.json``); its nodes on this
host are read from the kernel, the others come from that record with their host and the
state ``elsewhere``: placed on another host, whose kernel is not read from here. A node the
record places on this host (the host of the nodes found here) that is not here is ``absent``.

``--json`` prints one object, for scripts (``version`` changes if its shape does)::

    {"version": 1,
     "labs": {LAB: {"nodes": [NODE, ...], "bridges": [NAME, ...], "leftovers": [TEXT, ...]}}}
    NODE = {"name", "host", "here": bool,
            "state": "running" | "stopped" | "elsewhere" | "absent",
            "pid": int | null, "addresses": ["10.0.0.2/24", ...], "netns", "cgroup",
            "limits": {"memory": bytes | "max" | null, "pids": int | "max" | null,
                       "cpus": float | "max" | null},
            "usage": {"memory_bytes", "memory_peak_bytes", "oom_kills", "pids", "cpu_usec",
                      "cpu_periods", "cpu_throttled_periods", "cpu_throttled_usec"} | null,
            "started_at": epoch seconds | null, "uptime_seconds": float | null}

A lab that does not exist, or a bad name: one line on stderr, exit status 1 (2 for usage).
"""

import json
import socket
import sys
import time

import nslab_cli

JSON_VERSION = 1
LIMIT_KEYS = ("memory", "pids", "cpus")
ELSEWHERE = "elsewhere"
ABSENT = "absent"


class Refused(Exception):
    """One line for the user: what does not exist or cannot be done, and why."""


def name_problem(lab=None, node=None):
    """The first of ``lab``/``node`` that nslab would not accept as a name (nslab_validate,
    as the modules check them), as one line; None if both are fine. Checked before any path
    is built from them."""
    nslab_cli.use_module_utils()
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
        lab_problem, object_name_problem)
    return ((lab is not None and lab_problem("LAB", lab))
            or (node is not None and object_name_problem("NODE", node, "node")) or None)


def running_node(lab, node):
    """The reader's view of ``node`` if it runs on this host; Refused (one line) if the lab
    or the node is not here, or the node is not running."""
    view = nslab_cli.read_labs(lab).get(lab) or {}
    if not lab_exists(view):
        raise Refused("no lab '%s' on this host" % lab)
    containers = dict((c["name"], c) for c in view.get("containers") or [])
    if node not in containers:
        raise Refused("no node '%s' in lab '%s' on this host" % (node, lab))
    if containers[node]["state"] != "running":
        raise Refused("node '%s' of lab '%s' is %s" % (node, lab, containers[node]["state"]))
    return containers[node], view


def usage(message):
    sys.stderr.write("nslab inspect: %s\nusage: ./nslab inspect [LAB] [--json]\n" % message)
    return 2


def lab_exists(view):
    """Whether anything of the lab is on this host: a record, a namespace, a cgroup, a
    container, a jail or a link tagged for it."""
    return any(view.get(key) for key in ("containers", "namespaces", "cgroups", "jails",
                                         "bridges", "veths", "vxlans", "record"))


def node_rows(view, now, this_host):
    """The lab's nodes: this host's from the kernel, the others' from the plan record."""
    record = view.get("record") or {}
    placed = dict((name, (node or {}).get("host"))
                  for name, node in (record.get("nodes") or {}).items())
    cgroups = dict((c["name"], c) for c in view.get("cgroups") or [])
    rows = []
    for container in view.get("containers") or []:
        limits = (cgroups.get(container.get("cgroup")) or {}).get("limits") or {}
        started = container.get("started_at")
        rows.append({
            "name": container["name"], "host": placed.get(container["name"]) or this_host,
            "here": True, "state": container["state"], "pid": container.get("pid"),
            "addresses": sorted(container.get("addresses") or []),
            "netns": container.get("netns"), "cgroup": container.get("cgroup"),
            "limits": dict((k, limits.get(k)) for k in LIMIT_KEYS),
            "usage": container.get("usage"),
            "started_at": started,
            "uptime_seconds": round(now - started, 1) if started else None})
    here = set(r["name"] for r in rows)
    # the record's name for this host: the one it gives the nodes found here
    this_hosts = set(placed.get(name) for name in here) - {None}
    for name, node in sorted((record.get("nodes") or {}).items()):
        if name in here:
            continue
        host = (node or {}).get("host")
        rows.append({
            "name": name, "host": host, "here": host in this_hosts,
            "state": ABSENT if host in this_hosts else ELSEWHERE,
            "pid": None, "addresses": sorted(((node or {}).get("addresses") or {}).values()),
            "netns": None, "cgroup": None, "limits": dict((k, None) for k in LIMIT_KEYS),
            "usage": None, "started_at": None, "uptime_seconds": None})
    return sorted(rows, key=lambda r: r["name"])


def inspect(labs, now=None, this_host=None):
    """The JSON document for ``labs`` ({lab: nslab_labview view})."""
    now = time.time() if now is None else now
    this_host = this_host or socket.gethostname()
    return {"version": JSON_VERSION, "labs": dict(
        (lab, {"nodes": node_rows(view, now, this_host),
               "bridges": [b["name"] for b in view.get("bridges") or []],
               "leftovers": list(view.get("leftovers") or [])})
        for lab, view in sorted(labs.items()))}


def human_bytes(value):
    if value is None:
        return "-"
    if not isinstance(value, int):
        return str(value)
    for unit in ("", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            if unit == "" or value >= 100 or value == int(value):
                return "%d%s" % (value, unit)
            return "%.1f%s" % (value, unit)
        value /= 1024.0
    return str(value)


def duration(seconds):
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return "%dd%02dh" % (days, hours)
    if hours:
        return "%dh%02dm" % (hours, minutes)
    return "%dm%02ds" % (minutes, seconds) if minutes else "%ds" % seconds


def used_of(used, limit):
    return "%s/%s" % (used, "max" if limit in (None, "max") else limit)


def table_row(lab, node):
    use = node["usage"] or {}
    limits = node["limits"]
    if node["usage"] is not None:
        memory = used_of(human_bytes(use.get("memory_bytes")), human_bytes(limits["memory"])
                         if isinstance(limits["memory"], int) else limits["memory"])
        pids = used_of("-" if use.get("pids") is None else use["pids"], limits["pids"])
        cpu_time = "-" if use.get("cpu_usec") is None else "%.2fs" % (use["cpu_usec"] / 1e6)
        cpu = used_of(cpu_time, limits["cpus"] if limits["cpus"] in (None, "max")
                      else "%gcpu" % limits["cpus"])
    else:
        memory = pids = cpu = "-"
    return [lab, node["name"], node["host"] or "?", node["state"],
            "-" if node["pid"] is None else str(node["pid"]),
            ",".join(node["addresses"]) or "-", memory, pids, cpu,
            duration(node["uptime_seconds"])]


HEADER = ["LAB", "NODE", "HOST", "STATE", "PID", "ADDRESSES", "MEMORY", "PIDS", "CPU", "UPTIME"]


def render_table(document):
    rows = [HEADER] + [table_row(lab, node) for lab, view in document["labs"].items()
                       for node in view["nodes"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for lab, view in document["labs"].items():
        if any(n["state"] == ELSEWHERE for n in view["nodes"]):
            lines.append("%s: nodes '%s' run on other hosts (from the lab's plan record; their "
                         "state is read there)" % (lab, ELSEWHERE))
        lines += ["%s: leftover: %s" % (lab, text) for text in view["leftovers"]]
    return "\n".join(lines) + "\n"


def main(args):
    as_json = "--json" in args
    rest = [a for a in args if a != "--json"]
    if any(a.startswith("-") for a in rest) or len(rest) > 1:
        return usage("unexpected argument(s): %s" % " ".join(rest))
    lab = rest[0] if rest else None
    problem = name_problem(lab=lab)
    if problem:
        sys.stderr.write("nslab inspect: %s\n" % problem)
        return 1
    labs = nslab_cli.read_labs(lab)
    if lab is not None and not lab_exists(labs.get(lab) or {}):
        sys.stderr.write("nslab inspect: no lab '%s' on this host\n" % lab)
        return 1
    document = inspect(labs)
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    elif not document["labs"]:
        sys.stdout.write("no nslab lab on this host\n")
    else:
        sys.stdout.write(render_table(document))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

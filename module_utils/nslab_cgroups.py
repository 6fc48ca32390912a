# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cgroups under nslab's own subtree: layout, vocabulary, read, plan, apply.

Layout. A host mounts each cgroup controller in exactly one hierarchy: cgroup v1 mounts one
per controller (or a few co-mounted, like ``cpu,cpuacct``), cgroup v2 one unified tree. The
layout is read from ``/proc/self/mountinfo`` (v1 mounts list their controllers in the super
options) and the v2 root's ``cgroup.controllers``; it can mix both (v1 controllers and a v2
mount holding the rest). A cgroup ``<name>`` of lab ``<lab>`` is the directory
``nslab/<lab>/<name>`` in every hierarchy that holds one of nslab's controllers, never
anywhere else.

Vocabulary. Users set limits once (``memory: 256M``, ``cpus: 1.5``, ``pids: 128``...); this
module reads and writes them per hierarchy version (``memory.max`` on v2,
``memory.limit_in_bytes`` on v1...). Values are compared in that vocabulary ("canonical":
bytes or ``max``, CPUs as a float, CPU lists as ``0-1,3``). The kernel rounds some values
(memory to pages, ``cpu.shares`` to its range): after writing, the value the kernel reports
is recorded next to the one asked for, and a rerun that asks the same again sees no change.

Ownership. cgroupfs holds no reliable tag, so ``/run/nslab/<lab>/cgroups.json`` records each
cgroup nslab made and the inode of its directory in every hierarchy. A directory under
``nslab/<lab>/`` without a record (or with another inode) is not nslab's: it is never changed
or deleted.
When the record file itself is missing (the lab's state was lost), nslab_adopt rebuilds
the entries of the directories a task names under ``nslab/<lab>/`` from the kernel.

Every function that touches the file system takes its paths from a ``Layout`` or a
``CgroupStore``, so unit tests run them over a constructed tree.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ansible.module_utils.nslab_errors import ApplyError, NslabError, OwnershipError
from ansible.module_utils.nslab_namespaces import release_private_root
from ansible.module_utils.nslab_owner import (lab_dir, read_json, remove_empty_dirs,
                                              write_json_atomic)
from ansible.module_utils.nslab_paths import CGROUP_SUBTREE, STATE_ROOT

MAX = "max"
CPU_PERIOD_US = 100000
PID_MAX_LIMIT = 4194304
# v1 reports "no memory limit" as LONG_MAX rounded down to a page; anything this large is it.
V1_UNLIMITED_BYTES = 1 << 62

# nslab's logical controllers. "io" is v1's "blkio"; "cpuacct" (CPU usage) is its own v1
# controller and part of every v2 cgroup (cpu.stat). "devices" is v1 only (v2 filters devices
# with a BPF program, nslab_devices): its directory is made here, its rules set by
# nslab_devices when a container starts, with no limit key of its own.
CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "io", "devices")
V1_NAMES = {"io": "blkio"}
V2_NAMES = ("memory", "cpu", "cpuset", "pids", "io")

# vocabulary key -> logical controller
KEY_CONTROLLER = {
    "memory": "memory", "memory_high": "memory", "swap": "memory",
    "cpus": "cpu", "cpu_weight": "cpu",
    "cpuset": "cpuset", "cpuset_mems": "cpuset",
    "pids": "pids",
    "io": "io", "io_weight": "io",
}
KEYS = list(KEY_CONTROLLER)
IO_LIMITS = ("read_bps", "write_bps", "read_iops", "write_iops")
V2_IO_NAMES = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops",
               "write_iops": "wiops"}
V1_IO_FILES = {"read_bps": "blkio.throttle.read_bps_device",
               "write_bps": "blkio.throttle.write_bps_device",
               "read_iops": "blkio.throttle.read_iops_device",
               "write_iops": "blkio.throttle.write_iops_device"}

# What cgroup v1 cannot express, and why (shown to the user).
V1_UNSUPPORTED = {
    "memory_high": "cgroup v1 has no memory.high (memory.soft_limit_in_bytes only applies "
                   "under host-wide memory pressure)",
    "io_weight": "cgroup v1 has no io.weight (blkio weights only work with the BFQ or CFQ "
                 "scheduler, which nslab does not manage)",
}

# Interface files read from a cgroup directory, per version and logical controller.
LEAF_FILES = {
    1: {
        "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
                   "memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.oom_control"],
        "cpu": ["cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares", "cpu.stat"],
        "cpuacct": ["cpuacct.usage"],
        "cpuset": ["cpuset.cpus", "cpuset.mems"],
        "pids": ["pids.max", "pids.current"],
        "io": list(V1_IO_FILES.values()),
        "devices": ["devices.list"],
    },
    2: {
        "memory": ["memory.max", "memory.high", "memory.swap.max", "memory.current",
                   "memory.peak", "memory.events"],
        "cpu": ["cpu.max", "cpu.weight"],
        "cpuacct": ["cpu.stat"],
        "cpuset": ["cpuset.cpus", "cpuset.mems"],
        "pids": ["pids.max", "pids.current"],
        "io": ["io.max", "io.weight"],
        "devices": [],
    },
}
RESERVED_NAMES = ("tasks", "notify_on_release", "release_agent")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_CPULIST_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
MAX_DEPTH = 8


class CgroupError(NslabError):
    """A cgroup operation failed or cannot be done on this host."""


class CgroupBusyError(CgroupError):
    """A cgroup to delete still has processes or child cgroups."""

    def __init__(self, message, pids=(), children=()):
        self.pids, self.children = list(pids), list(children)
        super().__init__(message)

    def details(self):
        return {"pids": self.pids, "children": self.children}


# --- layout -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Hierarchy:
    version: int
    mount: str
    controllers: Tuple[str, ...]        # nslab's logical controllers it holds

    def path(self, relpath):
        return os.path.join(self.mount, relpath)


@dataclass
class Layout:
    hierarchies: List[Hierarchy]
    kind: str                           # v1, v2 or hybrid (v1 controllers beside a v2 mount)
    cpus: str = ""                      # CPUs and memory nodes a cgroup may use
    mems: str = ""

    def hierarchy_of(self, controller):
        for hierarchy in self.hierarchies:
            if controller in hierarchy.controllers:
                return hierarchy
        return None

    def view(self):
        return {"kind": self.kind, "controllers": dict(
            (c, {"version": h.version, "mount": h.mount})
            for c in CONTROLLERS for h in [self.hierarchy_of(c)] if h)}


def read_text(path):
    with open(path) as handle:
        return handle.read().strip()


def read_optional(path, default=None):
    try:
        return read_text(path)
    except (FileNotFoundError, NotADirectoryError):
        return default


def detect_layout(entries):
    """The hierarchies holding nslab's controllers, from parsed mountinfo entries."""
    v1, taken, v2_mount, has_v2 = [], set(), None, False
    for entry in entries:
        if entry.fstype == "cgroup":
            names = entry.super_options.split(",")
            held = tuple(c for c in CONTROLLERS if V1_NAMES.get(c, c) in names
                         and c not in taken)
            if held:
                v1.append(Hierarchy(1, entry.mount_point, held))
                taken.update(held)
        elif entry.fstype == "cgroup2" and v2_mount is None:
            v2_mount, has_v2 = entry.mount_point, True
    hierarchies = list(v1)
    if v2_mount:
        enabled = (read_optional(os.path.join(v2_mount, "cgroup.controllers")) or "").split()
        held = tuple(c for c in CONTROLLERS if c not in taken
                     and (c in enabled or c == "cpuacct"))
        # A v2 mount beside v1 controllers is only used if it holds a controller besides
        # cpu.stat; without v1 mounts it is the host's cgroup tree, controllers or not.
        if [c for c in held if c != "cpuacct"] or not v1:
            hierarchies.append(Hierarchy(2, v2_mount, held))
    if not hierarchies:
        raise CgroupError("no cgroup hierarchy is mounted (no cgroup or cgroup2 entry in "
                          "/proc/self/mountinfo)")
    kind = "hybrid" if v1 and has_v2 else ("v1" if v1 else "v2")
    layout = Layout(hierarchies, kind)
    cpuset = layout.hierarchy_of("cpuset")
    if cpuset:
        files = (("cpuset.effective_cpus", "cpuset.effective_mems") if cpuset.version == 1
                 else ("cpuset.cpus.effective", "cpuset.mems.effective"))
        layout.cpus, layout.mems = (read_optional(cpuset.path(f), "") for f in files)
    return layout


# --- vocabulary: parsing user input -------------------------------------------------------

def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def parse_size(option, value, minimum=1):
    """'256M', '1.5G', 1048576 or 'max' -> (bytes or 'max', problem)."""
    if value == MAX:
        return MAX, None
    size = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        match = _SIZE_RE.match(value.strip())
        if match:
            size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size is None or size < minimum:
        return None, ("%s: size %r is invalid; expected %s bytes as an integer or a number "
                      "with K, M, G or T (powers of 1024) like 256M or 1.5G, or 'max'" % (
                          option, value, "at least %d" % minimum if minimum else "0 or more"))
    return size, None


def parse_count(option, value, low=1, high=PID_MAX_LIMIT):
    if value == MAX:
        return MAX, None
    number = _number(value)
    if number is None or number != int(number) or not low <= number <= high:
        return None, "%s: %r is invalid; expected an integer from %d to %d, or 'max'" % (
            option, value, low, high)
    return int(number), None


def parse_cpus(option, value):
    """CPUs as a float, kept at the 10 µs resolution the quota is written with."""
    if value == MAX:
        return MAX, None
    number = _number(value)
    if number is None or number < 0.01:
        return None, ("%s: %r is invalid; expected a number of CPUs of at least 0.01 "
                      "(like 0.5 or 2), or 'max'" % (option, value))
    return round(number * CPU_PERIOD_US) / CPU_PERIOD_US, None


def parse_weight(option, value):
    if value is None or isinstance(value, bool) or not 1 <= value <= 10000:
        return None, "%s: weight %r is out of range; expected 1-10000 (default 100)" % (
            option, value)
    return value, None


def cpulist_members(text):
    members = set()
    for part in filter(None, (text or "").split(",")):
        low, _sep, high = part.partition("-")
        members.update(range(int(low), int(high or low) + 1))
    return members


def format_cpulist(members):
    """Sorted ranges, the way the kernel prints them: 0-3,6."""
    ranges, ordered = [], sorted(members)
    for number in ordered:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ",".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in ranges)


def parse_cpulist(option, value, what="CPUs"):
    text = str(value).replace(" ", "") if isinstance(value, (str, int)) else ""
    if not _CPULIST_RE.match(text) or any(
            int(a) > int(b) for a, _s, b in (p.partition("-") for p in text.split(",")) if b):
        return None, "%s: %r is not a list of %s; expected numbers and ranges like 0-1,3" % (
            option, value, what)
    return format_cpulist(cpulist_members(text)), None


def block_device(value, sys_root="/sys"):
    """'8:0' or '/dev/sda' -> ('8:0', problem): a whole disk that exists on this host."""
    if isinstance(value, str) and value.startswith("/dev/"):
        try:
            info = os.stat(value)
        except OSError as err:
            return None, "cannot stat it (%s)" % err.strerror
        if not stat.S_ISBLK(info.st_mode):
            return None, "it is not a block device"
        devno = "%d:%d" % (os.major(info.st_rdev), os.minor(info.st_rdev))
    elif isinstance(value, str) and re.match(r"^\d+:\d+$", value):
        devno = value
    else:
        return None, "expected MAJOR:MINOR like 8:0 or a /dev path"
    sysdir = os.path.join(sys_root, "dev", "block", devno)
    if not os.path.exists(sysdir):
        return None, "no block device %s on this host (see lsblk)" % devno
    if os.path.exists(os.path.join(sysdir, "partition")):
        return None, "%s is a partition; the kernel limits I/O of whole disks" % devno
    return devno, None


def parse_io(where, entries, resolve=block_device):
    """The io option -> ({device: {limit: value}}, problems). Devices without any limit
    are left out: the kernel lists none for them either."""
    devices, problems = {}, []
    for index, entry in enumerate(entries):
        option = "%sio[%d]." % (where, index)
        devno, problem = resolve(entry.get("device"))
        if problem:
            problems.append("%sdevice: %r is invalid: %s" % (option, entry.get("device"),
                                                             problem))
            continue
        if devno in devices:
            problems.append("%sdevice: %s is listed twice" % (option, devno))
            continue
        limits = {}
        for name in IO_LIMITS:
            raw = entry.get(name)
            if raw is None:
                limits[name] = MAX
            elif name.endswith("_bps"):
                limits[name], problem = parse_size(option + name, raw)
                problems.append(problem)
            else:
                limits[name], problem = parse_count(option + name, raw, high=1 << 40)
                problems.append(problem)
        if any(v != MAX for v in limits.values()):
            devices[devno] = limits
        else:
            devices.setdefault(devno, None)
    return dict((d, l) for d, l in devices.items() if l), [p for p in problems if p]


def parse_limits(item, where="", resolve=block_device):
    """Limits a user set on one cgroup -> ({key: canonical value}, problems)."""
    parsers = {
        "memory": parse_size, "memory_high": parse_size,
        "swap": lambda o, v: parse_size(o, v, minimum=0),
        "cpus": parse_cpus, "cpu_weight": parse_weight, "io_weight": parse_weight,
        "pids": parse_count,
        "cpuset": parse_cpulist,
        "cpuset_mems": lambda o, v: parse_cpulist(o, v, "memory nodes"),
    }
    limits, problems = {}, []
    for key, parse in parsers.items():
        if item.get(key) is not None:
            limits[key], problem = parse(where + key, item[key])
            problems.append(problem)
    if item.get("io") is not None:
        limits["io"], io_problems = parse_io(where, item["io"], resolve)
        problems.extend(io_problems)
    return limits, [p for p in problems if p]


def name_problem(option, value):
    """A cgroup name is a path below nslab/<lab>/: segments of letters, digits, - and _."""
    if not isinstance(value, str) or not value:
        return "%s: cgroup name %r is empty; expected a path like web or web/apt101" % (
            option, value)
    segments = value.split("/")
    if (len(segments) > MAX_DEPTH or not all(_SEGMENT_RE.match(s) for s in segments)
            or any(s in RESERVED_NAMES for s in segments)):
        return ("%s: cgroup name '%s' is invalid; expected 1-%d segments separated by '/', "
                "each 1-64 characters of A-Z, a-z, 0-9, '-' and '_' starting with a letter or "
                "digit (no '..', no leading '/', not %s)" % (
                    option, value, MAX_DEPTH, ", ".join(RESERVED_NAMES)))
    return None


def layout_problems(where, limits, layout):
    """Limits this host cannot enforce, each named with its value and the reason."""
    problems = []
    for key, value in limits.items():
        hierarchy = layout.hierarchy_of(KEY_CONTROLLER[key])
        if hierarchy is None:
            problems.append(
                "%s%s: %s cannot be enforced on this host: no %s controller is mounted "
                "(cgroup layout %s); expected that controller, or leave %s unset" % (
                    where, key, _show(value), KEY_CONTROLLER[key], layout.kind, key))
        elif hierarchy.version == 1 and key in V1_UNSUPPORTED:
            problems.append(
                "%s%s: %s cannot be enforced on this host: the %s controller is cgroup v1 "
                "(%s) and %s; expected a cgroup v2 host, or leave %s unset" % (
                    where, key, _show(value), KEY_CONTROLLER[key], hierarchy.mount,
                    V1_UNSUPPORTED[key], key))
    memory = layout.hierarchy_of("memory")
    if "swap" in limits and memory and memory.version == 1 and limits.get("memory") in (
            None, MAX):
        problems.append(
            "%sswap: %s needs memory set to a size on this host: cgroup v1 limits memory "
            "and swap together (memory.memsw.limit_in_bytes = memory + swap)" % (
                where, _show(limits["swap"])))
    for key, available, what in (("cpuset", layout.cpus, "CPUs"),
                                 ("cpuset_mems", layout.mems, "memory nodes")):
        extra = cpulist_members(limits.get(key)) - cpulist_members(available)
        if key in limits and available and extra:
            problems.append("%s%s: %s %s are not available on this host; expected a subset "
                            "of %s" % (where, key, what, format_cpulist(extra), available))
    return problems


def _show(value):
    return "'%s'" % value if not isinstance(value, dict) else "%s" % sorted(value)


# --- vocabulary: reading and writing interface files ----------------------------------------

def _int_or_max(text):
    return MAX if text == MAX else int(text)


def _v1_bytes(text):
    size = int(text)
    return MAX if size >= V1_UNLIMITED_BYTES or size < 0 else size


def _v1_shares(weight):
    """cpu.weight (1-10000, default 100) -> cpu.shares (default 1024), linearly."""
    return max(2, min(262144, int(round(weight * 1024 / 100.0))))


def _keyed(text):
    """'key value' lines (cpu.stat, memory.events, memory.oom_control) -> {key: int}."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _v2_io_max(text):
    devices = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields:
            continue
        values = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        limits = dict((name, _int_or_max(values.get(short, MAX)))
                      for name, short in V2_IO_NAMES.items())
        if any(v != MAX for v in limits.values()):
            devices[fields[0]] = limits
    return devices


def _v1_io(files):
    devices = {}
    for name, filename in V1_IO_FILES.items():
        for line in (files.get(filename) or "").splitlines():
            fields = line.split()
            if len(fields) == 2 and int(fields[1]) > 0:
                devices.setdefault(fields[0], dict((n, MAX) for n in IO_LIMITS))
                devices[fields[0]][name] = int(fields[1])
    return devices


def _render(value):
    return MAX if value == MAX else str(value)


class V2Files:
    """nslab's vocabulary on cgroup v2 interface files (Documentation/admin-guide/cgroup-v2)."""

    version = 2
    simple = {"memory": "memory.max", "memory_high": "memory.high", "swap": "memory.swap.max",
              "pids": "pids.max", "cpuset": "cpuset.cpus", "cpuset_mems": "cpuset.mems",
              "cpu_weight": "cpu.weight"}

    def needs(self, key):
        return {"cpus": ["cpu.max"], "io": ["io.max"], "io_weight": ["io.weight"]}.get(
            key, [self.simple.get(key)])

    def read(self, key, files):
        """Canonical value of ``key`` from a cgroup's files, or None when not readable."""
        if any(f not in files for f in self.needs(key)):
            return None
        if key in ("cpuset", "cpuset_mems"):
            return format_cpulist(cpulist_members(files[self.simple[key]]))
        if key in self.simple:
            return _int_or_max(files[self.simple[key]])
        if key == "cpus":
            quota, _sep, period = files["cpu.max"].partition(" ")
            return MAX if quota == MAX else round(int(quota) / int(period or CPU_PERIOD_US), 5)
        if key == "io":
            return _v2_io_max(files["io.max"])
        return _keyed(files["io.weight"]).get("default")          # io_weight

    def writes(self, key, value, files, desired):
        """[(file, text, undo text or None)] that set ``key`` to ``value``."""
        if key in self.simple:
            name = self.simple[key]
            return [(name, _render(value), files.get(name))]
        if key == "cpus":
            quota = MAX if value == MAX else str(int(round(value * CPU_PERIOD_US)))
            return [("cpu.max", "%s %d" % (quota, CPU_PERIOD_US), files.get("cpu.max"))]
        if key == "io_weight":
            old = _keyed(files.get("io.weight")).get("default")
            return [("io.weight", "default %d" % value,
                     None if old is None else "default %d" % old)]
        old = _v2_io_max(files.get("io.max"))
        return [("io.max", self._io_line(device, value.get(device)),
                 self._io_line(device, old.get(device)) if "io.max" in files else None)
                for device in sorted(set(value) | set(old))
                if value.get(device) != old.get(device)]

    @staticmethod
    def _io_line(device, limits):
        limits = limits or {}
        return " ".join([device] + ["%s=%s" % (short, _render(limits.get(name, MAX)))
                                    for name, short in V2_IO_NAMES.items()])

    def usage(self, files):
        memory, cpu, events = files.get("memory", {}), files.get("cpuacct", {}), None
        stat_ = _keyed(cpu.get("cpu.stat"))
        if "memory.events" in memory:
            events = _keyed(memory["memory.events"])
        return {
            "memory_bytes": _opt_int(memory.get("memory.current")),
            "memory_peak_bytes": _opt_int(memory.get("memory.peak")),
            "oom_kills": events.get("oom_kill") if events else None,
            "pids": _opt_int(files.get("pids", {}).get("pids.current")),
            "cpu_usec": stat_.get("usage_usec"),
            "cpu_periods": stat_.get("nr_periods"),
            "cpu_throttled_periods": stat_.get("nr_throttled"),
            "cpu_throttled_usec": stat_.get("throttled_usec"),
        }


class V1Files:
    """nslab's vocabulary on cgroup v1 interface files (Documentation/admin-guide/cgroup-v1)."""

    version = 1
    simple = {"pids": "pids.max", "cpuset": "cpuset.cpus", "cpuset_mems": "cpuset.mems"}

    def needs(self, key):
        return {"memory": ["memory.limit_in_bytes"],
                "swap": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"],
                "cpus": ["cpu.cfs_quota_us", "cpu.cfs_period_us"],
                "cpu_weight": ["cpu.shares"],
                "io": list(V1_IO_FILES.values())}.get(key, [self.simple.get(key)])

    def read(self, key, files):
        if key in V1_UNSUPPORTED or any(f not in files for f in self.needs(key)):
            return None
        if key in ("cpuset", "cpuset_mems"):
            return format_cpulist(cpulist_members(files[self.simple[key]]))
        if key == "pids":
            return _int_or_max(files["pids.max"])
        if key == "memory":
            return _v1_bytes(files["memory.limit_in_bytes"])
        if key == "swap":
            memory = _v1_bytes(files["memory.limit_in_bytes"])
            both = _v1_bytes(files["memory.memsw.limit_in_bytes"])
            return MAX if MAX in (memory, both) else both - memory
        if key == "cpus":
            quota = int(files["cpu.cfs_quota_us"])
            return MAX if quota < 0 else round(quota / int(files["cpu.cfs_period_us"]), 5)
        if key == "cpu_weight":
            return int(round(int(files["cpu.shares"]) * 100 / 1024.0))
        return _v1_io(files)                                        # io

    def writes(self, key, value, files, desired):
        if key in self.simple:
            name = self.simple[key]
            return [(name, _render(value), files.get(name))]
        if key == "memory":
            return self._memory_writes(value, files, desired)
        if key == "swap":
            return [self._memsw_write(desired["memory"], value, files)]
        if key == "cpus":
            quota = "-1" if value == MAX else str(int(round(value * CPU_PERIOD_US)))
            return [("cpu.cfs_period_us", str(CPU_PERIOD_US), files.get("cpu.cfs_period_us")),
                    ("cpu.cfs_quota_us", quota, files.get("cpu.cfs_quota_us"))]
        if key == "cpu_weight":
            return [("cpu.shares", str(_v1_shares(value)), files.get("cpu.shares"))]
        old = _v1_io(files)
        out = []
        for device in sorted(set(value) | set(old)):
            for name, filename in V1_IO_FILES.items():
                new_limit = (value.get(device) or {}).get(name, MAX)
                old_limit = (old.get(device) or {}).get(name, MAX)
                if new_limit != old_limit:
                    out.append((filename, "%s %s" % (device, 0 if new_limit == MAX else new_limit),
                                "%s %s" % (device, 0 if old_limit == MAX else old_limit)
                                if filename in files else None))
        return out

    @staticmethod
    def _memsw_write(memory, swap, files):
        """memory.memsw.limit_in_bytes is memory + swap (layout_problems made sure that
        memory is a size whenever swap is set)."""
        both = "-1" if swap == MAX else str(memory + swap)
        return ("memory.memsw.limit_in_bytes", both, files.get("memory.memsw.limit_in_bytes"))

    def _memory_writes(self, value, files, desired):
        """With swap set, memory + swap moves with memory. The kernel never lets
        memory.limit_in_bytes exceed memory.memsw.limit_in_bytes: when memory grows past the
        current memsw, memsw is raised first."""
        limit = ("memory.limit_in_bytes", "-1" if value == MAX else str(value),
                 files.get("memory.limit_in_bytes"))
        if "swap" not in desired:
            return [limit]
        both = self._memsw_write(value, desired["swap"], files)
        current_both = _v1_bytes(files.get("memory.memsw.limit_in_bytes") or "-1")
        if current_both != MAX and value > current_both:
            return [both, limit]
        return [limit, both]

    def usage(self, files):
        memory, cpu = files.get("memory", {}), files.get("cpu", {})
        stat_ = _keyed(cpu.get("cpu.stat"))
        usage_ns = _opt_int(files.get("cpuacct", {}).get("cpuacct.usage"))
        throttled_ns = stat_.get("throttled_time")
        return {
            "memory_bytes": _opt_int(memory.get("memory.usage_in_bytes")),
            "memory_peak_bytes": _opt_int(memory.get("memory.max_usage_in_bytes")),
            "oom_kills": _keyed(memory.get("memory.oom_control")).get("oom_kill")
            if "memory.oom_control" in memory else None,
            "pids": _opt_int(files.get("pids", {}).get("pids.current")),
            "cpu_usec": None if usage_ns is None else usage_ns // 1000,
            "cpu_periods": stat_.get("nr_periods"),
            "cpu_throttled_periods": stat_.get("nr_throttled"),
            "cpu_throttled_usec": None if throttled_ns is None else throttled_ns // 1000,
        }


def _opt_int(text):
    return None if text is None else int(text)


FILES = {1: V1Files(), 2: V2Files()}


# --- reading ----------------------------------------------------------------------------

@dataclass
class DirState:
    """One directory of one hierarchy, as the kernel shows it."""
    path: str
    exists: bool
    files: Dict[str, str] = field(default_factory=dict)
    inode: Optional[int] = None
    procs: List[int] = field(default_factory=list)
    children: List[str] = field(default_factory=list)


@dataclass
class CgroupState:
    name: str
    relpath: str                                    # nslab/<lab>/<name>
    chains: Dict[str, List[DirState]]               # mount -> its dirs, mount root first
    recorded: bool = False                          # nslab's record names it
    owned: bool = False                             # recorded, or a parent nslab made for one
    foreign: Optional[str] = None                   # why it is not nslab's
    settled: Dict[str, dict] = field(default_factory=dict)

    def leaf(self, hierarchy):
        return self.chains[hierarchy.mount][-1]

    @property
    def exists(self):
        return any(chain[-1].exists for chain in self.chains.values())

    @property
    def procs(self):
        return sorted(set(p for chain in self.chains.values() for p in chain[-1].procs))

    @property
    def children(self):
        return sorted(set(c for chain in self.chains.values() for c in chain[-1].children))


def cgroup_relpath(lab, name):
    return os.path.join(CGROUP_SUBTREE, lab, name)


def _read_files(directory, names):
    files = {}
    for name in names:
        text = read_optional(os.path.join(directory, name))
        if text is not None:
            files[name] = text
    return files


def _read_procs(directory):
    text = read_optional(os.path.join(directory, "cgroup.procs"), "")
    return sorted(int(p) for p in text.split())


def read_dir(hierarchy, path, leaf):
    if not os.path.isdir(path):
        return DirState(path, False)
    if leaf:
        names = [f for c in hierarchy.controllers for f in LEAF_FILES[hierarchy.version][c]]
        return DirState(path, True, _read_files(path, names), os.stat(path).st_ino,
                        _read_procs(path),
                        sorted(e.name for e in os.scandir(path) if e.is_dir()))
    names = ["cgroup.subtree_control"] if hierarchy.version == 2 else []
    if hierarchy.version == 1 and "cpuset" in hierarchy.controllers:
        names = ["cpuset.cpus", "cpuset.mems"]
    return DirState(path, True, _read_files(path, names))


def read_cgroup(layout, lab, name, record):
    """What the kernel shows of cgroup ``name`` of ``lab``, judged against nslab's record."""
    relpath = cgroup_relpath(lab, name)
    parts = relpath.split("/")
    chains = {}
    for hierarchy in layout.hierarchies:
        paths = [hierarchy.mount] + [hierarchy.path("/".join(parts[:i + 1]))
                                     for i in range(len(parts))]
        chains[hierarchy.mount] = [read_dir(hierarchy, p, p == paths[-1]) for p in paths]
    cgroups = record.get("cgroups", {})
    entry = cgroups.get(name)
    state = CgroupState(name, relpath, chains, settled=dict((entry or {}).get("settled", {})))
    state.recorded = entry is not None
    state.owned = entry is not None or any(n.startswith(name + "/") for n in cgroups)
    for hierarchy in layout.hierarchies:
        leaf = state.leaf(hierarchy)
        recorded = (entry or {}).get("inodes", {}).get(leaf.path)
        if leaf.exists and not state.owned:
            state.foreign = "not nslab's (no record in %s)" % record.get("_path", "the record")
        elif leaf.exists and recorded is not None and recorded != leaf.inode:
            state.foreign = ("a different cgroup than the one nslab made (%s has inode %d, "
                             "recorded %d)" % (leaf.path, leaf.inode, recorded))
    return state


def controller_files(layout, state):
    """{logical controller: {file: text}} of the cgroup's directories."""
    out = {}
    for controller in CONTROLLERS:
        hierarchy = layout.hierarchy_of(controller)
        if hierarchy:
            leaf = state.leaf(hierarchy)
            out[controller] = dict((f, t) for f, t in leaf.files.items()
                                   if f in LEAF_FILES[hierarchy.version][controller])
    return out


def read_limits(layout, state):
    """{key: canonical value} for every limit this host can read on the cgroup."""
    files, limits = controller_files(layout, state), {}
    for key, controller in KEY_CONTROLLER.items():
        hierarchy = layout.hierarchy_of(controller)
        if hierarchy:
            value = FILES[hierarchy.version].read(key, files[controller])
            if value is not None:
                limits[key] = value
    return limits


def read_usage(layout, state):
    by_version = {}
    for controller, files in controller_files(layout, state).items():
        by_version.setdefault(layout.hierarchy_of(controller).version, {})[controller] = files
    usage = dict((k, None) for k in FILES[2].usage({}))
    for version, files in sorted(by_version.items()):
        for key, value in FILES[version].usage(files).items():
            if value is not None:
                usage[key] = value
    return usage


def io_list(devices):
    return [dict(device=d, **limits) for d, limits in sorted((devices or {}).items())]


def limits_view(limits):
    return dict((k, io_list(v) if k == "io" else v) for k, v in limits.items())


def cgroup_view(layout, state):
    if not state.exists:
        return {"state": "absent", "path": state.relpath}
    paths = dict((c, state.leaf(h).path) for c in CONTROLLERS
                 for h in [layout.hierarchy_of(c)] if h)
    return {"state": "present", "path": state.relpath, "paths": paths,
            "limits": limits_view(read_limits(layout, state)), "procs": state.procs,
            "usage": read_usage(layout, state)}


# --- planning (pure) ------------------------------------------------------------------------

# Phases, applied in this order; deletions first, so a later failure never has to undo one,
# and processes last, because moving a process is not undone (see Op).
DELETE, CREATE, LIMIT, ATTACH = range(4)


@dataclass
class Op:
    """One file system step. ``undo`` restores the old text of a ``write``; ``mkdir`` is
    undone by rmdir, ``own`` by restoring the record. ``attach`` is not undone: putting a
    process back would mean writing into a cgroup nslab does not own."""
    kind: str               # mkdir, write, rmdir, rmdir_empty, kill, attach, own, disown
    path: str
    text: Optional[str] = None
    undo: Optional[str] = None
    key: Optional[str] = None


@dataclass
class CgroupSpec:
    name: str
    state: str = "present"
    limits: Dict[str, object] = field(default_factory=dict)
    procs: List[int] = field(default_factory=list)


@dataclass
class CgroupAction:
    summary: str
    phase: int
    name: str
    ops: List[Op] = field(default_factory=list)


def plan_cgroups(specs, states, layout, kill=False):
    """Pure: desired specs vs. read states -> CgroupActions in apply order."""
    deleting = set(s.name for s in specs if s.state == "absent")
    actions = []
    for spec in specs:
        state = states[spec.name]
        if state.foreign:
            raise OwnershipError("cgroup", state.relpath, state.foreign)
        if spec.state == "absent":
            actions.extend(_plan_delete(state, deleting, kill))
        else:
            actions.extend(_plan_create(state, layout))
            actions.extend(_plan_limits(spec, state, layout))
            actions.extend(_plan_attach(spec, state, layout))
    # Deepest deletions first: a parent goes after its children.
    actions.sort(key=lambda a: (a.phase, -a.name.count("/") if a.phase == DELETE else 0))
    return _without_repeated_steps(actions)


def _without_repeated_steps(actions):
    """Cgroups of one task share parents: each parent is made (and prepared) once."""
    seen = set()
    for action in actions:
        kept = []
        for op in action.ops:
            step = (op.kind, op.path, op.text)
            if op.kind in ("mkdir", "write") and op.key is None and step in seen:
                continue
            seen.add(step)
            kept.append(op)
        action.ops = kept
    return actions


def _plan_delete(state, deleting, kill):
    if not state.owned:
        return []
    children = [c for c in state.children if "%s/%s" % (state.name, c) not in deleting]
    if children:
        raise CgroupBusyError(
            "cgroup '%s' has child cgroups %s; delete them first (list them with state "
            "absent in the same task)" % (state.relpath, ", ".join(children)),
            children=children)
    pids = state.procs
    if pids and not kill:
        raise CgroupBusyError(
            "cgroup '%s' still has processes %s; stop them first, or set kill=true to "
            "SIGKILL them" % (state.relpath, ", ".join(map(str, pids))), pids=pids)
    leaves = [chain[-1].path for chain in state.chains.values() if chain[-1].exists]
    ops = [Op("kill", path) for path in leaves if pids]
    ops += [Op("rmdir", path) for path in leaves]
    # Parents nslab made on the way (nslab/<lab>/web for web/apt101), then nslab/<lab> and
    # nslab: removed only if empty, and never a parent the record names as a cgroup (its
    # name travels in ``text``; None for nslab/<lab> and nslab).
    parts = state.relpath.split("/")
    for chain in state.chains.values():
        for depth in range(len(chain) - 2, 0, -1):
            ops.append(Op("rmdir_empty", chain[depth].path, "/".join(parts[2:depth]) or None))
    ops.append(Op("disown", state.name))
    summary = "delete cgroup '%s'" % state.relpath
    if pids:
        summary = "kill %d process%s (%s) in cgroup '%s' and delete it" % (
            len(pids), "es" if len(pids) > 1 else "", ", ".join(map(str, pids)), state.relpath)
    return [CgroupAction(summary, DELETE, state.name, ops)]


def _plan_create(state, layout):
    ops, created = [], []
    for hierarchy in layout.hierarchies:
        chain = state.chains[hierarchy.mount]
        if hierarchy.version == 2:
            ops.extend(_v2_enable_controllers(hierarchy, chain))
        else:
            ops.extend(_v1_prepare(hierarchy, chain))
        if not chain[-1].exists:
            created.append("/".join(V1_NAMES.get(c, c) for c in hierarchy.controllers)
                           if hierarchy.version == 1 else "cgroup2")
    if not ops and state.recorded:
        return []
    ops.append(Op("own", state.name))
    if created:
        summary = "create cgroup '%s' (%s)" % (state.relpath, ", ".join(created))
    elif len(ops) > 1:
        summary = "prepare the parents of cgroup '%s'" % state.relpath
    else:
        summary = "record cgroup '%s', which nslab made as a parent" % state.relpath
    return [CgroupAction(summary, CREATE, state.name, ops)]


def _v2_enable_controllers(hierarchy, chain):
    """mkdir what is missing; every dir above the cgroup passes nslab's controllers down
    (cgroup.subtree_control), the mount root included."""
    wanted = [c for c in V2_NAMES if c in hierarchy.controllers]
    ops = []
    for depth, directory in enumerate(chain):
        if not directory.exists:
            ops.append(Op("mkdir", directory.path))
        if depth == len(chain) - 1:
            break
        enabled = set(directory.files.get("cgroup.subtree_control", "").split())
        missing = [c for c in wanted if c not in enabled]
        if missing:
            ops.append(Op("write", os.path.join(directory.path, "cgroup.subtree_control"),
                          " ".join("+" + c for c in missing),
                          " ".join("-" + c for c in missing) if directory.exists else None))
    return ops


def _v1_prepare(hierarchy, chain):
    """mkdir what is missing. A new v1 cpuset has no CPUs and no memory nodes, and no process
    may join it: each gets its parent's (copied down nslab's own path only)."""
    ops, inherited = [], None
    for depth, directory in enumerate(chain):
        cpus = (directory.files.get("cpuset.cpus"), directory.files.get("cpuset.mems"))
        if not directory.exists:
            ops.append(Op("mkdir", directory.path))
        if "cpuset" not in hierarchy.controllers:
            continue
        if depth > 0 and (not directory.exists or not all(cpus)):
            for filename, text in zip(("cpuset.cpus", "cpuset.mems"), inherited):
                ops.append(Op("write", os.path.join(directory.path, filename), text))
            cpus = inherited
        inherited = cpus
    return ops


def _plan_limits(spec, state, layout):
    files = controller_files(layout, state)
    current = read_limits(layout, state)
    changed = [k for k in KEYS if k in spec.limits
               and not _settled(spec.limits[k], current.get(k), state.settled.get(k))]
    actions = []
    for key in changed:
        hierarchy = layout.hierarchy_of(KEY_CONTROLLER[key])
        leaf = state.leaf(hierarchy)
        translator = FILES[hierarchy.version]
        own_files = files[KEY_CONTROLLER[key]]
        if leaf.exists and _enabled(hierarchy, state, KEY_CONTROLLER[key]):
            absent = [f for f in translator.needs(key) if f not in own_files]
            if absent:
                raise CgroupError(
                    "%s: %s cannot be enforced on this host: %s has no %s" % (
                        key, _show(spec.limits[key]), leaf.path, ", ".join(absent)))
        ops = [Op("write", os.path.join(leaf.path, name), text, undo, key)
               for name, text, undo in translator.writes(key, spec.limits[key], own_files,
                                                         spec.limits)]
        was = (" from %s" % _plain(limits_view({key: current.get(key)})[key])
               if leaf.exists else "")
        actions.append(CgroupAction(
            "set %s of cgroup '%s'%s to %s" % (
                key, state.relpath, was, _plain(limits_view({key: spec.limits[key]})[key])),
            LIMIT, spec.name, ops))
    return actions


def _enabled(hierarchy, state, controller):
    """Whether the cgroup has the controller's files now (on v2 only once the parent enables
    it, which this run may still do)."""
    if hierarchy.version == 1 or controller == "cpuacct":
        return True
    parent = state.chains[hierarchy.mount][-2]
    return controller in parent.files.get("cgroup.subtree_control", "").split()


def _plain(value):
    """A value for an action sentence; io lists as '8:0 read_bps=1048576'."""
    if value in (None, [], {}):
        return "none"
    if isinstance(value, list):
        return ", ".join(" ".join([d["device"]] + ["%s=%s" % (k, d[k]) for k in IO_LIMITS
                                                   if d[k] != MAX]) for d in value)
    return str(value)


def _settled(desired, current, settled):
    """Equal, or what the kernel made of this very value when nslab last wrote it."""
    if current == desired:
        return True
    return settled is not None and settled.get("asked") == desired and \
        settled.get("kernel") == current


def _plan_attach(spec, state, layout):
    actions = []
    for pid in spec.procs:
        leaves = [state.leaf(h) for h in layout.hierarchies]
        if all(leaf.exists and pid in leaf.procs for leaf in leaves):
            continue
        actions.append(CgroupAction(
            "move process %d into cgroup '%s'" % (pid, state.relpath), ATTACH, spec.name,
            [Op("attach", os.path.join(leaf.path, "cgroup.procs"), str(pid))
             for leaf in leaves]))
    return actions


def predicted_limits(spec, state, layout):
    """Limits after a run, as check mode predicts them."""
    limits = read_limits(layout, state) if state.exists else {}
    limits.update(spec.limits)
    return limits


def missing_pids(pids, proc="/proc"):
    return [p for p in pids if not os.path.isdir(os.path.join(proc, str(p)))]


def settle(record, specs, layout, states):
    """Remember what the kernel made of each value nslab asked for (pages, clamps)."""
    for spec in specs:
        entry = record.get("cgroups", {}).get(spec.name)
        if entry is None or spec.state != "present":
            continue
        current = read_limits(layout, states[spec.name])
        entry["settled"] = dict(
            (key, {"asked": value, "kernel": current.get(key)})
            for key, value in sorted(spec.limits.items()) if current.get(key) != value)


# --- ownership record -----------------------------------------------------------------------

class CgroupStore:
    """The record of the cgroups a lab made: /run/nslab/<lab>/cgroups.json."""

    def __init__(self, lab, root=STATE_ROOT):
        self.lab, self.root = lab, root
        self.path = os.path.join(lab_dir(lab, root), "cgroups.json")

    def load(self):
        record = read_json(self.path) or {"lab": self.lab, "cgroups": {}}
        record["_path"] = self.path
        return record

    def save(self, record):
        data = dict((k, v) for k, v in record.items() if not k.startswith("_"))
        if data.get("cgroups"):
            write_json_atomic(self.path, data)
            return
        if os.path.exists(self.path):
            os.unlink(self.path)
        remove_empty_dirs(lab_dir(self.lab, self.root), self.root)
        release_private_root(self.root)


# --- applying -------------------------------------------------------------------------------

def _os_problem(err, op):
    hint = ""
    if op.path.endswith("cgroup.subtree_control") and err.errno == errno.EBUSY:
        hint = " (cgroup v2 enables no controller below a cgroup that holds processes)"
    elif op.kind == "attach" and err.errno == errno.ENOSPC:
        hint = " (the cpuset of the cgroup has no CPUs or memory nodes)"
    elif op.kind == "attach" and err.errno == errno.ESRCH:
        hint = " (the process has exited)"
    elif err.errno == errno.EINVAL and op.kind == "write":
        hint = " (the kernel rejected the value)"
    what = "%s: " % op.key if op.key else ""
    if op.kind in ("write", "attach"):
        return "%swriting '%s' to %s failed: %s%s" % (what, op.text, op.path, err.strerror,
                                                        hint)
    return "%s %s failed: %s%s" % (op.kind, op.path, err.strerror, hint)


def write_file(path, text):
    with open(path, "w") as handle:
        handle.write(text + "\n")


class CgroupApplier:
    """Applies CgroupActions; on failure undoes this run's steps, newest first. The record
    is saved in any case, so it names exactly the cgroups that exist afterwards."""

    def __init__(self, store, record, layout, kill_seconds=5.0):
        self.store, self.record, self.layout = store, record, layout
        self.kill_seconds = kill_seconds
        self.undo = []              # (description, callable)

    def apply(self, actions):
        try:
            for action in actions:
                for op in action.ops:
                    self._run(op)
        except NslabError as err:
            raise self._rolled_back(err)
        except OSError as err:
            raise self._rolled_back(CgroupError(_os_problem(err, op)))
        finally:
            self.store.save(self.record)

    def _rolled_back(self, err):
        undone, errors = [], []
        for description, undo in reversed(self.undo):
            try:
                undo()
                undone.append(description)
            except OSError as undo_err:
                errors.append("%s: %s" % (description, undo_err.strerror))
        return ApplyError(err, [], undone, errors)

    def _run(self, op):
        getattr(self, "_" + op.kind)(op)

    def _mkdir(self, op):
        os.mkdir(op.path)
        self.undo.append(("mkdir %s" % op.path, lambda: os.rmdir(op.path)))

    def _write(self, op):
        if not os.path.exists(op.path):
            raise CgroupError("%s: %s cannot be enforced on this host: %s does not exist" % (
                op.key, op.text, op.path) if op.key else "%s does not exist" % op.path)
        write_file(op.path, op.text)
        if op.undo is not None:
            self.undo.append(("write '%s' to %s" % (op.undo, op.path),
                              lambda: write_file(op.path, op.undo)))

    def _attach(self, op):
        write_file(op.path, op.text)

    def _rmdir(self, op):
        os.rmdir(op.path)

    def _rmdir_empty(self, op):
        if op.text in self.record.get("cgroups", {}):
            return
        try:
            os.rmdir(op.path)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
                raise

    def _kill(self, op):
        """SIGKILL every process of the cgroup until none is left."""
        directory = op.path
        deadline = time.monotonic() + self.kill_seconds
        while True:
            pids = _read_procs(directory)
            if not pids:
                return
            if time.monotonic() > deadline:
                raise CgroupError("processes %s are still in %s %.0f s after SIGKILL" % (
                    ", ".join(map(str, pids)), directory, self.kill_seconds))
            kill_file = os.path.join(directory, "cgroup.kill")
            if os.path.exists(kill_file):           # v2, Linux 5.14+: also catches forks
                write_file(kill_file, "1")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def _own(self, op):
        cgroups = self.record.setdefault("cgroups", {})
        before = cgroups.get(op.path)
        entry = dict(before or {"settled": {}})
        relpath = cgroup_relpath(self.store.lab, op.path)
        leaves = [h.path(relpath) for h in self.layout.hierarchies]
        entry["inodes"] = dict((d, os.stat(d).st_ino) for d in leaves if os.path.isdir(d))
        cgroups[op.path] = entry

        def undo(name=op.path, old=before):
            if old is None:
                cgroups.pop(name, None)
            else:
                cgroups[name] = old
        self.undo.append(("record cgroup '%s'" % op.path, undo))

    def _disown(self, op):
        self.record.get("cgroups", {}).pop(op.path, None)

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a user's cgroup value means: limits as they are written in a task or a topology file
(``memory: 256M``, ``cpus: 1.5``, ``pids: 128``, CPU lists, io per device) and cgroup names,
turned into canonical values (bytes or ``max``, CPUs as a float, CPU lists as ``0-1,3``) or
into problems that name the option, the bad value and what was expected.

Pure, except ``block_device``, which looks the named disk up on this host (``/dev`` and
``/sys/dev/block``); ``parse_io`` and ``parse_limits`` take another resolver for tests.
"""

from __future__ import annotations

import os
import re
import stat


MAX = "max"
CPU_PERIOD_US = 100000
PID_MAX_LIMIT = 4194304
IO_LIMITS = ("read_bps", "write_bps", "read_iops", "write_iops")

# cgroup v1 puts these files in every cgroup directory: no cgroup may be named after them.
RESERVED_NAMES = ("tasks", "notify_on_release", "release_agent")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_CPULIST_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
MAX_DEPTH = 8


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


def show_value(value):
    """A value as problem and error messages quote it."""
    return "'%s'" % value if not isinstance(value, dict) else "%s" % sorted(value)

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nslab's cgroup vocabulary on each hierarchy version: which logical controller holds each
limit key, which interface files a key is read from and written to (``memory.max`` on v2,
``memory.limit_in_bytes`` on v1...), how a file's text becomes a canonical value and back,
and which keys a host's layout cannot express.

Pure: works on {file name: text} dicts that nslab_cgroup_read fills from the kernel.
"""

from __future__ import annotations

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import (
    CPU_PERIOD_US, IO_LIMITS, MAX, cpulist_members, format_cpulist, show_value)


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


def layout_problems(where, limits, layout):
    """Limits this host cannot enforce, each named with its value and the reason."""
    problems = []
    for key, value in limits.items():
        hierarchy = layout.hierarchy_of(KEY_CONTROLLER[key])
        if hierarchy is None:
            problems.append(
                "%s%s: %s cannot be enforced on this host: no %s controller is mounted "
                "(cgroup layout %s); expected that controller, or leave %s unset" % (
                    where, key, show_value(value), KEY_CONTROLLER[key], layout.kind, key))
        elif hierarchy.version == 1 and key in V1_UNSUPPORTED:
            problems.append(
                "%s%s: %s cannot be enforced on this host: the %s controller is cgroup v1 "
                "(%s) and %s; expected a cgroup v2 host, or leave %s unset" % (
                    where, key, show_value(value), KEY_CONTROLLER[key], hierarchy.mount,
                    V1_UNSUPPORTED[key], key))
    memory = layout.hierarchy_of("memory")
    if "swap" in limits and memory and memory.version == 1 and limits.get("memory") in (
            None, MAX):
        problems.append(
            "%sswap: %s needs memory set to a size on this host: cgroup v1 limits memory "
            "and swap together (memory.memsw.limit_in_bytes = memory + swap)" % (
                where, show_value(limits["swap"])))
    for key, available, what in (("cpuset", layout.cpus, "CPUs"),
                                 ("cpuset_mems", layout.mems, "memory nodes")):
        extra = cpulist_members(limits.get(key)) - cpulist_members(available)
        if key in limits and available and extra:
            problems.append("%s%s: %s %s are not available on this host; expected a subset "
                            "of %s" % (where, key, what, format_cpulist(extra), available))
    return problems


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


def _limit_files(version):
    needed = set(f for key in KEYS for f in FILES[version].needs(key) if f)
    return dict((controller, [f for f in files if f in needed])
                for controller, files in LEAF_FILES[version].items())


# The files of LEAF_FILES that limits are read from: what a plan needs. The others (usage,
# events, devices.list) only feed a cgroup's view - a caller without views skips them.
LIMIT_FILES = {1: _limit_files(1), 2: _limit_files(2)}

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which cgroup hierarchies this host has, and which of nslab's controllers each holds.

A host mounts each cgroup controller in exactly one hierarchy: cgroup v1 mounts one per
controller (or a few co-mounted, like ``cpu,cpuacct``), cgroup v2 one unified tree. The
layout is read from ``/proc/self/mountinfo`` (v1 mounts list their controllers in the super
options) and the v2 root's ``cgroup.controllers``; it can mix both (v1 controllers and a v2
mount holding the rest). ``Layout.cpus`` and ``.mems`` are the CPUs and memory nodes a cgroup
may use (the cpuset root's effective lists).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Tuple

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_vocab import (
    CONTROLLERS, V1_NAMES)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import CgroupError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import read_file


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
    # os.read (nslab_init's reader), not open(): half the time per file, and a lab of 500
    # nodes has 13,000 of them to read in 7 v1 hierarchies (issue #12).
    return read_file(path).decode("utf-8", "replace").strip()


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

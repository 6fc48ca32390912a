# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A cgroup as nslab read it, and what it holds: its directory in every hierarchy (mount root
first, down ``nslab/<lab>/<name>``), whether nslab's record names it, and its limits, usage
and view in canonical values.

Pure: the states are filled by nslab_cgroup_read; planning works on them without touching
the file system.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_vocab import (
    CONTROLLERS, FILES, KEY_CONTROLLER, LEAF_FILES)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import CGROUP_SUBTREE


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

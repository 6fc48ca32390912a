# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a cgroup from the kernel: the interface files, processes and child cgroups of its
directory in every hierarchy of a layout, judged against nslab's ownership record.

cgroupfs holds no reliable tag, so ``/run/nslab/<lab>/cgroups.json`` (nslab_cgroup_store)
records each cgroup nslab made and the inode of its directory in every hierarchy. A
directory under ``nslab/<lab>/`` without a record (or with another inode) is not nslab's:
``CgroupState.foreign`` says why, and nothing plans a change to it.
"""

from __future__ import annotations

import dataclasses
import os
import stat

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import read_optional
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import (
    CgroupState, DirState, cgroup_relpath)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_vocab import (
    LEAF_FILES, LIMIT_FILES)


def _read_files(directory, names):
    files = {}
    for name in names:
        text = read_optional(directory + "/" + name)
        if text is not None:
            files[name] = text
    return files


def read_procs(directory):
    text = read_optional(directory + "/cgroup.procs", "")
    return sorted(int(p) for p in text.split())


LEAF_READS = {"all": LEAF_FILES, "limits": LIMIT_FILES,
              "none": dict((v, dict((c, []) for c in LEAF_FILES[v])) for v in LEAF_FILES)}


def leaf_file_names(hierarchy, files):
    """The interface files of a cgroup's own directory in ``hierarchy`` that a read of
    ``files`` (all, limits, none) takes."""
    chosen = LEAF_READS[files][hierarchy.version]
    return [f for c in hierarchy.controllers for f in chosen[c]]


def read_dir(hierarchy, path, leaf, files="all", children=True, procs=True):
    """A directory of ``hierarchy``; a ``leaf`` (the cgroup's own) with its interface
    ``files`` (all: limits and usage; limits; none), if ``procs`` its processes and, if
    ``children``, its child cgroups. Each is a few system calls, times seven v1
    hierarchies, times every cgroup of a lab (issue #12): a caller reads only what it
    uses."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return DirState(path, False)
    if not stat.S_ISDIR(info.st_mode):
        return DirState(path, False)
    if leaf:
        return DirState(path, True, _read_files(path, leaf_file_names(hierarchy, files)),
                        info.st_ino,
                        read_procs(path) if procs else [],
                        sorted(e.name for e in os.scandir(path) if e.is_dir())
                        if children else [])
    names = ["cgroup.subtree_control"] if hierarchy.version == 2 else []
    if hierarchy.version == 1 and "cpuset" in hierarchy.controllers:
        names = ["cpuset.cpus", "cpuset.mems"]
    return DirState(path, True, _read_files(path, names))


def recorded_owners(record):
    """The names of the cgroups nslab owns by its record: each recorded cgroup and every
    cgroup above one (``web`` of a recorded ``web/a``)."""
    owners = set()
    for name in record.get("cgroups", {}):
        parts = name.split("/")
        owners.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return owners


def read_cgroup(layout, lab, name, record, ancestors=None, files="all", children=True,
                owners=None, procs=True):
    """What the kernel shows of cgroup ``name`` of ``lab``, judged against nslab's record.
    ``ancestors``: a dict shared by the reads of one moment, so the directories above many
    cgroups (the mount, nslab's subtree, the lab) are read once, not once per cgroup.
    ``files``: which of its interface files (see read_dir); without ``children`` it lists
    no child cgroups (planning a deletion needs them), without ``procs`` no processes (a
    plan needs them to attach or kill). ``owners``: recorded_owners(record),
    given by a caller that reads many cgroups (made once, not a scan of the record each)."""
    relpath = cgroup_relpath(lab, name)
    parts = relpath.split("/")
    chains = {}
    ancestors = {} if ancestors is None else ancestors
    for hierarchy in layout.hierarchies:
        paths = [hierarchy.mount] + [hierarchy.path("/".join(parts[:i + 1]))
                                     for i in range(len(parts))]
        chain = []
        for path in paths[:-1]:
            if path not in ancestors:
                ancestors[path] = read_dir(hierarchy, path, False)
            chain.append(ancestors[path])
        chains[hierarchy.mount] = chain + [read_dir(hierarchy, paths[-1], True, files,
                                                    children, procs)]
    cgroups = record.get("cgroups", {})
    entry = cgroups.get(name)
    state = CgroupState(name, relpath, chains, settled=dict((entry or {}).get("settled", {})))
    state.recorded = entry is not None
    state.owned = name in (recorded_owners(record) if owners is None else owners)
    for hierarchy in layout.hierarchies:
        leaf = state.leaf(hierarchy)
        recorded = (entry or {}).get("inodes", {}).get(leaf.path)
        if leaf.exists and not state.owned:
            state.foreign = "not nslab's (no record in %s)" % record.get("_path", "the record")
        elif leaf.exists and recorded is not None and recorded != leaf.inode:
            state.foreign = ("a different cgroup than the one nslab made (%s has inode %d, "
                             "recorded %d)" % (leaf.path, leaf.inode, recorded))
    return state


def reread_written(layout, state, written):
    """``state`` (read before an apply) after the apply wrote the files ``written`` (paths):
    each leaf with a written file has its limit files read again; every other directory is
    as ``state`` read it. Settling the written limits needs no more than this (issue #12: a
    full re-read of 500 new cgroups was 19 files and a listing each, in seven hierarchies)."""
    dirs = set(os.path.dirname(path) for path in written)
    chains = {}
    for hierarchy in layout.hierarchies:
        chain = state.chains[hierarchy.mount]
        leaf = chain[-1]
        if leaf.path in dirs:
            files = dict(leaf.files)
            files.update(_read_files(leaf.path, leaf_file_names(hierarchy, "limits")))
            leaf = dataclasses.replace(leaf, exists=True, files=files)
        chains[hierarchy.mount] = chain[:-1] + [leaf]
    return dataclasses.replace(state, chains=chains)


def missing_pids(pids, proc="/proc"):
    return [p for p in pids if not os.path.isdir(os.path.join(proc, str(p)))]

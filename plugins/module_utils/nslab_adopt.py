# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recovery without state files: find what is nslab's by what the kernel holds.

``/run/nslab/<lab>`` can be lost while a lab runs (a tmpfs emptied, an admin's ``rm -rf``).
The kernel still holds what ownership needs, and only root can have arranged it:

- net namespaces: the tag on their ``lo`` (nslab_owner, read by nslab_namespaces);
- cgroups: the directories under nslab's own ``nslab/<lab>/`` of each hierarchy. When the
  lab's record (``cgroups.json``) is missing, the ones a task names are adopted: their
  record entry is rebuilt from the kernel (a record that exists still rules);
- container inits: a process whose command line carries the label ``nslab:<lab>:<name>``
  is only a candidate, since any host user can start one with that argv. It is the
  container's init only if it is also pid 1 of a pid namespace right below ours,
  its net namespace is the node's (``/proc/<pid>/ns/net``), and its cgroup in every
  hierarchy holding the node's cgroup is ``nslab/<lab>/<cgroup>`` (``/proc/<pid>/cgroup``):
  joining the node's netns or entering nslab's cgroups needs root. A candidate with neither
  a netns nor a cgroup to check is never taken.

A verified init found without its record is stopped (SIGTERM, SIGKILL after the
container's stop_timeout) and, for ``started``, started again through the normal path,
reported as a change. It is not re-recorded as it runs: its config lived only in the lost
record, and recording the spec's config for a process started from an unknown one would
claim what nobody checked (a topology changed while the record was gone would never be
applied).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_plan import (
    CREATE, CgroupAction, Op)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import cgroup_relpath
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_vocab import V1_NAMES
from ansible_collections.nslab.lab.plugins.module_utils.nslab_container_store import (
    cgroup_dirs, remove_cgroups_below)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import NslabError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import proc_start_time
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import (
    mount_points, read_mountinfo)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import CGROUP_SUBTREE
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import netns_path

LABEL_PREFIX = "nslab:"


def init_label(lab, name):
    """The argument that labels a container's init in ps (nslab_containers)."""
    return "%s%s:%s" % (LABEL_PREFIX, lab, name)


@dataclass
class FoundInit:
    pid: int
    start_time: Optional[int]
    evidence: str               # what was verified, for the action's summary


def labelled_pids(labels, proc="/proc"):
    """{label: [pids]} of the processes whose command line has one of ``labels`` as a
    whole argument: one pass over /proc for all of them."""
    wanted = dict((label.encode("utf-8"), label) for label in labels)
    found = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        for arg in argv:
            if arg in wanted:
                found.setdefault(wanted[arg], []).append(int(entry))
                break
    return dict((label, sorted(pids)) for label, pids in found.items())


def _status(pid, proc):
    with open(os.path.join(proc, str(pid), "status")) as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


def _same_file(first, second):
    one, two = os.stat(first), os.stat(second)
    return (one.st_dev, one.st_ino) == (two.st_dev, two.st_ino)


def parse_proc_cgroup(text):
    """/proc/<pid>/cgroup -> [(hierarchy id, [controllers], path)]."""
    entries = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            entries.append((parts[0], [c for c in parts[1].split(",") if c], parts[2]))
    return entries


def cgroup_path_in(entries, hierarchy):
    """The path ``entries`` (parse_proc_cgroup) give for ``hierarchy`` (nslab_cgroup_layout's
    Hierarchy), or None."""
    for hid, controllers, path in entries:
        if hierarchy.version == 2 and hid == "0" and not controllers:
            return path
        if hierarchy.version == 1 and controllers and all(
                V1_NAMES.get(c, c) in controllers for c in hierarchy.controllers):
            return path
    return None


def verify_init(pid, lab, netns=None, cgroup=None, layout=None, proc="/proc"):
    """Why ``pid`` is not the init of a container with this netns and cgroup (a string),
    or the evidence that it is (FoundInit)."""
    base = os.path.join(proc, str(pid))
    try:
        # pid 1 of a pid namespace made right below ours (an init's), not deeper (a
        # process inside a container that made its own pid namespace)
        nspids = _status(pid, proc).get("NSpid", "").split()
        depth = len(_status("self", proc).get("NSpid", "").split())
        if len(nspids) != depth + 1 or nspids[-1] != "1":
            return "not pid 1 of a pid namespace right below nslab's"
        evidence = []
        if netns:
            if not _same_file(os.path.join(base, "ns", "net"), netns_path(netns)):
                return "not in net namespace '%s'" % netns
            evidence.append("netns %s" % netns)
        if cgroup and layout is not None:
            relpath = "/" + cgroup_relpath(lab, cgroup)
            with open(os.path.join(base, "cgroup")) as handle:
                entries = parse_proc_cgroup(handle.read())
            checked = 0
            for hierarchy in layout.hierarchies:
                if not os.path.isdir(hierarchy.path(relpath.lstrip("/"))):
                    continue
                if cgroup_path_in(entries, hierarchy) != relpath:
                    return "not in cgroup %s of %s" % (relpath, hierarchy.mount)
                checked += 1
            if checked:
                evidence.append("cgroup %s" % relpath.lstrip("/"))
        if not evidence:
            return "nothing only root can arrange proves it is nslab's"
        return FoundInit(pid, proc_start_time(pid), " and ".join(evidence))
    except (OSError, ValueError) as err:
        return "unreadable (%s)" % err


def find_unrecorded(lab, specs, states, layout=None, proc="/proc"):
    """{container name: [FoundInit]} for the specs (nslab_containers' ContainerSpec) whose
    state has no record. A labelled process that fails verification is left alone."""
    missing = dict((init_label(lab, s.name), s) for s in specs if states[s.name].record is None)
    if not missing:
        return {}
    found = {}
    for label, pids in labelled_pids(missing, proc).items():
        spec = missing[label]
        for pid in pids:
            verdict = verify_init(pid, lab, spec.netns, spec.cgroup, layout, proc)
            if isinstance(verdict, FoundInit):
                found.setdefault(spec.name, []).append(verdict)
    return found


def unrecorded_summaries(unrecorded):
    return ["stop init %d of container '%s', found running without its record (%s)" % (
        init.pid, name, init.evidence) for name, inits in sorted(unrecorded.items())
        for init in inits]


def stop_unrecorded(lab, unrecorded, specs, layout=None, timeout=None):
    """SIGTERM every found init at once, SIGKILL those left after their container's
    stop_timeout (or ``timeout``); return when all are gone. A privileged container's
    own cgroups below its cgroup go with it, as when a recorded one stops."""
    stop_timeouts = dict((s.name, s.stop_timeout) for s in specs)
    pending = []
    for name, inits in unrecorded.items():
        for init in inits:
            if _signal(init, signal.SIGTERM):
                wait = timeout if timeout is not None else stop_timeouts.get(name, 10.0)
                pending.append((init, time.monotonic() + wait))
    killed = set()
    while pending:
        still = []
        for init, deadline in pending:
            if proc_start_time(init.pid) != init.start_time:
                continue
            if time.monotonic() > deadline and init.pid not in killed:
                _signal(init, signal.SIGKILL)
                killed.add(init.pid)
            still.append((init, deadline))
        pending = still
        if pending:
            time.sleep(0.02)
    for spec in specs:
        if spec.name in unrecorded and spec.privileged and spec.cgroup and layout is not None:
            for directory in cgroup_dirs(layout, lab, spec.cgroup):
                remove_cgroups_below(directory)


def _signal(init, signum):
    """Signal ``init`` if it is still the process found (pids are reused)."""
    if proc_start_time(init.pid) != init.start_time:
        return False
    try:
        os.kill(init.pid, signum)
    except ProcessLookupError:
        return False
    return True


# --- cgroups ------------------------------------------------------------------------------

def adopt_cgroups(store, record, layout, specs):
    """When ``store``'s record file is missing, rebuild the entries of the cgroups that
    ``specs`` name and that exist under ``nslab/<lab>/``, from the kernel, into ``record``.
    Returns the CgroupActions that write them down (only for those kept: deleting one
    drops its entry anyway)."""
    if os.path.exists(store.path):
        return []
    actions = []
    entries = record.setdefault("cgroups", {})
    for spec in specs:
        relpath = cgroup_relpath(store.lab, spec.name)
        paths = [h.path(relpath) for h in layout.hierarchies]
        inodes = dict((d, os.stat(d).st_ino) for d in paths if os.path.isdir(d))
        if not inodes or spec.name in entries:
            continue
        entries[spec.name] = {"inodes": inodes, "settled": {}}
        if spec.state != "absent":
            actions.append(CgroupAction(
                "adopt cgroup '%s', found under nslab/%s/ without the lab's record" % (
                    relpath, store.lab), CREATE, spec.name, [Op("own", spec.name)]))
    return actions


def lost_cgroups(store, layout):
    """When ``store``'s record file is missing: the lab's cgroups as the kernel shows them
    (every directory right below ``nslab/<lab>/`` in any hierarchy), for nslab_info, so a
    lab's removal finds them."""
    if os.path.exists(store.path):
        return []
    names = set()
    for hierarchy in layout.hierarchies:
        top = hierarchy.path(os.path.join(CGROUP_SUBTREE, store.lab))
        if os.path.isdir(top):
            names.update(e.name for e in os.scandir(top) if e.is_dir())
    return sorted(names)


# --- net namespaces -----------------------------------------------------------------------

def lost_netns_records(store, nsfs=None):
    """Records, as nslab_namespaces writes them, of the net namespaces at /run/netns that
    no record names and whose lo carries this lab's tag: for nslab_info, so a lab whose
    records were lost is still seen (and removed). One short child per such namespace."""
    if not os.path.isdir(store.netns_dir):
        return []
    if nsfs is None:
        nsfs = mount_points(read_mountinfo(), "nsfs")
    found = []
    for name in sorted(os.listdir(store.netns_dir)):
        path = os.path.join(store.netns_dir, name)
        if path not in nsfs or store.find_record(name) is not None:
            continue
        try:
            store.check_netns_tag(name)
        except NslabError:
            continue
        found.append({"lab": store.lab, "name": name,
                      "types": {"net": {"path": path, "inode": os.stat(path).st_ino}}})
    return found

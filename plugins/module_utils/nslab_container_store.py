# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lab's containers on a host as nslab keeps them: where their records, logs and files
live, what each record says and whether its init still runs, and the directories of a
container's cgroups. nslab_containers starts and stops containers; a reader of a lab
(nslab_labview, nslab_adopt) needs this file alone, not the init, seccomp and device code
a start needs (issue #12: every module run compiles what it imports).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import cgroup_relpath
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ContainerError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import proc_start_time
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import lab_dir, read_record
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import STATE_ROOT


@dataclass
class ContainerState:
    name: str
    record: Optional[dict]
    running: bool = False
    died: bool = False          # recorded as running, but its init is gone

    def view(self):
        if self.record is None:
            return {"state": "absent"}
        rec = self.record
        view = {"state": "running" if self.running else "stopped",
                "hostname": rec["config"]["hostname"], "command": rec["config"]["command"],
                "rootfs": rec["config"]["rootfs"], "netns": rec["config"]["netns"],
                "cgroup": rec["config"]["cgroup"], "capabilities": rec["config"]["capabilities"],
                "userns_base": rec["config"].get("userns_base"),
                "privileged": rec["config"].get("privileged", False),
                "binds": rec["config"].get("binds", []),
                "log": rec.get("log")}
        if self.running:
            view.update(pid=rec["pid"], started_at=rec["started_at"],
                        namespaces=rec["namespaces"])
        return view


def is_recorded_process(record):
    pid = record.get("pid")
    if not pid or proc_start_time(pid) != record.get("start_time"):
        return False
    try:
        return os.stat("/proc/%d/ns/pid" % pid).st_ino == record["namespaces"]["pid"]
    except OSError:
        return False


def init_cgroup_paths(pid):
    """/proc/<pid>/cgroup -> {controller (or "" for cgroup v2): path}."""
    paths = {}
    with open("/proc/%d/cgroup" % pid) as handle:
        for line in handle:
            _id, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


class ContainerStore:
    def __init__(self, lab, root=STATE_ROOT):
        self.lab, self.root = lab, root

    def directory(self):
        return os.path.join(lab_dir(self.lab, self.root), "containers")

    def record_path(self, name):
        return os.path.join(self.directory(), name + ".json")

    def log_path(self, name):
        return os.path.join(self.directory(), name + ".log")

    def log_paths(self, name):
        """The log and its previous, rotated part."""
        return [self.log_path(name), self.log_path(name) + ".1"]

    def exec_path(self, name):
        """Which start of the container nslab_exec last ran its commands for (not *.json:
        nslab_info reads those as container records)."""
        return os.path.join(self.directory(), name + ".exec")

    def files_dir(self, name):
        """nslab's copies of the files bound into the container (``files``)."""
        return os.path.join(self.directory(), name + ".files")

    def read_record(self, name):
        """Container ``name``'s record, or None; StateError if it is corrupt or not this
        lab's record of that container (never "no container": its init may be running)."""
        return read_record(self.record_path(name), "container", self.lab, name)

    def read(self, name):
        record = self.read_record(name)
        if record is None:
            return ContainerState(name, None)
        running = is_recorded_process(record)
        return ContainerState(name, record, running=running,
                              died=not running and record.get("running", False))


def remove_cgroups_below(directory, timeout=5.0):
    """rmdir every cgroup below ``directory``, deepest first: what a privileged container
    made inside its own. Its processes are gone, but the kernel may take a moment to let
    go of their cgroups."""
    deadline = time.monotonic() + timeout
    for path, _dirs, _files in os.walk(directory, topdown=False):
        while path != directory:
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ContainerError("cgroup %s, made inside a privileged container, "
                                         "still has processes" % path)
                time.sleep(0.02)


def cgroup_dirs(layout, lab, name):
    """Every existing directory of cgroup ``nslab/<lab>/<name>``, one per hierarchy of
    ``layout`` (nslab_cgroup_layout.detect_layout), where nslab_cgroup makes them."""
    return [d for d in (h.path(cgroup_relpath(lab, name)) for h in layout.hierarchies)
            if os.path.isdir(d)]

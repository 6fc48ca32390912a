# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What disk and the kernel show of a lab's jails: their records, bases and mounts, and
each jail's view. It reads, and knows nslab's directories and their modes (JailStore
makes them for nslab_jails); nslab_jails plans and applies (the layout is described
there). A reader of a lab (nslab_labview, nslab_topology, nslab_info) needs this file
alone, not the code that builds bases and mounts overlays (issue #12: every module run
compiles what it imports).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import OwnershipError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import (
    MountEntry, mounts_below, read_mountinfo)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import read_json
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import (
    CACHE_ROOT, DATA_ROOT, inside)

TRAVERSE, PRIVATE, WRITABLE = 0o711, 0o700, 0o755


@dataclass
class JailState:
    name: str
    record: Optional[Dict]                                  # jail.json; None: no jail
    mounts: List[MountEntry] = field(default_factory=list)  # below its dir, oldest first

    @property
    def exists(self):
        return self.record is not None


@dataclass
class LabState:
    jails: Dict[str, JailState]         # the requested jails
    records: Dict[str, Dict]            # every jail of the lab: name -> jail.json
    bases: Dict[str, Optional[Dict]]    # every base dir of the lab: id -> base.json or None
    lowerdirs: List[str]                # lower layers of overlays not of this lab's jails
    modes: Dict[str, int] = field(default_factory=dict)   # nslab's directories: path -> mode


def overlay_lowerdirs(entry):
    for option in entry.super_options.split(","):
        if option.startswith("lowerdir="):
            return option[len("lowerdir="):].split(":")
    return []


class JailStore:
    """Where a lab's jails and bases live, and what disk and kernel say about them."""

    def __init__(self, lab, root=DATA_ROOT, cache_dir=CACHE_ROOT):
        self.lab, self.root = lab, root
        self.lab_dir = os.path.join(root, lab)
        self.jails_dir = os.path.join(self.lab_dir, "jails")
        self.bases_dir = os.path.join(self.lab_dir, "bases")
        self.cache_dir = cache_dir

    def dir_modes(self):
        """nslab's directories, outermost first, and the mode each must have."""
        return [(self.root, TRAVERSE), (self.lab_dir, TRAVERSE), (self.jails_dir, TRAVERSE),
                (self.bases_dir, PRIVATE), (os.path.join(self.cache_dir, "debootstrap"),
                                            PRIVATE)]

    def make_dirs(self, upto):
        """Create nslab's directories down to ``upto`` with their modes (not the umask's)."""
        for path, mode in self.dir_modes():
            if inside(upto, path) and not os.path.isdir(path):
                os.mkdir(path, mode)
                os.chmod(path, mode)

    def jail_dir(self, name):
        return os.path.join(self.jails_dir, name)

    def jail_path(self, name, part):
        return os.path.join(self.jails_dir, name, part)

    def base_dir(self, base_id):
        return os.path.join(self.bases_dir, base_id)

    def rootfs(self, source):
        return os.path.join(self.base_dir(source.base_id), "rootfs")

    def layer(self, name, part=None):
        """A jail's private layer directory, or ``part`` (upper, work, copy) of it."""
        layer = self.jail_path(name, "layer")
        return os.path.join(layer, part) if part else layer

    def writable(self, name, overlay):
        """The directory a jail's writes land in: its upper layer, or its copy."""
        return self.layer(name, "upper" if overlay else "copy")

    def read(self, names):
        entries = read_mountinfo()
        mounts = mounts_below(entries, self.lab_dir)
        by_jail = {}        # each jail's own mounts: N jails never scan N jails' mounts
        for entry in mounts:
            if entry.mount_point.startswith(self.jails_dir + "/"):
                top = entry.mount_point[len(self.jails_dir) + 1:].split("/")[0]
                by_jail.setdefault(top, []).append(entry)
        return LabState(
            jails=dict((n, self.read_jail(n, by_jail.get(n, []))) for n in names),
            records=self._records(self.jails_dir, "jail.json"),
            bases=self._records(self.bases_dir, "base.json"),
            lowerdirs=[d for e in entries if e.fstype == "overlay"
                       and not e.mount_point.startswith(self.jails_dir + "/")
                       for d in overlay_lowerdirs(e)],
            modes=self._modes())

    def _modes(self):
        modes = {}
        for path, _mode in self.dir_modes():
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(info.st_mode):
                modes[path] = stat.S_IMODE(info.st_mode)
        return modes

    def read_jail(self, name, lab_mounts):
        path = self.jail_dir(name)
        if not os.path.lexists(path):
            return JailState(name, None)
        record = read_json(os.path.join(path, "jail.json"))
        if not record or record.get("lab") != self.lab or record.get("name") != name:
            raise OwnershipError("jail directory", path, "not nslab's (no jail.json record of "
                                 "lab '%s' in it)" % self.lab)
        return JailState(name, record, mounts_below(lab_mounts, path))

    @staticmethod
    def _records(directory, filename):
        try:
            names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
        except FileNotFoundError:
            return {}
        return dict((n, read_json(os.path.join(directory, n, filename))) for n in names)


def overlay_option(entry, key):
    for option in entry.super_options.split(","):
        if option.startswith(key + "="):
            return option[len(key) + 1:]
    return None


def root_mount_ok(store, name, overlay, lowerdir, top):
    """Whether ``top`` (the mount at the jail's root, or None) is the jail's own root,
    mounted nosuid,nodev: the overlay of its base and layer, or a bind of its copy."""
    if top is None or not {"nosuid", "nodev"} <= set(top.options.split(",")):
        return False
    if overlay:
        return (top.fstype == "overlay" and overlay_lowerdirs(top) == [lowerdir]
                and overlay_option(top, "upperdir") == store.layer(name, "upper"))
    return top.fstype != "overlay" and top.root.endswith("/" + os.path.join(
        os.path.basename(store.jail_dir(name)), "layer", "copy"))


def layer_mount_ok(top):
    return (top is not None and top.fstype == "ext4"
            and {"nosuid", "nodev"} <= set(top.options.split(",")))


def missing_mounts(store, name, overlay, lowerdir, mounts, disk=None):
    """What a mounted jail lacks: 'layer' (its disk image), 'overlay' or 'root' (then
    everything above is remounted), '/dev', '/dev/pts'. ``mounts`` are those below the
    jail's directory."""
    root = store.jail_path(name, "root")
    by_point = dict((m.mount_point, m) for m in mounts)
    if disk and not layer_mount_ok(by_point.get(store.layer(name))):
        return ["layer", "overlay" if overlay else "root", "/dev", "/dev/pts"]
    if not root_mount_ok(store, name, overlay, lowerdir, by_point.get(root)):
        return ["overlay" if overlay else "root", "/dev", "/dev/pts"]
    missing = []
    if getattr(by_point.get(root + "/dev"), "fstype", None) != "tmpfs":
        missing.append("/dev")
    if getattr(by_point.get(root + "/dev/pts"), "fstype", None) != "devpts":
        missing.append("/dev/pts")
    return missing


def stamp_of(base):
    """What a base was built from, out of its base.json (or a Source's stamp)."""
    return dict((k, base[k]) for k in ("source", "spec", "fingerprint", "built") if k in base)


def jail_view(store, name, state):
    """What a jail is on disk and in the kernel (``state`` is a LabState)."""
    current = state.jails[name]
    if not current.exists:
        return {"state": "absent"}
    record = current.record
    base = state.bases.get(record["base"]) or {}
    mounted = bool(base) and not missing_mounts(store, name, record["overlay"],
                                                base.get("rootfs"), current.mounts,
                                                record.get("disk"))
    return {
        "state": "present" if mounted else "unmounted",
        "root": store.jail_path(name, "root"),
        "base": base.get("rootfs"),
        "base_id": record["base"],
        "source": base.get("source"),
        "overlay": record["overlay"],
        "disk": record.get("disk"),
        "mounted": mounted,
        "stamp": stamp_of(base),
    }

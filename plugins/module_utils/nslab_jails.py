# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jails: root filesystems for containers and plain chroots. Plan and apply; what exists is
read by nslab_jail_read.

Layout, all under nslab's own directory (nothing else is ever changed or removed):

  /var/lib/nslab/                                 0711
  /var/lib/nslab/<lab>/                           0711
  /var/lib/nslab/<lab>/bases/                     0700
  /var/lib/nslab/<lab>/bases/<source>-<hash>/base.json   stamp: source, options, fingerprint
  /var/lib/nslab/<lab>/bases/<source>-<hash>/rootfs/     the shared, read-only base
  /var/lib/nslab/<lab>/jails/                     0711
  /var/lib/nslab/<lab>/jails/<name>/              0711
  /var/lib/nslab/<lab>/jails/<name>/jail.json     record: lab, name, base, overlay, layout
  /var/lib/nslab/<lab>/jails/<name>/layer/        0700: upper/ and work/, or copy/
  /var/lib/nslab/<lab>/jails/<name>/layer.img     0600: with ``disk``, an ext4 image
                                                  loop-mounted nosuid,nodev at layer/
  /var/lib/nslab/<lab>/jails/<name>/root/         its root: the overlay, or copy/ bound here

What a container writes lands in its writable layer on the host, so no other host user may
reach it (Docker keeps its root 0710 since CVE-2021-41091): bases and layers sit below 0700
directories, and the only way in is ``root/``, mounted ``nosuid,nodev`` (the overlay; a
copy is bind-mounted there and remounted so) - whatever a container makes, nothing on the
host is a usable setuid program or device. The directories down to ``root/`` stay
traversable (0711, not listable): a user-namespace container's init, an unprivileged host
uid, must reach its root. Jails of the older layout (layers directly in the jail directory,
record without ``layout``) are migrated in place on the next run: renames, no data lost.

A jail with ``disk`` (bytes) has its writable layer in a sparse ext4 image of that size
(e2fsprogs' mkfs.ext4, the ``mount`` binary's loop setup, released by the kernel when the
image is unmounted): what a container writes cannot fill the host's file system. A changed
size rebuilds the jail (its writable layer is discarded), as a changed base does.

A base is content-addressed by its source (see nslab_sources), built once per lab and shared
by every jail of the lab built from the same source; it is removed when no jail of the lab
uses it and no overlay on the host has it as a lower layer. Bases are per lab so that a lab
owns, and tears down, everything it made; what is expensive to rebuild (debootstrap) is
cached across labs as a tarball.

A mounted jail has its overlay at ``root`` (mount(2), not the mount binary) and a small
tmpfs at ``root/dev`` with null, zero, full, random, urandom, tty made by mknod(2), ptmx ->
pts/ptmx on a new devpts instance, shm, and fd/stdin/stdout/stderr links: no other host
device, and device nodes never sit on disk. /proc and /sys are empty mount points: a /proc of
the host's pid namespace inside a chroot would hand out /proc/1/root, a way out; the
container's own /proc is mounted by nslab_container in its pid and mount namespaces.

Every build goes to a temporary directory renamed into place, so a failed build leaves
nothing. The applier undoes this run's builds, creations and mounts, newest first, when a
later step fails. Plans run builds first, then unmounts and removals, then creations: the
step most likely to fail (a build) runs before anything is removed.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import List, Optional

from ansible_collections.nslab.lab.plugins.module_utils import nslab_syscalls as sc
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    JailError, NslabError, OwnershipError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jail_read import (
    PRIVATE, TRAVERSE, WRITABLE, JailState, missing_mounts, stamp_of)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import (
    mounts_below, read_mountinfo)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import (
    read_json, remove_empty_dirs, write_json_atomic)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import JAIL_PATH
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import Runner
from ansible_collections.nslab.lab.plugins.module_utils.nslab_sources import (
    Source, ensure_mount_points, ensure_real_dir, walk_tree)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog

DEV_NODES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
             ("urandom", 1, 9), ("tty", 5, 0)]
DEV_LINKS = [("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")]
DEV_TMPFS = "mode=0755,size=65536k,nr_inodes=4096"
LAYOUT = 2                      # jail.json "layout": layers below layer/, mounts nosuid,nodev
ROOT_FLAGS = sc.MS_NOSUID | sc.MS_NODEV     # every jail root mount on the host
DEVPTS = "newinstance,ptmxmode=0666,mode=0620"
JAIL_ENV = {"PATH": JAIL_PATH, "HOME": "/root", "LC_ALL": "C"}

# Phases, applied in this order (see the module docstring).
BUILD, REMOVE, CREATE, MOUNT, RELEASE = range(5)


@dataclass
class JailSpec:
    name: str
    state: str                          # present, unmounted or absent
    source: Optional[Source] = None     # None: absent, or an existing jail keeps its base
    overlay: bool = True
    command: Optional[List[str]] = None
    base_id: Optional[str] = None       # the base it stands on (from source or record)
    lowerdir: Optional[str] = None      # that base's root filesystem
    disk: Optional[int] = None          # size of its writable layer's image; None: no limit


@dataclass
class JailAction:
    phase: int
    verb: str           # restrict, build, remove, unmount, create, migrate, mount, release
    summary: str
    name: Optional[str] = None
    lowerdir: Optional[str] = None
    base_id: Optional[str] = None
    overlay: bool = True
    mount: bool = False
    source: Optional[Source] = None     # build: what to build the base from
    disk: Optional[int] = None          # create: the writable layer's image size
    path: Optional[str] = None          # restrict: the directory
    mode: Optional[int] = None          # restrict: its mode


# --- planning (pure) --------------------------------------------------------------------

def _build_summary(store, source):
    summary = "build base %s from %s" % (source.base_id, source.describe())
    if source.kind == "debootstrap":
        if os.path.isfile(source.cache):
            return summary + " (extract the cached tarball %s)" % source.cache
        return summary + " (then cache it as %s)" % source.cache
    return summary


def plan_jails(specs, state, store):
    """Desired specs vs. the lab's state -> JailActions, ordered by phase."""
    actions = [JailAction(BUILD, "restrict", "restrict %s to mode %04o (was %04o)" % (
        path, mode, state.modes[path]), path=path, mode=mode)
        for path, mode in store.dir_modes() if state.modes.get(path, mode) != mode]
    uses = dict((name, record.get("base")) for name, record in state.records.items() if record)
    for spec in specs:
        current = state.jails[spec.name]
        if spec.state == "absent":
            uses.pop(spec.name, None)
            if current.exists:
                actions.append(JailAction(REMOVE, "remove", "remove jail '%s'%s" % (
                    spec.name, " (unmount %d mounts)" % len(current.mounts)
                    if current.mounts else ""), spec.name))
            continue
        base_id = spec.base_id
        uses[spec.name] = base_id
        if base_id in state.bases and state.bases[base_id] is None:
            raise OwnershipError("base directory", store.base_dir(base_id),
                                 "not nslab's (no base.json record in it)")
        if spec.source and base_id not in state.bases and not any(
                a.verb == "build" and a.base_id == base_id for a in actions):
            actions.append(JailAction(BUILD, "build", _build_summary(store, spec.source),
                                      base_id=base_id, source=spec.source))
        mount = spec.state == "present"
        kind = "an overlay" if spec.overlay else "a copy"
        if current.exists and (current.record.get("base"), current.record.get("overlay"),
                               current.record.get("disk")) != (base_id, spec.overlay, spec.disk):
            actions.append(JailAction(REMOVE, "remove", (
                "remove jail '%s' to rebuild it as %s of base %s%s (was %s of %s%s); its "
                "writable layer is discarded" % (
                    spec.name, kind, base_id, disk_words(spec.disk),
                    "an overlay" if current.record.get("overlay") else "a copy",
                    current.record.get("base"), disk_words(current.record.get("disk")))),
                spec.name))
            current = JailState(spec.name, None)
        if not current.exists:
            actions.append(JailAction(CREATE, "create", "create jail '%s' as %s of base %s%s%s"
                                      % (spec.name, kind, base_id, disk_words(spec.disk),
                                         " and mount it" if mount else ""), spec.name,
                                      spec.lowerdir, base_id, spec.overlay, mount,
                                      disk=spec.disk))
            continue
        if current.record.get("layout") != LAYOUT:
            actions.append(JailAction(CREATE, "migrate", (
                "move the writable layer of jail '%s' below its private layer/ directory "
                "(0700)%s" % (spec.name, " and remount it nosuid,nodev" if mount else "")),
                spec.name, spec.lowerdir, base_id, spec.overlay, mount))
            continue
        if mount:
            missing = missing_mounts(store, spec.name, spec.overlay, spec.lowerdir,
                                     current.mounts, spec.disk)
            if missing:
                actions.append(JailAction(MOUNT, "mount", "mount %s of jail '%s'" % (
                    ", ".join(missing), spec.name), spec.name, spec.lowerdir, base_id,
                    spec.overlay, disk=spec.disk))
        elif current.mounts:
            actions.append(JailAction(REMOVE, "unmount", "unmount jail '%s' (%d mounts)" % (
                spec.name, len(current.mounts)), spec.name))
    in_use = set(uses.values())
    for base_id, record in sorted(state.bases.items()):
        if record is None or base_id in in_use:
            continue
        if record.get("rootfs") in state.lowerdirs:
            continue      # an overlay nslab does not know of still stands on it
        actions.append(JailAction(RELEASE, "release", "remove base %s (no jail of lab '%s' "
                                  "uses it)" % (base_id, store.lab), base_id=base_id))
    return sorted(actions, key=lambda a: a.phase)


SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MIN_DISK = 16 << 20


def parse_disk(where, value):
    """``disk`` ("512M", "2G", "0" for no limit) -> (bytes or None, problem or None)."""
    text = str(value).strip().upper().replace("IB", "").rstrip("B")
    if text.isdigit() and int(text) == 0:
        return None, None
    unit = text[-1:] if text[-1:] in SIZE_UNITS else ""
    number = text[:len(text) - len(unit)]
    if not number.isdigit() or int(number) * SIZE_UNITS[unit] < MIN_DISK:
        return None, ("%sdisk: %r is not a size of at least 16M; expected e.g. 512M or 2G "
                      "(K, M, G, T are powers of 1024), or 0 for no limit" % (where, value))
    return int(number) * SIZE_UNITS[unit], None


def disk_words(disk):
    return " with a %d MiB disk" % (disk >> 20) if disk else ""


# --- views ------------------------------------------------------------------------------

def predicted_view(store, spec, state):
    if spec.state == "absent":
        return {"state": "absent"}
    base = spec.source.stamp() if spec.source else state.bases[spec.base_id]
    return {
        "state": spec.state,
        "root": store.jail_path(spec.name, "root"),
        "base": spec.lowerdir,
        "base_id": spec.base_id,
        "source": base["source"],
        "overlay": spec.overlay,
        "disk": spec.disk,
        "mounted": spec.state == "present",
        "stamp": stamp_of(base),
    }


# --- applying ---------------------------------------------------------------------------

def unmount_below(path):
    """Unmount everything at or below ``path``, newest first (children before parents)."""
    _unmount(mounts_below(read_mountinfo(containing=path), path))


def _unmount(entries):
    for entry in reversed(entries):
        try:
            sc.umount2(entry.mount_point, sc.MNT_DETACH)
        except OSError as err:
            if err.errno != 22:       # EINVAL: already gone with a detached parent
                raise


def mounts_under(entries, paths):
    """(path, mount) of every mount at or below one of ``paths``, in mount order: each
    mount point is looked up by its ancestors, so many paths cost one pass."""
    wanted, found = set(paths), []
    for entry in entries:
        point = entry.mount_point
        while point not in wanted and point not in ("/", ""):
            point = os.path.dirname(point)
        if point in wanted:
            found.append((point, entry))
    return found


RM_CHUNK = 256        # directories per rm process


def remove_tree(path):
    """Unmount, then delete, a directory of nslab's. Never crosses into a mount."""
    remove_trees([path])


def remove_trees(paths):
    """Unmount, then delete, directories of nslab's; never crosses into a mount. Two reads
    of the mount table in all and one ``rm`` per RM_CHUNK directories, not two reads and
    an ``rm`` each: a lab of 2,000 jails has 8,000 mounts (issue #12).

    coreutils ``rm`` (fts) rather than shutil.rmtree: it walks iteratively with openat(2),
    so a container's 1,100-deep tree cannot exhaust a recursion limit, and it never follows
    a symlink; ``--one-file-system`` skips (and fails on) anything on another file system,
    a second guard after the mount table check."""
    paths = [p.rstrip("/") for p in paths if os.path.lexists(p)]
    if not paths:
        return

    def mounts():
        # One path: only the lines that name it (cheap where a lab has thousands of mounts).
        return read_mountinfo(containing=paths[0] if len(paths) == 1 else None)
    _unmount([entry for _path, entry in mounts_under(mounts(), paths)])
    left = mounts_under(mounts(), paths)
    if left:
        raise JailError("cannot remove '%s': %s is still mounted" % (
            left[0][0], left[0][1].mount_point))
    rm = shutil.which("rm") or "rm"
    for start in range(0, len(paths), RM_CHUNK):
        chunk = paths[start:start + RM_CHUNK]
        proc = subprocess.run([rm, "-rf", "--one-file-system", "--"] + chunk,
                              capture_output=True, env=dict(os.environ, LC_ALL="C"),
                              check=False)
        still = [p for p in chunk if os.path.lexists(p)]
        if proc.returncode != 0 or still:
            raise JailError("cannot remove '%s': rm exited %d: %s" % (
                (still or chunk)[0], proc.returncode,
                proc.stderr.decode("utf-8", "replace").strip()))


def mount_dev(dev):
    """A tmpfs /dev with only the nodes a process needs (mknod: no bind mounts per node)."""
    sc.mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_NOEXEC, DEV_TMPFS)
    try:
        for name, major, minor in DEV_NODES:
            node = os.path.join(dev, name)
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(node, 0o666)
        for name, target in DEV_LINKS:
            os.symlink(target, os.path.join(dev, name))
        os.mkdir(os.path.join(dev, "pts"), 0o755)
        os.mkdir(os.path.join(dev, "shm"))
        os.chmod(os.path.join(dev, "shm"), 0o1777)
    except OSError:
        sc.umount2(dev, sc.MNT_DETACH)
        raise


def mount_root(store, name, overlay, lowerdir):
    """The jail's root, nosuid,nodev: the overlay, or its copy bound onto root/."""
    root = store.jail_path(name, "root")
    if overlay:
        sc.mount("overlay", root, "overlay", ROOT_FLAGS, "lowerdir=%s,upperdir=%s,workdir=%s" % (
            lowerdir, store.layer(name, "upper"), store.layer(name, "work")))
        return
    sc.mount(store.layer(name, "copy"), root, None, sc.MS_BIND)
    try:
        sc.mount(None, root, None, sc.MS_BIND | sc.MS_REMOUNT | ROOT_FLAGS)
    except OSError:
        sc.umount2(root, sc.MNT_DETACH)
        raise


def make_disk_image(image, size):
    """A sparse ext4 image of ``size`` bytes (no reserved blocks: it is all the jail's)."""
    with open(image, "xb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.truncate(size)
    run_tool(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "root_owner=0:0", image],
             "format %s" % image)


def mount_layer(image, layer):
    """The image loop-mounted nosuid,nodev at ``layer``, closed to other users. The mount
    binary sets up the loop device with autoclear: unmounting releases it."""
    run_tool(["mount", "-t", "ext4", "-o", "loop,nosuid,nodev", image, layer],
             "mount %s" % image)
    os.chmod(layer, PRIVATE)


def run_tool(argv, what):
    proc = subprocess.run([shutil.which(argv[0]) or argv[0]] + argv[1:], capture_output=True,
                          env=dict(os.environ, LC_ALL="C"), check=False)
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        raise JailError("cannot %s: %s exited %d: %s" % (what, argv[0], proc.returncode, stderr))


def mount_jail(store, name, overlay, lowerdir, new=False, disk=None):
    """Mount what a jail lacks; return the mount points made (undone on failure). A
    ``new`` jail has no mounts: the mount table (which grows with every jail) is not read."""
    root = store.jail_path(name, "root")
    if new:
        missing = (["layer"] if disk else []) + ["root", "/dev", "/dev/pts"]
    else:
        missing = missing_mounts(store, name, overlay, lowerdir, mounts_below(
            read_mountinfo(containing=store.jail_dir(name)), store.jail_dir(name)), disk)
    made = []
    try:
        if missing[0] == "layer":
            if not new:
                unmount_below(store.layer(name))
            mount_layer(store.jail_path(name, "layer.img"), store.layer(name))
            made.append(store.layer(name))
            missing = missing[1:]
        if missing[:1] in (["root"], ["overlay"]):
            if not new:
                unmount_below(root)
            mount_root(store, name, overlay, lowerdir)
            made.append(root)
        ensure_mount_points(root)
        dev = os.path.join(root, "dev")
        if "/dev" in missing:
            mount_dev(dev)
            made.append(dev)
        pts = os.path.join(dev, "pts")
        if "/dev/pts" in missing:
            ensure_real_dir(pts, 0o755)
            sc.mount("devpts", pts, "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, DEVPTS)
            made.append(pts)
    except (OSError, NslabError):
        unmount_points(made)
        raise
    return made


def unmount_points(made):
    """Detach the mount points ``mount_jail`` made, newest first."""
    for point in reversed(made):
        sc.umount2(point, sc.MNT_DETACH)


class JailApplier:
    """Applies JailActions; on failure undoes this run's builds, creations and mounts."""

    def __init__(self, store, builder, run):
        self.store = store
        self.builder = builder
        self.runner = Runner(run)
        self.log = UndoLog()
        self.stripped = []      # what strip_special removed from each base built
        # verb -> method: every verb a JailAction may carry, in one place.
        self.handlers = {
            "restrict": self._restrict,
            "build": self._build,
            "create": self._create,
            "migrate": self._migrate,
            "mount": self._mount,
            "unmount": self._unmount,
            "remove": self._remove,
            "release": self._release,
        }

    def apply(self, actions):
        self.log = UndoLog()        # this run's steps only
        try:
            with self.log.guard():
                index = 0
                while index < len(actions):
                    # Jails removed one after another go together (remove_trees).
                    removals = []
                    while index + len(removals) < len(actions) and \
                            actions[index + len(removals)].verb == "remove":
                        removals.append(actions[index + len(removals)])
                    if removals:
                        self._remove_all(removals)
                        index += len(removals)
                        continue
                    # Each handler records its action, with the undo of what it made.
                    self.handlers[actions[index].verb](actions[index])
                    index += 1
        finally:
            for directory in (self.store.jails_dir, self.store.bases_dir):
                remove_empty_dirs(directory, self.store.root)

    def _temp_dir(self, parent, name, mode):
        self.store.make_dirs(parent)
        temp = tempfile.mkdtemp(prefix=".tmp-%s-" % name, dir=parent)
        os.chmod(temp, mode)
        return temp

    def _restrict(self, action):
        os.chmod(action.path, action.mode)
        self.log.record(action.summary)

    def _into_place(self, temp, final, record_name, record, fill):
        """Fill a temporary directory, record it, and rename it to ``final`` (atomic)."""
        try:
            fill(temp)
            write_json_atomic(os.path.join(temp, record_name), record)
            os.rename(temp, final)
        except BaseException:
            remove_tree(temp)
            raise

    def _build(self, action):
        source, final = action.source, self.store.base_dir(action.base_id)

        record = dict(source.stamp(), lab=self.store.lab, id=action.base_id,
                      rootfs=self.store.rootfs(source),
                      built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

        def fill(temp):
            os.mkdir(os.path.join(temp, "rootfs"), WRITABLE)
            stripped = self.builder.build(source, os.path.join(temp, "rootfs"))
            if stripped is not None:
                record["stripped"] = stripped
                self.stripped.append(dict(stripped, base_id=action.base_id))
        self._into_place(self._temp_dir(self.store.bases_dir, action.base_id, PRIVATE), final,
                         "base.json", record, fill)
        self.log.record(action.summary, lambda: remove_tree(final))

    def _create(self, action):
        name, final, lowerdir = action.name, self.store.jail_dir(action.name), action.lowerdir

        def fill(temp):
            os.mkdir(os.path.join(temp, "root"), WRITABLE)
            layer = os.path.join(temp, "layer")
            os.mkdir(layer, PRIVATE)
            if action.disk:
                image = os.path.join(temp, "layer.img")
                make_disk_image(image, action.disk)
                mount_layer(image, layer)
            if action.overlay:
                for part in ("upper", "work"):
                    os.mkdir(os.path.join(layer, part), WRITABLE)
            else:
                self.runner.run([shutil.which("cp") or "cp", "-a", "--reflink=auto", lowerdir,
                                 os.path.join(layer, "copy")])
            if action.disk:      # mounted again at its final path by mount_jail
                sc.umount2(layer, 0)
        record = {"lab": self.store.lab, "name": name, "base": action.base_id,
                  "overlay": action.overlay, "layout": LAYOUT, "disk": action.disk}
        # Traversable, not listable: a container in a user namespace is an ordinary host
        # user, and must reach its root through this directory to bind it.
        self._into_place(self._temp_dir(self.store.jails_dir, name, TRAVERSE), final,
                         "jail.json", record, fill)
        self.log.record(action.summary, lambda: remove_tree(final))
        if action.mount:
            mount_jail(self.store, name, action.overlay, lowerdir, new=True, disk=action.disk)

    def _mount(self, action):
        made = mount_jail(self.store, action.name, action.overlay, action.lowerdir,
                          disk=action.disk)

        self.log.record(action.summary, lambda: unmount_points(made))

    def _migrate(self, action):
        """An older jail's layers into layer/ (renames: nothing copied, nothing lost); a
        rerun after a failure here finishes what is left."""
        name, jail = action.name, self.store.jail_dir(action.name)
        unmount_below(jail)
        layer = self.store.layer(name)
        if not os.path.isdir(layer):
            os.mkdir(layer, PRIVATE)
        os.chmod(layer, PRIVATE)
        moves = [("upper", "upper"), ("work", "work")] if action.overlay else [("root", "copy")]
        for old, new in moves:
            if os.path.isdir(os.path.join(jail, old)) and not os.path.lexists(
                    os.path.join(layer, new)):
                os.rename(os.path.join(jail, old), os.path.join(layer, new))
        if not os.path.isdir(os.path.join(jail, "root")):
            os.mkdir(os.path.join(jail, "root"), WRITABLE)
        os.chmod(jail, TRAVERSE)
        record = read_json(os.path.join(jail, "jail.json"))
        write_json_atomic(os.path.join(jail, "jail.json"), dict(record, layout=LAYOUT))
        if action.mount:
            made = mount_jail(self.store, name, action.overlay, action.lowerdir, new=True)
            # The layout change stays (a rerun expects it); the mounts are undone.
            self.log.record(action.summary, lambda: unmount_points(made))
        else:
            self.log.record(action.summary)

    def _unmount(self, action):
        unmount_below(self.store.jail_dir(action.name))
        self.log.record(action.summary)

    def _remove(self, action):
        self._remove_all([action])

    def _remove_all(self, actions):
        remove_trees([self.store.jail_dir(a.name) for a in actions])
        for action in actions:
            self.log.record(action.summary)

    def _release(self, action):
        remove_tree(self.store.base_dir(action.base_id))
        self.log.record(action.summary)


# --- running a command in a jail (plain chroot) -----------------------------------------

def snapshot(top):
    """path -> (mode, size, mtime, owner) of every file below ``top``, not crossing mounts:
    enough to tell whether a command changed a jail's writable layer."""
    return dict((path, (info.st_mode, info.st_size, info.st_mtime_ns, info.st_uid,
                        info.st_gid)) for path, info in walk_tree(top))


def _enter_jail(root):
    os.chroot(root)
    os.chdir("/")


def run_in_jail(root, writable, argv):
    """Run ``argv`` chrooted into ``root`` with a clean environment; report whether it
    changed the jail's files. A plain chroot is not a security boundary."""
    before = snapshot(writable)
    try:
        proc = subprocess.run(argv, preexec_fn=lambda: _enter_jail(root), env=JAIL_ENV,
                              stdin=subprocess.DEVNULL, capture_output=True, check=False)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except OSError as error:     # the child could not exec: not found, not executable
        rc, out, err = 127, b"", ("%s: %s (in the jail, PATH=%s)" % (
            argv[0], error.strerror, JAIL_PATH)).encode()
    return {"cmd": list(argv), "rc": rc, "stdout": out.decode("utf-8", "replace"),
            "stderr": err.decode("utf-8", "replace"), "changed": snapshot(writable) != before}

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a jail's base root filesystem comes from: resolve a source, then build it.

``SourceResolver.resolve`` reads the host and writes nothing (it runs in check mode): it
finds the files a source is built from, hashes them and returns a ``Source`` whose
``base_id`` is content-addressed by the normalised options and that fingerprint. A rerun
with the same source resolves to the same id (nothing to do); a changed busybox, host
binary, library or archive resolves to a new id (a rebuild).

``build_rootfs`` fills a new, empty directory that belongs to nslab. Builders only ever
write below it, along paths they create themselves, so no write can follow a symlink out.

Sources:
  busybox      a static busybox with a symlink per applet (``busybox --list-full``)
  host         named host binaries with every library the dynamic loader maps for them
               (``<loader> --list``) and the loader itself, at their canonical paths; the
               host's merged-/usr symlinks (/bin -> usr/bin, ...) are mirrored
  debootstrap  a Debian/Ubuntu suite from a mirror, run in a private mount namespace (its
               /proc mounts die with it) and kept as a tarball under the cache directory
  tarball      an archive extracted with GNU tar (numeric owners, xattrs)
  directory    an existing tree, copied (``cp -a``), never written to

A tarball or directory base is stripped after it is made (``strip_special``): device nodes
are removed (a jail's /dev is a tmpfs nslab makes) and setuid/setgid bits cleared unless
the source sets ``keep_setuid``. Such files come from outside nslab; on the host they would
be usable by anyone who reaches them. A debootstrap base loses the device nodes debootstrap
made in its /dev and keeps Debian's own setuid programs (its cached tarball is kept as is).

A directory source is resolved (realpath) before any check, and refused when it is the
host's root, a host system directory, or inside or above nslab's own trees: a symlink to
``/`` would otherwise hand the container the host's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import stat
import time
import urllib.error
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import NslabError, SourceError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jail_vocab import (
    MIRROR_RE, PACKAGE_RE, SOURCE_OPTIONS, SOURCES, SUITE_RE)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import (
    CACHE_ROOT, DATA_ROOT, STATE_ROOT, inside)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_rootfs import (
    default_mirror, elf_interpreter, parse_apt_sources, parse_busybox_list, parse_loader_list)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import Runner
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import abspath_problem

# A directory source may not be one of these (nor /), nor inside the first group: host
# configuration, kernel and device trees, and the runtime directory.
HOST_TREES = ["/boot", "/dev", "/etc", "/proc", "/run", "/sys"]
HOST_DIRS = HOST_TREES + ["/bin", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media",
                          "/mnt", "/opt", "/root", "/sbin", "/srv", "/tmp", "/usr", "/var",
                          "/var/lib", "/var/cache", "/var/log", "/var/tmp", "/usr/local"]
# Top-level directories that merged-/usr hosts make symlinks into /usr.
MERGED_USR_LINKS = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]
MOUNT_POINTS = [("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("tmp", 0o1777)]
MINIMAL_ETC = {
    "passwd": "root:x:0:0:root:/root:/bin/sh\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
}
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386",
               "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass
class Source:
    kind: str
    spec: Dict            # the normalised options: what the base is built from
    fingerprint: Dict     # the host files it is built from, as they are now
    files: List[str] = field(default_factory=list)   # host: every file to copy
    cache: Optional[str] = None                       # debootstrap: the cached tarball

    @property
    def base_id(self):
        blob = json.dumps({"spec": self.spec, "fingerprint": self.fingerprint},
                          sort_keys=True).encode()
        return "%s-%s" % (self.kind, hashlib.sha256(blob).hexdigest()[:12])

    def stamp(self):
        return {"source": self.kind, "spec": self.spec, "fingerprint": self.fingerprint}

    def describe(self):
        if self.kind == "host":
            return "host binaries %s" % ", ".join(self.spec["binaries"])
        if self.kind == "debootstrap":
            return "debootstrap %s (%s) from %s" % (self.spec["suite"], self.spec["variant"],
                                                    self.spec["mirror"])
        return "%s %s" % (self.kind, self.spec["path"])


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_head(path, size=65536):
    with open(path, "rb") as handle:
        return handle.read(size)


def canonical(path):
    """``path`` with its directory resolved on the host (/lib64/x -> /usr/lib64/x): the
    place a copy goes in the jail, reached there through mirrored /lib64 -> usr/lib64."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def debian_arch():
    return DEBIAN_ARCH.get(platform.machine(), platform.machine())


def read_apt_sources(apt_dir="/etc/apt"):
    sources = []
    listed = [(os.path.join(apt_dir, "sources.list"), False)]
    parts = os.path.join(apt_dir, "sources.list.d")
    if os.path.isdir(parts):
        for name in sorted(os.listdir(parts)):
            if name.endswith(".list") or name.endswith(".sources"):
                listed.append((os.path.join(parts, name), name.endswith(".sources")))
    for path, deb822 in listed:
        try:
            with open(path) as handle:
                sources += parse_apt_sources(handle.read(), deb822)
        except OSError:
            continue
    return sources


def nslab_trees(cache_dir=CACHE_ROOT):
    return sorted(set([DATA_ROOT, STATE_ROOT, CACHE_ROOT, cache_dir]))


def host_tree_problem(real, cache_dir=CACHE_ROOT):
    """Why the resolved path ``real`` may not be a jail's tree, or None."""
    if real == "/":
        return "the host's root"
    for tree in nslab_trees(cache_dir):
        if inside(real, tree):
            return "inside nslab's %s" % tree
        if inside(tree, real):
            return "which holds nslab's %s" % tree
    if real in HOST_DIRS:
        return "a host system directory"
    for tree in HOST_TREES:
        if inside(real, tree):
            return "inside the host's %s" % tree
    return None


def file_kind(mode):
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def walk_tree(top):
    """(path, lstat) of every entry below ``top``, iteratively (no recursion limit), never
    following a symlink nor crossing into another file system."""
    device = os.lstat(top).st_dev
    pending = [top]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                yield entry.path, info
                if stat.S_ISDIR(info.st_mode) and info.st_dev == device:
                    pending.append(entry.path)


def tree_digest(top):
    """A fingerprint of a tree's names, types, modes, owners, sizes and mtimes: a changed
    directory source resolves to a new base."""
    digest = hashlib.sha256()
    for path, info in sorted(walk_tree(top)):
        digest.update(("%s\0%o\0%d\0%d\0%d\0%d\n" % (
            path[len(top):], info.st_mode, info.st_uid, info.st_gid, info.st_size,
            info.st_mtime_ns)).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def strip_special(top, keep_setuid=False):
    """Remove device nodes below ``top`` and clear setuid/setgid bits of non-directories
    (unless ``keep_setuid``); return the counts. ``top`` is a new base only root can reach."""
    devices, setid = [], []
    for path, info in walk_tree(top):
        if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
            devices.append(path)
        elif (not keep_setuid and stat.S_ISREG(info.st_mode)
              and info.st_mode & (stat.S_ISUID | stat.S_ISGID)):
            setid.append((path, stat.S_IMODE(info.st_mode)))
    for path in devices:
        os.unlink(path)
    for path, mode in setid:
        os.chmod(path, mode & ~(stat.S_ISUID | stat.S_ISGID))
    return {"device_nodes": len(devices), "setuid_setgid": len(setid)}


class SourceResolver:
    """Reads the host to resolve sources; writes nothing."""

    def __init__(self, run, which, cache_dir=CACHE_ROOT, apt_dir="/etc/apt"):
        self.run = run
        self.which = which
        self.cache_dir = cache_dir
        self.apt_dir = apt_dir
        # A lab's jails share their sources: each file is hashed once per run, not per jail.
        self._digests = {}
        # source kind -> method: every kind in SOURCES, in one place.
        self.resolvers = {
            "busybox": self._busybox,
            "host": self._host,
            "debootstrap": self._debootstrap,
            "tarball": self._tarball,
            "directory": self._directory,
        }

    def sha256(self, path):
        """sha256_file, once per file as it is now (same inode, size and mtime)."""
        info = os.stat(path)
        key = (path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = sha256_file(path)
        return self._digests[key]

    def resolve(self, item, where):
        """Return (Source or None, problems) for one jail item's source options."""
        kind = item["source"]
        problems = []
        for option in ("path", "binaries", "suite", "mirror", "variant", "include",
                       "keep_setuid"):
            if item.get(option) and option not in SOURCE_OPTIONS[kind]:
                sources = " or ".join("'%s'" % k for k in SOURCES if option in SOURCE_OPTIONS[k])
                problems.append("%s%s: only used with source %s (source is '%s')"
                                % (where, option, sources, kind))
        source, more = self.resolvers[kind](item, where)
        problems += more
        return (None if problems else source), problems

    def _file_option(self, item, where, what):
        path = item.get("path")
        if not path:
            return None, ["%spath: missing; source '%s' needs the path of %s" % (
                where, item["source"], what)]
        problem = abspath_problem(where + "path", path)
        if problem:
            return None, [problem]
        return path, []

    def _busybox(self, item, where):
        path = item.get("path")
        if path:
            path, problems = self._file_option(item, where, "a static busybox")
            if problems:
                return None, problems
        else:
            path = self.which("busybox")
            if not path:
                return None, ["%spath: no busybox found on PATH; expected a static busybox "
                              "(Debian package busybox-static) or its path" % where]
        try:
            interpreter = elf_interpreter(read_head(path))
        except (OSError, ValueError) as err:
            return None, ["%spath: '%s' is not a busybox binary (%s); expected a static "
                          "busybox (Debian package busybox-static)" % (where, path, err)]
        if interpreter:
            return None, ["%spath: '%s' is dynamically linked (it needs %s); expected a "
                          "static busybox (Debian package busybox-static)" % (
                              where, path, interpreter)]
        return Source("busybox", {"path": path}, {"sha256": self.sha256(path)}), []

    def _host(self, item, where):
        names = item.get("binaries") or []
        if not names:
            return None, ["%sbinaries: missing; source 'host' needs the binaries to copy, "
                          "e.g. [sh, ls]" % where]
        problems, files = [], []
        for name in names:
            path, problem = self._host_binary(name, where)
            if problem:
                problems.append(problem)
                continue
            needed, problem = self._loaded_files(path, name, where)
            problems.append(problem)
            files += [f for f in [path] + needed if f not in files]
        problems = [p for p in problems if p]
        if problems:
            return None, problems
        fingerprint = dict((f, self.sha256(f)) for f in files)
        return Source("host", {"binaries": list(names)}, fingerprint, files=files), []

    def _host_binary(self, name, where):
        if "/" in name:
            problem = abspath_problem(where + "binaries", name)
            if problem:
                return None, problem
            path = name
        else:
            path = self.which(name)
        if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
            return None, ("%sbinaries: '%s' not found%s; expected a command on PATH or the "
                          "absolute path of an executable file" % (
                              where, name, "" if "/" in name else " on PATH"))
        return path, None

    def _loaded_files(self, path, name, where):
        """The dynamic loader and every library it maps for ``path``."""
        try:
            interpreter = elf_interpreter(read_head(path))
        except (OSError, ValueError) as err:
            return [], ("%sbinaries: '%s' (%s) is not an ELF executable (%s); expected a "
                        "binary (for a script, list its interpreter too)" % (
                            where, name, path, err))
        if interpreter is None:
            return [], None
        # Not Runner.run: the loader exits non-zero when a library is missing, and
        # its list still says which.
        rc, out, err = self.run([interpreter, "--list", path])
        listed = parse_loader_list(out)
        if listed.missing:
            return [], "%sbinaries: '%s' needs %s, which the loader cannot find" % (
                where, name, ", ".join(listed.missing))
        if rc != 0:
            return [], "%sbinaries: '%s': %s --list failed (rc %s): %s" % (
                where, name, interpreter, rc, (err or out).strip())
        return [interpreter] + [p for p in listed.paths if p != interpreter], None

    def _tarball(self, item, where):
        path, problems = self._file_option(item, where, "a root filesystem archive")
        if problems:
            return None, problems
        real = os.path.realpath(path)
        try:
            kind = file_kind(os.stat(real).st_mode)
        except OSError as err:
            kind = "unreadable (%s)" % err.strerror
        if kind != "a regular file":
            return None, ["%spath: '%s' resolves to '%s', which is %s; expected a root "
                          "filesystem archive (a regular file: tar, optionally compressed)" % (
                              where, path, real, kind)]
        if not self.which("tar"):
            return None, ["%ssource: 'tarball' needs GNU tar, not found on PATH" % where]
        spec = {"path": real, "keep_setuid": bool(item.get("keep_setuid"))}
        return Source("tarball", spec, {"sha256": self.sha256(real)}), []

    def _directory(self, item, where):
        path, problems = self._file_option(item, where, "a root filesystem tree")
        if problems:
            return None, problems
        real = os.path.realpath(path)
        why = host_tree_problem(real, self.cache_dir)
        if why:
            return None, ["%spath: '%s' resolves to '%s', %s; expected a root filesystem "
                          "tree of its own (not /, a host system directory, or inside or "
                          "above nslab's %s)" % (where, path, real, why, ", ".join(
                              nslab_trees(self.cache_dir)))]
        if not os.path.isdir(real):
            return None, ["%spath: '%s' resolves to '%s', which is not a directory; expected "
                          "an existing root filesystem tree" % (where, path, real)]
        spec = {"path": real, "keep_setuid": bool(item.get("keep_setuid"))}
        return Source("directory", spec, {"tree": tree_digest(real)}), []

    def _debootstrap(self, item, where):
        problems = []
        suite = item.get("suite")
        if not suite or not SUITE_RE.match(suite):
            problems.append("%ssuite: %r is not a suite name; expected e.g. bookworm" % (
                where, suite))
        include = sorted(set(item.get("include") or []))
        problems += ["%sinclude: %r is not a package name; expected e.g. iproute2" % (
            where, p) for p in include if not PACKAGE_RE.match(p)]
        mirror = item.get("mirror")
        if mirror is None and suite:
            mirror = default_mirror(read_apt_sources(self.apt_dir), suite)
            if mirror is None:
                problems.append("%smirror: not set and no deb source is configured in %s; "
                                "expected a mirror URL such as http://deb.debian.org/debian"
                                % (where, self.apt_dir))
        elif mirror is not None and not MIRROR_RE.match(mirror):
            problems.append("%smirror: '%s' is not an http(s):// or file:// URL; expected "
                            "e.g. http://deb.debian.org/debian" % (where, mirror))
        if problems:
            return None, problems
        spec = {"suite": suite, "mirror": mirror.rstrip("/"),
                "variant": item.get("variant") or "minbase", "include": include,
                "arch": debian_arch()}
        source = Source("debootstrap", spec, {})
        source.cache = os.path.join(self.cache_dir, "debootstrap", source.base_id + ".tar")
        if not os.path.isfile(source.cache) and not self.which("debootstrap"):
            return None, ["%ssource: 'debootstrap' needs the debootstrap command (Debian "
                          "package debootstrap), not found on PATH, and no cached tarball "
                          "%s exists" % (where, source.cache)]
        return source, []


# --- building ---------------------------------------------------------------------------

def ensure_real_dir(path, mode):
    """Create ``path`` when missing; refuse one that is not a real directory: mount(2)
    follows symlinks, and a jail's /dev -> /dev link would put nslab's tmpfs over the
    host's /dev."""
    try:
        mode_now = os.lstat(path).st_mode
    except FileNotFoundError:
        os.mkdir(path)
        os.chmod(path, mode)
        return
    if not stat.S_ISDIR(mode_now):
        raise SourceError("'%s' is %s, not a directory; refusing to mount over it (a mount "
                          "there could land outside the jail)" % (
                              path, "a symlink" if stat.S_ISLNK(mode_now) else "a file"))


def ensure_mount_points(root):
    """/proc, /sys, /dev, /tmp in ``root``, as real directories."""
    for name, mode in MOUNT_POINTS:
        ensure_real_dir(os.path.join(root, name), mode)


def write_minimal_etc(root):
    etc = os.path.join(root, "etc")
    os.makedirs(etc, exist_ok=True)
    files = dict(MINIMAL_ETC)
    try:
        with open("/etc/resolv.conf") as handle:
            files["resolv.conf"] = handle.read()
    except OSError:
        files["resolv.conf"] = ""
    for name, text in files.items():
        with open(os.path.join(etc, name), "w") as handle:
            handle.write(text)
    os.makedirs(os.path.join(root, "root"), mode=0o700, exist_ok=True)


def copy_file(src, dest):
    """Copy content and mode (following symlinks at the source) to a path nslab made."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(src, dest)
    shutil.copymode(src, dest)


class RootfsBuilder:
    """Fills a new, empty directory with a Source's root filesystem."""

    def __init__(self, run, which):
        self.runner = Runner(run)
        self.which = which
        # source kind -> method: every kind in SOURCES, in one place.
        self.builders = {
            "busybox": self._busybox,
            "host": self._host,
            "debootstrap": self._debootstrap,
            "tarball": self._tarball,
            "directory": self._directory,
        }

    def build(self, source, dest):
        """Fill ``dest``; return what was stripped from it (tarball, directory) or None."""
        self.builders[source.kind](source, dest)
        stripped = None
        if source.kind in ("tarball", "directory"):
            stripped = strip_special(dest, source.spec.get("keep_setuid", False))
        elif source.kind == "debootstrap":      # Debian's setuid programs stay
            stripped = strip_special(dest, keep_setuid=True)
        ensure_mount_points(dest)
        return stripped

    def _run(self, source, argv):
        try:
            return self.runner.run(argv)
        except NslabError as err:
            raise SourceError("building from %s failed: %s" % (source.describe(), err))

    def _busybox(self, source, dest):
        binary = os.path.join(dest, "bin", "busybox")
        copy_file(source.spec["path"], binary)
        try:
            applets = parse_busybox_list(self._run(source, [source.spec["path"], "--list-full"]))
        except ValueError as err:
            raise SourceError("busybox --list-full of %s: %s" % (source.spec["path"], err))
        for applet in applets:
            link = os.path.join(dest, applet)
            if link == binary or os.path.lexists(link):
                continue
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(os.path.relpath(binary, os.path.dirname(link)), link)
        write_minimal_etc(dest)

    def _host(self, source, dest):
        for name in MERGED_USR_LINKS:
            host_path = "/" + name
            if os.path.islink(host_path):
                target = os.path.relpath(os.path.realpath(host_path), "/")
                os.makedirs(os.path.join(dest, target), exist_ok=True)
                os.symlink(target, os.path.join(dest, name))
        for path in source.files:
            copy_file(path, dest + canonical(path))
        write_minimal_etc(dest)

    def _tarball(self, source, dest):
        self.extract(source, source.spec["path"], dest)

    def _directory(self, source, dest):
        # A copy, not the tree itself as the overlay's lower layer: it can be stripped
        # without writing to the source, and later edits of the source (undefined
        # behaviour under a mounted overlay) reach a jail only through a new base.
        self._run(source, [self.which("cp") or "cp", "-a", "--one-file-system",
                           "--reflink=auto", "--", source.spec["path"] + "/.", dest])

    def extract(self, source, archive, dest):
        self._run(source, [self.which("tar") or "tar", "-xpf", archive, "-C", dest,
                           "--numeric-owner", "--xattrs", "--xattrs-include=*"])

    def _debootstrap(self, source, dest):
        if os.path.isfile(source.cache):
            self.extract(source, source.cache, dest)
            return
        spec = source.spec
        check_mirror(spec["mirror"], spec["suite"])
        argv = [self.which("unshare") or "unshare", "--mount", "--propagation", "private",
                self.which("debootstrap") or "debootstrap", "--arch=" + spec["arch"]]
        if spec["variant"] != "default":
            argv.append("--variant=" + spec["variant"])
        if spec["include"]:
            argv.append("--include=" + ",".join(spec["include"]))
        self._run(source, argv + [spec["suite"], dest, spec["mirror"]])
        self.store_cache(source, dest)

    def store_cache(self, source, rootfs):
        """Tar ``rootfs`` into the cache, atomically: readers see a whole tarball or none."""
        directory = os.path.dirname(source.cache)
        # Closed to other host users: the tarball holds Debian's setuid programs.
        for path in (os.path.dirname(directory), directory):
            if not os.path.isdir(path):
                os.makedirs(path, mode=0o700, exist_ok=True)
                os.chmod(path, 0o700)
        # Per process: two labs' runs may cache the same base at once (the last rename wins).
        partial = os.path.join(directory, ".tmp-%d-%s" % (os.getpid(),
                                                          os.path.basename(source.cache)))
        stamp = "%s.json.tmp-%d" % (source.cache, os.getpid())
        try:
            self._run(source, [self.which("tar") or "tar", "-cf", partial, "--numeric-owner",
                               "--xattrs", "--xattrs-include=*", "-C", rootfs, "."])
            with open(stamp, "w") as handle:
                json.dump(dict(source.stamp(), created=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                     time.gmtime())),
                          handle, indent=1, sort_keys=True)
            os.rename(stamp, source.cache + ".json")
            os.rename(partial, source.cache)
        finally:
            for leftover in (partial, stamp):
                if os.path.exists(leftover):
                    os.unlink(leftover)


def check_mirror(mirror, suite, timeout=20):
    """Fail in a second with a clear message, not after a minute of debootstrap output."""
    # Imported here: ansible.module_utils.urls costs 40 ms, and only an uncached debootstrap
    # needs it. open_url raises urllib's errors, plus its own ConnectionError family (TLS).
    from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url
    url = "%s/dists/%s/Release" % (mirror.rstrip("/"), suite)
    try:
        open_url(url, method="HEAD", timeout=timeout).close()
    except (urllib.error.URLError, UrlsConnectionError, OSError, ValueError) as err:
        raise SourceError("mirror: '%s' is unreachable or does not serve suite '%s' (%s: %s);"
                          " expected a Debian/Ubuntu mirror that serves %s" % (
                              mirror, suite, type(err).__name__,
                              getattr(err, "reason", err), url))

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Containers: read (is the recorded init still that process?), plan, start and stop.

A container is an init process (``nslab_init``) in new pid/mnt/uts/ipc/cgroup namespaces,
joined to a persistent net namespace, inside its cgroups, with a jail as its root. Its
record ``/run/nslab/<lab>/containers/<name>.json`` holds the init's pid, its start time
(field 22 of /proc/<pid>/stat) and its pid namespace inode: a pid is trusted only while all
three still match, since pids are reused.

A privileged container (a fleet host, a lab inside a lab) keeps every capability and
gets its cgroup hierarchies mounted read-write inside its cgroup namespace: the cgroups it
makes there are below its own on the host, and are removed when it stops. Its binds put
host directories (made under ``/var/lib/nslab/<lab>/binds/<container>/`` when no source is
given) into its root, for what must not sit on its overlay root (an overlay's upper layer
cannot be an overlay).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional
from urllib.parse import quote

from ansible_collections.nslab.lab.plugins.module_utils import nslab_init, nslab_seccomp
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_state import cgroup_relpath
from ansible_collections.nslab.lab.plugins.module_utils.nslab_container_store import (
    cgroup_dirs, init_cgroup_paths, is_recorded_process, remove_cgroups_below)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_devices import restrict_devices
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    ContainerError, NslabError, StopError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import (
    LOG_MAX_SIZE, proc_start_time)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import (
    remove_empty_dirs, write_json_atomic)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import (
    CGROUP_ROOT, DATA_ROOT, LAUNCHER_PATH)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import netns_path
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog

# Docker's default set minus MKNOD: containers keep what ordinary services need (chown,
# setuid, binding low ports, ping) and lose what reaches past their namespaces (mounts,
# modules, raw I/O, devices, the clock, ptrace of others).
DEFAULT_CAPABILITIES = ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
                        "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
                        "SYS_CHROOT"]
START_TIMEOUT = 10.0
# Seconds an init may take to go after SIGKILL; one still there is stuck in the kernel
# (uninterruptible sleep, a frozen cgroup) and stop_many gives up on it by name.
KILL_GRACE = 5.0
# A record's config from before an option existed holds what it meant then: no restart.
CONFIG_DEFAULTS = {"privileged": False, "binds": [], "files": [], "log_max_size": LOG_MAX_SIZE,
                   "seccomp": "default", "file_digests": {}}
NS_TYPES = ["pid", "mnt", "uts", "ipc", "net", "cgroup"]


@dataclass
class ContainerSpec:
    name: str
    rootfs: str = ""
    netns: Optional[str] = None
    hostname: str = ""
    command: List[str] = field(default_factory=list)
    env: Dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    capabilities: List[str] = field(default_factory=lambda: list(DEFAULT_CAPABILITIES))
    cgroup: Optional[str] = None
    userns_base: Optional[int] = None     # map ids 0-65535 inside to base.. on the host
    privileged: bool = False
    binds: List[dict] = field(default_factory=list)    # {path, source, readonly}
    files: Dict[str, str] = field(default_factory=dict)
    file_modes: Dict[str, int] = field(default_factory=dict)    # FILE_MODE when not listed
    restart_files: List[str] = field(default_factory=list)     # a change of these restarts
    log_max_size: int = LOG_MAX_SIZE     # the log rotates there, keeping one previous file
    seccomp: str = "default"             # or "unconfined": no syscall filter
    stop_timeout: float = 10.0
    state: str = "started"

    def config(self):
        """What defines the running container: a change here means a restart."""
        keys = ("rootfs", "netns", "hostname", "command", "env", "workdir", "capabilities",
                "cgroup", "userns_base", "privileged", "binds", "log_max_size", "seccomp")
        config = dict((k, getattr(self, k)) for k in keys)
        # Which files are bound in is fixed at start; their content is not (no restart).
        config["files"] = sorted(self.files)
        # ... except those listed in restart_files (a topology's files: a daemon reads its
        # configuration at start).
        config["file_digests"] = dict((path, hashlib.sha256(("%o\n%s" % (
            self.file_mode(path), self.files[path])).encode("utf-8")).hexdigest())
            for path in sorted(self.restart_files) if path in self.files)
        return config

    def file_mode(self, path):
        return self.file_modes.get(path, FILE_MODE)


@dataclass
class ContainerAction:
    summary: str
    verb: str                 # start, stop, restart, remove, files
    spec: ContainerSpec
    paths: List[str] = field(default_factory=list)


# A file nslab puts into a container (``files``) is at most this big.
FILE_MAX = 1024 * 1024
# Its permission bits unless it says otherwise: readable by every user of the container.
FILE_MODE = 0o644


def host_file_name(path):
    """The name, in a container's files directory, of the host-side copy of ``path``."""
    return quote(path, safe="")


def read_host_file(path, limit=FILE_MAX):
    """Content of nslab's own copy ``path``, or None if it is missing, not a regular file or
    bigger than ``limit``: never follows a link, never blocks, never reads more than that."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        data = handle.read(limit + 1)
    return None if len(data) > limit else data.decode("utf-8", "replace")


def write_host_file(directory, path, content, mode=FILE_MODE):
    """Write nslab's copy of a container's file ``path`` IN PLACE (same inode), so the
    read-only bind a running container has of it shows the new content at once."""
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ContainerError("%s is not nslab's directory of container files" % directory)
    os.chmod(directory, 0o700)
    # Readable inside by any user of the container (a user namespace's root is not the
    # host's); the 0700 directory keeps other host users out.
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open(host_file_name(path), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW |
                     os.O_NONBLOCK | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "wb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ContainerError("%s/%s is not a regular file" % (directory,
                                                                  host_file_name(path)))
        os.fchmod(fd, mode)
        data = content.encode("utf-8")
        handle.write(data)
        handle.truncate(len(data))


def files_to_write(spec, directory):
    """Paths of ``spec.files`` whose host-side copy in ``directory`` differs or is missing.
    The container's own root is never read: what it did to its copy does not matter."""
    def mode(path):
        try:
            return stat.S_IMODE(os.lstat(path).st_mode)
        except OSError:
            return None

    return [path for path, content in sorted(spec.files.items())
            if read_host_file(os.path.join(directory, host_file_name(path))) != content
            or mode(os.path.join(directory, host_file_name(path))) != spec.file_mode(path)]


def namespace_inodes(pid):
    inodes = {}
    for nstype in NS_TYPES:
        try:
            inodes[nstype] = os.stat("/proc/%d/ns/%s" % (pid, nstype)).st_ino
        except OSError:
            pass
    return inodes


def health_problem(record, spec, layout, lab):
    """Why a running init no longer is the container ``spec`` asks for, or None: its net
    namespace is not the one now at the netns's path (deleted and made again), it is not
    in its cgroup (moved out, the cgroup removed and made again), or its root is not the
    jail's root (unmounted and mounted again). Such an init runs, but cut off from its lab."""
    pid = record["pid"]
    try:
        if spec.netns:
            try:
                wanted = os.stat(netns_path(spec.netns)).st_ino
            except FileNotFoundError:
                return "its net namespace %s is gone" % spec.netns
            if os.stat("/proc/%d/ns/net" % pid).st_ino != wanted:
                return "its net namespace was replaced"
        if spec.cgroup and layout is not None:
            where = init_cgroup_paths(pid)
            wanted = "/" + cgroup_relpath(lab, spec.cgroup)
            for hierarchy in layout.hierarchies:
                if not os.path.isdir(hierarchy.path(cgroup_relpath(lab, spec.cgroup))):
                    continue
                keys = [""] if hierarchy.version == 2 else list(hierarchy.controllers)
                paths = [where[k] for k in keys if k in where]
                if paths and paths[0] != wanted and not paths[0].startswith(wanted + "/"):
                    return "it is no longer in its cgroup %s" % wanted.lstrip("/")
        if spec.rootfs:
            have, want = os.stat("/proc/%d/root" % pid), os.stat(spec.rootfs)
            if (have.st_dev, have.st_ino) != (want.st_dev, want.st_ino):
                return "its root is no longer the jail's root"
    except (FileNotFoundError, ProcessLookupError):
        return None           # the init is gone: the next read sees it as died
    return None


def plan_containers(specs, states, stale_files=None, bind_dirs=None, broken=None):
    """Desired specs vs. recorded/live states -> ContainerActions. ``stale_files``:
    {name: [paths whose content differs]} (see ``files_to_write``); ``bind_dirs``:
    {name: its existing directory of nslab's own binds} (see ``owned_bind_dir``);
    ``broken``: {name: why its running init is not the container's any more} (see
    ``health_problem``)."""
    actions = []
    for spec in specs:
        state = states[spec.name]
        stale = (stale_files or {}).get(spec.name)
        if stale and spec.state != "absent":
            actions.append(ContainerAction("write %s in container '%s'" % (
                ", ".join(stale), spec.name), "files", spec, stale))
        running = state.running
        if spec.state == "absent":
            if state.record is not None:
                data = (bind_dirs or {}).get(spec.name)
                actions.append(ContainerAction(
                    "%s container '%s'%s" % (
                        "stop and remove" if running else "remove", spec.name,
                        " and its bind directory %s" % data if data else ""),
                    "remove", spec))
            continue
        if spec.state == "stopped":
            if running:
                actions.append(ContainerAction("stop container '%s'" % spec.name, "stop", spec))
            continue
        if not running:
            why = " (its init died)" if state.died else ""
            actions.append(ContainerAction("start container '%s'%s" % (spec.name, why),
                                           "start", spec))
            continue
        recorded = state.record["config"]
        changed = [k for k, v in spec.config().items()
                   if recorded.get(k, CONFIG_DEFAULTS.get(k)) != v]
        problem = (broken or {}).get(spec.name)
        if spec.state == "restarted" or changed or problem:
            why = " (%s changed)" % ", ".join(changed) if changed else (
                " (%s)" % problem if problem else "")
            actions.append(ContainerAction("restart container '%s'%s" % (spec.name, why),
                                           "restart", spec))
    return actions


def owned_bind_dir(lab, name):
    """Where the host directories of a container's binds without a source live."""
    return os.path.join(DATA_ROOT, lab, "binds", name)


def cgroup_mounts(layout, entries, dirs):
    """The mounts a privileged container gets inside: each hierarchy below /sys/fs/cgroup
    that holds one of its cgroup ``dirs``, with the host's super options (a v1 hierarchy
    is found again only by exactly its controllers)."""
    hierarchy_mounts = set(h.mount for h in layout.hierarchies
                           if any(d.startswith(h.mount.rstrip("/") + "/") for d in dirs))
    result = []
    for entry in entries:
        if entry.mount_point in hierarchy_mounts and (
                entry.mount_point == CGROUP_ROOT or entry.mount_point.startswith(
                    CGROUP_ROOT + "/")):
            options = [o for o in entry.super_options.split(",") if o not in ("rw", "ro")]
            result.append({"mount": entry.mount_point, "fstype": entry.fstype,
                           "options": ",".join(options)})
            hierarchy_mounts.discard(entry.mount_point)
    return result


INIT_SOURCE = None
START_BATCH = 32     # inits started at once: each holds two pipes until it reports
LAUNCHER_LABEL = "nslab-launcher"    # padded to the longest label the launcher hands out


def launcher_source(sock_fd):
    """The launcher's script: nslab_seccomp's source (the filter), nslab_init's, then the
    call that runs the launcher on the socket ``sock_fd``."""
    global INIT_SOURCE
    if INIT_SOURCE is None:
        INIT_SOURCE = inspect.getsource(nslab_seccomp) + "\n" + inspect.getsource(nslab_init)
    return "%s\nlauncher(%d)\n" % (INIT_SOURCE, sock_fd)


def launcher_placeholder(lab, labels):
    """The launcher's last argument, ``nslab-launcher:<lab>:`` padded with dots to room
    for the longest of ``labels``: never a label (nothing may take it for an init)."""
    base = "%s:%s:" % (LAUNCHER_LABEL, lab)
    width = max([len(label.encode("utf-8")) for label in labels] + [0])
    return base + "." * max(1, width - len(base.encode("utf-8")))


def _read_reports(fd, timeout):
    """Lines the init writes to its report pipe until it closes it (or time runs out)."""
    data, deadline = b"", time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise ContainerError("the init did not report within %.0f s" % timeout)
        chunk = os.read(fd, 4096)
        if not chunk:
            return data.decode("utf-8", "replace").splitlines()
        data += chunk


class Launcher:
    """One fresh ``python3 -I -S -`` per module run that compiles the init once and forks
    every init of the run from itself (see nslab_init.launcher): the inits share its pages.
    It gets each container's descriptors over a socketpair and answers with the pid of the
    child it forked; it exits once the socket is closed and its children have left."""

    def __init__(self, python, lab, labels):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # What the launcher itself prints (a traceback if it breaks) goes to a file: a pipe
        # nobody reads could block it.
        self.errors = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [python, "-I", "-S", "-", launcher_placeholder(lab, labels)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.errors,
                pass_fds=(theirs.fileno(),), start_new_session=True,
                # the host's environment stays out of the containers' PID 1
                env={"PATH": LAUNCHER_PATH, "LC_ALL": "C.UTF-8"})
        except BaseException:
            self.sock.close()
            self.errors.close()
            raise
        finally:
            theirs_fd = theirs.fileno()
            theirs.close()
        try:
            self.proc.stdin.write(launcher_source(theirs_fd).encode())
            self.proc.stdin.close()
        except OSError as err:
            self.close()
            raise ContainerError("the init launcher did not start: %s%s" % (err, self.output()))

    def output(self):
        self.errors.seek(0)
        text = self.errors.read()[-2000:].decode("utf-8", "replace").strip()
        return "; it printed: %s" % text if text else ""

    def launch(self, config, fds):
        """Have the launcher fork an init for ``config`` with ``fds`` (nslab_init.LAUNCH_FDS
        order); its pid."""
        try:
            socket.send_fds(self.sock, [json.dumps(config).encode("utf-8")], fds)
            if not select.select([self.sock], [], [], START_TIMEOUT)[0]:
                raise ContainerError("the init launcher did not answer within %.0f s"
                                     % START_TIMEOUT)
            answer = self.sock.recv(4096).decode("utf-8", "replace")
        except OSError as err:
            self.proc.poll()
            raise ContainerError("the init launcher failed: %s%s" % (err, self.output()))
        if not answer.startswith("pid "):
            raise ContainerError("the init launcher failed: %s%s" % (
                answer or "it exited (status %s)" % self.proc.poll(), self.output()))
        return int(answer.split()[1])

    def close(self):
        """Let the launcher end; kill it if it does not within START_TIMEOUT."""
        self.sock.close()
        try:
            self.proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            self.errors.close()


@dataclass
class Launch:
    """An init on its way up: forked by the launcher, moved into its cgroups, told to go.
    ``pid`` and ``start_time`` are the launcher's child (stage 1), not yet PID 1."""
    spec: ContainerSpec
    pid: int
    start_time: Optional[int]
    ready_r: int
    cgroups: List[str]

    def stage1_alive(self):
        return self.start_time is not None and proc_start_time(self.pid) == self.start_time


class ContainerManager:
    """Starts and stops containers, many at once; undoes this run's starts if a later
    step fails."""

    def __init__(self, store, layout, python=None, mounts=()):
        self.store = store
        self.python = python or sys.executable
        self.layout = layout
        self.mounts = mounts          # parsed mountinfo, for privileged containers' cgroups
        self.started = []

    def label(self, spec):
        """The argument that labels a container's init in ps: nslab:<lab>:<container>."""
        return "nslab:%s:%s" % (self.store.lab, spec.name)

    def _launch(self, launcher, spec):
        cgroups = cgroup_dirs(self.layout, self.store.lab, spec.cgroup) if spec.cgroup else []
        config = dict(spec.config(), label=self.label(spec),
                      files=dict((path, os.path.join(self.store.files_dir(spec.name),
                                                     host_file_name(path)))
                                 for path in sorted(spec.files)),
                      netns=netns_path(spec.netns) if spec.netns else None,
                      cgroup_mounts=cgroup_mounts(self.layout, self.mounts, cgroups)
                      if spec.privileged and cgroups else None)
        for bind in spec.binds:
            if bind["source"].startswith(owned_bind_dir(self.store.lab, spec.name) + "/"):
                os.makedirs(bind["source"], mode=0o755, exist_ok=True)
        # Records and logs are the host's business only.
        os.makedirs(self.store.directory(), mode=0o700, exist_ok=True)
        os.chmod(self.store.directory(), 0o700)
        self._drop_unlisted_files(spec)
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        try:
            log_fd, old_fd = (_open_log(path) for path in self.store.log_paths(spec.name))
            config.update(log_max_size=spec.log_max_size)
            try:
                pid = launcher.launch(config, [ready_w, go_r, log_fd, old_fd])
            finally:
                for fd in (log_fd, old_fd):
                    os.close(fd)
        except BaseException:
            os.close(ready_r)
            os.close(go_w)
            raise
        finally:
            for fd in (ready_w, go_r):
                os.close(fd)
        launch = Launch(spec, pid, proc_start_time(pid), ready_r, cgroups)
        try:
            # The device cgroup (nslab_devices) is set before the init joins its cgroup, so
            # nothing of the container ever runs without it.
            if spec.cgroup:
                restrict_devices(self.layout, cgroup_relpath(self.store.lab, spec.cgroup),
                                 spec.privileged)
            if launch.start_time is None:
                raise ContainerError("the launcher's child %d for container '%s' is gone "
                                     "before it was told to go" % (pid, spec.name))
            for directory in cgroups:
                with open(os.path.join(directory, "cgroup.procs"), "w") as handle:
                    handle.write(str(pid))
            os.write(go_w, b"1")
        except BaseException as err:
            os.close(ready_r)
            self._abandon(launch, None, err)
        finally:
            os.close(go_w)
        return launch

    def _drop_unlisted_files(self, spec):
        """Copies of files no longer listed: a start binds only what is listed now."""
        directory = self.store.files_dir(spec.name)
        listed = set(host_file_name(path) for path in spec.files)
        if os.path.isdir(directory) and not os.path.islink(directory):
            for entry in os.listdir(directory):
                if entry not in listed:
                    os.unlink(os.path.join(directory, entry))

    def _finish(self, launch):
        """Wait for an init's report and record it."""
        spec, pid = launch.spec, None
        try:
            reports = _read_reports(launch.ready_r, START_TIMEOUT)
            # Its report pipe is closed: stage 1 has exited or is about to.
            deadline = time.monotonic() + START_TIMEOUT
            while launch.stage1_alive():
                if time.monotonic() > deadline:
                    raise ContainerError("stage 1 of container '%s' did not exit" % spec.name)
                time.sleep(0.002)
            pids = [int(r.split()[1]) for r in reports if r.startswith("pid ")]
            pid = pids[0] if pids else None
            errors = [r[len("error: "):] if r.startswith("error: ") else r
                      for r in reports if r.startswith("error")]
            if errors or "ready" not in reports or pid is None:
                raise ContainerError("container '%s' did not start: %s" % (
                    spec.name, "; ".join(errors) or "no ready report"))
        except BaseException as err:
            self._abandon(launch, pid, err)
        finally:
            os.close(launch.ready_r)
        record = {"lab": self.store.lab, "name": spec.name, "pid": pid,
                  "start_time": proc_start_time(pid), "namespaces": namespace_inodes(pid),
                  "started_at": time.time(), "running": True, "config": spec.config(),
                  "cgroup_dirs": launch.cgroups, "log": self.store.log_path(spec.name),
                  "stop_timeout": spec.stop_timeout}
        write_json_atomic(self.store.record_path(spec.name), record)
        self.started.append(spec)
        return record

    def _abandon(self, launch, pid, err):
        """Kill what a failed start left and raise, with what the init printed."""
        if launch.stage1_alive():
            _kill_quietly(launch.pid)
        if pid is not None:
            _kill_quietly(pid)
        output = self._discard_log(launch.spec.name)
        if isinstance(err, ContainerError) and output:
            raise ContainerError("%s; its output: %s" % (err, output))
        raise err

    def start_many(self, specs):
        """Start every container, a batch at a time, all forked by one launcher: the inits
        of a batch come up in parallel. The first failure is raised once its batch has been
        seen to."""
        if not specs:
            return
        launcher = Launcher(self.python, self.store.lab, [self.label(spec) for spec in specs])
        try:
            for first in range(0, len(specs), START_BATCH):
                launches, failure = [], None
                for spec in specs[first:first + START_BATCH]:
                    try:
                        launches.append(self._launch(launcher, spec))
                    except (NslabError, OSError, subprocess.SubprocessError) as err:
                        failure = failure or err
                        break
                for launch in launches:
                    try:
                        self._finish(launch)
                    except (NslabError, OSError, subprocess.SubprocessError) as err:
                        failure = failure or err
                if failure:
                    raise failure
        finally:
            launcher.close()

    def _discard_log(self, name):
        """The tail of a container's log; the log itself goes unless a record keeps it."""
        path = self.store.log_path(name)
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 2000))
                tail = handle.read().decode("utf-8", "replace").strip()
        except FileNotFoundError:
            return ""
        if not os.path.exists(self.store.record_path(name)):
            for log in self.store.log_paths(name) + [self.store.exec_path(name)]:
                if os.path.lexists(log):
                    os.unlink(log)
            shutil.rmtree(self.store.files_dir(name), ignore_errors=True)
            remove_empty_dirs(self.store.directory(), self.store.root)
        return tail

    # Seams for the unit tests of stop_many: its clock, its pause and its signal sender.
    clock = staticmethod(time.monotonic)
    pause = staticmethod(time.sleep)
    send_signal = staticmethod(os.kill)

    def stop_many(self, specs):
        """SIGTERM every running init at once, SIGKILL those still there after their
        stop_timeout, and mark their records stopped. An init still there KILL_GRACE
        seconds after its SIGKILL is stuck in the kernel: once every other init is dealt
        with, raise StopError naming it and its pid (its record stays running)."""
        pending = []
        for spec in specs:
            record = self.store.read_record(spec.name)
            if record is None:
                continue
            if is_recorded_process(record):
                self.send_signal(record["pid"], signal.SIGTERM)
                pending.append((record, self.clock() + spec.stop_timeout, spec))
            else:
                self._stopped(spec, record)
        killed_at = {}
        stuck = []
        while pending:
            still = []
            now = self.clock()
            for record, deadline, spec in pending:
                if proc_start_time(record["pid"]) != record["start_time"]:
                    self._stopped(spec, record)
                    continue
                if spec.name in killed_at:
                    if now > killed_at[spec.name] + KILL_GRACE:
                        stuck.append((spec.name, record["pid"]))
                        continue
                elif now > deadline:
                    _kill_quietly(record["pid"], self.send_signal)
                    killed_at[spec.name] = now
                still.append((record, deadline, spec))
            pending = still
            if pending:
                self.pause(0.02)
        if stuck:
            raise StopError(stuck, KILL_GRACE)

    def _stopped(self, spec, record):
        record["running"] = False
        write_json_atomic(self.store.record_path(spec.name), record)
        if record["config"].get("privileged"):
            for directory in record.get("cgroup_dirs") or []:
                remove_cgroups_below(directory)

    def remove_many(self, specs):
        self.stop_many(specs)
        for spec in specs:
            remove_owned_binds(self.store.lab, spec.name, self.mounts)
            for path in [self.store.record_path(spec.name), self.store.exec_path(spec.name)] \
                    + self.store.log_paths(spec.name):
                if os.path.lexists(path):
                    os.unlink(path)
            shutil.rmtree(self.store.files_dir(spec.name), ignore_errors=True)
        remove_empty_dirs(self.store.directory(), self.store.root)

    def apply(self, actions):
        """Write files, stop, remove, start; on a failure stop what this run started (the
        rest is not undone: a stopped or removed container is what was asked for)."""
        def specs(*verbs):
            return [a.spec for a in actions if a.verb in verbs]
        log = UndoLog()
        try:
            for action in actions:
                for path in action.paths:
                    write_host_file(self.store.files_dir(action.spec.name), path,
                                    action.spec.files[path], action.spec.file_mode(path))
                    log.record("write %s of container '%s'" % (path, action.spec.name))
            stopping = specs("stop", "restart")
            self.stop_many(stopping)
            for spec in stopping:
                log.record("stop container '%s'" % spec.name)
            removing = specs("remove")
            self.remove_many(removing)
            for spec in removing:
                log.record("remove container '%s'" % spec.name)
            first = len(self.started)
            try:
                self.start_many(specs("start", "restart"))
            finally:       # also when a later start failed: those that came up go again
                self._record_started(log, self.started[first:])
        except (NslabError, OSError, subprocess.SubprocessError) as err:
            raise log.fail(err)

    def _record_started(self, log, started):
        """One step per container started; one undo stops all of them at once (their
        stop timeouts run in parallel, as in stop_many)."""
        if started:
            log.record_all(["start container '%s'" % spec.name for spec in started],
                           functools.partial(self.stop_many, list(started)))


def remove_owned_binds(lab, name, mounts):
    """Delete the directories nslab made for a container's binds, unless something is
    mounted on the host below them (then they are not only nslab's to delete)."""
    directory = owned_bind_dir(lab, name)
    if not os.path.isdir(directory):
        return
    busy = [m.mount_point for m in mounts if m.mount_point == directory
            or m.mount_point.startswith(directory + "/")]
    if busy:
        raise ContainerError("bind directory %s of container '%s' has mounts below it (%s); "
                             "unmount them first" % (directory, name, ", ".join(busy)))
    # coreutils rm walks iteratively (openat), never follows a link and stays on this file
    # system: a container's 1,100-deep tree in its bind cannot exhaust a recursion limit.
    proc = subprocess.run([shutil.which("rm") or "rm", "-rf", "--one-file-system", "--",
                           directory], capture_output=True, env=dict(os.environ, LC_ALL="C"),
                          check=False)
    if proc.returncode != 0 or os.path.lexists(directory):
        raise ContainerError("cannot remove bind directory %s of container '%s': rm exited "
                             "%d: %s" % (directory, name, proc.returncode, proc.stderr.decode(
                                 "utf-8", "replace").strip()))
    remove_empty_dirs(os.path.dirname(directory), DATA_ROOT)


def _open_log(path):
    """A container's log file for its init: mode 0600, appended to, never through a link."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _kill_quietly(pid, send_signal=os.kill):
    try:
        send_signal(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The init of an nslab container: PID 1 in its own pid namespace.

This file is standalone (standard library only). nslab_container feeds its source, ended
by a call ``launcher(SOCKET_FD)``, to ONE fresh ``python3 -I -S -`` per module run (not a
fork of the Ansible module): the launcher compiles the source once, freezes its objects
(``gc.freeze``) and forks one child per container the module asks for over a socket (the
container's config as JSON, its report/go pipes and log files as SCM_RIGHTS descriptors).
The children share the launcher's pages copy-on-write, so an idle init costs only the pages
it touched. Each child at once closes every descriptor that is not its own, becomes a
session leader, writes its own label ``nslab:<lab>:<name>`` over the launcher's padded
placeholder argument (ps, nslab_adopt and the tests find inits by it), then is exactly what
``main(CONFIG)`` makes of it, in two stages:

1. in the host's pid namespace: wait until the module has moved it into the container's
   cgroups, join the container's net namespace, unshare mnt/uts/ipc/cgroup/pid namespaces
   (the cgroup namespace is rooted at the container's cgroup because it is unshared after
   the move), fork PID 1 and exit;
2. as PID 1: make every mount private, bind the jail root onto itself, the host
   directories of its binds and nslab's host-side copies of its files (read-only) into
   it, mount /proc, a read-only /sys (a privileged container's cgroup hierarchies
   read-write on top) and a minimal /dev into it, ``pivot_root`` into it and detach the
   old root (so no path leads back to the host's files, unlike a plain chroot), mask and
   make read-only the kernel surfaces runc does (unless privileged), set the hostname,
   drop capabilities to the kept set and set no_new_privs, install nslab_seccomp's
   filter (unless privileged or unconfined), become non-dumpable, start the command and
   report ready once it has been executed (a close-on-exec pipe carries the error of one
   that could not run), then stay as its init: reap every zombie, forward SIGTERM/SIGINT/
   SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it and relay its output into the rotated log. When
   the command exits, PID 1 exits with its status and the kernel ends everything else in
   the namespace.

Python keeps running after ``pivot_root`` because everything it needs is loaded before.

``enter(CONFIG)`` is the other entry point: the door into a running container that nslab's
connection plugin uses (``nsenter`` plus what nsenter does not do: bare ``nsenter --all``
runs the container's own binaries with the host root's capabilities and no filter, a
root-only admin bypass, never the way in). It checks that the
recorded init is still that process, joins the container's cgroups and all its namespaces,
and runs a command there as the container's root with the container's capabilities,
no_new_privs and environment, so what runs through it is held like the container itself.
"""

import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
# os.execvpe imports warnings when it runs: after pivot_root no module can be found.
import warnings  # noqa: F401  pylint: disable=unused-import

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

O_PATH = 0o10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_MM = 35
PR_SET_MM_ARG_END = 9
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522

CAPABILITIES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]
FORWARDED_SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2]
# Device nodes of a minimal /dev: name -> (major, minor). Nothing else of the host's.
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
           "urandom": (1, 9), "tty": (5, 0)}
# Kernel surfaces hidden from a container, as runc does: files get /dev/null bound over
# them, directories an empty read-only tmpfs; and those made read-only.
MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# Copies of nslab_paths.JAIL_PATH and CGROUP_ROOT: this file is standalone (its test checks
# they agree).
JAIL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CGROUP_ROOT = "/sys/fs/cgroup"
SYSCALLS = {"x86_64": {"pivot_root": 155, "capset": 126},
            "aarch64": {"pivot_root": 41, "capset": 91}}

# The C library python3 is linked with, not ctypes.util.find_library: that imports
# subprocess and threading, whose fork handler alone dirties ~0.4 MiB in every forked init.
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def read_file(path):
    """The bytes of a kernel file, to its end. The init reads and writes those with
    os.open, not open(): Python's io stack, the first time a forked init uses it, dirties
    ~0.3 MiB of the memory it shares with the others; and it takes half the time
    (nslab_cgroup_layout reads cgroup files with this)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _b(value):
    return value.encode() if isinstance(value, str) else value


def mount(source, target, fstype=None, flags=0, data=None):
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
           "mount %s" % target)


def syscall(name, *args):
    number = SYSCALLS.get(os.uname().machine, {}).get(name)
    if number is None:
        raise OSError(38, "%s: unsupported architecture %s" % (name, os.uname().machine))
    _check(_libc.syscall(number, *args), name)


def cap_numbers(names):
    """Capability names (with or without CAP_) -> sorted numbers; unknown names raise."""
    numbers = set()
    for name in names:
        key = name.upper()
        key = key[4:] if key.startswith("CAP_") else key
        numbers.add(CAPABILITIES.index(key))
    return sorted(numbers)


def cap_masks(numbers):
    """The two 32-bit words of a capability set (capset's v3 layout)."""
    low = high = 0
    for number in numbers:
        if number < 32:
            low |= 1 << number
        else:
            high |= 1 << (number - 32)
    return low, high


def plan_capabilities(keep):
    """What drop_capabilities needs for the kept set ``keep``: the capabilities to drop
    from the bounding set and capset's header and data. The launcher makes it once per
    set: ctypes types and objects made in a forked init cost it ~0.2 MiB it shares no more."""
    last = int(read_file("/proc/sys/kernel/cap_last_cap"))
    kept = cap_numbers(keep)
    low, high = cap_masks(kept)
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    # effective, permitted, inheritable for each 32-bit word
    data = (ctypes.c_uint32 * 6)(low, low, 0, high, high, 0)
    return [number for number in range(last + 1) if number not in kept], header, data


def drop_capabilities(keep, no_new_privs=True, plan=None):
    """Keep only ``keep`` (``plan``: plan_capabilities(keep), if made beforehand)."""
    dropped, header, data = plan or plan_capabilities(keep)
    for number in dropped:
        if _libc.prctl(PR_CAPBSET_DROP, number, 0, 0, 0) != 0:
            _check(-1, "drop capability %d" % number)
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient")
    syscall("capset", header, data)
    if no_new_privs:
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def make_dev(root):
    dev = os.path.join(root, "dev")
    os.makedirs(dev, exist_ok=True)
    # A /dev the jail brought (nslab_jail mounts one) is replaced by the container's own;
    # detaching it here only affects this private mount namespace.
    if _libc.umount2(_b(dev), MNT_DETACH) != 0 and ctypes.get_errno() != 22:   # EINVAL: none
        _check(-1, "detach the jail's /dev")
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k")
    for name, (major, minor) in DEVICES.items():
        path = os.path.join(dev, name)
        try:
            os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))
            os.chmod(path, 0o666)
        except PermissionError:
            # No mknod in a user namespace: bind the host's node instead.
            open(path, "w").close()
            mount("/dev/" + name, path, None, MS_BIND)
    os.mkdir(os.path.join(dev, "pts"))
    mount("devpts", os.path.join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    os.mkdir(os.path.join(dev, "shm"))
    mount("shm", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m")
    for index, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink("/proc/self/fd/%d" % index, os.path.join(dev, name))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))


def open_beneath(root, path):
    """O_PATH descriptors of the parent of directory ``path`` inside ``root`` and of the
    directory itself (made if missing), reached without following any symlink: a link
    planted in the jail cannot redirect a mount."""
    parts = [p for p in path.split("/") if p]
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for index, part in enumerate(parts):
        try:
            next_fd = os.open(part, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            os.mkdir(part, 0o755, dir_fd=fd)
            next_fd = os.open(part, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        if index == len(parts) - 1:
            return fd, next_fd
        os.close(fd)
        fd = next_fd


def locked_flags(path, userns):
    """In a user namespace, the read-only/nosuid/nodev/noexec flags of the mount at
    ``path`` (statvfs's ST_* bits are these MS_* values): there the kernel locks the flags of
    mounts it inherited (the host's jail is nosuid,nodev) and refuses a remount that
    clears them (EPERM). Outside one, none: the host's root may clear them (a privileged
    container's root runs setuid programs)."""
    if not userns:
        return 0
    return os.statvfs(path).f_flag & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def mount_binds(root, binds, userns=False):
    """Bind each host directory onto its path in the root (not recursively: nothing
    mounted below the source comes along); no device node on it works."""
    for bind in binds:
        parent, fd = open_beneath(root, bind["path"])
        try:
            mount(bind["source"], "/proc/self/fd/%d" % fd, None, MS_BIND)
            os.close(fd)
            # The old descriptor is the directory under the new mount; a fresh lookup from
            # the parent finds the mount, whose flags the remount sets.
            fd = os.open(os.path.basename(bind["path"]), O_PATH | os.O_DIRECTORY |
                         os.O_NOFOLLOW, dir_fd=parent)
            target = "/proc/self/fd/%d" % fd
            flags = MS_BIND | MS_REMOUNT | MS_NODEV | (MS_RDONLY if bind["readonly"] else 0)
            mount(None, target, None, flags | locked_flags(target, userns))
        finally:
            os.close(fd)
            os.close(parent)


def open_file_sources(files):
    """O_PATH descriptors of nslab's host-side copies {path inside: host file}, opened while
    still the host's root uid (a user namespace's root could not reach them later)."""
    fds = {}
    for path, source in sorted((files or {}).items()):
        fds[path] = os.open(source, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    return fds


def bind_files(root, file_fds):
    """Bind each host-side copy read-only onto its path in the root. The target is reached
    without following any link; one that is missing or not a regular file (a FIFO, a
    link...) is replaced by an empty file first, inside the root."""
    for path, source_fd in sorted(file_fds.items()):
        parent_path, name = os.path.split(path)
        if parent_path == "/":
            parent = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        else:
            grandparent, parent = open_beneath(root, parent_path)
            os.close(grandparent)
        try:
            try:
                info = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if not _is_regular(info.st_mode):
                    if _is_dir(info.st_mode):
                        raise OSError(21, "files: %s is a directory in the container" % path)
                    os.unlink(name, dir_fd=parent)
                    raise FileNotFoundError
            except FileNotFoundError:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                 0o644, dir_fd=parent))
            target = os.open(name, O_PATH | os.O_NOFOLLOW, dir_fd=parent)
            try:
                mount("/proc/self/fd/%d" % source_fd, "/proc/self/fd/%d" % target, None,
                      MS_BIND)
            finally:
                os.close(target)
            # A fresh lookup finds the mount, whose flags the remount sets.
            target = os.open(name, O_PATH | os.O_NOFOLLOW, dir_fd=parent)
            try:
                mount(None, "/proc/self/fd/%d" % target, None, MS_BIND | MS_REMOUNT |
                      MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
            finally:
                os.close(target)
        finally:
            os.close(parent)
            os.close(source_fd)


def _is_regular(mode):
    return mode & 0o170000 == 0o100000


def _is_dir(mode):
    return mode & 0o170000 == 0o040000


def mount_cgroups(sys_dir, hierarchies):
    """A privileged container's cgroup hierarchies at the host's mount points, read-write.
    Mounted inside its cgroup namespace, each shows the container's own cgroup as its root,
    so what it makes there lands below that cgroup on the host."""
    top = os.path.join(sys_dir, "fs", "cgroup")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if [h for h in hierarchies if h["mount"] == CGROUP_ROOT]:     # a pure v2 host
        for hierarchy in hierarchies:
            mount("cgroup", top, hierarchy["fstype"], flags, hierarchy["options"])
        return
    # v1 or hybrid: a tmpfs of mount points, read-only once they are made, as on the host
    mount("tmpfs", top, "tmpfs", flags, "mode=755,size=64k")
    for hierarchy in hierarchies:
        target = os.path.join(top, os.path.relpath(hierarchy["mount"], CGROUP_ROOT))
        os.makedirs(target, exist_ok=True)
        mount("cgroup", target, hierarchy["fstype"], flags, hierarchy["options"])
    mount(None, top, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)


def enter_root(root, binds=(), cgroups=None, privileged=False, file_fds=None, userns=False):
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount(root, root, None, MS_BIND | MS_REC)
    # No device node on the root filesystem works, whatever a process creates there.
    mount(None, root, None, MS_BIND | MS_REMOUNT | MS_NODEV | locked_flags(root, userns))
    mount_binds(root, binds, userns)
    bind_files(root, file_fds or {})
    for sub in ("proc", "sys", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    mount("proc", os.path.join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    sys_dir = os.path.join(root, "sys")
    try:
        mount("sysfs", sys_dir, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        # In a user namespace that does not own the net namespace sysfs cannot be
        # mounted, and a bind of the host's would bring its locked submounts (the cgroup
        # hierarchies among them): such a container gets an empty, read-only /sys.
        mount("tmpfs", sys_dir, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=4k")
    if cgroups:
        mount_cgroups(sys_dir, cgroups)
    make_dev(root)
    os.chdir(root)
    # pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then
    # detaches it, so no directory of the host remains reachable.
    syscall("pivot_root", b".", b".")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    # Kernel knobs stay read-only inside, whatever capabilities are kept; a privileged
    # container sees the rest of /proc and /sys as the host's root does.
    for path in ("/proc/sys", "/proc/sysrq-trigger") if privileged else READONLY_PATHS:
        if os.path.exists(path):
            mount(path, path, None, MS_BIND)
            mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV |
                  MS_NOEXEC)
    if not privileged:
        for path in MASKED_PATHS:
            mask_path(path)
    if privileged:
        # The net sysctls are the container's own net namespace's (forwarding for a lab
        # nested inside); the rest stay read-only, as they are the host's.
        mount("/proc/sys/net", "/proc/sys/net", None, MS_BIND)
        mount(None, "/proc/sys/net", None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV)


def mask_path(path):
    """Hide ``path`` (if the kernel has it): an empty read-only tmpfs over a directory,
    /dev/null over anything else, so reading it gives nothing and writing fails."""
    try:
        is_dir = os.path.isdir(path) and not os.path.islink(path)
        if not is_dir and not os.path.lexists(path):
            return
    except OSError:
        return
    if is_dir:
        mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
    else:
        mount("/dev/null", path, None, MS_BIND)


def confined(config):
    """Whether the container's processes get nslab's default seccomp filter."""
    return not config.get("privileged") and config.get("seccomp", "default") != "unconfined"


def install_seccomp(capabilities, program=None):
    """nslab_seccomp's filter (after no_new_privs): its source precedes this file's when the
    init or the door runs as a script; imported as a module, it is imported here.
    ``program``: the filter for ``capabilities`` if the launcher built it already."""
    install = globals().get("seccomp_install")
    if install is None:
        from ansible_collections.nslab.lab.plugins.module_utils.nslab_seccomp import (
            seccomp_install as install)
    install(capabilities, program)


def prepare(cache, config):
    """What the launcher makes for an init before it forks it, once per capability set
    and kept in ``cache``: the capability plan and the seccomp filter (None when the
    container gets none). Every init forked afterwards shares them instead of making its
    own (~0.3 MiB of objects for the filter). What cannot be made (an unknown capability)
    is left to the init, which then reports why."""
    key = (tuple(sorted(config.get("capabilities") or ())), confined(config))
    if key not in cache:
        try:
            capabilities = plan_capabilities(key[0])
        except (ValueError, OSError):
            capabilities = None
        build, prepare_filter = globals().get("seccomp_program"), globals().get("seccomp_prepare")
        program = None
        if key[1] and build and prepare_filter:
            try:                    # ValueError: a machine without a filter, a bad capability
                program = prepare_filter(build(os.uname().machine, key[0]))
            except ValueError:
                pass
        cache[key] = capabilities, program
    return cache[key]


def make_undumpable():
    """No process of the container may ptrace this one or read its /proc/<pid>/{mem,fd,
    environ} (it holds host descriptors and the host's environment); a child gets a
    normal dumpable process again when it execs."""
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "make the process non-dumpable")


def container_env(config):
    """The environment of the container's processes: a clean one, never the host's."""
    env = {"PATH": JAIL_PATH, "HOME": "/root", "HOSTNAME": config["hostname"],
           "container": "nslab"}
    env.update(config.get("env") or {})
    return env


def proc_start_time(pid):
    """Start time of ``pid`` in clock ticks, or None if it is gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()   # the command name may contain spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def report(fd, message):
    os.write(fd, (message + "\n").encode())


def set_oom_score_adj(value):
    """Best effort: lowering it needs CAP_SYS_RESOURCE, which some sandboxes withhold."""
    try:
        write_file("/proc/self/oom_score_adj", b"%d" % value)
    except PermissionError:
        pass


def in_child(function, *args):
    """Run ``function(*args)`` in a child of this process and wait for it to end; raise
    OSError with its error if it failed. What it does to the namespaces it shares with
    us (mounts, pivot_root, the hostname) is ours too; the memory it writes is not: PID 1
    stays idle for the container's life, and every page its own Python work dirtied would
    stay its private copy (~0.4 MiB for enter_root)."""
    error_r, error_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(error_r)
            function(*args)
            status = 0
        except BaseException as err:
            message = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            os.write(error_w, (message or repr(err)).encode("utf-8", "replace")[:4000])
        finally:
            os._exit(status)
    os.close(error_w)
    error = b""
    while True:
        chunk = os.read(error_r, 4096)
        if not chunk:
            break
        error += chunk
    os.close(error_r)
    status = os.waitpid(pid, 0)[1]
    if error or status:
        raise OSError(0, error.decode("utf-8", "replace") or "the setup process ended with "
                      "status %d" % exit_code(status))


def build_root(config, privileged):
    """PID 1's setup child: the hostname, then the container's root (enter_root)."""
    socket.sethostname(config["hostname"])
    enter_root(config["rootfs"], config.get("binds") or [], config.get("cgroup_mounts"),
               privileged, config.get("file_fds"), config.get("userns_base") is not None)


def run_init(config, ready_fd):
    """PID 1: set up the container, then run its command and reap."""
    # When the container hits its memory limit the OOM killer must take what allocates,
    # not the init (whose death ends the container); its children go back to 0.
    set_oom_score_adj(-999)
    privileged = bool(config.get("privileged"))
    # A child builds the root. Its pivot_root moves the root and working directory of
    # every process of the mount namespace that are the old root: ours among them, as we
    # stand at "/" now. We then check that "/" is the jail's root.
    jail = os.stat(config["rootfs"])
    os.chdir("/")
    in_child(build_root, config, privileged)
    for fd in (config.get("file_fds") or {}).values():
        os.close(fd)                  # the host's files: bound by the child, not ours to keep
    os.chdir("/")
    here = os.stat("/")
    if (here.st_dev, here.st_ino) != (jail.st_dev, jail.st_ino):
        raise OSError(0, "the container's root is not PID 1's root after pivot_root")
    # A privileged container runs setuid programs and su as a host would.
    drop_capabilities(config["capabilities"], not privileged, config.get("capability_plan"))
    if confined(config):
        install_seccomp(config["capabilities"], config.get("seccomp_program"))
    make_undumpable()
    env = container_env(config)
    command = config.get("command") or []
    log_fds = [config[k] for k in ("log_fd", "log_old_fd") if config.get(k) is not None]
    for fd in log_fds:
        os.set_inheritable(fd, False)          # the command gets a pipe, never the files
    # Block the signals PID 1 handles before the command exists: none is lost before the
    # handlers are in place.
    waited = set(FORWARDED_SIGNALS) | {signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    child, relay = 0, None
    if command:
        output_r, output_w = os.pipe2(os.O_CLOEXEC)
        child = start_command(command, env, config.get("workdir") or "/", ready_fd, output_w)
        os.close(output_w)
        if len(log_fds) == 2:
            relay = LogRelay(output_r, log_fds[0], log_fds[1],
                             config.get("log_max_size") or LOG_MAX_SIZE)
        else:
            os.close(output_r)
    report(ready_fd, "ready")
    os.close(ready_fd)
    _libc.prctl(PR_SET_NAME, b"nslab-init", 0, 0, 0)
    serve(child, relay, waited)


LOG_MAX_SIZE = 1024 * 1024


class LogRelay:
    """PID 1 copies the command's stdout/stderr from a pipe into the container's log, which
    it rotates at ``max_size`` into one previous file: at most twice that on the host. Both
    files were opened by the module (as the host's root, mode 0600); no extra process."""

    def __init__(self, pipe_fd, log_fd, old_fd, max_size):
        self.fd, self.log_fd, self.old_fd, self.max_size = pipe_fd, log_fd, old_fd, max_size
        os.set_blocking(pipe_fd, False)

    def pump(self):
        """Copy what the pipe holds now; False once every writer has closed it."""
        while self.fd is not None:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return True
            if not data:
                os.close(self.fd)
                self.fd = None
                break
            self.write(data)
        return False

    def write(self, data):
        size = os.fstat(self.log_fd).st_size   # the init's own messages go there too
        while data:
            if size >= self.max_size:
                self.rotate()
                size = 0
            chunk = data[:self.max_size - size]
            written = os.write(self.log_fd, chunk)
            size += written
            data = data[written:]

    def rotate(self):
        os.ftruncate(self.old_fd, 0)
        offset = 0
        while True:
            block = os.pread(self.log_fd, 65536, offset)
            if not block:
                break
            os.pwrite(self.old_fd, block, offset)
            offset += len(block)
        os.ftruncate(self.log_fd, 0)       # O_APPEND: the next write lands at 0


def serve(child, relay, waited):
    """PID 1's loop: reap every zombie, forward signals to the command, relay its output,
    and exit with its status when it ends (after copying what it left in the pipe). One
    select over the relay pipe and a signal wakeup pipe: a signal that comes between a
    reap and the select still wakes it."""
    pending = []
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    for signum in waited:
        signal.signal(signum, lambda number, _frame: pending.append(number))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, waited)
    while True:
        status = reap(child)
        if status is not None:
            if relay:
                relay.pump()
            os._exit(status)
        while pending:
            signum = pending.pop(0)
            if signum == signal.SIGCHLD:
                continue
            if child:
                try:
                    os.kill(child, signum)
                except ProcessLookupError:
                    pass
            elif signum in (signal.SIGTERM, signal.SIGINT):
                os._exit(0)
        watched = [wake_r] + ([relay.fd] if relay and relay.fd is not None else [])
        ready = select.select(watched, [], [])[0]
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        if relay and relay.fd in ready:
            relay.pump()


def start_command(command, env, workdir, ready_fd, output_fd):
    """Fork and exec the container's command; return its pid once the exec has
    succeeded. A command that cannot run raises OSError saying why: the child writes its
    error into a close-on-exec pipe, which a successful exec closes empty."""
    exec_r, exec_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        try:
            os.close(ready_fd)
            os.close(exec_r)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            set_oom_score_adj(0)
            null = os.open("/dev/null", os.O_RDONLY)   # stdin was the init's source
            os.dup2(null, 0)
            os.close(null)
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            try:
                os.chdir(workdir)
            except OSError as err:
                raise OSError(err.errno, "cannot enter workdir '%s': %s" % (
                    workdir, os.strerror(err.errno)))
            try:
                os.execvpe(command[0], command, env)
            except OSError as err:
                raise OSError(err.errno, "cannot run '%s': %s" % (
                    command[0], os.strerror(err.errno) if err.errno else err))
        except (OSError, ValueError) as err:
            message = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            os.write(exec_w, message.encode("utf-8", "replace")[:4000])
        finally:
            os._exit(127)
    os.close(exec_w)
    error = b""
    while True:
        chunk = os.read(exec_r, 4096)
        if not chunk:
            break
        error += chunk
    os.close(exec_r)
    if error:
        os.waitpid(child, 0)
        raise OSError(0, error.decode("utf-8", "replace"))
    return child


def exit_code(status):
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def reap(child):
    """Reap every process that has ended; the command's exit code once it has ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        if child and pid == child:
            return exit_code(status)


def map_ids(userns_base):
    """Fork a helper that stays in the host's user namespace and, once we have unshared
    ours, maps its ids 0-65535 to the host's userns_base.. (only a process outside may
    write the maps). Returns a function that lets it write them and waits for it."""
    go_r, go_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        os.close(go_w)
        parent = os.getppid()
        try:
            os.read(go_r, 1)
            for kind in ("uid_map", "gid_map"):
                with open("/proc/%d/%s" % (parent, kind), "w") as handle:
                    handle.write("0 %d 65536\n" % userns_base)
            os._exit(0)
        except Exception:
            os._exit(1)
    os.close(go_r)

    def write_maps():
        os.write(go_w, b"1")
        os.close(go_w)
        if os.waitpid(helper, 0)[1] != 0:
            raise OSError(1, "could not write the user namespace's id maps")
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    return write_maps


def relabelled_argv(area, label):
    """Replace the last argument of an argv ``area`` (the bytes /proc/self/cmdline shows,
    each argument NUL-ended) by ``label``. Returns (offset of that argument, the bytes to
    write there: the label, its NUL and NULs up to the area's end, so the area keeps its
    size, and the length of the area that ends just after the label's NUL). Raises
    ValueError if the area is not NUL-ended, the label is empty, holds a NUL or is longer
    than the argument it replaces."""
    if not area.endswith(b"\0"):
        raise ValueError("the argv area does not end with a NUL")
    if not label or b"\0" in label:
        raise ValueError("a label must be non-empty and hold no NUL: %r" % label)
    offset = area.rfind(b"\0", 0, len(area) - 1) + 1
    room = len(area) - 1 - offset
    if len(label) > room:
        raise ValueError("label %r (%d bytes) is longer than the placeholder (%d bytes)"
                         % (label, len(label), room))
    data = label + b"\0" * (len(area) - offset - len(label))
    return offset, data, offset + len(label) + 1


def argv_area():
    """(arg_start, arg_end) of this process: the memory /proc/self/cmdline shows."""
    stat = read_file("/proc/self/stat")
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[45]), int(fields[46])


def plan_label(label, area=None):
    """(address, bytes, new end of the argv area) that write ``label`` over this process's
    last argument. ``area``: (start, end, its bytes), if read already. The launcher plans
    each child's label before it forks it: a fork has the same argv area at the same
    address, and the child then runs none of the Python that takes."""
    start, end, data = area or argv_area() + (None,)
    if data is None:
        data = ctypes.string_at(start, end - start)
    offset, written, used = relabelled_argv(data, label.encode("utf-8"))
    return start + offset, written, start + used


def set_label(label, plan=None):
    """Write ``label`` over this process's last argument (the launcher's placeholder), so
    /proc/<pid>/cmdline shows it as a whole argument, as if it had been started with it.
    ``plan``: plan_label(label), if made beforehand."""
    address, data, end = plan or plan_label(label)
    ctypes.memmove(address, data, len(data))
    # Where the kernel lets us (CAP_SYS_RESOURCE in the initial user namespace), end the
    # area after the label; else the placeholder's spare bytes stay as empty arguments.
    _libc.prctl(PR_SET_MM, PR_SET_MM_ARG_END, ctypes.c_ulong(end), ctypes.c_ulong(0),
                ctypes.c_ulong(0))


LAUNCH_FDS = ("ready_fd", "go_fd", "log_fd", "log_old_fd")   # in the order they are sent
LAUNCH_MESSAGE_MAX = 1 << 20


def close_all_but(keep):
    """Close every descriptor of this process above 2 that is not in ``keep`` (close_range
    over the gaps: no listing of /proc/self/fd, whose objects a forked init would pay for)."""
    low = 3
    for fd in sorted(set(keep)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, max(low, os.sysconf("SC_OPEN_MAX")))     # none is above the limit


def become_init(config, sock):
    """A launcher's child: keep only this container's descriptors, then run ``main``."""
    try:
        sock.close()
        own = [config[k] for k in LAUNCH_FDS]
        close_all_but(own)
        os.setsid()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(config["log_fd"], 1)      # the init's own messages go to its log
        os.dup2(config["log_fd"], 2)
        if isinstance(config.get("label_plan"), ValueError):
            raise config["label_plan"]
        set_label(config["label"], config.get("label_plan"))
        gc.enable()
    except Exception as err:
        report(config["ready_fd"], "error stage 1: %s" % err)
        os._exit(1)
    main(config)
    os._exit(1)


def launcher(sock_fd):
    """One per module run: for each message (a container's config, JSON, with its four
    descriptors), fork a child that becomes its init and answer with the child's pid.
    Ends when the module closes its end, once every child has left stage 1."""
    sock = socket.socket(fileno=sock_fd)
    for fd in (0, 1):                     # the source pipe (read) and stdout
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, fd)
        os.close(null)
    start, end = argv_area()
    area = (start, end, ctypes.string_at(start, end - start))
    gc.collect()
    gc.freeze()      # what the children inherit stays untouched by their collections
    gc.disable()
    children, prepared = set(), {}
    while True:
        message, fds, flags, _addr = socket.recv_fds(sock, LAUNCH_MESSAGE_MAX, len(LAUNCH_FDS))
        if not message and not fds:
            break
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != len(LAUNCH_FDS):
            for fd in fds:
                os.close(fd)
            sock.send(b"error: truncated message (%d bytes, %d descriptors)"
                      % (len(message), len(fds)))
            continue
        config = json.loads(message.decode("utf-8"))
        config.update(zip(LAUNCH_FDS, fds))
        config["capability_plan"], config["seccomp_program"] = prepare(prepared, config)
        try:
            config["label_plan"] = plan_label(config["label"], area)
        except ValueError as err:
            config["label_plan"] = err      # the child reports it
        pid = os.fork()
        if pid == 0:
            become_init(config, sock)
        children.add(pid)
        for fd in fds:
            os.close(fd)
        sock.send(b"pid %d" % pid)
        children -= reap_children(children, os.WNOHANG)
    sock.close()
    reap_children(children, 0)


def reap_children(children, options):
    """Reap ended children of ``children`` (all of them unless WNOHANG); the set reaped."""
    reaped = set()
    for pid in list(children):
        try:
            if os.waitpid(pid, options)[0] == pid:
                reaped.add(pid)
        except ChildProcessError:
            reaped.add(pid)
    return reaped


def main(config):
    ready_fd, go_fd = config["ready_fd"], config["go_fd"]
    try:
        if os.read(go_fd, 1) != b"1":        # the module moves us into the cgroups first
            os._exit(1)
        os.close(go_fd)
        if config.get("netns"):
            fd = os.open(config["netns"], os.O_RDONLY)
            _check(_libc.setns(fd, CLONE_NEWNET), "join netns %s" % config["netns"])
            os.close(fd)
        flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWCGROUP
        write_maps = None
        if config.get("userns_base") is not None:
            # The new namespaces are then owned by the user namespace, whose root is an
            # ordinary user of the host.
            write_maps = map_ids(config["userns_base"])
            flags |= CLONE_NEWUSER
        _check(_libc.unshare(flags), "unshare")
        # In the new mount namespace (a bind's source must be in it) and still as the
        # host's root uid (nslab's 0700 directory is its own), even in a user namespace.
        config["file_fds"] = open_file_sources(config.get("files"))
        if write_maps:
            write_maps()
        pid = os.fork()
    except Exception as err:
        report(ready_fd, "error stage 1: %s" % err)
        os._exit(1)
    if pid:
        report(ready_fd, "pid %d" % pid)
        os._exit(0)
    try:
        run_init(config, ready_fd)
    except Exception as err:
        report(ready_fd, "error: %s" % (err.strerror if isinstance(err, OSError) and
                                        err.strerror else err))
        os._exit(1)


# The door: exit status and stderr prefix of a failure to get in, as opposed to the
# status of the command run inside (Docker and Podman use 125 the same way).
ENTER_FAILED = 125
ENTER_PREFIX = "nslab enter: "
# Joined in this order (the mount namespace last: it changes our root); a container's own
# user namespace after all of them, since the host's root owns the others only from outside.
ENTERED_NAMESPACES = [("cgroup", CLONE_NEWCGROUP), ("ipc", CLONE_NEWIPC),
                      ("uts", CLONE_NEWUTS), ("net", CLONE_NEWNET), ("pid", CLONE_NEWPID),
                      ("mnt", CLONE_NEWNS)]


class EnterError(Exception):
    pass


def open_namespaces(record):
    """Open the recorded init's namespaces, then check it is still that process (start time
    and pid namespace): once open, a namespace cannot be swapped for another one by pid
    reuse. Returns {type: fd}; the container's user namespace is there only if it has one."""
    pid, fds = record.get("pid"), {}
    if not record.get("running") or not pid:
        raise EnterError("container '%s' is not running" % record.get("name"))
    try:
        for nstype, _flag in ENTERED_NAMESPACES:
            fds[nstype] = os.open("/proc/%d/ns/%s" % (pid, nstype), os.O_RDONLY)
        user = os.open("/proc/%d/ns/user" % pid, os.O_RDONLY)
    except FileNotFoundError:
        raise EnterError("container '%s' is not running (its init is gone)" % record["name"])
    if os.fstat(user).st_ino != os.stat("/proc/self/ns/user").st_ino:
        fds["user"] = user
    else:
        os.close(user)
    if (proc_start_time(pid) != record.get("start_time")
            or os.fstat(fds["pid"]).st_ino != record["namespaces"]["pid"]):
        raise EnterError("container '%s' is not running (pid %d is another process now)" % (
            record["name"], pid))
    return fds


def join_container(record, fds):
    """Join the container's cgroups (so its limits hold us too), then its namespaces."""
    for directory in record.get("cgroup_dirs") or []:
        with open(os.path.join(directory, "cgroup.procs"), "w") as handle:
            handle.write(str(os.getpid()))
    for nstype, flag in ENTERED_NAMESPACES:
        _check(_libc.setns(fds.pop(nstype), flag), "join the %s namespace" % nstype)
    if "user" in fds:
        _check(_libc.setns(fds.pop("user"), CLONE_NEWUSER), "join the user namespace")
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    os.chdir("/")


def enter(config):
    """Run ``config["argv"]`` in the container whose record is ``config["record"]``, with
    stdin/stdout/stderr passed through; exit with its status."""
    try:
        # This process keeps the host's descriptors while the command runs: nothing in the
        # container may ptrace it (its fork is non-dumpable until it execs, too).
        make_undumpable()
        try:
            with open(config["record"]) as handle:
                record = json.load(handle)
        except FileNotFoundError:
            raise EnterError("no container '%s' in lab '%s' (no record %s)" % (
                config["name"], config["lab"], config["record"]))
        except ValueError as err:       # not JSON: never guess which process to enter
            raise EnterError("container '%s' in lab '%s': its record %s is not valid JSON "
                             "(%s); repair or remove it by hand" % (
                                 config["name"], config["lab"], config["record"], err))
        if not isinstance(record, dict):
            raise EnterError("container '%s' in lab '%s': its record %s is not a JSON "
                             "object; repair or remove it by hand" % (
                                 config["name"], config["lab"], config["record"]))
        join_container(record, open_namespaces(record))
        # Joining a pid namespace only places our children in it.
        child = os.fork()
    except (EnterError, OSError) as err:
        sys.stderr.write("%s%s\n" % (ENTER_PREFIX, err))
        sys.stderr.flush()
        os._exit(ENTER_FAILED)
    if child == 0:
        try:
            _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "parent death signal")
            drop_capabilities(record["config"]["capabilities"],
                              no_new_privs=not record["config"].get("privileged"))
            if confined(record["config"]):
                install_seccomp(record["config"]["capabilities"])
            os.execvpe(config["argv"][0], config["argv"], container_env(record["config"]))
        except OSError as err:
            sys.stderr.write("%scannot run %s: %s\n" % (ENTER_PREFIX, config["argv"][0], err))
            sys.stderr.flush()
            os._exit(ENTER_FAILED)
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, lambda number, _frame: os.kill(child, number))
    os._exit(exit_code(os.waitpid(child, 0)[1]))      # waitpid resumes after a signal

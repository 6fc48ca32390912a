# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The default seccomp filter of an nslab container (modelled on Docker's default profile).

This file is standalone (standard library only, ctypes, no libseccomp) and defines only
names beginning with ``seccomp_``, ``SECCOMP_`` or ``_seccomp_``: the container init's
source is this file followed by nslab_init's, fed as plain text to ``python3 -I -S -``.

Public API:

``seccomp_program(machine, capabilities) -> bytes``
    the classic-BPF program (packed ``struct sock_filter`` array) for ``machine``
    ("x86_64" or "aarch64") and the list of kept capability names ("SYS_ADMIN", ...).
``seccomp_prepare(program) -> sock_fprog``
    the ctypes structure the kernel is given for a program.
``seccomp_install(capabilities, program=None)``
    installs that program for ``os.uname().machine`` on the calling thread (inherited by
    every child), built now unless the caller passes it prepared (seccomp_prepare); the
    caller has set no_new_privs. Raises OSError on failure.

Why a filter on top of capabilities and namespaces: a container's root may create a user
namespace, in which it holds every capability again. With it, it can mount (cgroup v1
hierarchies of a new cgroup namespace among others) and reach kernel code that is never
exercised otherwise. Other syscalls act on things no namespace separates (the kernel
keyrings, the kernel itself, vsock to the hypervisor).

The policy is a deny list, sound for these reasons: the architecture is checked first (a
syscall of another ABI has other numbers and would slip past every rule, so it kills the
process, as libseccomp's default does); on x86_64 the x32 ABI (number | 0x40000000) is
refused the same way; numbers above the last one this table knows (SECCOMP_LAST_KNOWN_NR)
get ENOSYS, so a syscall added to a later kernel is refused until it is reviewed, as runc
does for syscalls newer than its profile; every argument test looks only at the low 32
bits, which is all the kernel reads of those arguments (clone truncates its flags,
unshare refuses unknown bits, personality and socket take ints).

Each rule is (syscall, errno, condition, capabilities that lift it). Denied:

* without SYS_ADMIN (as Docker): namespaces and mounts, the way out of the container's
  limits: ``unshare``/``clone`` with any CLONE_NEW* flag (a new user namespace gives back
  every capability inside it; clone without them stays allowed, it is fork), ``clone3``
  gets ENOSYS (its flags sit behind a pointer seccomp cannot read; glibc then falls back to
  clone), ``setns``, the mount family (``mount``, ``umount2``, ``pivot_root``, the new mount
  API ``open_tree``, ``open_tree_attr``, ``move_mount``, ``fsopen``, ``fsconfig``,
  ``fsmount``, ``fspick``, ``mount_setattr``); ``fanotify_init`` (watches whole
  filesystems), ``quotactl``/``quotactl_fd``.
* with neither BPF nor SYS_ADMIN: ``bpf``; with neither PERFMON nor SYS_ADMIN:
  ``perf_event_open`` (both large kernel attack surfaces, with a long record of exploits).
* without SYSLOG: ``syslog`` (the host's kernel log); without SYS_PACCT: ``acct``.
* always, whatever is kept (a container that needs them must be privileged, which runs
  without this filter): ``keyctl``, ``add_key``, ``request_key`` (the keyrings are not
  namespaced: a container's root is the host's uid 0 and shares its user keyring);
  ``kexec_load``, ``kexec_file_load``, ``init_module``, ``finit_module``, ``delete_module``
  (replace or extend the running kernel); ``iopl``, ``ioperm`` (raw port I/O);
  ``open_by_handle_at`` (opens any inode of a filesystem by handle, past the container's
  root: the "shocker" escape); ``userfaultfd`` (stalls kernel page faults at will, the usual
  tool to win kernel races); ``swapon``, ``swapoff`` (the host's memory); ``io_uring_setup``,
  ``io_uring_enter``, ``io_uring_register`` get ENOSYS, so libraries fall back to epoll
  (a kernel surface with many container escapes, dropped from Docker's profile by
  moby#46762; and its operations never pass through seccomp, so a ring could open the
  vsock socket refused below); ``socket(AF_VSOCK)`` (vsock is not namespaced: it
  reaches the hypervisor's and host's services from any net namespace);
  ``personality`` with any value but 0, PER_LINUX32 (8), UNAME26 (0x20000), both (0x20008)
  and the query 0xffffffff (others turn off address randomisation or mark memory
  executable); obsolete syscalls nobody needs and that only add surface: ``lookup_dcookie``,
  ``uselib``, ``ustat``, ``sysfs``, ``_sysctl``, ``nfsservctl``, ``create_module``,
  ``get_kernel_syms``, ``query_module`` (those x86_64 still numbers; vm86/vm86old exist only
  on i386, refused by the architecture check).

Allowed on purpose: ``ptrace``, ``process_vm_readv``/``writev``, ``kcmp``, ``pidfd_getfd``,
``process_madvise`` (Docker allows ptrace on kernels >= 4.8, where seccomp rechecks after a
tracer changes a syscall; the others need ptrace access to the target, so they reveal
nothing ptrace does not); ``chroot`` (the default set keeps SYS_CHROOT), ``reboot``,
``settimeofday`` and the like (their capabilities guard them and are not kept by default).

``seccomp_data.nr == -1`` (no syscall: what a tracer sets to skip one) is allowed, so the
kernel's own result (or the tracer's) stands.
"""

import ctypes
import os
import struct

SECCOMP_MODE_FILTER = 2
SECCOMP_PR_SET_SECCOMP = 22
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7fff0000

# classic BPF opcodes (linux/bpf_common.h): BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_J*|BPF_K,
# BPF_RET|BPF_K
SECCOMP_BPF_LD_W_ABS = 0x20
SECCOMP_BPF_JEQ = 0x15
SECCOMP_BPF_JGT = 0x25
SECCOMP_BPF_JSET = 0x45
SECCOMP_BPF_RET = 0x06

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
# Both architectures are little-endian: the low word of args[i] is at 16 + 8 * i.
SECCOMP_DATA_NR = 0
SECCOMP_DATA_ARCH = 4
SECCOMP_DATA_ARG0_LOW = 16

SECCOMP_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
SECCOMP_X32_SYSCALL_BIT = 0x40000000
# The highest syscall number both tables know (file_setattr, Linux 6.17); the numbers
# from 403 on are the same on every architecture.
SECCOMP_LAST_KNOWN_NR = 469

SECCOMP_EPERM = 1
SECCOMP_ENOSYS = 38

SECCOMP_CLONE_NEWNS = 0x00020000
SECCOMP_CLONE_NEWTIME = 0x00000080
SECCOMP_CLONE_NEWCGROUP = 0x02000000
SECCOMP_CLONE_NEWUTS = 0x04000000
SECCOMP_CLONE_NEWIPC = 0x08000000
SECCOMP_CLONE_NEWUSER = 0x10000000
SECCOMP_CLONE_NEWPID = 0x20000000
SECCOMP_CLONE_NEWNET = 0x40000000
# clone's low byte is the exit signal, so CLONE_NEWTIME (0x80) can only be asked of
# unshare (and clone3). This is Docker's mask, 0x7E020000.
SECCOMP_CLONE_NAMESPACES = (SECCOMP_CLONE_NEWNS | SECCOMP_CLONE_NEWCGROUP |
                            SECCOMP_CLONE_NEWUTS | SECCOMP_CLONE_NEWIPC |
                            SECCOMP_CLONE_NEWUSER | SECCOMP_CLONE_NEWPID |
                            SECCOMP_CLONE_NEWNET)
SECCOMP_UNSHARE_NAMESPACES = SECCOMP_CLONE_NAMESPACES | SECCOMP_CLONE_NEWTIME
SECCOMP_AF_VSOCK = 40
SECCOMP_SAFE_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xffffffff)

SECCOMP_CAPABILITIES = frozenset([
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
])

# name -> number; a name missing from an architecture's table does not exist there.
SECCOMP_SYSCALLS = {
    "x86_64": {
        "socket": 41, "clone": 56, "syslog": 103, "uselib": 134, "personality": 135,
        "ustat": 136, "sysfs": 139, "pivot_root": 155, "_sysctl": 156, "acct": 163,
        "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "iopl": 172,
        "ioperm": 173, "create_module": 174, "init_module": 175, "delete_module": 176,
        "get_kernel_syms": 177, "query_module": 178, "quotactl": 179, "nfsservctl": 180,
        "lookup_dcookie": 212, "kexec_load": 246, "add_key": 248, "request_key": 249,
        "keyctl": 250, "unshare": 272, "perf_event_open": 298, "fanotify_init": 300,
        "open_by_handle_at": 304, "setns": 308, "finit_module": 313, "kexec_file_load": 320,
        "bpf": 321, "userfaultfd": 323,
    },
    "aarch64": {
        "lookup_dcookie": 18, "umount2": 39, "mount": 40, "pivot_root": 41, "nfsservctl": 42,
        "quotactl": 60, "acct": 89, "personality": 92, "unshare": 97, "kexec_load": 104,
        "init_module": 105, "delete_module": 106, "syslog": 116, "socket": 198,
        "add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224,
        "swapoff": 225, "perf_event_open": 241, "fanotify_init": 262,
        "open_by_handle_at": 265, "setns": 268, "finit_module": 273, "bpf": 280,
        "userfaultfd": 282, "kexec_file_load": 294,
    },
}
# The unified numbers (Linux 5.1 on), the same on both.
for _seccomp_table in SECCOMP_SYSCALLS.values():
    _seccomp_table.update({
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "clone3": 435, "mount_setattr": 442, "quotactl_fd": 443,
        "open_tree_attr": 467,
    })
del _seccomp_table

SECCOMP_SYS_ADMIN_ONLY = ("SYS_ADMIN",)
# (syscall, errno, condition, capabilities any of which lifts the rule). A condition is
# None (always), ("any_bit", mask), ("equals", values) or ("not_in", values), tested on
# the low word of the first argument.
SECCOMP_RULES = [
    ("unshare", SECCOMP_EPERM, ("any_bit", SECCOMP_UNSHARE_NAMESPACES), SECCOMP_SYS_ADMIN_ONLY),
    ("clone", SECCOMP_EPERM, ("any_bit", SECCOMP_CLONE_NAMESPACES), SECCOMP_SYS_ADMIN_ONLY),
    ("clone3", SECCOMP_ENOSYS, None, SECCOMP_SYS_ADMIN_ONLY),
    ("setns", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("mount", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("umount2", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("pivot_root", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("open_tree", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("open_tree_attr", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("move_mount", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("fsopen", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("fsconfig", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("fsmount", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("fspick", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("mount_setattr", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("fanotify_init", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("quotactl", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("quotactl_fd", SECCOMP_EPERM, None, SECCOMP_SYS_ADMIN_ONLY),
    ("bpf", SECCOMP_EPERM, None, ("BPF", "SYS_ADMIN")),
    ("perf_event_open", SECCOMP_EPERM, None, ("PERFMON", "SYS_ADMIN")),
    ("syslog", SECCOMP_EPERM, None, ("SYSLOG",)),
    ("acct", SECCOMP_EPERM, None, ("SYS_PACCT",)),
    ("keyctl", SECCOMP_EPERM, None, ()),
    ("add_key", SECCOMP_EPERM, None, ()),
    ("request_key", SECCOMP_EPERM, None, ()),
    ("kexec_load", SECCOMP_EPERM, None, ()),
    ("kexec_file_load", SECCOMP_EPERM, None, ()),
    ("init_module", SECCOMP_EPERM, None, ()),
    ("finit_module", SECCOMP_EPERM, None, ()),
    ("delete_module", SECCOMP_EPERM, None, ()),
    ("iopl", SECCOMP_EPERM, None, ()),
    ("ioperm", SECCOMP_EPERM, None, ()),
    ("open_by_handle_at", SECCOMP_EPERM, None, ()),
    ("userfaultfd", SECCOMP_EPERM, None, ()),
    ("swapon", SECCOMP_EPERM, None, ()),
    ("swapoff", SECCOMP_EPERM, None, ()),
    ("io_uring_setup", SECCOMP_ENOSYS, None, ()),
    ("io_uring_enter", SECCOMP_ENOSYS, None, ()),
    ("io_uring_register", SECCOMP_ENOSYS, None, ()),
    ("socket", SECCOMP_EPERM, ("equals", (SECCOMP_AF_VSOCK,)), ()),
    ("personality", SECCOMP_EPERM, ("not_in", SECCOMP_SAFE_PERSONALITIES), ()),
    ("lookup_dcookie", SECCOMP_EPERM, None, ()),
    ("uselib", SECCOMP_EPERM, None, ()),
    ("ustat", SECCOMP_EPERM, None, ()),
    ("sysfs", SECCOMP_EPERM, None, ()),
    ("_sysctl", SECCOMP_EPERM, None, ()),
    ("nfsservctl", SECCOMP_EPERM, None, ()),
    ("create_module", SECCOMP_EPERM, None, ()),
    ("get_kernel_syms", SECCOMP_EPERM, None, ()),
    ("query_module", SECCOMP_EPERM, None, ()),
]


def _seccomp_insn(code, jt, jf, k):
    return struct.pack("=HBBI", code, jt, jf, k & 0xffffffff)


def _seccomp_ret(value):
    return _seccomp_insn(SECCOMP_BPF_RET, 0, 0, value)


def _seccomp_errno(errno):
    return _seccomp_ret(SECCOMP_RET_ERRNO | (errno & 0xffff))


def _seccomp_rule(number, errno, condition):
    """The instructions of one rule; every jump stays inside the rule, so rules can be
    chained in any order. The accumulator holds the syscall number on entry and, when the
    rule does not match the number, on exit."""
    if condition is None:
        return [_seccomp_insn(SECCOMP_BPF_JEQ, 0, 1, number), _seccomp_errno(errno)]
    kind, value = condition
    load = _seccomp_insn(SECCOMP_BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARG0_LOW)
    if kind == "any_bit":
        body = [_seccomp_insn(SECCOMP_BPF_JSET, 0, 1, value), _seccomp_errno(errno),
                _seccomp_ret(SECCOMP_RET_ALLOW)]
    elif kind in ("equals", "not_in"):
        # Each match jumps over the remaining tests and the first return to the second.
        # The syscall matched, and its number is in no other rule: the arguments decide.
        tests = [_seccomp_insn(SECCOMP_BPF_JEQ, len(value) - i, 0, v)
                 for i, v in enumerate(value)]
        returns = [_seccomp_ret(SECCOMP_RET_ALLOW), _seccomp_errno(errno)]
        body = tests + (returns if kind == "equals" else returns[::-1])
    else:
        raise ValueError("unknown seccomp rule condition %r" % (kind,))
    return [_seccomp_insn(SECCOMP_BPF_JEQ, 0, 1 + len(body), number), load] + body


def seccomp_normalise_capabilities(capabilities):
    """Capability names (with or without CAP_, any case) -> set of upper-case names."""
    names = set()
    for name in capabilities:
        key = str(name).upper()
        key = key[4:] if key.startswith("CAP_") else key
        if key not in SECCOMP_CAPABILITIES:
            raise ValueError("capabilities: unknown capability %r; expected names such as "
                             "SYS_ADMIN or CAP_NET_RAW" % (name,))
        names.add(key)
    return names


def seccomp_program(machine, capabilities):
    """The filter for ``machine`` and the kept ``capabilities``, as packed sock_filter
    structs (8 bytes each: u16 code, u8 jt, u8 jf, u32 k)."""
    if machine not in SECCOMP_SYSCALLS:
        raise ValueError("machine: %r is not supported; expected one of %s" % (
            machine, ", ".join(sorted(SECCOMP_SYSCALLS))))
    kept = seccomp_normalise_capabilities(capabilities)
    numbers = SECCOMP_SYSCALLS[machine]
    program = [
        _seccomp_insn(SECCOMP_BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        _seccomp_insn(SECCOMP_BPF_JEQ, 1, 0, SECCOMP_AUDIT_ARCH[machine]),
        _seccomp_ret(SECCOMP_RET_KILL_PROCESS),
        _seccomp_insn(SECCOMP_BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
        _seccomp_insn(SECCOMP_BPF_JEQ, 0, 1, 0xffffffff),
        _seccomp_ret(SECCOMP_RET_ALLOW),
    ]
    if machine == "x86_64":
        program += [_seccomp_insn(SECCOMP_BPF_JSET, 0, 1, SECCOMP_X32_SYSCALL_BIT),
                    _seccomp_ret(SECCOMP_RET_KILL_PROCESS)]
    program += [_seccomp_insn(SECCOMP_BPF_JGT, 0, 1, SECCOMP_LAST_KNOWN_NR),
                _seccomp_errno(SECCOMP_ENOSYS)]
    for name, errno, condition, lifted_by in SECCOMP_RULES:
        if name in numbers and not kept.intersection(lifted_by):
            program += _seccomp_rule(numbers[name], errno, condition)
    program.append(_seccomp_ret(SECCOMP_RET_ALLOW))
    return b"".join(program)


class _seccomp_sock_fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# Made once, when the source is loaded: a forked init that installs a filter then makes no
# ctypes objects of its own (each one it makes dirties memory it no longer shares).
_seccomp_libc = ctypes.CDLL(None, use_errno=True)
_seccomp_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                                ctypes.c_ulong]


def seccomp_prepare(program):
    """The ``struct sock_fprog`` the kernel is given for ``program`` (seccomp_program's
    bytes); it keeps its buffer alive."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _seccomp_sock_fprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    fprog.buffer = buffer
    return fprog


def seccomp_install(capabilities, program=None):
    """Install the filter for this machine on the calling thread; its children inherit
    it. Needs no_new_privs (or CAP_SYS_ADMIN). Raises OSError when it cannot. ``program``
    is ``seccomp_prepare(seccomp_program(os.uname().machine, capabilities))`` when the
    caller made it beforehand (the init launcher makes one per capability set before it
    forks, so the inits share it)."""
    machine = os.uname().machine
    if machine not in SECCOMP_SYSCALLS:
        raise OSError(SECCOMP_ENOSYS, "seccomp: no filter for architecture %s (supported: "
                      "%s)" % (machine, ", ".join(sorted(SECCOMP_SYSCALLS))))
    fprog = program or seccomp_prepare(seccomp_program(machine, capabilities))
    if _seccomp_libc.prctl(SECCOMP_PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog),
                           0, 0):
        err = ctypes.get_errno()
        raise OSError(err, "seccomp: install the filter: %s" % os.strerror(err))

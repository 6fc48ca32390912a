# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device cgroup of a container: which device nodes its processes may open or make.

Without it, a process holding CAP_MKNOD (``cap_add: [MKNOD]``, or root in a privileged
container) makes ``mknod x c 7 0`` and reads the host console's memory, or ``c 1 1`` and
reads /dev/mem: a container's /dev is a tmpfs without nodev, since it holds the few nodes a
container has. Like runc and Docker, every container's cgroup gets an allow list
(``CONTAINER_DEVICES``: read, write and mknod of those nodes only, everything else denied);
a privileged container may use every device (``a *:* rwm``, as Docker's --privileged).

cgroup v1: the cgroup's directory in the ``devices`` hierarchy (nslab_cgroup makes it with
the others). The policy is ``a`` written to ``devices.deny``, then one ``devices.allow``
line per rule; ``devices.list`` is read to plan, so a second application writes nothing.

cgroup v2 has no devices controller: a BPF_PROG_TYPE_CGROUP_DEVICE program decides each
access. It is assembled here (the instruction sequence of runc's devicefilter.go), loaded
with bpf(BPF_PROG_LOAD) and attached to the cgroup's directory (BPF_PROG_ATTACH,
BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI: programs of parent cgroups keep applying). The kernel
keeps it attached until the cgroup is removed. nslab names its programs ``nslab_devices``;
BPF_PROG_QUERY lists what is attached, and a program of that name with the tag (hash of the
instructions) of the wanted one means nothing to do; another nslab program is replaced
(BPF_F_REPLACE), programs of others are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import DeviceError

WILDCARD = None                     # major or minor "*"


@dataclass(frozen=True)
class DeviceRule:
    """One line of a device cgroup: ``c 1:3 rwm``. ``kind`` is c (char), b (block) or a
    (all); major/minor None is ``*``; ``access`` a subset of rwm (read, write, mknod)."""
    kind: str
    major: Optional[int]
    minor: Optional[int]
    access: str = "rwm"
    name: str = field(default="", compare=False)     # for documentation only

    def render(self):
        number = lambda n: "*" if n is None else str(n)     # noqa: E731
        return "%s %s:%s %s" % (self.kind, number(self.major), number(self.minor),
                                self.access)


ALLOW_ALL = DeviceRule("a", WILDCARD, WILDCARD, "rwm", "everything (privileged)")

# What a container may open and make: the nodes nslab_init puts in its /dev, ptmx and
# its pseudo-terminals (a new devpts instance per container), nothing of the host's.
CONTAINER_DEVICES = (
    DeviceRule("c", 1, 3, "rwm", "/dev/null"),
    DeviceRule("c", 1, 5, "rwm", "/dev/zero"),
    DeviceRule("c", 1, 7, "rwm", "/dev/full"),
    DeviceRule("c", 1, 8, "rwm", "/dev/random"),
    DeviceRule("c", 1, 9, "rwm", "/dev/urandom"),
    DeviceRule("c", 5, 0, "rwm", "/dev/tty"),
    DeviceRule("c", 5, 2, "rwm", "/dev/ptmx"),
    DeviceRule("c", 136, WILDCARD, "rwm", "/dev/pts/*"),
)


def policy(privileged):
    """The rules a container gets: everything when privileged, else the allow list."""
    return [ALLOW_ALL] if privileged else list(CONTAINER_DEVICES)


# --- cgroup v1: devices.list ---------------------------------------------------------------

_LIST_LINE = re.compile(r"^([abc]) (\*|\d+):(\*|\d+) ([rwm]{1,3})$")


def parse_devices_list(text):
    """``devices.list`` -> [DeviceRule]. An allow-all cgroup lists ``a *:* rwm``; a deny-all
    one lists its exceptions (nothing when it has none)."""
    rules = []
    for line in (text or "").splitlines():
        match = _LIST_LINE.match(line.strip())
        if not match:
            raise DeviceError("devices.list line %r is not 'TYPE MAJOR:MINOR ACCESS' (like "
                              "'c 1:3 rwm')" % line)
        kind, major, minor, access = match.groups()
        rules.append(DeviceRule(kind, None if major == "*" else int(major),
                                None if minor == "*" else int(minor),
                                "".join(a for a in "rwm" if a in access)))
    return rules


def plan_v1(directory, current, desired):
    """Pure: [(file, text)] that turn the ``current`` rules into ``desired`` (nothing when
    they are the same set). Deny-all first: allow lines are exceptions to it. An allow-all
    cgroup lists ``a *:* rwm`` even with deny exceptions (the kernel prints no exceptions
    then): nslab never writes such exceptions, so it reads as allow-all."""
    if set(current) == set(desired):
        return []
    if desired == [ALLOW_ALL]:
        return [(os.path.join(directory, "devices.allow"), "a")]
    return [(os.path.join(directory, "devices.deny"), "a")] + [
        (os.path.join(directory, "devices.allow"), rule.render()) for rule in desired]


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def apply_v1(directory, current, desired):
    """Apply the plan; if the kernel refuses a line, restore the rules that were there."""
    writes = plan_v1(directory, current, desired)
    for done, (path, text) in enumerate(writes):
        try:
            _write(path, text)
        except OSError as err:
            restore_error = ""
            if done:
                try:
                    for old_path, old_text in plan_v1(directory, [], current):
                        _write(old_path, old_text)
                except OSError as undo_err:
                    restore_error = "; restoring its rules failed too: %s" % undo_err.strerror
            hint = (" (a cgroup with child cgroups cannot switch between allow-all and "
                    "deny-all)" if err.errno == errno.EINVAL and text == "a" else "")
            raise DeviceError("writing '%s' to %s failed: %s%s%s" % (
                text, path, err.strerror, hint, restore_error))
    return writes


# --- cgroup v2: an eBPF device program ----------------------------------------------------

# include/uapi/linux/bpf.h
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_QUERY = 13, 15, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI, BPF_F_REPLACE = 2, 4
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
SYS_BPF = {"x86_64": 321, "aarch64": 280}
PROGRAM_NAME = "nslab_devices"
LICENSE = b"GPL"

# Opcodes: class | operation | source (K: immediate, X: register).
LDX_MEM_W = 0x61            # dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54          # dst &= imm (32 bit)
ALU32_RSH_K = 0x74          # dst >>= imm
ALU32_MOV_K = 0xb4          # dst = imm
ALU32_MOV_X = 0xbc          # dst = src
JMP_JNE_K = 0x55            # if dst != imm goto pc + 1 + off
JMP_JNE_X = 0x5d            # if dst != src goto pc + 1 + off
JMP_EXIT = 0x95
R0, R1, R2, R3, R4, R5 = range(6)
ACCESS_BITS = {"r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE, "m": BPF_DEVCG_ACC_MKNOD}
TYPE_CODES = {"c": BPF_DEVCG_DEV_CHAR, "b": BPF_DEVCG_DEV_BLOCK}


def insn(opcode, dst=0, src=0, off=0, imm=0):
    """One 8-byte eBPF instruction (little-endian: dst in the low nibble of byte 1)."""
    return struct.pack("<BBhi", opcode, (src << 4) | dst, off, imm)


def _rule_block(rule):
    """The jumps of one allow rule; each is patched to the next block's start (None)."""
    access = sum(ACCESS_BITS[a] for a in set(rule.access))
    block = [(JMP_JNE_K, R2, 0, None, TYPE_CODES[rule.kind])]
    if access != 7:             # rwm: any access matches
        block += [(ALU32_MOV_X, R1, R3, 0, 0), (ALU32_AND_K, R1, 0, 0, access),
                  (JMP_JNE_X, R1, R3, None, 0)]
    if rule.major is not None:
        block.append((JMP_JNE_K, R4, 0, None, rule.major))
    if rule.minor is not None:
        block.append((JMP_JNE_K, R5, 0, None, rule.minor))
    return block + [(ALU32_MOV_K, R0, 0, 0, 1), (JMP_EXIT, 0, 0, 0, 0)]


def assemble(rules):
    """The program of an allow list, as runc's devicefilter.go builds it: load the access
    type, access and major/minor of struct bpf_cgroup_dev_ctx into R2-R5; per rule a block
    that jumps to the next block on any mismatch and else returns 1 (allow); at the end
    return 0 (deny). Returns the instructions as bytes."""
    for rule in rules:
        if rule.kind not in TYPE_CODES:
            raise DeviceError("rule '%s' cannot be compiled: expected type c or b (an 'a' "
                              "rule allows everything, which needs no program)" % rule.render())
    program = [
        (LDX_MEM_W, R2, R1, 0, 0), (ALU32_AND_K, R2, 0, 0, 0xFFFF),   # type: low 16 bits
        (LDX_MEM_W, R3, R1, 0, 0), (ALU32_RSH_K, R3, 0, 0, 16),       # access: high 16 bits
        (LDX_MEM_W, R4, R1, 4, 0),                                    # major
        (LDX_MEM_W, R5, R1, 8, 0),                                    # minor
    ]
    for rule in rules:
        block = _rule_block(rule)
        next_block = len(program) + len(block)
        for opcode, dst, src, off, imm in block:
            if off is None:
                off = next_block - (len(program) + 1)
            program.append((opcode, dst, src, off, imm))
    program += [(ALU32_MOV_K, R0, 0, 0, 0), (JMP_EXIT, 0, 0, 0, 0)]
    return b"".join(insn(*fields) for fields in program)


class Bpf:
    """bpf(2) through ctypes: the few commands a device program needs."""

    def __init__(self):
        self.number = SYS_BPF.get(os.uname().machine)
        if self.number is None:
            raise DeviceError("bpf(2): unsupported architecture %s" % os.uname().machine)
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.libc.syscall.restype = ctypes.c_long

    def call(self, command, attr, what):
        result = self.libc.syscall(ctypes.c_long(self.number), ctypes.c_int(command),
                                   ctypes.byref(attr), ctypes.c_uint(len(attr)))
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, "%s: %s" % (what, os.strerror(err)))
        return result

    def load(self, instructions, name=PROGRAM_NAME):
        """A loaded program's fd (the caller closes it)."""
        code = ctypes.create_string_buffer(instructions, len(instructions))
        license_ = ctypes.create_string_buffer(LICENSE)
        log = ctypes.create_string_buffer(65536)
        attr = ctypes.create_string_buffer(128)
        struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE,
                         len(instructions) // 8, ctypes.addressof(code),
                         ctypes.addressof(license_), 1, len(log), ctypes.addressof(log))
        struct.pack_into("16s", attr, 48, name.encode())
        try:
            return self.call(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")
        except OSError as err:
            verifier = log.value.decode("utf-8", "replace").strip()
            if verifier:
                raise OSError(err.errno, "%s (verifier: %s)" % (err.strerror, verifier[-500:]))
            raise

    def attach(self, cgroup_fd, prog_fd, replace_fd=None):
        attr = ctypes.create_string_buffer(32)
        flags = BPF_F_ALLOW_MULTI | (BPF_F_REPLACE if replace_fd is not None else 0)
        struct.pack_into("<IIIII", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags,
                         replace_fd or 0)
        self.call(BPF_PROG_ATTACH, attr, "BPF_PROG_ATTACH")

    def detach(self, cgroup_fd, prog_fd):
        attr = ctypes.create_string_buffer(32)
        struct.pack_into("<III", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE)
        self.call(BPF_PROG_DETACH, attr, "BPF_PROG_DETACH")

    def query(self, cgroup_fd):
        """Ids of the device programs attached to the cgroup itself (not its parents)."""
        size = 64
        for _attempt in range(10):
            ids = (ctypes.c_uint32 * size)()
            attr = ctypes.create_string_buffer(32)
            struct.pack_into("<IIIIQI", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0,
                             ctypes.addressof(ids), size)
            try:
                self.call(BPF_PROG_QUERY, attr, "BPF_PROG_QUERY")
            except OSError as err:
                if err.errno == errno.ENOSPC:           # more than ``size``: count returned
                    size = struct.unpack_from("<I", attr, 24)[0]
                    continue
                raise
            count = struct.unpack_from("<I", attr, 24)[0]
            return list(ids[:count])
        raise DeviceError("BPF_PROG_QUERY kept finding more programs attached")

    def fd_of(self, prog_id):
        attr = ctypes.create_string_buffer(16)
        struct.pack_into("<I", attr, 0, prog_id)
        return self.call(BPF_PROG_GET_FD_BY_ID, attr, "BPF_PROG_GET_FD_BY_ID %d" % prog_id)

    def info(self, prog_fd):
        """(name, tag hex) of a loaded program (struct bpf_prog_info up to its name)."""
        info = ctypes.create_string_buffer(80)
        attr = ctypes.create_string_buffer(16)
        struct.pack_into("<IIQ", attr, 0, prog_fd, len(info), ctypes.addressof(info))
        self.call(BPF_OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD")
        name = info.raw[64:80].split(b"\0", 1)[0].decode("ascii", "replace")
        return name, info.raw[8:16].hex()


_BPF = []


def _bpf():
    """One Bpf per process (finding libc runs ldconfig: milliseconds)."""
    if not _BPF:
        _BPF.append(Bpf())
    return _BPF[0]


@dataclass
class AttachedProgram:
    prog_id: int
    name: str
    tag: str
    fd: Optional[int] = None            # open while planning and applying


def attached_programs(bpf, cgroup_fd):
    """Device programs on the cgroup, each with an open fd; programs the kernel will not
    hand out (EPERM/EACCES: an LSM's) are skipped, as runc does: they can only deny more."""
    programs = []
    for prog_id in bpf.query(cgroup_fd):
        try:
            prog_fd = bpf.fd_of(prog_id)
        except OSError as err:
            if err.errno in (errno.EPERM, errno.EACCES, errno.ENOENT):
                continue
            raise
        name, tag = bpf.info(prog_fd)
        programs.append(AttachedProgram(prog_id, name, tag, prog_fd))
    return programs


def plan_v2(attached, wanted_tag):
    """Pure: ('attach'|'replace'|'detach'|None, [programs to detach]) for what is attached
    and the tag of the wanted program (None: no program, as for a privileged container).
    Only nslab's programs are replaced or detached."""
    own = [p for p in attached if p.name == PROGRAM_NAME]
    if wanted_tag is None:
        return ("detach" if own else None), own
    if len(own) == 1 and own[0].tag == wanted_tag:
        return None, []
    if own:
        return "replace", own[1:]
    return "attach", []


def _close(programs):
    for program in programs:
        if program.fd is not None:
            os.close(program.fd)
            program.fd = None


# Programs this process loaded, by their instructions: (fd, tag). A lab starts many
# containers with one policy; the verifier then runs once (2-6 ms each, measured), and one
# program is attached to every cgroup. The fds close when the module's process ends.
_LOADED = {}


def loaded_program(bpf, rules):
    """(fd, tag) of the program of ``rules``, loaded once per process."""
    instructions = assemble(rules)
    if instructions not in _LOADED:
        prog_fd = bpf.load(instructions)
        _LOADED[instructions] = (prog_fd, bpf.info(prog_fd)[1])
    return _LOADED[instructions]


def restrict_v2(directory, rules, check_mode=False, bpf=None, label=None):
    """Attach (or replace, or detach) nslab's device program on a cgroup v2 directory.
    Returns the action sentences (naming the cgroup as ``label``, else its directory)."""
    bpf = bpf or _bpf()
    label = label or directory
    cgroup_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    prog_fd, attached = None, []        # prog_fd stays open in _LOADED
    try:
        attached = attached_programs(bpf, cgroup_fd)
        wanted_tag = None
        if rules != [ALLOW_ALL]:
            # Loading has no lasting effect (freed on close) and gives the kernel's tag.
            prog_fd, wanted_tag = loaded_program(bpf, rules)
        verb, stale = plan_v2(attached, wanted_tag)
        if verb is None:
            return []
        own = [p for p in attached if p.name == PROGRAM_NAME]
        actions = {
            "attach": "attach a device program allowing %s to cgroup '%s'" % (
                _described(rules), label),
            "replace": "replace the device program of cgroup '%s' by one allowing %s" % (
                label, _described(rules)),
            "detach": "detach the device program of cgroup '%s' (privileged: all devices)" % (
                label),
        }
        if not check_mode:
            if verb == "attach":
                bpf.attach(cgroup_fd, prog_fd)
            elif verb == "replace":
                bpf.attach(cgroup_fd, prog_fd, replace_fd=own[0].fd)
            for program in stale:
                bpf.detach(cgroup_fd, program.fd)
        return [actions[verb]]
    except OSError as err:
        raise DeviceError("Failed to restrict the devices of cgroup '%s' (%s): %s%s" % (
            label, directory, err.strerror or err,
            " (bpf(2) needs CAP_SYS_ADMIN or CAP_BPF)" if err.errno == errno.EPERM else ""))
    finally:
        _close(attached)
        os.close(cgroup_fd)


def _described(rules):
    return ", ".join(rule.render() for rule in rules)


# --- the API for the container runtime ----------------------------------------------------

def devices_hierarchy(layout):
    """The v1 hierarchy holding ``devices``, else the v2 one, else None."""
    hierarchy = layout.hierarchy_of("devices")
    if hierarchy is not None:
        return hierarchy
    return next((h for h in layout.hierarchies if h.version == 2), None)


def restrict_devices(layout, cgroup_relpath, privileged, check_mode=False):
    """Give cgroup ``cgroup_relpath`` (``nslab/<lab>/<name>``, made by nslab_cgroup) the
    device policy of a container: ``CONTAINER_DEVICES``, or all devices when ``privileged``.
    Read -> plan -> apply; returns the action sentences (none when it already has it)."""
    hierarchy = devices_hierarchy(layout)
    if hierarchy is None:
        raise DeviceError("Failed to restrict the devices of cgroup '%s': this host has no "
                          "devices hierarchy (cgroup v1) and no cgroup v2 mount (layout %s)" % (
                              cgroup_relpath, layout.kind))
    directory = hierarchy.path(cgroup_relpath)
    if not os.path.isdir(directory):
        raise DeviceError("Failed to restrict the devices of cgroup '%s': %s does not exist; "
                          "expected the cgroup made by nslab_cgroup (a cgroup made before nslab "
                          "managed devices gets it when nslab_cgroup runs again)" % (
                              cgroup_relpath, directory))
    rules = policy(privileged)
    if hierarchy.version == 2:
        return restrict_v2(directory, rules, check_mode, label=cgroup_relpath)
    try:
        with open(os.path.join(directory, "devices.list")) as handle:
            current = parse_devices_list(handle.read())
    except OSError as err:
        raise DeviceError("Failed to read the devices of cgroup '%s': %s" % (
            cgroup_relpath, err))
    if not plan_v1(directory, current, rules):
        return []
    if not check_mode:
        apply_v1(directory, current, rules)
    return ["set the devices of cgroup '%s' from %s to %s" % (
        cgroup_relpath, _described(current) or "none", _described(rules))]


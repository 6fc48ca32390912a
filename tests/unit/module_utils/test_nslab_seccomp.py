"""The container seccomp filter, run through a classic-BPF interpreter (pure: nothing is
installed). The syscall numbers here are written out independently of the module's
table, from the kernel's syscall tables, so a wrong number there fails here."""

import errno
import os
import re
import struct

import pytest

from ansible_collections.nslab.lab.plugins.module_utils import nslab_seccomp
from ansible_collections.nslab.lab.plugins.module_utils.nslab_seccomp import (
    seccomp_install, seccomp_program)

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7, "i386": 0x40000003,
              "arm": 0x40000028}
KILL_PROCESS, ALLOW = 0x80000000, 0x7fff0000
EPERM, ENOSYS = 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
BPF_MAXINSNS = 4096
SECCOMP_DATA_SIZE = 64

# What the filter must refuse, per architecture: name -> number.
DENIED = {
    "x86_64": {
        "unshare": 272, "clone": 56, "clone3": 435, "setns": 308, "mount": 165,
        "umount2": 166, "pivot_root": 155, "open_tree": 428, "open_tree_attr": 467,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "fanotify_init": 300, "quotactl": 179, "quotactl_fd": 443,
        "bpf": 321, "perf_event_open": 298, "syslog": 103, "acct": 163, "keyctl": 250,
        "add_key": 248, "request_key": 249, "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "iopl": 172,
        "ioperm": 173, "open_by_handle_at": 304, "userfaultfd": 323, "swapon": 167,
        "swapoff": 168, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "socket": 41, "personality": 135, "lookup_dcookie": 212,
        "uselib": 134, "ustat": 136, "sysfs": 139, "_sysctl": 156, "nfsservctl": 180,
        "create_module": 174, "get_kernel_syms": 177, "query_module": 178,
    },
    "aarch64": {
        "unshare": 97, "clone": 220, "clone3": 435, "setns": 268, "mount": 40,
        "umount2": 39, "pivot_root": 41, "open_tree": 428, "open_tree_attr": 467,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "fanotify_init": 262, "quotactl": 60, "quotactl_fd": 443,
        "bpf": 280, "perf_event_open": 241, "syslog": 116, "acct": 89, "keyctl": 219,
        "add_key": 217, "request_key": 218, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106,
        "open_by_handle_at": 265, "userfaultfd": 282, "swapon": 224, "swapoff": 225,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "socket": 198, "personality": 92, "lookup_dcookie": 18, "nfsservctl": 42,
    },
}
# A few that stay allowed.
ALLOWED = {
    "x86_64": {"read": 0, "write": 1, "getpid": 39, "execve": 59, "ptrace": 101,
               "chroot": 161, "kcmp": 312, "seccomp": 317, "file_setattr": 469},
    "aarch64": {"read": 63, "write": 64, "getpid": 172, "execve": 221, "ptrace": 117,
                "chroot": 51, "kcmp": 272, "seccomp": 277, "file_setattr": 469},
}
# Lifted only by SYS_ADMIN; the capabilities other than SYS_ADMIN that lift the rest.
SYS_ADMIN_ONLY = {"unshare", "clone", "clone3", "setns", "mount", "umount2", "pivot_root",
                  "open_tree", "open_tree_attr", "move_mount", "fsopen", "fsconfig",
                  "fsmount", "fspick", "mount_setattr", "fanotify_init", "quotactl",
                  "quotactl_fd"}
LIFTED_BY = {"bpf": {"BPF", "SYS_ADMIN"}, "perf_event_open": {"PERFMON", "SYS_ADMIN"},
             "syslog": {"SYSLOG"}, "acct": {"SYS_PACCT"}}
ENOSYS_FOR = {"clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"}
DEFAULT_CAPABILITIES = ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
                        "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP",
                        "SETUID", "SYS_CHROOT"]
ALL_CAPABILITIES = sorted(nslab_seccomp.SECCOMP_CAPABILITIES)

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000
CLONE_NEWTIME, CLONE_NEWCGROUP, CLONE_NEWPID = 0x80, 0x02000000, 0x20000000
CLONE_FS, CLONE_FILES, CLONE_VM, CLONE_THREAD = 0x200, 0x400, 0x100, 0x10000
SIGCHLD, AF_UNIX, AF_INET, AF_VSOCK = 17, 1, 2, 40


def instructions(program):
    assert isinstance(program, bytes) and len(program) % 8 == 0
    return [struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)]


def run_bpf(program, data):
    """Classic BPF as the kernel runs a seccomp filter: the opcodes a seccomp program may
    use that this filter uses, every load inside seccomp_data, every jump forward and
    inside the program."""
    insns, pc, acc = instructions(program), 0, 0
    while True:
        assert 0 <= pc < len(insns), "jump out of the program"
        code, jt, jf, k = insns[pc]
        if code == 0x20:                                    # ld [k]
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x25, 0x35, 0x45):              # jeq, jgt, jge, jset #k
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)
        elif code == 0x05:                                  # ja
            pc += 1 + k
        elif code == 0x06:                                  # ret #k
            return k
        else:
            raise AssertionError("opcode %#x at %d" % (code, pc))


def evaluate(program, arch, nr, args=()):
    args = (list(args) + [0] * 6)[:6]
    data = struct.pack("=iIQ6Q", nr, AUDIT_ARCH[arch], 0x7f0000001000,
                       *[a & 0xffffffffffffffff for a in args])
    assert len(data) == SECCOMP_DATA_SIZE
    return run_bpf(program, data)


MACHINES = ["x86_64", "aarch64"]


@pytest.fixture(scope="module", params=MACHINES)
def machine(request):
    return request.param


def default(machine):
    return seccomp_program(machine, DEFAULT_CAPABILITIES)


def test_program_is_well_formed(machine):
    for caps in ([], DEFAULT_CAPABILITIES, ALL_CAPABILITIES):
        insns = instructions(seccomp_program(machine, caps))
        assert 0 < len(insns) <= BPF_MAXINSNS
        assert insns[-1] == (0x06, 0, 0, ALLOW)
        for at, (code, jt, jf, k) in enumerate(insns):
            if code & 0x07 == 0x05:                    # a jump: both targets inside
                assert at + 1 + max(jt, jf) < len(insns)


def test_syscall_tables_match_the_tests(machine):
    table = nslab_seccomp.SECCOMP_SYSCALLS[machine]
    for name, number in DENIED[machine].items():
        assert table[name] == number, name
    assert set(table) == set(DENIED[machine])


HEADERS = {"x86_64": ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
                      "/usr/include/asm/unistd_64.h"],
           "aarch64": ["/usr/include/asm-generic/unistd.h"]}


def test_syscall_table_matches_the_installed_kernel_headers(machine):
    paths = [p for p in HEADERS[machine] if os.path.exists(p)]
    if not paths:
        pytest.skip("no kernel headers for %s" % machine)
    with open(paths[0]) as handle:
        header = dict(re.findall(r"#define __NR_(\w+)\s+(\d+)", handle.read()))
    checked = 0
    for name, number in nslab_seccomp.SECCOMP_SYSCALLS[machine].items():
        if name in header:                  # older headers lack the newest syscalls
            assert int(header[name]) == number, name
            checked += 1
    assert checked >= 30


def test_native_syscalls_are_allowed(machine):
    program = default(machine)
    for name, number in ALLOWED[machine].items():
        assert evaluate(program, machine, number) == ALLOW, name


def test_every_unlisted_syscall_is_allowed(machine):
    program, denied = default(machine), set(DENIED[machine].values())
    for number in range(0, nslab_seccomp.SECCOMP_LAST_KNOWN_NR + 1):
        if number not in denied:
            assert evaluate(program, machine, number) == ALLOW, number


@pytest.mark.parametrize("foreign", ["i386", "arm", "x86_64", "aarch64"])
def test_a_foreign_architecture_kills_the_process(machine, foreign):
    if foreign == machine:
        pytest.skip("native")
    program = default(machine)
    for number in (0, 1, 3, 11, 39, 172):            # write/exit/read/execve/getpid...
        assert evaluate(program, foreign, number) == KILL_PROCESS


def test_x32_syscalls_kill_the_process_on_x86_64():
    program = default("x86_64")
    for number in (0, 1, 39, 59, 272, 512, 545):     # x32 read, write, getpid, execve...
        assert evaluate(program, "x86_64", 0x40000000 | number) == KILL_PROCESS


def test_no_syscall_is_left_to_the_kernel(machine):
    # nr -1 is what a tracer sets to skip a syscall: the kernel answers ENOSYS itself
    assert evaluate(default(machine), machine, -1) == ALLOW


def test_syscalls_newer_than_the_table_get_enosys(machine):
    program = default(machine)
    last = nslab_seccomp.SECCOMP_LAST_KNOWN_NR
    assert evaluate(program, machine, last + 1) == ENOSYS
    assert evaluate(program, machine, 1000) == ENOSYS


def nr(machine, name):
    return DENIED[machine][name]


@pytest.mark.parametrize("flags", [CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWTIME,
                                   CLONE_NEWCGROUP, CLONE_NEWPID, CLONE_NEWUSER | CLONE_NEWNS,
                                   CLONE_FS | CLONE_NEWUSER, (1 << 32) | CLONE_NEWUSER])
def test_unshare_of_a_namespace_is_eperm(machine, flags):
    assert evaluate(default(machine), machine, nr(machine, "unshare"), [flags]) == EPERM


@pytest.mark.parametrize("flags", [0, CLONE_FS, CLONE_FILES, CLONE_FS | CLONE_FILES,
                                   1 << 32])   # high bits only: the kernel says EINVAL
def test_unshare_of_no_namespace_is_allowed(machine, flags):
    assert evaluate(default(machine), machine, nr(machine, "unshare"), [flags]) == ALLOW


def test_unshare_with_sys_admin_is_allowed(machine):
    program = seccomp_program(machine, DEFAULT_CAPABILITIES + ["SYS_ADMIN"])
    for flags in (CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWUSER):
        assert evaluate(program, machine, nr(machine, "unshare"), [flags]) == ALLOW


def test_clone_without_namespaces_is_allowed(machine):
    program, number = default(machine), nr(machine, "clone")
    for flags in (SIGCHLD, CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_THREAD | 0x3d0f00,
                  0x80 | SIGCHLD):       # the low byte is the exit signal, not NEWTIME
        assert evaluate(program, machine, number, [flags]) == ALLOW, hex(flags)


@pytest.mark.parametrize("flags", [CLONE_NEWUSER, CLONE_NEWUSER | SIGCHLD, CLONE_NEWNET,
                                   CLONE_NEWPID | SIGCHLD, CLONE_NEWNS])
def test_clone_of_a_namespace_is_eperm(machine, flags):
    assert evaluate(default(machine), machine, nr(machine, "clone"), [flags]) == EPERM


def test_clone3_is_enosys_so_glibc_falls_back_to_clone(machine):
    assert evaluate(default(machine), machine, nr(machine, "clone3")) == ENOSYS
    program = seccomp_program(machine, ["SYS_ADMIN"])
    assert evaluate(program, machine, nr(machine, "clone3")) == ALLOW


@pytest.mark.parametrize("name", sorted(SYS_ADMIN_ONLY - {"unshare", "clone", "clone3"}))
def test_mount_family_needs_sys_admin(machine, name):
    number = nr(machine, name)
    assert evaluate(default(machine), machine, number, [1, 2, 3]) == EPERM
    # every other capability kept changes nothing
    others = [c for c in ALL_CAPABILITIES if c != "SYS_ADMIN"]
    assert evaluate(seccomp_program(machine, others), machine, number) == EPERM
    assert evaluate(seccomp_program(machine, ["SYS_ADMIN"]), machine, number) == ALLOW


@pytest.mark.parametrize("name", sorted(LIFTED_BY))
def test_capability_gated_syscalls(machine, name):
    number = nr(machine, name)
    assert evaluate(default(machine), machine, number) == EPERM
    for cap in LIFTED_BY[name]:
        assert evaluate(seccomp_program(machine, [cap]), machine, number) == ALLOW, cap
    others = [c for c in ALL_CAPABILITIES if c not in LIFTED_BY[name]]
    assert evaluate(seccomp_program(machine, others), machine, number) == EPERM


ALWAYS = ["keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "init_module",
          "finit_module", "delete_module", "iopl", "ioperm", "open_by_handle_at",
          "userfaultfd", "swapon", "swapoff", "io_uring_setup", "io_uring_enter",
          "io_uring_register", "lookup_dcookie", "uselib", "ustat", "sysfs", "_sysctl",
          "nfsservctl", "create_module", "get_kernel_syms", "query_module"]


@pytest.mark.parametrize("name", ALWAYS)
def test_always_denied_whatever_is_kept(machine, name):
    if name not in DENIED[machine]:
        pytest.skip("%s does not exist on %s" % (name, machine))
    expected = ENOSYS if name in ENOSYS_FOR else EPERM
    for caps in ([], DEFAULT_CAPABILITIES, ALL_CAPABILITIES):
        assert evaluate(seccomp_program(machine, caps), machine, nr(machine, name),
                        [1, 0, 0]) == expected


def test_keyctl_get_keyring_id_is_eperm(machine):
    KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING = 0, -3
    assert evaluate(default(machine), machine, nr(machine, "keyctl"),
                    [KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0]) == EPERM


@pytest.mark.parametrize("value,result", [
    (0, ALLOW), (8, ALLOW), (0x20000, ALLOW), (0x20008, ALLOW), (0xffffffff, ALLOW),
    (0x0040000, EPERM),             # ADDR_NO_RANDOMIZE
    (0x0400000, EPERM),             # READ_IMPLIES_EXEC
    (0x0040008, EPERM), (1, EPERM), (0xfffffffe, EPERM)])
def test_personality_only_safe_values(machine, value, result):
    for caps in (DEFAULT_CAPABILITIES, ALL_CAPABILITIES):
        program = seccomp_program(machine, caps)
        assert evaluate(program, machine, nr(machine, "personality"), [value]) == result


@pytest.mark.parametrize("family,result", [(AF_UNIX, ALLOW), (AF_INET, ALLOW), (10, ALLOW),
                                           (16, ALLOW), (17, ALLOW), (AF_VSOCK, EPERM),
                                           ((1 << 32) | AF_VSOCK, EPERM)])
def test_socket_refuses_only_vsock(machine, family, result):
    assert evaluate(default(machine), machine, nr(machine, "socket"),
                    [family, 1, 0]) == result


def test_the_rest_of_a_conditional_syscalls_number_space_is_untouched(machine):
    """A rule's argument test must not leak into the next rule: a syscall right after a
    conditional rule (in the program) with the same argument is still allowed."""
    program = default(machine)
    for number in (0, 1, 2, 3):
        assert evaluate(program, machine, number, [CLONE_NEWUSER]) == ALLOW
        assert evaluate(program, machine, number, [AF_VSOCK]) == ALLOW
        assert evaluate(program, machine, number, [0x0040000]) == ALLOW


def test_capability_names_are_normalised():
    assert (seccomp_program("x86_64", ["cap_sys_admin", "Net_Raw"]) ==
            seccomp_program("x86_64", ["SYS_ADMIN", "NET_RAW"]))


def test_unknown_capability_is_refused():
    with pytest.raises(ValueError, match=r"capabilities: unknown capability 'SYSADMIN'"):
        seccomp_program("x86_64", ["SYSADMIN"])


def test_unknown_machine_is_refused():
    with pytest.raises(ValueError, match=r"machine: 'riscv64' is not supported; expected "
                                         r"one of aarch64, x86_64"):
        seccomp_program("riscv64", [])


def test_install_on_an_unsupported_machine_raises_oserror(monkeypatch):
    class Uname:
        machine = "riscv64"
    monkeypatch.setattr(nslab_seccomp.os, "uname", lambda: Uname)
    with pytest.raises(OSError) as caught:
        seccomp_install([])
    assert caught.value.errno == errno.ENOSYS and "riscv64" in str(caught.value)


def test_source_defines_only_prefixed_names():
    """The init's source is this file and nslab_init's concatenated: no clashes."""
    import ast
    names = module_level_names(nslab_seccomp.__file__)
    assert names
    bad = [n for n in names if not n.startswith(("seccomp_", "SECCOMP_", "_seccomp_"))]
    assert not bad
    with open(nslab_seccomp.__file__) as handle:
        tree = ast.parse(handle.read())
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    for node in imports:
        assert isinstance(node, ast.Import)      # no "from ansible.module_utils import"
        assert all(a.name in ("ctypes", "os", "struct") for a in node.names)


def module_level_names(path):
    """Names a file binds at module level (imports aside: the same module under the same
    name is no clash)."""
    import ast
    with open(path) as handle:
        tree = ast.parse(handle.read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.For)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def test_no_name_clashes_with_nslab_init():
    from ansible_collections.nslab.lab.plugins.module_utils import nslab_init
    ours = module_level_names(nslab_seccomp.__file__)
    theirs = module_level_names(nslab_init.__file__)
    assert len(ours) > 40 and len(theirs) > 40
    assert not ours & theirs


def test_the_filter_knows_exactly_the_capabilities_the_init_does():
    # nslab_seccomp stands before nslab_init in one script and cannot import it: its own
    # copy of the list must stay the same
    from ansible_collections.nslab.lab.plugins.module_utils import nslab_init
    assert nslab_seccomp.SECCOMP_CAPABILITIES == frozenset(nslab_init.CAPABILITIES)

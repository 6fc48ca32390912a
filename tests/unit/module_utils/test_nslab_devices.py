"""Device cgroup policy, pure parts: rules, devices.list parsing, the v1 plan, the v2 plan,
and the eBPF program, run by a small interpreter of the instructions it uses."""

import struct

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import Hierarchy, Layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_devices import (
    ALLOW_ALL, BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE, BPF_DEVCG_DEV_BLOCK,
    BPF_DEVCG_DEV_CHAR, CONTAINER_DEVICES, PROGRAM_NAME, AttachedProgram, DeviceRule, assemble,
    devices_hierarchy, parse_devices_list, plan_v1, plan_v2, policy, restrict_devices)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import DeviceError

# devices.list as this machine's kernel (6.18, cgroup v1) prints it
ALLOW_ALL_LIST = "a *:* rwm\n"
CONTAINER_LIST = ("c 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\n"
                  "c 5:2 rwm\nc 136:* rwm\n")
ACCESS = {"r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE, "m": BPF_DEVCG_ACC_MKNOD}


def test_container_devices_are_the_docker_minimum():
    assert [r.render() for r in CONTAINER_DEVICES] == CONTAINER_LIST.splitlines()
    assert policy(True) == [ALLOW_ALL] and ALLOW_ALL.render() == "a *:* rwm"
    assert policy(False) == list(CONTAINER_DEVICES)


def test_parse_devices_list_as_the_kernel_prints_it():
    assert parse_devices_list(ALLOW_ALL_LIST) == [ALLOW_ALL]
    assert parse_devices_list(CONTAINER_LIST) == list(CONTAINER_DEVICES)
    assert parse_devices_list("") == []                    # deny-all without exceptions
    assert parse_devices_list("b 8:* r\n") == [DeviceRule("b", 8, None, "r")]
    # access letters are compared in one order
    assert parse_devices_list("c 1:3 mwr\n") == [DeviceRule("c", 1, 3, "rwm")]


@pytest.mark.parametrize("line", ["x 1:3 rwm", "c 1-3 rwm", "c 1:3", "c 1:3 rwx"])
def test_parse_devices_list_names_a_bad_line(line):
    with pytest.raises(DeviceError, match="devices.list line %r is not" % line):
        parse_devices_list(line)


def test_plan_v1_restricts_an_allow_all_cgroup():
    writes = plan_v1("/cg", [ALLOW_ALL], list(CONTAINER_DEVICES))
    assert writes == [("/cg/devices.deny", "a")] + [
        ("/cg/devices.allow", line) for line in CONTAINER_LIST.splitlines()]


def test_plan_v1_is_empty_when_the_rules_are_there_in_any_order():
    current = parse_devices_list(CONTAINER_LIST)[::-1]
    assert plan_v1("/cg", current, list(CONTAINER_DEVICES)) == []
    assert plan_v1("/cg", [ALLOW_ALL], [ALLOW_ALL]) == []


def test_plan_v1_privileged_allows_all_and_a_changed_list_is_rewritten():
    assert plan_v1("/cg", list(CONTAINER_DEVICES), [ALLOW_ALL]) == [("/cg/devices.allow", "a")]
    extra = list(CONTAINER_DEVICES) + [DeviceRule("c", 7, 0)]          # someone added vcs
    writes = plan_v1("/cg", extra, list(CONTAINER_DEVICES))
    assert writes[0] == ("/cg/devices.deny", "a") and len(writes) == 9


# --- eBPF -----------------------------------------------------------------------------------

def decode(program):
    return [struct.unpack("<BBhi", program[i:i + 8]) for i in range(0, len(program), 8)]


def run(program, kind, access, major, minor):
    """Interpret the opcodes assemble() emits over a struct bpf_cgroup_dev_ctx."""
    ctx = struct.pack("<III", (ACCESS_BITS(access) << 16) | kind, major, minor)
    regs, pc, insns = [0] * 11, 0, decode(program)
    for _step in range(len(insns) + 1):           # no backward jumps: at most one pass
        opcode, registers, off, imm = insns[pc]
        dst, src = registers & 0xF, registers >> 4
        pc += 1
        if opcode == 0x61:
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif opcode == 0x54:
            regs[dst] = regs[dst] & imm & 0xFFFFFFFF
        elif opcode == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif opcode == 0xb4:
            regs[dst] = imm & 0xFFFFFFFF
        elif opcode == 0xbc:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif opcode == 0x55:
            pc += off if regs[dst] != imm else 0
        elif opcode == 0x5d:
            pc += off if regs[dst] != regs[src] else 0
        elif opcode == 0x95:
            return regs[0]
        else:
            raise AssertionError("unexpected opcode %#x" % opcode)
    raise AssertionError("the program did not exit")


def ACCESS_BITS(letters):
    return sum(ACCESS[a] for a in letters)


CHAR, BLOCK = BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK


def test_program_shape_per_rule():
    # prologue 6 (R2 type, R3 access, R4 major, R5 minor), exit 2; an rwm rule with major and
    # minor is 5 (type, major, minor, r0 = 1, exit), a wildcard minor one 4, a narrower
    # access 3 more (mov, and, jne)
    assert len(decode(assemble([]))) == 8
    assert len(decode(assemble([DeviceRule("c", 1, 3)]))) == 13
    assert len(decode(assemble([DeviceRule("c", 136, None)]))) == 12
    assert len(decode(assemble([DeviceRule("c", 1, 3, "rw")]))) == 16
    assert len(decode(assemble([DeviceRule("b", None, None, "m")]))) == 14
    program = decode(assemble(list(CONTAINER_DEVICES)))
    assert len(program) == 6 + 7 * 5 + 4 + 2
    assert program[-2:] == [(0xb4, 0, 0, 0), (0x95, 0, 0, 0)]          # default: deny
    # every jump lands on the first instruction of the next block
    starts = [6 + 5 * i for i in range(8)] + [6 + 7 * 5 + 4]
    for index, (opcode, _regs, off, _imm) in enumerate(program):
        if opcode in (0x55, 0x5d):
            assert index + 1 + off in starts and index + 1 + off > index


@pytest.mark.parametrize("kind, access, major, minor, allowed", [
    (CHAR, "rw", 1, 3, 1), (CHAR, "m", 1, 3, 1), (CHAR, "r", 1, 9, 1), (CHAR, "rw", 5, 0, 1),
    (CHAR, "rw", 5, 2, 1), (CHAR, "rw", 136, 0, 1), (CHAR, "rw", 136, 4242, 1),
    (CHAR, "r", 7, 0, 0),            # vcs: the host console's memory
    (CHAR, "m", 7, 0, 0),
    (CHAR, "r", 1, 1, 0),            # /dev/mem
    (CHAR, "rw", 5, 1, 0),           # /dev/console
    (CHAR, "rw", 10, 200, 0),        # tun
    (BLOCK, "r", 1, 3, 0),           # a block device with null's numbers
    (BLOCK, "rw", 8, 0, 0)])
def test_container_program_decides_like_the_allow_list(kind, access, major, minor, allowed):
    assert run(assemble(list(CONTAINER_DEVICES)), kind, access, major, minor) == allowed


def test_program_checks_access_when_narrower_than_rwm():
    program = assemble([DeviceRule("c", 1, 3, "r"), DeviceRule("b", 8, None, "rm")])
    assert run(program, CHAR, "r", 1, 3) == 1
    assert run(program, CHAR, "w", 1, 3) == 0
    assert run(program, CHAR, "rw", 1, 3) == 0
    assert run(program, BLOCK, "m", 8, 16) == 1
    assert run(program, BLOCK, "rw", 8, 16) == 0


def test_allow_all_is_not_compiled():
    with pytest.raises(DeviceError, match="rule 'a \\*:\\* rwm' cannot be compiled"):
        assemble([ALLOW_ALL])


def program(prog_id, name=PROGRAM_NAME, tag="aa"):
    return AttachedProgram(prog_id, name, tag)


@pytest.mark.parametrize("attached, wanted, expected", [
    ([], "aa", ("attach", [])),
    ([program(1)], "aa", (None, [])),
    ([program(1, tag="bb")], "aa", ("replace", [])),
    ([program(1, "systemd_dev", "aa")], "aa", ("attach", [])),        # not nslab's: kept
    ([program(1, tag="bb"), program(2)], "aa", ("replace", [2])),     # extra own: detached
    ([program(1), program(2, "other")], None, ("detach", [1])),       # privileged
    ([program(2, "other")], None, (None, [])),
])
def test_plan_v2(attached, wanted, expected):
    verb, stale = plan_v2(attached, wanted)
    assert (verb, [p.prog_id for p in stale]) == expected


# --- restrict_devices over a constructed v1 tree ----------------------------------------------

@pytest.fixture
def v1_tree(tmp_path):
    leaf = tmp_path / "devices/nslab/demo/x"
    leaf.mkdir(parents=True)
    (leaf / "devices.list").write_text(ALLOW_ALL_LIST)
    layout = Layout([Hierarchy(1, str(tmp_path / "devices"), ("devices",))], "v1")
    return layout, leaf


def test_restrict_v1_check_mode_writes_nothing_then_applies(v1_tree):
    layout, leaf = v1_tree
    actions = restrict_devices(layout, "nslab/demo/x", False, check_mode=True)
    assert actions == ["set the devices of cgroup 'nslab/demo/x' from a *:* rwm to "
                       + ", ".join(CONTAINER_LIST.splitlines())]
    assert not (leaf / "devices.deny").exists()
    assert restrict_devices(layout, "nslab/demo/x", False) == actions
    # a plain file keeps the last write only: the kernel would append each allow line
    assert (leaf / "devices.deny").read_text() == "a"
    assert (leaf / "devices.allow").read_text() == "c 136:* rwm"
    (leaf / "devices.list").write_text(CONTAINER_LIST)           # what the kernel then lists
    assert restrict_devices(layout, "nslab/demo/x", False) == []


def test_restrict_names_a_missing_cgroup(v1_tree):
    layout, _leaf = v1_tree
    with pytest.raises(DeviceError, match="'nslab/demo/y': .*devices/nslab/demo/y does not "
                                          "exist; expected the cgroup made by nslab_cgroup"):
        restrict_devices(layout, "nslab/demo/y", False)


def test_devices_hierarchy_prefers_v1_devices_then_v2():
    v1 = Hierarchy(1, "/c/devices", ("devices",))
    v2 = Hierarchy(2, "/c/unified", ("memory",))
    assert devices_hierarchy(Layout([v2, v1], "hybrid")) is v1
    assert devices_hierarchy(Layout([v2], "v2")) is v2
    assert devices_hierarchy(Layout([Hierarchy(1, "/c/memory", ("memory",))], "v1")) is None
    with pytest.raises(DeviceError, match="no devices hierarchy"):
        restrict_devices(Layout([Hierarchy(1, "/c/memory", ("memory",))], "v1"), "nslab/d/x",
                         False)

"""The init launcher's pure parts: rewriting the argv area with a container's label, the
launcher's placeholder argument that makes room for it, and what the launcher prepares
before it forks an init (capability plan, seccomp filter) and the descriptors a child keeps."""

import ast
import os
import subprocess
import sys

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_containers import (
    LAUNCHER_LABEL, launcher_placeholder)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import relabelled_argv

from helpers.paths import ROOT

AREA = b"/usr/bin/python3\0-I\0-S\0-\0nslab-launcher......\0"


def apply(area, offset, data):
    return area[:offset] + data + area[offset + len(data):]


def test_label_replaces_the_placeholder_and_keeps_the_area_size():
    offset, data, used = relabelled_argv(AREA, b"nslab:l:n1")
    new = apply(AREA, offset, data)
    assert len(new) == len(AREA)
    assert new.endswith(b"\0")
    assert new.split(b"\0")[:5] == [b"/usr/bin/python3", b"-I", b"-S", b"-", b"nslab:l:n1"]
    assert set(new.split(b"\0")[5:]) == {b""}        # the rest: empty arguments
    # trimmed to ``used`` the area is exactly a process started with the label
    assert new[:used] == b"/usr/bin/python3\0-I\0-S\0-\0nslab:l:n1\0"


def test_label_as_long_as_the_placeholder_fits_exactly():
    label = b"x" * len(b"nslab-launcher......")
    offset, data, used = relabelled_argv(AREA, label)
    assert apply(AREA, offset, data) == AREA.replace(b"nslab-launcher......", label)
    assert used == len(AREA)


@pytest.mark.parametrize("label, why", [
    (b"x" * 21, "longer than the placeholder"),
    (b"", "non-empty"),
    (b"a\0b", "hold no NUL"),
])
def test_bad_labels_are_refused(label, why):
    with pytest.raises(ValueError, match=why):
        relabelled_argv(AREA, label)


def test_area_without_its_final_nul_is_refused():
    with pytest.raises(ValueError, match="does not end with a NUL"):
        relabelled_argv(AREA[:-1], b"nslab:l:n")


def test_single_argument_area():
    offset, data, used = relabelled_argv(b"placeholder\0", b"lab")
    assert (offset, data, used) == (0, b"lab\0\0\0\0\0\0\0\0\0", 4)


def test_placeholder_fits_the_longest_label_and_is_no_label():
    labels = ["nslab:lab:n1", "nslab:lab:a-much-longer-name", "nslab:lab:é"]
    placeholder = launcher_placeholder("lab", labels)
    assert len(placeholder.encode()) >= max(len(x.encode()) for x in labels)
    assert placeholder.startswith(LAUNCHER_LABEL + ":lab:.")
    assert not placeholder.startswith("nslab:")
    assert launcher_placeholder("lab", []) == LAUNCHER_LABEL + ":lab:."


@pytest.mark.parametrize("planned", [False, True])
def test_set_label_in_a_real_process(planned):
    """The rewrite as the launcher's child does it, in a fresh interpreter: ps sees it.
    Planned: the launcher plans it from its own argv area, and its fork writes it."""
    module = str(ROOT / "module_utils" / "nslab_init.py")
    code = ("import os, runpy, ctypes; g = runpy.run_path(%r)\n"
            "if %r:\n"
            "    s, e = g['argv_area']()\n"
            "    plan = g['plan_label']('nslab:lab:box', (s, e, ctypes.string_at(s, e - s)))\n"
            "    if os.fork():\n"
            "        os._exit(os.waitstatus_to_exitcode(os.wait()[1]))\n"
            "    g['set_label']('nslab:lab:box', plan)\n"
            "else:\n"
            "    g['set_label']('nslab:lab:box')\n"
            "print(open('/proc/self/cmdline', 'rb').read())" % (module, planned))
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, "nslab-launcher" + "." * 20],
                         stdout=subprocess.PIPE, check=True).stdout
    argv = ast.literal_eval(out.decode()).split(b"\0")
    assert b"nslab:lab:box" in argv and not any(a.startswith(b"nslab-launcher") for a in argv)


def init_script_namespace():
    """The names of the init's script as the launcher runs it: nslab_seccomp's source,
    then nslab_init's, in one namespace."""
    import inspect
    from ansible_collections.nslab.lab.plugins.module_utils import nslab_init, nslab_seccomp
    namespace = {"__name__": "nslab_init_script"}
    source = inspect.getsource(nslab_seccomp) + "\n" + inspect.getsource(nslab_init)
    exec(compile(source, "nslab-init", "exec"), namespace)
    return namespace


def test_launcher_prepares_capabilities_and_filter_once_per_capability_set():
    import ctypes
    script = init_script_namespace()
    prepare, cache = script["prepare"], {}
    first = prepare(cache, {"capabilities": ["NET_RAW", "CHOWN"]})
    again = prepare(cache, {"capabilities": ["CHOWN", "NET_RAW"]})
    other = prepare(cache, {"capabilities": ["CHOWN", "NET_RAW", "SYS_ADMIN"]})
    assert first is again and len(cache) == 2     # one of each, shared by the children
    (dropped, header, data), fprog = first
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    kept = {0, 13}                                # CHOWN, NET_RAW
    assert dropped == [n for n in range(last + 1) if n not in kept]
    assert list(header) == [0x20080522, 0] and list(data) == [1 | 1 << 13] * 2 + [0, 0, 0, 0]
    program = script["seccomp_program"](os.uname().machine, ["CHOWN", "NET_RAW"])
    assert ctypes.string_at(fprog.filter, fprog.len * 8) == program
    assert other[1].len * 8 != len(program)
    # no filter for a container that gets none; what cannot be made (an unknown
    # capability) is left to the init, which reports it: the launcher must not die of it
    assert prepare(cache, {"capabilities": [], "privileged": True})[1] is None
    assert prepare(cache, {"capabilities": [], "seccomp": "unconfined"})[1] is None
    assert prepare(cache, {"capabilities": ["NO_SUCH"]}) == (None, None)


def test_seccomp_install_uses_the_prepared_program(monkeypatch):
    from ansible_collections.nslab.lab.plugins.module_utils import nslab_seccomp
    installed = []

    class FakeLibc:
        @staticmethod
        def prctl(option, mode, fprog, _a, _b):
            installed.append((option, mode, fprog._obj.len))
            return 0

    def no_build(*_args):
        raise AssertionError("built again")
    program = nslab_seccomp.seccomp_program(os.uname().machine, ["CHOWN"])
    prepared = nslab_seccomp.seccomp_prepare(program)
    monkeypatch.setattr(nslab_seccomp, "_seccomp_libc", FakeLibc)
    monkeypatch.setattr(nslab_seccomp, "seccomp_program", no_build)
    nslab_seccomp.seccomp_install(["CHOWN"], prepared)
    assert installed == [(nslab_seccomp.SECCOMP_PR_SET_SECCOMP,
                          nslab_seccomp.SECCOMP_MODE_FILTER, len(program) // 8)]


def test_close_all_but_keeps_exactly_the_listed_descriptors():
    module = str(ROOT / "module_utils" / "nslab_init.py")
    code = ("import os, runpy; g = runpy.run_path(%r)\n"
            "fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(8)]\n"
            "high = os.dup2(fds[0], 200, inheritable=False)\n"
            "g['close_all_but']([fds[2], fds[5], high])\n"
            "print(sorted(int(f) for f in os.listdir('/proc/self/fd')), fds[2], fds[5])"
            % module)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], stdout=subprocess.PIPE,
                         check=True).stdout.split(b"]")
    listed = ast.literal_eval(out[0].decode() + "]")
    kept = [int(x) for x in out[1].split()]
    # 0-2, the two kept, 200, and the listing's own descriptor (the lowest free one)
    listing = min(set(range(3, 300)) - {kept[0], kept[1], 200})
    assert listed == sorted([0, 1, 2, kept[0], kept[1], 200, listing])

"""The init launcher's pure parts: rewriting the argv area with a container's label, and
the launcher's placeholder argument that makes room for it."""

import ast
import subprocess
import sys

import pytest

from ansible.module_utils.nslab_containers import LAUNCHER_LABEL, launcher_placeholder
from ansible.module_utils.nslab_init import relabelled_argv

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


def test_set_label_in_a_real_process():
    """The rewrite as the launcher's child does it, in a fresh interpreter: ps sees it."""
    module = str(ROOT / "module_utils" / "nslab_init.py")
    code = ("import runpy; g = runpy.run_path(%r); g['set_label']('nslab:lab:box'); "
            "print(open('/proc/self/cmdline', 'rb').read())" % module)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, "nslab-launcher" + "." * 20],
                         stdout=subprocess.PIPE, check=True).stdout
    argv = ast.literal_eval(out.decode()).split(b"\0")
    assert b"nslab:lab:box" in argv and not any(a.startswith(b"nslab-launcher") for a in argv)

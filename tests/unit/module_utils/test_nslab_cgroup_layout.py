"""nslab_cgroup_layout: which hierarchies hold nslab's controllers, from a v1 tree captured
on this machine (fixtures/cgroup_v1, with its real mountinfo), a v2 tree built after
Documentation/admin-guide/cgroup-v2.rst (fixtures/cgroup_v2) and hand-written mountinfo."""

import os

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import detect_layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import CgroupError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import parse_mountinfo


def test_v1_layout_of_this_machine(cgroup_v1):
    layout, root = cgroup_v1
    assert layout.kind == "hybrid"               # v1 controllers beside a cgroup2 mount
    assert [(h.version, os.path.basename(h.mount), h.controllers)
            for h in layout.hierarchies] == [
        (1, "cpu", ("cpu",)), (1, "cpuacct", ("cpuacct",)), (1, "cpuset", ("cpuset",)),
        (1, "memory", ("memory",)), (1, "devices", ("devices",)), (1, "blkio", ("io",)),
        (1, "pids", ("pids",))]
    assert (layout.cpus, layout.mems) == ("0-1", "0")
    # the cgroup2 mount holds only hugetlb: no cgroup is made there
    assert str(root / "unified") not in [h.mount for h in layout.hierarchies]


def test_v2_layout(cgroup_v2):
    layout, root = cgroup_v2
    assert layout.kind == "v2" and (layout.cpus, layout.mems) == ("0-3", "0")
    assert [(h.version, h.mount, h.controllers) for h in layout.hierarchies] == [
        (2, str(root), ("memory", "cpu", "cpuacct", "cpuset", "pids", "io"))]
    assert layout.view()["controllers"]["io"] == {"version": 2, "mount": str(root)}


def test_comounted_v1_controllers_share_one_hierarchy(tmp_path):
    text = ("25 24 0:22 / /c/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
            "26 24 0:23 / /c/memory rw - cgroup cgroup rw,memory\n")
    layout = detect_layout(parse_mountinfo(text))
    assert [(h.mount, h.controllers) for h in layout.hierarchies] == [
        ("/c/cpu,cpuacct", ("cpu", "cpuacct")), ("/c/memory", ("memory",))]
    assert layout.kind == "v1" and layout.hierarchy_of("pids") is None


def test_no_cgroup_mount_is_an_error():
    with pytest.raises(CgroupError, match="no cgroup hierarchy is mounted"):
        detect_layout(parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"))

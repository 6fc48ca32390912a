"""nslab_cgroup_vocab: what each hierarchy version can express, and the v1/v2 translators
writing and reading the same values."""

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import detect_layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import MAX, parse_limits
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_vocab import (
    FILES, layout_problems)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import parse_mountinfo


def test_layout_problems_on_v1(cgroup_v1):
    layout, _root = cgroup_v1
    limits, _p = parse_limits({"memory_high": "1G", "io_weight": 50, "swap": "1G",
                               "cpuset": "0-3", "cpuset_mems": "1"})
    problems = layout_problems("x.", limits, layout)
    assert [p.split(":")[0] for p in problems] == [
        "x.memory_high", "x.io_weight", "x.swap", "x.cpuset", "x.cpuset_mems"]
    assert "cgroup v1 has no memory.high" in problems[0]
    assert "cgroup v1 limits memory and swap together" in problems[2]
    assert "CPUs 2-3 are not available on this host; expected a subset of 0-1" in problems[3]
    # the same limits with memory set, within the host's CPUs: only the v1 gaps remain
    limits.update(memory=1 << 30, cpuset="1", cpuset_mems="0")
    assert len(layout_problems("", limits, layout)) == 2


def test_layout_problems_on_v2_and_missing_controller(cgroup_v2, tmp_path):
    layout, _root = cgroup_v2
    limits, _p = parse_limits({"memory_high": "1G", "io_weight": 50, "swap": 0, "cpuset": "3"})
    assert layout_problems("", limits, layout) == []
    only_memory = detect_layout(parse_mountinfo(
        "26 24 0:23 / /c/memory rw - cgroup cgroup rw,memory\n"))
    assert layout_problems("", {"pids": 10}, only_memory) == [
        "pids: '10' cannot be enforced on this host: no pids controller is mounted (cgroup "
        "layout v1); expected that controller, or leave pids unset"]


def test_translators_agree_on_what_they_write_and_read():
    """Writing a value then reading the file back gives that value, on both versions."""
    values = {"memory": 1 << 28, "swap": 1 << 20, "cpus": 1.25, "cpu_weight": 37,
              "cpuset": "0-1", "cpuset_mems": "0", "pids": 7, "memory_high": 1 << 27,
              "io_weight": 300,
              "io": {"8:0": {"read_bps": 5, "write_bps": MAX, "read_iops": MAX,
                             "write_iops": 9}}}
    for version, translator in FILES.items():
        files = dict((name, "") for name in FILES[1].needs("io") + FILES[2].needs("io"))
        for key, value in values.items():
            if version == 1 and key in ("memory_high", "io_weight"):
                continue
            for name, text, _undo in translator.writes(key, value, files, values):
                if key != "io":
                    files[name] = text
                    continue
                # a device line replaces that device's line; v1 "MAJ:MIN 0" removes it
                device = text.split()[0]
                lines = [l for l in files[name].splitlines() if not l.startswith(device + " ")]
                files[name] = "\n".join(lines + ([] if text.endswith(" 0") else [text]))
        for key, value in values.items():
            if version == 2 or key not in ("memory_high", "io_weight"):
                assert translator.read(key, files) == value, (version, key)

"""nslab_cgroup_values: user values (sizes, CPUs, counts, CPU lists, io per device) and cgroup
names to canonical values, or problems naming the option, the value and what was expected."""

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import (
    MAX, format_cpulist, name_problem, parse_count, parse_cpulist, parse_cpus, parse_io,
    parse_limits, parse_size)


@pytest.mark.parametrize("value, expected", [
    ("256M", 256 << 20), ("1.5G", 3 << 29), ("512k", 512 << 10), ("64MiB", 64 << 20),
    ("2T", 2 << 40), (1048576, 1048576), ("1000000", 1000000), ("max", MAX)])
def test_parse_size(value, expected):
    assert parse_size("memory", value) == (expected, None)


@pytest.mark.parametrize("value", ["12Q", "", "-1M", 0, True, "1.5.3G", None])
def test_parse_size_problems_name_option_and_value(value):
    size, problem = parse_size("cgroups[1].memory", value)
    assert size is None and problem.startswith("cgroups[1].memory: size %r is invalid" % value)
    assert "like 256M" in problem


def test_swap_may_be_zero():
    assert parse_limits({"swap": 0}) == ({"swap": 0}, [])


@pytest.mark.parametrize("value, expected", [
    (1.5, 1.5), ("0.2", 0.2), (2, 2.0), ("max", MAX), (0.333333, 0.33333)])
def test_parse_cpus(value, expected):
    assert parse_cpus("cpus", value) == (expected, None)


@pytest.mark.parametrize("value", [0, "0.001", "two", -1])
def test_parse_cpus_problems(value):
    assert "expected a number of CPUs of at least 0.01" in parse_cpus("cpus", value)[1]


def test_parse_count():
    assert parse_count("pids", 128) == (128, None)
    assert parse_count("pids", "max") == (MAX, None)
    assert parse_count("pids", "10") == (10, None)
    assert "expected an integer from 1 to 4194304" in parse_count("pids", 0)[1]
    assert parse_count("pids", 1.5)[0] is None


def test_cpulists_are_canonical():
    assert parse_cpulist("cpuset", "0,1,2,5") == ("0-2,5", None)
    assert parse_cpulist("cpuset", 3) == ("3", None)
    assert format_cpulist({0, 2, 3, 4, 7}) == "0,2-4,7"
    assert "not a list of CPUs" in parse_cpulist("cpuset", "3-1")[1]
    assert "not a list of memory nodes" in parse_cpulist("cpuset_mems", "a", "memory nodes")[1]


def test_parse_io_exact_per_device():
    def resolve(value):
        return (value, None) if value in ("8:0", "8:16") else (None, "no such disk")
    devices, problems = parse_io("", [
        {"device": "8:0", "read_bps": "10M", "write_iops": 200},
        {"device": "8:16"},                                # no limit: not listed
        {"device": "9:9", "read_bps": "1M"},
        {"device": "8:0", "read_iops": "x"}], resolve)
    assert devices == {"8:0": {"read_bps": 10 << 20, "write_bps": MAX, "read_iops": MAX,
                               "write_iops": 200}}
    assert problems == ["io[2].device: '9:9' is invalid: no such disk",
                        "io[3].device: 8:0 is listed twice"]
    _devices, problems = parse_io("", [{"device": "8:0", "read_iops": "x"}], resolve)
    assert problems == ["io[0].read_iops: 'x' is invalid; expected an integer from 1 to "
                        "1099511627776, or 'max'"]


@pytest.mark.parametrize("name", ["a", "web/apt101", "A-b_9/x"])
def test_good_names(name):
    assert name_problem("name", name) is None


@pytest.mark.parametrize("name", ["", "../x", "/abs", "a//b", "a/", "web/..", ".hidden",
                                  "a.b", "tasks", "x/release_agent", "/".join("a" * 9)])
def test_bad_names(name):
    assert name_problem("cgroups[0].name", name).startswith("cgroups[0].name: cgroup name ")

"""Input validation: every problem names the option, the value and what was expected."""

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
    hostname_problem, ifname_problem, lab_problem, mac_problem, mtu_problem, nsname_problem,
    parse_interface_address)


@pytest.mark.parametrize("name", ["eth0", "nslab-demo-lan", "a" * 15, "v.1_x-y"])
def test_valid_interface_names(name):
    assert ifname_problem("name", name) is None


@pytest.mark.parametrize("name,fragment", [
    ("a" * 16, "16 bytes; expected at most 15"),
    ("", "empty"),
    ("a/b", "invalid"),
    ("a b", "invalid"),
    ("a:b", "invalid"),
    ("..", "invalid"),
])
def test_invalid_interface_names(name, fragment):
    problem = ifname_problem("bridges[0].name", name)
    assert problem.startswith("bridges[0].name: ")
    assert fragment in problem


def test_multibyte_names_are_counted_in_bytes():
    assert "16 bytes" in ifname_problem("name", "é" * 8)


@pytest.mark.parametrize("value,normalised", [
    ("10.0.0.2/24", "10.0.0.2/24"),
    ("FD00::0002/64", "fd00::2/64"),
    ("10.0.0.0/31", "10.0.0.0/31"),
    ("10.0.0.1/32", "10.0.0.1/32"),
])
def test_valid_addresses(value, normalised):
    parsed, problem = parse_interface_address("addresses", value)
    assert problem is None and str(parsed) == normalised


@pytest.mark.parametrize("value,fragment", [
    ("10.0.0.2", "no prefix length"),
    ("10.0.0.300/24", "not a valid CIDR"),
    ("10.0.0.0/24", "network address"),
    ("10.0.0.255/24", "broadcast address"),
    ("fd00::1/129", "not a valid CIDR"),
])
def test_invalid_addresses(value, fragment):
    parsed, problem = parse_interface_address("peer.addresses", value)
    assert parsed is None
    assert problem.startswith("peer.addresses: ") and fragment in problem and value in problem


def test_mac_mtu_lab_namespace_hostname():
    assert mac_problem("mac", "02:42:ac:11:00:02") is None
    assert "multicast" in mac_problem("mac", "01:00:5e:00:00:01")
    assert "six hex octets" in mac_problem("mac", "02:42:ac:11:00")
    assert mtu_problem("mtu", 1500) is None and mtu_problem("mtu", None) is None
    assert "68-65535" in mtu_problem("mtu", 67)
    assert lab_problem("lab", "demo") is None
    assert "lab name" in lab_problem("lab", "Demo Lab")
    assert nsname_problem("name", "demo-apt101") is None
    assert "namespace name" in nsname_problem("name", "../etc")
    assert hostname_problem("hostname", "web-1.lab") is None
    assert "hostname" in hostname_problem("hostname", "-bad")


@pytest.mark.parametrize("value,fragment", [
    ("relative/path", "not absolute"),
    ("/srv/../etc", "not in normal form"),
    ("/srv/./x", "not in normal form"),
    ("//srv", "not in normal form"),
    ("/srv/", "not in normal form"),
])
def test_paths_must_be_absolute_and_normal(value, fragment):
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import abspath_problem
    problem = abspath_problem("jails[1].path", value)
    assert problem.startswith("jails[1].path: ") and fragment in problem
    assert abspath_problem("path", "/srv/rootfs") is None


@pytest.mark.parametrize("value", ["..", "../escape", "a/b", ""])
def test_jail_names_never_leave_their_directory(value):
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
        object_name_problem)
    assert "jail name" in object_name_problem("name", value, "jail")


@pytest.mark.parametrize("check,value", [
    (lab_problem, "demo\n"), (nsname_problem, "demo-a\n"), (hostname_problem, "web1\n"),
    (mac_problem, "02:42:ac:11:00:02\n"), (hostname_problem, "a" * 65),
    (hostname_problem, "web_1"), (hostname_problem, "-web"), (hostname_problem, "web-"),
])
def test_names_are_matched_whole_a_trailing_newline_is_refused(check, value):
    problem = check("option", value)
    assert problem and problem.startswith("option: ") and "expected" in problem


def test_a_boolean_is_not_an_mtu():
    assert "out of range" in mtu_problem("mtu", True)

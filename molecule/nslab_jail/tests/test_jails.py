"""The jails of the nslab_jail scenario: overlay mounts, and their root seen from inside."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
from nslab_verify import lab_view  # noqa: E402


@pytest.fixture(scope="module")
def jails(host):
    return {j["name"]: j for j in lab_view(host, "moljail")["jails"]}


def test_every_jail_is_a_mounted_overlay(host, jails):
    assert sorted(jails) == ["box", "tools"]
    for jail in jails.values():
        mount = host.mount_point(jail["root"])
        assert mount.exists and mount.filesystem == "overlay"
        lower = [o for o in mount.options if o.startswith("lowerdir=")]
        assert lower and jail["base"] in lower[0].split("=", 1)[1].split(":"), mount.options


def test_the_busybox_jail_sees_only_its_own_root(host, jails):
    root = jails["box"]["root"]
    inside = host.check_output("chroot %s /bin/sh -c 'ls /'" % root).split()
    assert {"bin", "dev", "etc", "proc"} <= set(inside)
    assert "work" not in inside and "home" not in inside
    assert host.check_output("chroot %s /bin/sh -c 'echo $((6 * 7))'" % root) == "42"


def test_the_host_jail_runs_the_copied_binaries(host, jails):
    root = jails["tools"]["root"]
    assert host.check_output("chroot %s sh -c 'echo $0'" % root) == "sh"
    assert "passwd" in host.check_output("chroot %s ls /etc" % root).split()
    assert host.run("chroot %s sh -c 'command -v ip'" % root).rc != 0  # not asked for


def test_a_write_inside_stays_in_the_jails_upper_layer(host, jails):
    root = jails["box"]["root"]
    host.check_output("chroot %s /bin/sh -c 'echo hi > /written-by-verify'" % root)
    try:
        assert not host.file(jails["box"]["base"] + "/written-by-verify").exists
    finally:
        host.check_output("rm -f %s/written-by-verify" % root)

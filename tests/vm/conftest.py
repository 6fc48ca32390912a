"""The VM tier: nslab's modules on a real cgroup v2 + systemd host, a qemu VM (vm/up).

Opt-in: its tests run only when selected with ``-m vm`` (or with NSLAB_VM_TESTS=1), so a
plain ``pytest`` does not boot a VM. The VM is booted once per session, or reused if one
is running; a VM this session booted is stopped at its end (NSLAB_VM_KEEP=1 keeps it).
"""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VM = ROOT / "vm"
CACHE = pathlib.Path(os.environ.get("NSLAB_VM_CACHE", "/var/cache/nslab-vm"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "vm: boots a qemu VM (Debian 12, systemd, cgroup v2) and runs nslab on "
        "it over SSH; opt-in with -m vm")


def pytest_collection_modifyitems(config, items):
    selected = "vm" in (config.getoption("markexpr") or "").replace("not vm", "")
    if selected or os.environ.get("NSLAB_VM_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="VM tier: run it with `pytest -m vm tests/vm`")
    for item in items:
        if item.get_closest_marker("vm"):
            item.add_marker(skip)


def _running_pid():
    try:
        pid = (CACHE / "run" / "qemu.pid").read_text().strip()
        return pid if os.path.exists("/proc/%s" % pid) else None
    except OSError:
        return None


@pytest.fixture(scope="session")
def vm():
    """{host, port, key, image, ...} of a running VM that root can SSH into."""
    if os.geteuid() != 0:
        pytest.skip("the VM tier needs root (it builds the image with debootstrap)")
    before = _running_pid()
    proc = subprocess.run([str(VM / "up")], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise AssertionError("vm/up failed (rc %d):\n%s\n%s" % (
            proc.returncode, proc.stdout, proc.stderr))
    info = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    info = dict((k[len("NSLAB_VM_"):].lower(), v) for k, v in info.items())
    started_here = _running_pid() != before
    try:
        yield info
    finally:
        if started_here and os.environ.get("NSLAB_VM_KEEP") != "1":
            subprocess.run([str(VM / "down")], capture_output=True, text=True)

"""The VM tier: nslab's modules on a real cgroup v2 + systemd host, a qemu VM (vm/up).

Opt-in: its tests run only when selected with ``-m vm`` (or with NSLAB_VM_TESTS=1), so a
plain ``pytest`` does not boot a VM. The VM is booted once per session, or reused if one
is running; a VM this session booted is stopped at its end (NSLAB_VM_KEEP=1 keeps it).
Under software emulation every lab.yml run on the VM costs most of a minute, so one lab
(``vm_lab``) is built once per session and shared by test_cgroup_v2.py and
test_netem_vm.py.
"""

import json
import os
import pathlib
import secrets
import subprocess

import pytest
import yaml

from helpers.vm_hosts import failed, lab_leftovers, remove_lab, run_playbook, ssh, \
    write_inventory

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


@pytest.fixture(scope="session")
def inventory(vm, tmp_path_factory):
    """An Ansible inventory naming the VM: the same file would name any real machine."""
    return write_inventory(vm, tmp_path_factory.mktemp("vm") / "inventory.ini")


# The shared lab's point-to-point link; a: .1, b: .2 (read back from the kernel).
VM_LAB_LINK = "10.213.181.0/30"


class VmLab:
    """The session's lab on the VM: its name, spec and topology file, the results of the
    lab.yml run that built it, and the nodes' link addresses."""

    def __init__(self, vm, inventory, name, spec, topology):
        self.vm, self.inventory, self.name = vm, inventory, name
        self.spec, self.topology = spec, topology
        self.built = None
        self.addr = {}

    def netns(self, node):
        return "/run/netns/%s-%s" % (self.name, node)

    def run_in(self, node, command, check=True, timeout=120):
        """A command in a node's net namespace only (the VM's own tools: iputils, iperf3)."""
        return ssh(self.vm, "nsenter --net=%s %s" % (self.netns(node), command),
                   check=check, timeout=timeout)

    def write(self):
        self.topology.write_text(yaml.safe_dump(self.spec))


@pytest.fixture(scope="session")
def vm_lab(vm, inventory, tmp_path_factory):
    """Two busybox nodes a and b on the network ``lan`` and on a point-to-point link
    a:eth1 - b:eth1 (VM_LAB_LINK), limits from the defaults (64M, half a CPU, 64 pids) and
    on b pids 20, under which b's command tries 40 processes at once (from inside, in its
    own cgroup; busybox sh gives up at the first failed fork, hence the subshell) and then
    idles, writing what it saw to /tmp/forks. Built once with lab.yml; tests may change its
    link's netem but put it back. At the end lab.yml removes it, which must leave nothing on
    the VM; whatever is left is then removed straight through the kernel."""
    name = "l" + secrets.token_hex(3)
    ssh(vm, "modprobe sch_netem")                  # for test_netem_vm.py
    spec = {
        "lab": name,
        "defaults": {"jail": {"source": "busybox"},
                     "limits": {"memory": "64M", "cpus": 0.5, "pids": 64}},
        "networks": {"lan": {"subnet": "10.251.70.0/24"}},
        "nodes": {"a": {"networks": ["lan"]},
                  "b": {"networks": ["lan"], "limits": {"pids": 20}, "command": [
                      "sh", "-c", "(for i in $(seq 1 40); do sleep 1 & done; wait) "
                                  "2> /tmp/forks; echo done >> /tmp/forks; "
                                  "exec sleep 100000"]}},
        "links": [{"endpoints": ["a:eth1", "b:eth1"], "subnet": VM_LAB_LINK}],
    }
    shared = VmLab(vm, inventory, name, spec,
                   tmp_path_factory.mktemp("vm_lab") / ("%s.yml" % name))
    shared.write()
    try:
        shared.built = run_playbook(inventory, "lab.yml", {"lab": str(shared.topology)})
        assert not failed(shared.built), failed(shared.built)
        for node in ("a", "b"):
            info = json.loads(shared.run_in(node, "ip -j -4 addr show dev eth1").stdout)
            shared.addr[node] = info[0]["addr_info"][0]["local"]
        yield shared
        destroyed = run_playbook(inventory, "lab.yml",
                                 {"lab": str(shared.topology), "state": "absent"})
        assert not failed(destroyed), failed(destroyed)
        left = lab_leftovers(vm, name)
        assert left == "", left
    finally:
        remove_lab(vm, name)

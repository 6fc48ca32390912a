"""Integration fixtures: run nslab modules through Ansible against the real kernel.

Every test gets its own lab name (random), and every kernel object a test makes is named
after it. Teardown removes whatever is left of that lab straight through the kernel
(not through nslab, which may be what failed) and then checks that nothing remains.
The helpers these fixtures use are in tests/helpers; every test here is marked
``integration`` by tests/conftest.py.
"""

import os
import shutil

import pytest
import yaml

from helpers.ansible_runs import run_module, run_playbook
from helpers.lab import BUSYBOX, BUSYBOX_APPLETS, RUNNING_LAB_LINK, RUNNING_LAB_SUBNET, Lab


@pytest.fixture
def lab():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (namespaces, links, mounts)")
    test_lab = Lab()
    try:
        yield test_lab
    finally:
        test_lab.cleanup()
        left = test_lab.leftovers()
        assert not left, "cleanup left %s" % left


@pytest.fixture
def module():
    return run_module


@pytest.fixture
def rootfs(tmp_path):
    """A minimal busybox jail: /bin/busybox and its applet links, an empty /tmp."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    (root / "tmp").mkdir()
    return root


@pytest.fixture(scope="session")
def running_lab(tmp_path_factory):
    """One lab built once with lab.yml and shared by the tests that only read it (inventory,
    inspect, graph, exec): busybox nodes a, b and c on the network ``lan``
    (RUNNING_LAB_SUBNET), a point-to-point link a:eth1 - c:eth1 (RUNNING_LAB_LINK), and a
    node ``d`` on lan that is stopped. Do not change it in a test: build a lab of your own
    for that."""
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (namespaces, links, mounts)")
    shared = Lab()
    spec = {
        "lab": shared.name,
        "defaults": {"jail": {"source": "busybox"},
                     "limits": {"memory": "64M", "cpus": 0.5, "pids": 64}},
        "networks": {"lan": {"subnet": RUNNING_LAB_SUBNET}},
        "nodes": {"a": {"networks": ["lan"]}, "b": {"networks": ["lan"]},
                  "c": {"networks": ["lan"], "limits": {"memory": "32M"}},
                  "d": {"networks": ["lan"]}},
        "links": [{"endpoints": ["a:eth1", "c:eth1"], "subnet": RUNNING_LAB_LINK}],
    }
    path = tmp_path_factory.mktemp("running_lab") / ("%s.yml" % shared.name)
    path.write_text(yaml.safe_dump(spec))
    try:
        built = run_playbook("lab.yml", {"lab": str(path)})
        assert built.returncode == 0, built.stdout[-3000:]
        stopped = run_module("nslab_container", {"lab": shared.name, "name": "d",
                                                 "state": "stopped"})
        assert stopped.get("changed"), stopped
        shared.spec, shared.topology_file = spec, path
        yield shared
    finally:
        shared.cleanup()
        left = shared.leftovers()
        assert not left, "cleanup left %s" % left

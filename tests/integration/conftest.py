"""Integration fixtures: run nslab modules through Ansible against the real kernel.

Every test gets its own lab name (random), and every kernel object a test makes is named
after it. Teardown removes whatever is left of that lab straight through the kernel
(not through nslab, which may be what failed) and then checks that nothing remains.
The helpers these fixtures use are in tests/helpers; every test here is marked
``integration`` by tests/conftest.py.
"""

import os
import shutil
import warnings

import pytest
import yaml

from helpers.ansible_runs import run_module, run_playbook
from helpers.fleet_hosts import Fleet, recap
from helpers.lab import (BUSYBOX, BUSYBOX_APPLETS, RUNNING_LAB_LINK, RUNNING_LAB_SUBNET, Lab,
                         sweep_stale_labs)


@pytest.fixture(scope="session", autouse=True)
def stale_labs_swept():
    """What killed test runs left on this machine is removed before anything is built:
    their labs hold the fixed subnets and names the next run needs."""
    if os.geteuid() == 0:
        swept = sweep_stale_labs()
        if swept:
            warnings.warn("removed the labs of test runs that were killed: %s"
                          % ", ".join(swept))


@pytest.fixture
def lab():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (namespaces, links, mounts)")
    test_lab = Lab()
    try:
        yield test_lab
    finally:
        left = test_lab.cleanup()
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
        left = shared.cleanup()
        assert not left, "cleanup left %s" % left


@pytest.fixture(scope="session")
def fleet():
    """The test fleet (helpers.fleet_hosts.Fleet), built once for the session by fleet.yml:
    first in check mode (which must plan changes and make none), then for real. Shared by
    test_fleet.py and test_fleet_lab.py, each building its own lab inside it and removing it;
    a test may stop a host, but brings it back. At the end fleet.yml removes it, which must
    change something and leave nothing; whatever is left is then removed straight through
    the kernel, failure or not."""
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (namespaces, links, mounts)")
    if not shutil.which("ssh"):
        pytest.skip("needs the ssh client")
    owner = Lab()
    shared = Fleet(owner)
    try:
        shared.planned = shared.playbook(check=True)
        shared.left_after_check = owner.leftovers()
        shared.built = shared.playbook()
        recap(shared.built)
        yield shared
        removed = shared.playbook("absent")
        assert recap(removed) > 0, removed
        assert not owner.leftovers(), owner.leftovers()
    finally:
        left = owner.cleanup()
        assert not left, "cleanup left %s" % left

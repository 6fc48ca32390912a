"""Two lab.yml runs on the same lab at once: every changing module holds the lab's lock
(nslab_lock), so the second run's modules see what the first built and duplicate nothing.
A module that cannot get the lock in time says which run holds it. Runs on two labs go at
once: neither removes what both use (nslab's cgroup, /run/nslab, /var/lib/nslab) while
the other works in it (nslab_shared)."""

import fcntl
import json
import os
import subprocess

import yaml

from helpers.ansible_runs import ansible_env, run_module, task_results
from helpers.lab import BUSYBOX_SKIP, Lab
from helpers.paths import BIN, ROOT
from ansible_collections.nslab.lab.plugins.module_utils.nslab_lock import (
    LOCK_ROOT, SHARED_LOCK, LabLock)

pytestmark = BUSYBOX_SKIP

NODES = ["n%d" % i for i in range(6)]


def spec(lab, third=208):
    return {"lab": lab.name,
            "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "32M", "pids": 32}},
            "networks": {"lan": {"subnet": "10.213.%d.0/24" % third}},
            "nodes": dict((n, {"networks": ["lan"]}) for n in NODES)}


def start_lab_yml(path, state="present"):
    argv = [str(BIN / "ansible-playbook"), str(ROOT / "lab.yml"), "-e",
            json.dumps({"lab": str(path), "state": state})]
    return subprocess.Popen(argv, cwd=ROOT, env=ansible_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_runs_at_once_build_each_container_once(lab, tmp_path):
    path = tmp_path / "lab.yml"
    path.write_text(yaml.safe_dump(spec(lab)))
    runs = [start_lab_yml(path), start_lab_yml(path)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, out[-3000:] + err[-3000:]
    # one init per node, each the one its record names
    pids = sorted(lab.init_pids())
    assert len(pids) == len(NODES), pids
    recorded = sorted(json.load(open("/run/nslab/%s/containers/%s.json" % (lab.name, n)))["pid"]
                      for n in NODES)
    assert recorded == pids
    # and the next run agrees that nothing is left to do
    again = start_lab_yml(path)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:] + err[-3000:]
    assert not [r["_task"] for r in task_results(out) if r.get("changed")]


def test_a_module_that_cannot_get_the_lock_names_the_holder(lab, monkeypatch):
    monkeypatch.setenv("NSLAB_LOCK_TIMEOUT", "1")
    with LabLock(lab.name):
        result = run_module("nslab_namespace", dict(lab=lab.name, name=lab.n("x")))
    assert result["_status"] == "failed", result
    assert "lab '%s' is locked by another nslab run (held by pid" % lab.name in result["msg"]
    assert "Traceback" not in json.dumps(result)


def test_two_labs_built_and_removed_at_once_both_succeed(lab, tmp_path):
    other = Lab()
    try:
        paths = []
        for third, each in ((208, lab), (209, other)):
            paths.append(tmp_path / ("%s.yml" % each.name))
            paths[-1].write_text(yaml.safe_dump(spec(each, third)))
        for state in ("present", "absent"):
            runs = [start_lab_yml(path, state) for path in paths]
            for run in runs:
                out, err = run.communicate(timeout=600)
                assert run.returncode == 0, state + out[-3000:] + err[-3000:]
            if state == "present":
                assert len(lab.init_pids()) == len(other.init_pids()) == len(NODES)
        assert lab.leftovers() == [] and other.leftovers() == []
    finally:
        other.cleanup()


def test_a_run_waits_while_the_shared_roots_are_being_removed(lab, monkeypatch):
    """The last run out holds ``.shared`` exclusively while it removes the roots no lab
    uses: a run that starts then waits for it (here: past its timeout, and says so)."""
    monkeypatch.setenv("NSLAB_LOCK_TIMEOUT", "1")
    os.makedirs(LOCK_ROOT, exist_ok=True)
    fd = os.open(os.path.join(LOCK_ROOT, SHARED_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = run_module("nslab_namespace", dict(lab=lab.name, name=lab.n("x")))
    finally:
        os.close(fd)
    assert result["_status"] == "failed", result
    assert "nslab's shared directories are locked by another nslab run" in result["msg"]
    assert not os.path.exists("/run/netns/" + lab.n("x"))

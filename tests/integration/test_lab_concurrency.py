"""Two lab.yml runs on the same lab at once: every changing module holds the lab's lock
(nslab_lock), so the second run's modules see what the first built and duplicate nothing.
A module that cannot get the lock in time says which run holds it."""

import json
import subprocess

import yaml

from helpers.ansible_runs import ansible_env, run_module, task_results
from helpers.lab import BUSYBOX_SKIP
from helpers.paths import BIN, ROOT
from ansible_collections.nslab.lab.plugins.module_utils.nslab_lock import LabLock

pytestmark = BUSYBOX_SKIP

NODES = ["n%d" % i for i in range(6)]


def spec(lab):
    return {"lab": lab.name,
            "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "32M", "pids": 32}},
            "networks": {"lan": {"subnet": "10.213.208.0/24"}},
            "nodes": dict((n, {"networks": ["lan"]}) for n in NODES)}


def start_lab_yml(path):
    argv = [str(BIN / "ansible-playbook"), str(ROOT / "lab.yml"), "-e",
            json.dumps({"lab": str(path)})]
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

"""Run nslab's modules and playbooks through the ``ansible`` executables, and read the
task results that the nslab_json callback (tests/integration/callback_plugins) prints."""

import json
import os
import subprocess

import yaml

from helpers.paths import BIN, ROOT


def ansible_env():
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "tests" / "integration" / "callback_plugins"),
        ANSIBLE_STDOUT_CALLBACK="nslab_json",
        ANSIBLE_NOCOLOR="1",
        LC_ALL="C.UTF-8",
    )


def run_module(module, args, check=False, diff=False, interpreter=None, netns=None):
    """Run one module on localhost with ``ansible`` and return its result dict.

    With ``netns`` the whole run happens inside that (test-made) network namespace, which
    is then the module's "host"."""
    argv = [str(BIN / "ansible"), "localhost", "-m", module]
    argv += ["-a", json.dumps(args)] if args else []
    if netns:
        argv = ["nsenter", "--net=/run/netns/%s" % netns] + argv
    if interpreter:
        argv += ["-e", "ansible_python_interpreter=%s" % interpreter]
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    proc = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True)
    results = task_results(proc.stdout)
    if results:
        return results[0]
    raise AssertionError("no result from %s (rc %s):\n%s\n%s" % (
        module, proc.returncode, proc.stdout, proc.stderr))


def task_results(stdout):
    """The task results (one dict each, with ``_task``, ``_host``, ``_status``, ``changed``,
    ``actions``...) that the nslab_json callback printed, one JSON line per result."""
    return [json.loads(line) for line in stdout.splitlines()
            if line.startswith("{") and '"_status"' in line]


def run_playbook(playbook, extra_vars=None, check=False, json_results=False, inventory=None):
    """Run a playbook (on localhost, or on ``inventory``); with ``json_results`` return its
    task results instead of the process."""
    argv = [str(BIN / "ansible-playbook"), str(ROOT / playbook)]
    argv += ["-i", inventory] if inventory else []
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    argv += ["--check"] if check else []
    env = ansible_env()
    if not json_results:
        env["ANSIBLE_STDOUT_CALLBACK"] = "default"
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if not json_results:
        return proc
    results = task_results(proc.stdout)
    assert results, "no results from %s:\n%s\n%s" % (playbook, proc.stdout, proc.stderr)
    return results


def build(lab, tmp_path, spec, state="present"):
    """lab.yml on ``spec`` written as ``<lab>.yml`` in tmp_path; its task results."""
    path = tmp_path / ("%s.yml" % lab.name)
    path.write_text(yaml.safe_dump(spec))
    return run_playbook("lab.yml", {"lab": str(path), "state": state}, json_results=True)


def changed(results, whole=False):
    """{task name without its role: actions} of the tasks that changed something (with
    ``whole``, their whole results). An nslab_nodes task counts as its parts that changed
    (``namespaces``, ``veths``, ``containers``...), each with its own actions (or its
    ``{changed, actions, seconds}``)."""
    found = {}
    for r in results:
        if isinstance(r.get("parts"), dict):
            found.update((part, done if whole else done["actions"])
                         for part, done in r["parts"].items() if done["changed"])
        elif r.get("changed"):
            found[r["_task"].split(" : ")[-1]] = r if whole else r.get("actions", True)
    return found


def failed(results):
    return [r for r in results if r["_status"] == "failed"]

"""Static quality gates: ansible-doc renders every module and agrees with its
argument_spec; ansible-lint (offline, production profile, args rule on) passes."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
MODULES = sorted(p.stem for p in (ROOT / "library").glob("nslab_*.py"))
# Modules that only read: they never report a change, so they have nothing to diff.
READ_ONLY = {"nslab_topology", "nslab_info"}

pytestmark = pytest.mark.quality


def load_module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "library" / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_modules():
    assert {"nslab_bridge", "nslab_namespace", "nslab_veth"} <= set(MODULES)


def ansible_doc(name):
    """The module's documentation as ansible-doc renders it, doc fragments merged in."""
    proc = subprocess.run([str(BIN / "ansible-doc"), "-M", str(ROOT / "library"), "-j", name],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "[WARNING]" not in proc.stderr
    return json.loads(proc.stdout)[name]


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name):
    doc = ansible_doc(name)
    assert doc["doc"]["short_description"]
    assert doc["examples"].strip() and doc["return"]
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert doc["doc"]["attributes"]["diff_mode"]["support"] == (
        "none" if name in READ_ONLY else "full")


def compare(spec, options, where):
    """Every option in the argument_spec is documented with the same type, default,
    choices and required flag, and the other way round."""
    assert set(spec) == set(options), "%s: spec %s vs doc %s" % (where, sorted(spec),
                                                                 sorted(options))
    for key, arg in spec.items():
        doc = options[key]
        assert arg.get("type", "str") == doc.get("type", "str"), (where, key)
        assert bool(arg.get("required")) == bool(doc.get("required")), (where, key)
        assert arg.get("choices") == doc.get("choices"), (where, key)
        assert arg.get("default") == doc.get("default"), (where, key)
        if arg.get("elements") or doc.get("elements"):
            assert arg.get("elements") == doc.get("elements"), (where, key)
        if "options" in arg:
            compare(arg["options"], doc.get("suboptions", {}), "%s.%s" % (where, key))


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_argument_spec(name):
    module = load_module(name)
    compare(module.get_argument_spec(), ansible_doc(name)["doc"]["options"], name)
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


def ansible_lint(*paths):
    return subprocess.run(
        [str(BIN / "ansible-lint"), "--strict",
         "--nocolor", *paths], capture_output=True, text=True, cwd=ROOT)


def test_ansible_lint_passes():
    targets = ["lab.yml", "labs"] + [p for p in ("playbooks", "roles", "molecule", "examples")
                                     if any((ROOT / p).rglob("*.yml"))]
    proc = ansible_lint(*targets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Ignored exception from ArgsRule" not in proc.stderr


def test_ansible_lint_checks_nslab_module_arguments(tmp_path):
    # In tmp_path, not playbooks/: a run cut short must not leave a bad playbook in the tree.
    bad = tmp_path / "lint-probe.yml"
    bad.write_text("---\n- name: Probe\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
                   "    - name: Misspelt option\n      nslab_bridge:\n        lab: demo\n"
                   "        nme: x\n")
    proc = ansible_lint(str(bad))
    assert proc.returncode != 0
    assert "args[module]" in proc.stdout + proc.stderr


def test_modules_need_no_python_newer_than_3_9():
    proc = subprocess.run([str(BIN / "vermin"), "--no-tips", "--violations", "-t=3.9-",
                           "plugins/modules", "plugins/module_utils"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_connection_plugin_documentation_renders():
    proc = subprocess.run([str(BIN / "ansible-doc"), "-t", "connection", "-j",
                           "nslab.lab.nslab"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "[WARNING]" not in proc.stderr
    rendered = json.loads(proc.stdout)["nslab.lab.nslab"]
    assert {"remote_addr", "lab", "executable", "pipelining"} == set(rendered["doc"]["options"])
    examples = yaml.safe_load(rendered["examples"])
    assert examples["all"]["vars"]["ansible_connection"] == "nslab.lab.nslab"

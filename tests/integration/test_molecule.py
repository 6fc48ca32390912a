"""Molecule: every scenario under molecule/ passes its whole ``molecule test`` sequence on
this machine and leaves nothing of its lab behind, and verify is no rubber stamp: it fails
on an empty host and on a role that forgets to apply a limit."""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers.lab import Lab

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
SEQUENCE = ["syntax", "create", "converge", "idempotence", "verify", "destroy"]
# What a copy of the project needs to run its scenarios.
PROJECT_FILES = ["ansible.cfg", "lab.yml", ".config", "cli", "collections", "labs", "library",
                 "module_utils", "plugins", "roles", "molecule"]

pytestmark = pytest.mark.integration


def scenario_lab(project, scenario):
    config = yaml.safe_load((project / "molecule" / scenario / "molecule.yml").read_text())
    return config["provisioner"]["inventory"]["group_vars"]["all"]["nslab_molecule_lab"]


def molecule(project, *args):
    """Run molecule in ``project``; returns (return code, output without colours)."""
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ["PATH"]), NO_COLOR="1",
               ANSIBLE_NOCOLOR="1", PY_COLORS="0")
    proc = subprocess.run([str(BIN / "molecule"), *args], cwd=project, env=env,
                          capture_output=True, text=True)
    output = re.sub(r"\x1b\[[0-9;]*m|\x1b\]8;;[^\x1b]*\x1b\\", "", proc.stdout + proc.stderr)
    return proc.returncode, output


def step_results(output, scenario):
    """{step: result} from Molecule's closing summary ("scenario > step: Executed: ...")."""
    return dict(re.findall(r"^%s (?:➜|>) (\w+): Executed: (\w+)" % re.escape(scenario), output,
                           re.M))


@pytest.fixture
def lab_of():
    """Names a scenario's lab; removes whatever is left of it through the kernel after."""
    if os.geteuid() != 0:
        pytest.skip("molecule scenarios need root (namespaces, links, mounts)")
    labs = []

    def named(name):
        labs.append(Lab(name))
        return labs[-1]
    yield named
    left = []
    for lab in labs:
        left += lab.leftovers()
        lab.cleanup()
    assert not left, "the scenario left %s" % left


@pytest.fixture
def broken_copy(tmp_path):
    """A copy of the project (a git repository, as Molecule finds its base config there)."""
    copy = tmp_path / "nslab"
    copy.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            # symlinks kept: collections/ holds a link back to the checkout's root.
            shutil.copytree(source, copy / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy / name)
    subprocess.run(["git", "init", "-q", str(copy)], check=True)
    return copy


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_passes_molecule_test(scenario, lab_of):
    lab = lab_of(scenario_lab(ROOT, scenario))
    rc, output = molecule(ROOT, "test", "-s", scenario)
    steps = step_results(output, scenario)
    assert rc == 0, output[-6000:]
    assert all(steps.get(step) == "Successful" for step in SEQUENCE), steps
    assert re.search(r"=+ \d+ passed in ", output), "verify ran no test"
    assert not lab.leftovers()


def test_verify_fails_on_a_host_without_the_lab(broken_copy, lab_of):
    lab_of(scenario_lab(broken_copy, "nslab_network"))
    rc, output = molecule(broken_copy, "verify", "-s", "nslab_network")
    assert rc != 0
    assert re.search(r"=+ \d+ failed", output), output[-3000:]
    assert not re.search(r"\d+ passed", output), output[-3000:]


def test_verify_fails_when_the_role_forgets_a_limit(broken_copy, lab_of):
    """nslab_node made to drop the memory limits: converge and idempotence still pass,
    verify fails on the limit (and only there), destroy still removes everything."""
    lab = lab_of(scenario_lab(broken_copy, "nslab_node"))
    tasks = broken_copy / "roles" / "nslab_node" / "tasks" / "present.yml"
    applied = 'cgroups: "{{ nslab_node_cgroups }}"'
    assert applied in tasks.read_text()
    tasks.write_text(tasks.read_text().replace(applied, (
        "cgroups: \"{{ nslab_node_cgroups | map('dict2items') | map('rejectattr', 'key', "
        "'eq', 'memory') | map('items2dict') }}\"")))
    rc, output = molecule(broken_copy, "test", "-s", "nslab_node")
    steps = step_results(output, "nslab_node")
    assert rc != 0
    assert [steps.get(s) for s in ("converge", "idempotence", "verify", "destroy")] == [
        "Successful", "Successful", "Failed", "Successful"], steps
    failed = re.findall(r"^.*FAILED .*?::(\w+)", output, re.M) or re.findall(
        r"_+ (test_\w+)\[", output)
    assert failed == ["test_the_cgroup_limits_are_in_the_kernel"], output[-6000:]
    assert not lab.leftovers()

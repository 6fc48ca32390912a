"""The example role's Molecule scenario as a user runs it from a repository of their own:
the role copied into a temporary git repository outside this checkout, the built tarball of
nslab.lab installed into a collections path there, no ansible.cfg or ANSIBLE_* path of the
checkout. ``molecule test`` must pass every step (destroy, syntax, create, converge,
idempotence, verify, destroy); then the same role with a bug, converged, must fail verify,
and destroy must still leave nothing of the lab on the host."""

import os
import re
import shutil
import subprocess

import pytest

from helpers.collection import build_collection, install_collection
from helpers.paths import BIN, ROOT

EXAMPLE = ROOT / "examples" / "roles" / "static_site"
STEPS = ["destroy", "syntax", "create", "converge", "idempotence", "verify"]


@pytest.fixture(scope="module")
def collections_path(tmp_path_factory):
    """The tarball built from this checkout, installed the way a user installs it."""
    tarball = build_collection(tmp_path_factory.mktemp("dist"))
    path = tmp_path_factory.mktemp("collections")
    install_collection(tarball, path)
    return path


def user_repository(where):
    """The example role, copied into a git repository of its own (Molecule finds its
    project root through VCS)."""
    role = where / "static_site"
    shutil.copytree(EXAMPLE, role, ignore=shutil.ignore_patterns("__pycache__", ".cache"))
    subprocess.run(["git", "init", "-q", str(role)], check=True)
    return role


def molecule(role, args, lab, subnet, collections, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH="%s:%s" % (BIN, os.environ["PATH"]),
               ANSIBLE_COLLECTIONS_PATH=str(collections),
               NSLAB_MOLECULE_LAB=lab.name, NSLAB_MOLECULE_SUBNET=subnet,
               MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "molecule"),
               ANSIBLE_NOCOLOR="1", NO_COLOR="1", PY_COLORS="0")
    proc = subprocess.run([str(BIN / "molecule")] + args, cwd=role, env=env,
                          capture_output=True, text=True, timeout=1200)
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert str(ROOT) not in output, "the run reached into the checkout"
    return proc.returncode, output


def test_molecule_test_from_a_user_repository_passes_and_destroy_leaves_nothing(
        lab, collections_path, tmp_path):
    role = user_repository(tmp_path)
    assert not (role / "molecule" / "default" / "vars").exists()
    returncode, output = molecule(role, ["test"], lab, "10.213.224.0/24", collections_path,
                                  tmp_path)
    assert returncode == 0, output[-6000:]
    for step in STEPS:
        assert "%s: Executed: Successful" % step in output, step
    assert re.search(r"\b8 passed\b", output), "the testinfra checks did not all run"
    assert lab.leftovers() == []          # before the fixture's own cleanup runs


def test_a_role_with_a_bug_fails_verify_and_destroy_still_leaves_nothing(
        lab, collections_path, tmp_path):
    """The steps that matter here only (the sequence as a whole passed above): converge,
    verify, which must fail, and destroy after it."""
    role = user_repository(tmp_path)
    tasks = role / "tasks" / "main.yml"
    # The bug: the page becomes unreadable for the server's user (0640, owned by root).
    page_task = tasks.read_text().split("- name: Write the home page")[1].split("- name:")[0]
    assert page_task.count('mode: "0644"') == 1
    tasks.write_text(tasks.read_text().replace(page_task,
                                               page_task.replace('"0644"', '"0640"')))

    def step(command):
        return molecule(role, [command], lab, "10.213.225.0/24", collections_path, tmp_path)
    try:
        returncode, output = step("converge")
        assert returncode == 0, output[-6000:]
        for done in ["create", "converge"]:
            assert "%s: Executed: Successful" % done in output, (done, output[-6000:])
        returncode, output = step("verify")
    finally:
        destroyed, destroy_output = step("destroy")
    assert returncode != 0, output[-6000:]
    assert "verify: Executed: Failed" in output or "[default > verify] Executed: Failed" \
        in output, output[-6000:]
    # An unreadable page: its own check fails, and so does serving it to the other
    # instance; the checks of hostname and server process still pass.
    failed = set(re.findall(r"FAILED \S*::(test_\w+)", output))
    assert failed == {"test_the_page_is_in_the_containers_root_only",
                      "test_each_instance_serves_the_other_over_the_lab_network"}, output[-6000:]
    assert re.search(r"\b4 failed, 4 passed\b", output), output[-4000:]
    assert destroyed == 0, destroy_output[-6000:]
    assert re.search(r"destroy[]:]? Executed: Successful", destroy_output), destroy_output[-3000:]
    assert lab.leftovers() == []

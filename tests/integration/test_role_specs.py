"""Each role's argument spec really requires its lab: a role played without it stops at
argument validation with the spec's message, before any of its tasks (a "" default in
defaults/main.yml used to satisfy ``required: true``, and the role ran lab-less)."""

import os
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"


def required_options(role):
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"].get("options") or {}
    return sorted(name for name, option in options.items() if option.get("required"))


def role_defaults(role):
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}


ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta").is_dir())
REQUIRED = [(role, name) for role in ROLES for name in required_options(role)]


def test_the_roles_that_need_a_lab_say_so():
    assert REQUIRED == [("nslab_jail", "nslab_jail_lab"), ("nslab_network", "nslab_network_lab"),
                        ("nslab_node", "nslab_node_lab")]


@pytest.mark.parametrize("role,name", REQUIRED)
def test_no_default_defeats_a_required_option(role, name):
    assert name not in role_defaults(role)


@pytest.mark.parametrize("role,name", REQUIRED)
def test_role_without_its_lab_fails_validation(tmp_path, role, name):
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                         "roles": [role]}]))
    # --check and no package installs: on a role that does not stop, nothing changes.
    extra = {"nslab_jail_install_packages": False, "nslab_node_install_packages": False}
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="default", LC_ALL="C.UTF-8")
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), str(playbook), "--check", "-e",
                           yaml.safe_dump(extra, default_flow_style=True)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Validating arguments against arg spec 'main'" in out
    assert "missing required arguments: %s" % name in out, out
    assert "ok=0" in out and "failed=1" in out, out

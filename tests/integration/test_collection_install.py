"""The collection nslab.lab as a user installs it, far from this checkout: a fresh virtualenv
with the pinned ansible-core from the package index, the built tarball installed into that
venv's site-packages (Ansible scans sys.path for ansible_collections/), and a playbook in an
empty directory that builds a two-node busybox lab by fully qualified names alone, reaches
its containers through the connection nslab.lab.nslab, and removes the lab again. No
ansible.cfg, no ANSIBLE_* variable and no module of the checkout may take part."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

from helpers.collection import build_collection, install_collection
from helpers.paths import ROOT

SUBNET = "10.213.226.0/24"


def pinned_ansible_core():
    """``ansible-core==X`` as requirements.txt pins it."""
    pins = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.startswith("ansible-core==")]
    assert len(pins) == 1, pins
    return pins[0]


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory):
    """A fresh venv holding only ansible-core (pip's cache makes a rerun fast) and nslab.lab,
    installed from the tarball with that venv's own ansible-galaxy."""
    tarball = build_collection(tmp_path_factory.mktemp("dist"))
    base = tmp_path_factory.mktemp("user")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", pinned_ansible_core()],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    installed = install_collection(tarball, pathlib.Path(site),
                                   galaxy=venv / "bin" / "ansible-galaxy")
    return venv, installed


def user_env(home):
    """The environment of a user who never saw this checkout: no ANSIBLE_* at all, and a
    HOME of their own (so no ~/.ansible/collections of this machine's root is read)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(HOME=str(home), ANSIBLE_NOCOLOR="1")
    return env


PLAY = """\
- name: The lab, by fully qualified names only
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Build or remove the lab
      ansible.builtin.include_role:
        name: nslab.lab.nslab_lab
      vars:
        nslab_lab_topology: "{{ playbook_dir }}/lab.yml"
        nslab_lab_state: "{{ state }}"

    - name: Read the lab back
      nslab.lab.nslab_info:
        lab: LAB_NAME
      register: seen

    - name: Keep what runs for the test to read
      ansible.builtin.copy:
        content: "{{ seen.labs | to_json }}"
        dest: "{{ playbook_dir }}/seen-{{ state }}.json"
        mode: "0600"

- name: Each container reaches the other by name, through the nslab connection
  hosts: nodes
  gather_facts: false
  tasks:
    - name: Ping the other node
      ansible.builtin.raw: "ping -c 1 -W 2 {{ other }} && hostname"
      register: pinged
      changed_when: false
      when: state == 'present'

    - name: Say who answered, from inside which node
      ansible.builtin.debug:
        msg: "REACHED {{ inventory_hostname }}->{{ other }} {{ ' 0% packet loss' in pinged.stdout }}
              {{ pinged.stdout_lines[-1] }}"
      when: state == 'present'
"""


def run(venv, work, env, lab_name, state):
    proc = subprocess.run([str(venv / "bin" / "ansible-playbook"), "-vvv", "-i", "hosts.yml",
                           "-e", "state=%s" % state, "play.yml"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    labs = json.loads((work / ("seen-%s.json" % state)).read_text())
    return proc.stdout, labs.get(lab_name)


def test_a_playbook_outside_the_repo_builds_and_removes_a_lab_by_fqcn(lab, user_venv,
                                                                       tmp_path):
    venv, installed = user_venv
    work = tmp_path / "work"
    work.mkdir()
    (work / "lab.yml").write_text(yaml.safe_dump({
        "lab": lab.name,
        "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "64M", "pids": 64}},
        "networks": {"lan": {"subnet": SUBNET}},
        "nodes": {"a": {"networks": ["lan"]}, "b": {"networks": ["lan"]}}}))
    (work / "hosts.yml").write_text(yaml.safe_dump({"nodes": {
        "vars": {"ansible_connection": "nslab.lab.nslab"},
        "hosts": {"a": {"ansible_host": "%s/a" % lab.name, "other": "b"},
                  "b": {"ansible_host": "%s/b" % lab.name, "other": "a"}}}}))
    (work / "play.yml").write_text(PLAY.replace("LAB_NAME", lab.name))
    env = user_env(tmp_path / "home")

    listed = subprocess.run([str(venv / "bin" / "ansible-galaxy"), "collection", "list",
                             "nslab.lab"], cwd=work, env=env, capture_output=True, text=True)
    assert str(installed.parents[2]) in listed.stdout, listed.stdout + listed.stderr

    output, built = run(venv, work, env, lab.name, "present")
    assert sorted((c["name"], c["state"]) for c in built["containers"]) == [
        ("a", "running"), ("b", "running")]
    assert built["leftovers"] == []
    # each node pinged the other, and the command ran inside the node (its hostname)
    assert sorted(re.findall(r'"msg": "REACHED (\S+) (\S+) (\S+)"', output)) == [
        ("a->b", "True", "a"), ("b->a", "True", "b")], output[-4000:]
    module_files = re.findall(r"Using module file (\S+)", output)
    assert module_files, "no module ran"
    # nslab's modules from the installed collection, the builtins from the venv's core
    nslab_files = [path for path in module_files if "/nslab_" in path]
    assert nslab_files and all(path.startswith(str(installed) + "/plugins/modules/")
                               for path in nslab_files), module_files
    assert all(path.startswith(str(venv) + "/") for path in module_files), module_files
    assert str(ROOT) not in output
    assert "config file = None" in output          # no ansible.cfg took part

    output, removed = run(venv, work, env, lab.name, "absent")
    assert removed is None or not any(removed[k] for k in ("containers", "bridges", "cgroups"))
    assert lab.leftovers() == []         # before the fixture's own cleanup runs

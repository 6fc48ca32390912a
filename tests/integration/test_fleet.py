"""The fleet (roles/nslab_fleet, fleet.yml) for real: three Debian system containers
reached over real SSH as an ordinary inventory, each in its own namespaces, and an nslab
lab built inside one of them with lab.yml, whose cgroups land below the fleet host's on
the real host. Needs the debootstrap tarball (cached in /var/cache/nslab after the first
run, which downloads from the host's Debian mirror)."""

import json
import os
import shutil
import subprocess

import pytest

from helpers.ansible_runs import ansible_env, run_playbook, task_results
from helpers.kernel import lab_cgroup_dirs
from helpers.paths import BIN, ROOT

# A range only these tests use; nothing routes to or from it.
SUBNET = "10.213.252"
HOSTS = ["h1", "h2", "h3"]
NESTED = """\
lab: nest
defaults:
  jail: {source: busybox}
  limits: {memory: 64M, pids: 64}
networks:
  lan: {subnet: 10.213.253.0/24}
nodes:
  n1: {networks: [lan]}
  n2: {networks: [lan]}
"""

pytestmark = pytest.mark.skipif(not shutil.which("ssh"), reason="needs the ssh client")


def fleet_vars(lab, state="present"):
    return {"nslab_fleet_lab": lab.name, "state": state,
            "nslab_fleet_bridge_address": SUBNET + ".1/24",
            "nslab_fleet_hosts": [{"name": h, "address": "%s.%d" % (SUBNET, 11 + i)}
                                  for i, h in enumerate(HOSTS)]}


def recap(results):
    """changed count and failures of a json-callback playbook run."""
    failed = [r for r in results if r["_status"] in ("failed", "unreachable")]
    assert not failed, failed
    return sum(1 for r in results if r.get("changed"))


def ansible(inventory, *argv):
    proc = subprocess.run([str(BIN / "ansible"), "-i", inventory] + list(argv), cwd=ROOT,
                          env=ansible_env(), capture_output=True, text=True)
    return task_results(proc.stdout), proc


def ssh(fleet_dir, address, command):
    return subprocess.run(
        ["ssh", "-i", fleet_dir + "/id_ed25519", "-o", "UserKnownHostsFile=%s/known_hosts"
         % fleet_dir, "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "root@" + address, command],
        capture_output=True, text=True, timeout=60)


def init_pid(lab_name, container):
    with open("/run/nslab/%s/containers/%s.json" % (lab_name, container)) as handle:
        return json.load(handle)["pid"]


def host_pids(label):
    """Host pids of the container inits labelled ``label`` (nslab:<lab>:<name>)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = open("/proc/%s/cmdline" % entry, "rb").read().split(b"\0")
            except OSError:
                continue
            if label.encode() in argv:
                pids.append(int(entry))
    return pids


def ns(pid, kind):
    return os.stat("/proc/%s/ns/%s" % (pid, kind)).st_ino


def test_fleet_over_ssh_with_a_lab_nested_inside(lab, tmp_path):
    # check mode before the first build: plans every change (keys not made yet) and makes none
    planned = run_playbook("fleet.yml", fleet_vars(lab), check=True, json_results=True)
    assert recap(planned) > 0
    assert not lab.leftovers()

    built = run_playbook("fleet.yml", fleet_vars(lab), json_results=True)
    assert recap(built) > 0
    fleet_dir = "/var/lib/nslab/%s/ssh" % lab.name
    inventory = fleet_dir + "/inventory.yml"
    # keys are private, but the way to other labs' jails stays open to userns containers
    assert os.stat(fleet_dir + "/id_ed25519").st_mode & 0o077 == 0
    for parent in ("/var/lib/nslab", "/var/lib/nslab/" + lab.name):
        assert os.stat(parent).st_mode & 0o011 == 0o011, parent

    # an ordinary inventory, over real SSH with strict host key checking
    pings, proc = ansible(inventory, lab.name, "-m", "ansible.builtin.ping")
    assert sorted(r["_host"] for r in pings if r.get("ping") == "pong") == HOSTS, proc.stdout
    assert not os.path.exists(os.path.expanduser("~/.ssh/known_hosts")) or \
        SUBNET not in open(os.path.expanduser("~/.ssh/known_hosts")).read()

    for index, host in enumerate(HOSTS):
        pid = init_pid(lab.name, host)
        for kind in ("net", "mnt", "uts", "ipc", "cgroup", "pid"):
            assert ns(pid, kind) != ns("self", kind), (host, kind)
        out = ssh(fleet_dir, "%s.%d" % (SUBNET, 11 + index), "hostname; cat /proc/1/cgroup")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == host
        assert "pids:/\n" in out.stdout                 # its own cgroup is its root

    # the fleet reaches its host and itself, and nothing else: no default route
    routes = ssh(fleet_dir, SUBNET + ".11", "ip -j route").stdout
    assert [r["dst"] for r in json.loads(routes)] == [SUBNET + ".0/24"]

    rerun = run_playbook("fleet.yml", fleet_vars(lab), json_results=True)
    assert recap(rerun) == 0
    checked = run_playbook("fleet.yml", fleet_vars(lab), check=True, json_results=True)
    assert recap(checked) == 0

    # a lab inside h1, built by lab.yml against the fleet inventory
    topology = tmp_path / "nest.yml"
    topology.write_text(NESTED)
    nested = run_playbook_on(inventory, "h1", {"lab": str(topology)})
    assert recap(nested) > 0
    fleet_pid = init_pid(lab.name, "h1")
    nodes = dict((name, host_pids("nslab:nest:%s" % name)) for name in ("n1", "n2"))
    assert all(len(pids) == 1 for pids in nodes.values()), nodes
    for pids in nodes.values():
        for kind in ("net", "mnt", "uts", "pid", "cgroup"):
            assert ns(pids[0], kind) != ns(fleet_pid, kind), kind
        cgroups = open("/proc/%d/cgroup" % pids[0]).read()
        assert ":pids:/nslab/%s/h1/nslab/nest/n" % lab.name in cgroups, cgroups
    pings = ssh(fleet_dir, SUBNET + ".11",
                "nsenter --target $(python3 -c 'import json; print(json.load(open("
                "\"/run/nslab/nest/containers/n1.json\"))[\"pid\"])') --all ping -c1 -W2 n2")
    assert " 0% packet loss" in pings.stdout, pings.stdout + pings.stderr
    pids_root = [d for d in lab_cgroup_dirs(lab.name) if "/pids/" in d][0]
    assert os.path.isdir(os.path.join(pids_root, "h1", "nslab", "nest", "n1"))

    removed = run_playbook_on(inventory, "h1", {"lab": str(topology), "state": "absent"})
    assert recap(removed) > 0
    assert not host_pids("nslab:nest:n1") and not host_pids("nslab:nest:n2")
    assert not os.path.exists(os.path.join(pids_root, "h1", "nslab", "nest"))

    gone = run_playbook("fleet.yml", fleet_vars(lab, "absent"), json_results=True)
    assert recap(gone) > 0
    assert not lab.leftovers()


def run_playbook_on(inventory, host, extra_vars):
    return run_playbook("lab.yml", dict(extra_vars, nslab_hosts=host), json_results=True,
                        inventory=inventory)

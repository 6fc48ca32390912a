"""The fleet (roles/nslab_fleet, fleet.yml) for real: three Debian system containers
reached over real SSH as an ordinary inventory, each in its own namespaces, and an nslab
lab built inside one of them with lab.yml, whose cgroups land below the fleet host's on
the real host. The fleet is the session's (the ``fleet`` fixture, shared with
test_fleet_lab.py), whose first runs of fleet.yml are checked here. Needs the debootstrap
tarball (cached in /var/cache/nslab after the first run, which downloads from the host's
Debian mirror)."""

import json
import os
import subprocess

from helpers.ansible_runs import ansible_env, run_playbook, task_results
from helpers.fleet_hosts import recap
from helpers.kernel import lab_cgroup_dirs
from helpers.paths import BIN, ROOT

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


def ansible(inventory, *argv):
    proc = subprocess.run([str(BIN / "ansible"), "-i", inventory] + list(argv), cwd=ROOT,
                          env=ansible_env(), capture_output=True, text=True)
    return task_results(proc.stdout), proc


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


def test_fleet_over_ssh_with_a_lab_nested_inside(fleet, tmp_path):
    # check mode before the first build (the fixture's first run): plans every change (keys
    # not made yet) and makes none; then the build
    assert recap(fleet.planned) > 0
    assert fleet.left_after_check == []
    assert recap(fleet.built) > 0
    lab, fleet_dir, inventory, subnet = fleet.lab, fleet.dir, fleet.inventory, fleet.subnet
    # keys are private, but the way to other labs' jails stays open to userns containers
    assert os.stat(fleet_dir + "/id_ed25519").st_mode & 0o077 == 0
    for parent in ("/var/lib/nslab", "/var/lib/nslab/" + lab.name):
        assert os.stat(parent).st_mode & 0o011 == 0o011, parent

    # an ordinary inventory, over real SSH with strict host key checking
    pings, proc = ansible(inventory, lab.name, "-m", "ansible.builtin.ping")
    assert sorted(r["_host"] for r in pings if r.get("ping") == "pong") == fleet.hosts, \
        proc.stdout
    assert not os.path.exists(os.path.expanduser("~/.ssh/known_hosts")) or \
        subnet not in open(os.path.expanduser("~/.ssh/known_hosts")).read()

    for host in fleet.hosts:
        pid = init_pid(lab.name, host)
        for kind in ("net", "mnt", "uts", "ipc", "cgroup", "pid"):
            assert ns(pid, kind) != ns("self", kind), (host, kind)
        out = fleet.ssh(host, "hostname; cat /proc/1/cgroup")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == host
        assert "pids:/\n" in out.stdout                 # its own cgroup is its root

    # the fleet reaches its host and itself, and nothing else: no default route
    routes = fleet.ssh("h1", "ip -j route").stdout
    assert [r["dst"] for r in json.loads(routes)] == [subnet + ".0/24"]

    assert recap(fleet.playbook()) == 0
    assert recap(fleet.playbook(check=True)) == 0

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
    pings = fleet.ssh("h1", "nsenter --target $(python3 -c 'import json; print(json.load(open("
                      "\"/run/nslab/nest/containers/n1.json\"))[\"pid\"])') --all ping -c1 -W2 n2")
    assert " 0% packet loss" in pings.stdout, pings.stdout + pings.stderr
    pids_root = [d for d in lab_cgroup_dirs(lab.name) if "/pids/" in d][0]
    assert os.path.isdir(os.path.join(pids_root, "h1", "nslab", "nest", "n1"))

    removed = run_playbook_on(inventory, "h1", {"lab": str(topology), "state": "absent"})
    assert recap(removed) > 0
    assert not host_pids("nslab:nest:n1") and not host_pids("nslab:nest:n2")
    assert not os.path.exists(os.path.join(pids_root, "h1", "nslab", "nest"))
    # the fleet's own removal is checked by the fixture, at the end of the session


def run_playbook_on(inventory, host, extra_vars):
    return run_playbook("lab.yml", dict(extra_vars, nslab_hosts=host), json_results=True,
                        inventory=inventory)

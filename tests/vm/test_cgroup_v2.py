"""nslab on a real cgroup v2 + systemd host: a Debian 12 VM under qemu (vm/up), over SSH.

The development machines have the cgroup v1 (hybrid) layout, where nslab_cgroup's v2 path
(memory.max, cpu.max, pids.max, cgroup.subtree_control along the path) is only unit-tested.
Here it runs for real: limits are written and read back, reruns change nothing, a fork past
pids.max fails, an allocation past memory.max is OOM-killed, and lab.yml builds, converges
and removes a two-node lab (the session's ``vm_lab``, shared with test_netem_vm.py). Everything goes through ``ansible``/``ansible-playbook`` from
the repository, as a user would point nslab at a real machine.

Run it with ``.venv/bin/pytest -m vm tests/vm`` (as root). See vm/README.md.
"""

import json
import secrets

import pytest

from helpers.ansible_runs import changed
from helpers.vm_hosts import CGROUP, exists, failed, read, remove_lab, run_module, run_playbook, \
    ssh

pytestmark = pytest.mark.vm


@pytest.fixture
def lab_name(vm):
    """A lab name for one test; whatever the test leaves is removed straight through the
    kernel afterwards (not through nslab, which may be what failed)."""
    name = "t" + secrets.token_hex(3)
    yield name
    remove_lab(vm, name)


# --- the host is what this tier is for -------------------------------------------------------

def test_the_vm_is_a_pure_cgroup_v2_systemd_host(vm):
    out = ssh(vm, "stat -fc %T /sys/fs/cgroup; cat /proc/1/comm; "
                  "systemctl is-system-running; grep -c ' - cgroup ' /proc/self/mountinfo; "
                  "cat /sys/fs/cgroup/cgroup.controllers; ip route show default | wc -l",
              check=False).stdout.split("\n")
    assert out[0] == "cgroup2fs"
    assert out[1] == "systemd"
    assert out[2] == "running"
    assert out[3] == "0"                                    # no v1 hierarchy at all
    assert {"cpu", "memory", "pids", "io", "cpuset"} <= set(out[4].split())
    assert out[5] == "0"                                    # no route out of the VM


# --- nslab_cgroup on cgroup v2 ---------------------------------------------------------------

def test_limits_are_written_to_v2_files_and_converge(vm, inventory, lab_name):
    args = {"lab": lab_name, "name": "web/c1", "memory": "48M", "cpus": 0.5, "pids": 20}
    first = run_module(inventory, "nslab_cgroup", args)
    assert first["_status"] == "ok", first
    assert first["changed"] is True
    assert first["layout"]["kind"] == "v2"
    assert set(first["layout"]["controllers"]["memory"].items()) == {
        ("version", 2), ("mount", CGROUP)}
    leaf = "%s/nslab/%s/web/c1" % (CGROUP, lab_name)
    assert first["cgroups"][0]["paths"]["memory"] == leaf
    assert read(vm, leaf + "/memory.max") == str(48 << 20)
    assert read(vm, leaf + "/cpu.max") == "50000 100000"
    assert read(vm, leaf + "/pids.max") == "20"
    # every directory above the cgroup, the root included, passes the controllers down
    for directory in (CGROUP, CGROUP + "/nslab", "%s/nslab/%s" % (CGROUP, lab_name),
                      "%s/nslab/%s/web" % (CGROUP, lab_name)):
        enabled = read(vm, directory + "/cgroup.subtree_control").split()
        assert {"memory", "cpu", "pids"} <= set(enabled), (directory, enabled)
    assert first["cgroups"][0]["limits"]["memory"] == 48 << 20

    again = run_module(inventory, "nslab_cgroup", args)
    assert again["_status"] == "ok", again
    assert again["changed"] is False and again["actions"] == []

    # a changed limit changes only that file; "max" removes it
    raised = run_module(inventory, "nslab_cgroup", dict(args, pids="max"))
    assert raised["actions"] == [
        "set pids of cgroup 'nslab/%s/web/c1' from 20 to max" % lab_name]
    assert read(vm, leaf + "/pids.max") == "max"
    assert read(vm, leaf + "/memory.max") == str(48 << 20)

    gone = run_module(inventory, "nslab_cgroup", {"lab": lab_name, "name": "web/c1",
                                                  "state": "absent"})
    assert gone["_status"] == "ok" and gone["changed"] is True, gone
    assert not exists(vm, "%s/nslab/%s" % (CGROUP, lab_name))
    assert not exists(vm, "/run/nslab/%s" % lab_name)


def test_pids_limit_makes_forks_fail(vm, inventory, lab_name):
    result = run_module(inventory, "nslab_cgroup", {"lab": lab_name, "name": "forks",
                                                    "pids": 10})
    assert result["_status"] == "ok", result
    leaf = "%s/nslab/%s/forks" % (CGROUP, lab_name)
    # a shell joins the cgroup itself, then tries 30 processes at once
    out = ssh(vm, "sh -c 'echo $$ > %s/cgroup.procs; "
                  "(for i in $(seq 1 30); do sleep 3 & done; wait) 2>&1; "
                  "cat %s/pids.events'" % (leaf, leaf), check=False)
    text = out.stdout + out.stderr
    assert "Cannot fork" in text or "Resource temporarily unavailable" in text, text
    events = dict(line.split() for line in text.splitlines() if line.startswith("max "))
    assert int(events["max"]) >= 1, text

    gone = run_module(inventory, "nslab_cgroup", {"lab": lab_name, "name": "forks",
                                                  "state": "absent", "kill": True})
    assert gone["_status"] == "ok", gone
    assert not exists(vm, leaf)


def test_memory_limit_oom_kills_inside_the_cgroup(vm, inventory, lab_name):
    leaf = "%s/nslab/%s/mem" % (CGROUP, lab_name)
    # a process that stays: moved in by the module's own `procs` option
    holder = ssh(vm, "setsid sleep 100000 > /dev/null 2>&1 < /dev/null & echo $!").stdout
    holder = int(holder.strip())
    args = {"lab": lab_name, "name": "mem", "memory": "32M", "swap": 0, "procs": [holder]}
    result = run_module(inventory, "nslab_cgroup", args)
    assert result["_status"] == "ok", result
    assert result["cgroups"][0]["procs"] == [holder]
    assert read(vm, "/proc/%d/cgroup" % holder) == "0::/nslab/%s/mem" % lab_name
    assert read(vm, leaf + "/memory.max") == str(32 << 20)
    assert read(vm, leaf + "/memory.swap.max") == "0"

    # an allocation of 100 MiB in the cgroup: SIGKILLed by the OOM killer, the host goes on
    # (the shell reports python's status: ssh itself exits 255 on a remote signal death)
    out = ssh(vm, "sh -c 'echo $$ > %s/cgroup.procs; "
                  "python3 -c \"x = b\\\"x\\\" * (100 << 20); print(len(x))\"; "
                  "echo status=$?'" % leaf, check=False)
    assert "status=137" in out.stdout, (out.returncode, out.stdout, out.stderr)
    assert str(100 << 20) not in out.stdout
    events = dict(line.split() for line in read(vm, leaf + "/memory.events").splitlines())
    assert int(events["oom_kill"]) >= 1, events

    again = run_module(inventory, "nslab_cgroup", dict(args, procs=[holder]))
    assert again["changed"] is False, again
    assert again["cgroups"][0]["usage"]["oom_kills"] >= 1

    # absent with kill: the holder is SIGKILLed and everything nslab made is removed
    gone = run_module(inventory, "nslab_cgroup", {"lab": lab_name, "name": "mem",
                                                  "state": "absent", "kill": True})
    assert gone["_status"] == "ok", gone
    assert not exists(vm, "/proc/%d" % holder)
    assert not exists(vm, "%s/nslab/%s" % (CGROUP, lab_name))


# --- lab.yml on cgroup v2 --------------------------------------------------------------------

def test_lab_yml_builds_and_converges(vm, inventory, vm_lab):
    # the session's lab (tests/vm/conftest.py): its removal by lab.yml, which must leave
    # nothing, is checked at the session's end
    build, lab_name = vm_lab.built, vm_lab.name
    assert not failed(build), failed(build)
    # busybox-static is in the image: the lab's first read finds it installed (on one host
    # nslab_topology reads it, with its packages), so neither the jail role's dpkg-query nor
    # apt (which would open its cache, and might want the network) runs
    first = [r for r in build if r["_task"].endswith("Validate the whole topology and "
                                                     "compile this host's share (before "
                                                     "anything changes)")]
    assert first and (first[0].get("packages") or {}).get("busybox-static") is True, first
    for task in ("Which of the packages the jails' sources need are installed",
                 "Install what the jails' sources need"):
        runs = [r for r in build if r["_task"].endswith(task)]
        assert runs and runs[0]["_status"] == "skipped", (task, runs)

    def pid_of(node):
        record = read(vm, "/run/nslab/%s/containers/%s.json" % (lab_name, node))
        return json.loads(record)["pid"]

    def inside(node, command):
        return ssh(vm, "nsenter --target %d --all %s" % (pid_of(node), command), check=False)

    assert inside("a", "hostname").stdout.strip() == "a"
    ping = inside("a", "ping -c 1 -W 5 b")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    ping = inside("b", "ping -c 1 -W 5 a")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # the containers' cgroups are v2 ones, with the lab's limits
    assert read(vm, "/proc/%d/cgroup" % pid_of("a")) == "0::/nslab/%s/a" % lab_name
    leaf = "%s/nslab/%s/b" % (CGROUP, lab_name)
    assert read(vm, leaf + "/memory.max") == str(64 << 20)
    assert read(vm, leaf + "/cpu.max") == "50000 100000"
    assert read(vm, leaf + "/pids.max") == "20"
    # b tried 40 processes at once under its limit of 20 (its command, in vm_lab)
    forks = ssh(vm, "for i in $(seq 1 50); do grep -q done {f} 2>/dev/null && break; "
                    "sleep 0.2; done; cat {f}".format(
                        f="/proc/%d/root/tmp/forks" % pid_of("b")), check=False).stdout
    assert "done" in forks and ("can't fork" in forks
                                or "Resource temporarily unavailable" in forks), forks
    assert int(dict(line.split() for line in read(
        vm, leaf + "/pids.events").splitlines())["max"]) >= 1

    rerun = run_playbook(inventory, "lab.yml", {"lab": str(vm_lab.topology)})
    assert not failed(rerun), failed(rerun)
    assert changed(rerun) == {}

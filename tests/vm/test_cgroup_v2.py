"""nslab on a real cgroup v2 + systemd host: a Debian 12 VM under qemu (vm/up), over SSH.

The development machines have the cgroup v1 (hybrid) layout, where nslab_cgroup's v2 path
(memory.max, cpu.max, pids.max, cgroup.subtree_control along the path) is only unit-tested.
Here it runs for real: limits are written and read back, reruns change nothing, a fork past
pids.max fails, an allocation past memory.max is OOM-killed, and lab.yml builds, converges
and removes a two-node lab. Everything goes through ``ansible``/``ansible-playbook`` from
the repository, as a user would point nslab at a real machine.

Run it with ``.venv/bin/pytest -m vm tests/vm`` (as root). See vm/README.md.
"""

import json
import os
import pathlib
import secrets
import shlex
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
HERE = pathlib.Path(__file__).resolve().parent
CGROUP = "/sys/fs/cgroup"

pytestmark = pytest.mark.vm


# --- helpers (small copies of tests/integration's, for a remote host) ---------------------

@pytest.fixture(scope="session")
def inventory(vm, tmp_path_factory):
    """An Ansible inventory naming the VM: the same file would name any real machine."""
    path = tmp_path_factory.mktemp("vm") / "inventory.ini"
    path.write_text(
        "[vm]\n"
        "nslab-vm ansible_host={host} ansible_port={port} ansible_user=root "
        "ansible_ssh_private_key_file={key} "
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' "
        "ansible_python_interpreter=/usr/bin/python3\n".format(**vm))
    return str(path)


def ansible_env():
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_CALLBACK_PLUGINS=str(HERE.parent / "integration" / "callback_plugins"),
        ANSIBLE_STDOUT_CALLBACK="nslab_json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        LC_ALL="C.UTF-8",
    )


def run_module(inventory, module, args):
    """Run one module on the VM with ``ansible`` and return its result dict."""
    argv = [str(BIN / "ansible"), "all", "-i", inventory, "-m", module, "-a", json.dumps(args)]
    proc = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("{") and '"_status"' in line:
            return json.loads(line)
    raise AssertionError("no result from %s (rc %s):\n%s\n%s" % (
        module, proc.returncode, proc.stdout, proc.stderr))


def run_playbook(inventory, playbook, extra_vars):
    """Run a playbook on the VM; return its task results (one dict each)."""
    argv = [str(BIN / "ansible-playbook"), "-i", inventory, str(ROOT / playbook),
            "-e", json.dumps(extra_vars)]
    proc = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True)
    results = [json.loads(line) for line in proc.stdout.splitlines()
               if line.startswith("{") and '"_status"' in line]
    assert results, "no results from %s:\n%s\n%s" % (playbook, proc.stdout, proc.stderr)
    return results


def ssh(vm, script, check=True, timeout=120):
    """Run a shell script on the VM as root; return the completed process."""
    argv = ["ssh", "-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-i", vm["key"], "-p", vm["port"], "root@%s" % vm["host"], script]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("on the VM: %s\nrc %d\n%s\n%s" % (
            script, proc.returncode, proc.stdout, proc.stderr))
    return proc


def read(vm, path):
    return ssh(vm, "cat %s" % shlex.quote(path)).stdout.strip()


def exists(vm, path):
    return ssh(vm, "test -e %s" % shlex.quote(path), check=False).returncode == 0


def changed(results):
    return dict((r["_task"].split(" : ")[-1], r.get("actions", True))
                for r in results if r.get("changed"))


def failed(results):
    return [r for r in results if r["_status"] in ("failed", "unreachable")]


@pytest.fixture
def lab_name(vm):
    """A lab name for one test; whatever the test leaves is removed straight through the
    kernel afterwards (not through nslab, which may be what failed)."""
    name = "t" + secrets.token_hex(3)
    yield name
    ssh(vm, """
        for pid in $(pgrep -f 'nslab[:]{lab}:'); do kill -9 $pid; done
        for f in $(find {cg}/nslab/{lab} -name cgroup.procs 2>/dev/null); do
            for pid in $(cat $f); do kill -9 $pid; done
        done
        sleep 0.5
        for d in $(find {cg}/nslab/{lab} -depth -type d 2>/dev/null); do rmdir $d; done
        rmdir {cg}/nslab 2>/dev/null
        for ns in $(ls /run/netns 2>/dev/null | grep '^{lab}-'); do ip netns del $ns; done
        grep -o ' /[^ ]*{lab}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
        rm -rf /run/nslab/{lab} /var/lib/nslab/{lab}
        true
        """.format(lab=name, cg=CGROUP), check=False)


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

def test_lab_yml_builds_converges_and_is_destroyed(vm, inventory, lab_name, tmp_path):
    spec = {
        "lab": lab_name,
        "defaults": {"jail": {"source": "busybox"},
                     "limits": {"memory": "64M", "cpus": 0.5, "pids": 64}},
        "networks": {"lan": {"subnet": "10.251.70.0/24"}},
        "nodes": {"a": {"networks": ["lan"]}, "b": {"networks": ["lan"]}},
    }
    # b tries 40 processes at once under a limit of 20 (from inside, in its own cgroup),
    # then idles; busybox sh gives up at the first failed fork, hence the subshell
    spec["nodes"]["b"]["limits"] = {"pids": 20}
    spec["nodes"]["b"]["command"] = [
        "sh", "-c", "(for i in $(seq 1 40); do sleep 1 & done; wait) 2> /tmp/forks; "
                    "echo done >> /tmp/forks; exec sleep 100000"]
    topology = tmp_path / ("%s.yml" % lab_name)
    topology.write_text(yaml.safe_dump(spec))
    build = run_playbook(inventory, "lab.yml", {"lab": str(topology)})
    assert not failed(build), failed(build)
    # busybox-static is in the image: the role's apt task needs no network
    apt = [r for r in build if r["_task"].endswith("Install what the jails' sources need")]
    assert apt and apt[0]["_status"] == "ok" and not apt[0]["changed"], apt

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
    forks = ssh(vm, "for i in $(seq 1 50); do grep -q done {f} 2>/dev/null && break; "
                    "sleep 0.2; done; cat {f}".format(
                        f="/proc/%d/root/tmp/forks" % pid_of("b")), check=False).stdout
    assert "done" in forks and ("can't fork" in forks
                                or "Resource temporarily unavailable" in forks), forks
    assert int(dict(line.split() for line in read(
        vm, leaf + "/pids.events").splitlines())["max"]) >= 1

    rerun = run_playbook(inventory, "lab.yml", {"lab": str(topology)})
    assert not failed(rerun), failed(rerun)
    assert changed(rerun) == {}

    destroyed = run_playbook(inventory, "lab.yml", {"lab": str(topology), "state": "absent"})
    assert not failed(destroyed), failed(destroyed)
    left = ssh(vm, "ls -d {cg}/nslab/{lab} /var/lib/nslab/{lab} /run/nslab/{lab} 2>/dev/null; "
                   "ls /run/netns 2>/dev/null | grep '^{lab}'; "
                   "ip -br link | grep '{lab}'; pgrep -f 'nslab[:]{lab}:'; "
                   "grep '{lab}' /proc/self/mountinfo".format(cg=CGROUP, lab=lab_name),
               check=False).stdout
    assert left == "", left

"""A running lab whose state files are lost (/run/nslab/<lab> emptied, an admin's rm -rf):
the rerun and state=absent find the lab's objects by what the kernel holds (the netns'
tagged lo, cgroups under nslab/<lab>/, inits verified by cgroup and netns), converge, and
leave nothing behind. A host user's process dressed as an init is neither adopted nor
killed. A build killed with SIGKILL mid-way converges on the rerun."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from helpers.ansible_runs import ansible_env, changed, run_playbook
from helpers.kernel import mounts_under, sh
from helpers.lab import BUSYBOX_SKIP, STATE_ROOT, tidy_shared_roots
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import proc_start_time
from helpers.paths import BIN, ROOT

pytestmark = BUSYBOX_SKIP


def topology(lab):
    return {
        "lab": lab.name,
        "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "64M", "pids": 64}},
        "networks": {"lan": {"subnet": "10.213.216.0/24"}},
        "nodes": {"a": {"networks": ["lan"]}, "b": {"networks": ["lan"]},
                  "c": {"networks": ["lan"]}},
        "links": [{"endpoints": ["a:eth1", "c:eth1"], "subnet": "10.213.217.0/30"}],
    }


def write_topology(lab, tmp_path):
    path = tmp_path / ("%s.yml" % lab.name)
    path.write_text(yaml.safe_dump(topology(lab)))
    return str(path)


def build(path, state="present"):
    return run_playbook("lab.yml", {"lab": path, "state": state}, json_results=True)


def failed(results):
    return [r for r in results if r["_status"] == "failed"]


def pid_of(lab, node):
    with open("/run/nslab/%s/containers/%s.json" % (lab.name, node)) as handle:
        return json.load(handle)["pid"]


def reaches(lab, node, address):
    return sh("nsenter", "--target", str(pid_of(lab, node)), "--all",
              "ping", "-c", "1", "-W", "2", address, check=False).returncode == 0


def lose_state(lab):
    """What an admin's ``umount -R; rm -rf /run/nslab/<lab>`` leaves: the kernel objects
    run on, nslab's records are gone. With no other lab left, /run/nslab itself goes too
    (unmounted and removed, as a tmpfs emptied would leave it; not while another run
    holds nslab's shared lock)."""
    directory = os.path.join(STATE_ROOT, lab.name)
    for mount in reversed(mounts_under(directory)):
        sh("umount", "-l", mount)
    shutil.rmtree(directory)
    tidy_shared_roots()


def start_impostor(lab, node):
    """A host user's process with a container init's command line (and pid 1 of its own
    pid namespace, which any user may make): only the label matches. Returns the process
    and the pids that carry the label (unshare's and its child's)."""
    proc = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "unshare", "--user", "--map-root-user", "--pid", "--fork",
         "python3", "-I", "-S", "-c", "import time; time.sleep(1000)",
         "nslab:%s:%s" % (lab.name, node)], start_new_session=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        labelled = [p for p in lab.init_pids() if _uid(p) == 65534]
        if len(labelled) == 2 and all(_comm(p) == "python3" or p == proc.pid
                                      for p in labelled):
            return proc, sorted(labelled)
        time.sleep(0.02)
    raise AssertionError("the impostor never showed up")


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _uid(pid):
    try:
        with open("/proc/%d/status" % pid) as handle:
            return int([line for line in handle if line.startswith("Uid:")][0].split()[1])
    except (OSError, IndexError):
        return None


def stop_impostor(proc, pids):
    """SIGKILL the impostor and wait until its labelled processes are gone: its child (pid
    1 of its own pid namespace) dies after unshare does, later on a loaded machine."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + 10
    # proc_start_time is None once a process is gone or a zombie (no command line left).
    while any(proc_start_time(p) is not None for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def recorded_pids(lab):
    directory = os.path.join(STATE_ROOT, lab.name, "containers")
    if not os.path.isdir(directory):
        return set()
    pids = set()
    for name in os.listdir(directory):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as handle:
                pids.add(json.load(handle)["pid"])
    return pids


def private_state_root():
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            if fields[4] == STATE_ROOT:
                return not any(f.startswith("shared:") for f in fields[6:fields.index("-")])
    return False


def test_a_rerun_after_the_state_is_lost_adopts_the_running_lab(lab, tmp_path):
    path = write_topology(lab, tmp_path)
    first = build(path)
    assert not failed(first), failed(first)
    inits = sorted(lab.init_pids())
    assert len(inits) == 3
    pid_by_node = dict((node, pid_of(lab, node)) for node in ("a", "b", "c"))
    impostor, impostor_pids = start_impostor(lab, "a")
    try:
        lose_state(lab)
        assert sorted(lab.init_pids()) == sorted(inits + impostor_pids)

        # check mode tells what the rerun would do, and does none of it
        check = run_playbook("lab.yml", {"lab": path}, check=True, json_results=True)
        assert not failed(check), failed(check)
        planned = changed(check)["containers"]
        assert len([a for a in planned if a.startswith("stop init ")]) == 3
        assert len([a for a in planned if a.startswith("start container ")]) == 3
        assert sorted(lab.init_pids()) == sorted(inits + impostor_pids)
        assert not os.path.exists(os.path.join(STATE_ROOT, lab.name))

        rerun = build(path)
        assert not failed(rerun), failed(rerun)
        actions = changed(rerun)
        assert sorted(actions["namespaces"]) == [
            "adopt namespace '%s-%s', found without its record (net: lo tagged nslab:%s:netns)"
            % (lab.name, node, lab.name) for node in ("a", "b", "c")]
        assert sorted(actions["cgroups"]) == [
            "adopt cgroup 'nslab/%s/%s', found under nslab/%s/ without the lab's record"
            % (lab.name, node, lab.name) for node in ("a", "b", "c")]
        assert sorted(a.split(" (")[0] for a in actions["containers"]
                      if not a.startswith("write ")) == sorted(
            ["stop init %d of container '%s', found running without its record" % (
                pid_by_node[node], node) for node in ("a", "b", "c")]
            + ["start container '%s'" % node for node in ("a", "b", "c")])
        # every node once: the unrecorded inits were replaced, not doubled
        assert sorted(p for p in lab.init_pids() if p not in impostor_pids) == sorted(
            recorded_pids(lab))
        assert len(recorded_pids(lab)) == 3
        assert not set(inits) & set(lab.init_pids())
        for node, peer in (("a", "b"), ("b", "c"), ("c", "a")):
            assert reaches(lab, node, peer), "%s does not reach %s" % (node, peer)
        assert reaches(lab, "a", "10.213.217.2")
        assert private_state_root()
        # the host user's process: neither adopted nor killed
        assert impostor.poll() is None
        assert all(os.path.exists("/proc/%d" % p) for p in impostor_pids)
        assert not set(impostor_pids) & recorded_pids(lab)

        again = build(path)
        assert not failed(again), failed(again)
        assert changed(again) == {}
    finally:
        stop_impostor(impostor, impostor_pids)


def test_state_absent_after_the_state_is_lost_removes_everything(lab, tmp_path):
    path = write_topology(lab, tmp_path)
    first = build(path)
    assert not failed(first), failed(first)
    impostor, impostor_pids = start_impostor(lab, "b")
    try:
        lose_state(lab)
        gone = build(path, state="absent")
        assert not failed(gone), failed(gone)
        assert impostor.poll() is None
        assert lab.leftovers() == ["container init %d" % p for p in lab.init_pids()]
        assert sorted(lab.init_pids()) == impostor_pids
    finally:
        stop_impostor(impostor, impostor_pids)
    assert lab.leftovers() == []


def kill_when_an_init_is_up(lab, path):
    """Run lab.yml and SIGKILL the whole run (playbook and module) as soon as one init is
    pid 1 of its container: the nodes' task is then between starting inits and recording
    them (an init not yet ready then dies with the module that started it)."""
    argv = [str(BIN / "ansible-playbook"), str(ROOT / "lab.yml"), "-e",
            json.dumps({"lab": path})]
    proc = subprocess.Popen(argv, cwd=ROOT, env=ansible_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, reached = time.monotonic() + 120, False
    while time.monotonic() < deadline and (proc.poll() is None or _groups_naming(path)):
        if any(_nspid_depth(p) == 2 for p in lab.init_pids()):
            reached = True
            break
        time.sleep(0.005)
    # ansible-playbook runs the play in a process of its own session (its parent exits):
    # SIGKILL every process group of a process that names this topology, modules included.
    groups, deadline = _groups_naming(path) | {proc.pid}, time.monotonic() + 5
    while groups and time.monotonic() < deadline:     # again, for one forked meanwhile
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        groups = _groups_naming(path)
    proc.wait()
    assert not groups
    if not reached:
        pytest.fail("the build never started a container")


def _groups_naming(text):
    groups = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as handle:
                    if text.encode() in handle.read():
                        groups.add(os.getpgid(int(entry)))
            except OSError:
                continue
    return groups


def _nspid_depth(pid):
    try:
        with open("/proc/%d/status" % pid) as handle:
            return len([line for line in handle if line.startswith("NSpid:")][0].split()) - 1
    except (OSError, IndexError):
        return 0


def test_a_build_killed_during_the_containers_task_converges_on_rerun(lab, tmp_path):
    path = write_topology(lab, tmp_path)
    kill_when_an_init_is_up(lab, path)

    rerun = build(path)
    assert not failed(rerun), failed(rerun)
    assert sorted(lab.init_pids()) == sorted(recorded_pids(lab))
    assert len(recorded_pids(lab)) == 3
    for node in ("a", "b", "c"):
        assert reaches(lab, node, "a" if node != "a" else "b")
    again = build(path)
    assert not failed(again), failed(again)
    assert changed(again) == {}


def test_a_build_killed_then_its_state_lost_is_removed_by_state_absent(lab, tmp_path):
    path = write_topology(lab, tmp_path)
    kill_when_an_init_is_up(lab, path)
    lose_state(lab)
    gone = build(path, state="absent")
    assert not failed(gone), failed(gone)
    assert lab.leftovers() == []

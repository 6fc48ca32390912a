"""``./nslab exec``: a command inside a running node through nslab's door — the node's
capabilities, cgroups, namespaces, seccomp filter and no_new_privs, its exit status passed
through, a terminal of its own when the caller has one; one clear line otherwise."""

import os
import pty
import subprocess
import time

import pytest

from helpers.kernel import proc_status
from helpers.lab import BUSYBOX_SKIP
from helpers.paths import ROOT
from helpers.terminal import Terminal

pytestmark = BUSYBOX_SKIP
NSLAB = str(ROOT / "nslab")


@pytest.fixture
def node(lab, module, rootfs):
    assert module("nslab_cgroup", dict(lab=lab.name, name="box", pids=32))["changed"]
    result = module("nslab_container", dict(lab=lab.name, name="box", rootfs=str(rootfs),
                                            cgroup="box", command=["sleep", "100000"]))
    assert result["changed"], result
    return result["containers"][0]


def nslab_exec(*args):
    return subprocess.run([NSLAB, "exec", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def status_of(text):
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_a_command_runs_with_the_nodes_own_privileges(lab, node):
    done = nslab_exec(lab.name, "box", "--", "sh", "-c",
                      "cat /proc/self/status; echo ---; cat /proc/self/cgroup; echo ---; "
                      "cat /proc/1/cgroup")
    assert done.returncode == 0, done.stderr
    status_text, own_cgroups, init_cgroups = done.stdout.split("---\n")
    inside = status_of(status_text)
    init = proc_status(node["pid"])
    for key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
        assert inside[key].strip() == init[key].strip(), key
    assert inside["NoNewPrivs"].strip() == "1" and inside["Seccomp"].strip() == "2"
    # the node's cgroups: the same as its init's, the root of its cgroup namespace
    assert own_cgroups == init_cgroups
    assert "pids:/\n" in own_cgroups
    assert os.stat("/proc/%d/ns/pid" % node["pid"]).st_ino != os.stat("/proc/self/ns/pid").st_ino


def test_the_exit_status_is_the_commands(lab, node):
    assert nslab_exec(lab.name, "box", "sh", "-c", "exit 7").returncode == 7


def test_a_missing_node_or_a_bad_name_is_one_clear_line(lab, node):
    missing = nslab_exec(lab.name, "nope", "true")
    assert missing.returncode == 125
    assert missing.stderr.strip() == "nslab enter: no container 'nope' in lab '%s' (no record " \
        "/run/nslab/%s/containers/nope.json)" % (lab.name, lab.name)
    bad = nslab_exec(lab.name, "../x", "true")
    assert bad.returncode == 2 and "is not an nslab name" in bad.stderr


def test_a_shell_on_a_terminal_of_its_own(lab, node):
    pid, master = pty.fork()
    if pid == 0:
        os.execv(NSLAB, [NSLAB, "exec", lab.name, "box"])
    term = Terminal(master)
    try:
        term.type_at_prompt(b"echo in-$((40+2)) $(hostname)\n")
        term.read_until("in-42 box")
        # Ctrl-C reaches the node's foreground process, not the door
        term.type_at_prompt(b"sleep 50; echo slept\n")
        time.sleep(1)
        os.write(master, b"\x03")
        term.type_at_prompt(b"echo after-$((1+1))\n")
        assert "slept" not in term.read_until("after-2")
        term.type_at_prompt(b"exit 3\n")
    except BaseException:
        os.kill(pid, 9)
        raise
    finally:
        _pid, status = os.waitpid(pid, 0)
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 3

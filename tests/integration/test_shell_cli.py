"""``./nslab shell LAB NODE``: an interactive shell in a running node through nslab's door,
driven through a real pseudo-terminal: a typed command and its output, line editing, job
control, Ctrl-C reaching the node's process, the window size seen inside (and a resize),
the exit status passed through; a stopped or missing node is one line and a non-zero exit."""

import fcntl
import os
import pty
import struct
import subprocess
import termios
import time

from helpers.paths import ROOT
from helpers.terminal import Terminal

NSLAB = str(ROOT / "nslab")


def set_window(fd, rows, columns):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def start_shell(lab, node, rows=41, columns=103):
    pid, master = pty.fork()
    if pid == 0:
        set_window(0, rows, columns)      # the caller's terminal, before nslab looks at it
        os.environ["TERM"] = "xterm"
        os.execv(NSLAB, [NSLAB, "shell", lab, node])
    return pid, master


def test_a_shell_on_a_real_terminal(running_lab):
    pid, master = start_shell(running_lab.name, "a")
    term = Terminal(master)
    try:
        term.type_at_prompt(b"echo in-$((40+2)) $(hostname)\n")
        term.read_until("in-42 a")
        # the window size of the caller's terminal, and a resize passed on (SIGWINCH)
        term.type_at_prompt(b"echo size=$(stty size)\n")
        term.read_until("size=41 103")
        set_window(master, 30, 90)
        time.sleep(0.5)
        term.type_at_prompt(b"echo size=$(stty size)\n")
        term.read_until("size=30 90")
        # line editing: the cursor moves left and a letter goes in the middle
        term.type_at_prompt(b"echo edit-ac\x1b[Db\n")
        term.read_until("edit-abc")
        # job control: Ctrl-Z stops the foreground job, the shell lists it, kills it
        term.type_at_prompt(b"sleep 77\n")
        time.sleep(1)
        os.write(master, b"\x1a")
        term.read_until("Stopped")
        term.type_at_prompt(b"jobs; kill -9 %1; echo killed-job\n")
        term.read_until("killed-job")
        # Ctrl-C reaches the node's foreground process, the shell stays
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


def nslab_shell(*args):
    return subprocess.run([NSLAB, "shell", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def test_a_stopped_or_missing_node_is_one_line(running_lab):
    lab = running_lab.name
    stopped = nslab_shell(lab, "d")
    assert (stopped.returncode, stopped.stdout) == (1, "")
    assert stopped.stderr == "nslab shell: node 'd' of lab '%s' is stopped\n" % lab
    missing = nslab_shell(lab, "nope")
    assert missing.returncode == 1
    assert missing.stderr == "nslab shell: no node 'nope' in lab '%s' on this host\n" % lab
    bad = nslab_shell("../x", "a")
    assert bad.returncode == 2 and "'../x' is not an nslab name" in bad.stderr

#!/usr/bin/env python3
"""``./nslab exec LAB NODE [--] [COMMAND...]``: run a command inside a running node;
``./nslab shell LAB NODE``: an interactive shell there (``--shell`` here).

It goes through nslab's door, the same one the connection plugin ``nslab`` uses
(``enter()`` in module_utils/nslab_init.py, with nslab_seccomp's filter): the command runs
in the node's cgroups and all its namespaces, as the node's root with the node's capability
set, seccomp filter, no_new_privs and environment — what the node's own processes get,
never more. Bare ``nsenter --target PID --all`` is the host administrator's bypass: it
runs with every capability of the host's root, outside the node's cgroups.

Without a command it starts ``/bin/sh``. When standard input is a terminal the command gets
a pseudo-terminal of its own (window size passed on), so nothing inside can reach the
caller's terminal (TIOCSTI, job control). The exit status is the command's; 125 means the
door could not get in (the node is not running, or does not exist).

``shell`` first reads the lab (nslab_labview) so that a lab or node that does not exist, or
a stopped node, is one line on stderr (exit status 1) rather than the door's message on the
new terminal; then it starts the node's bash if it has one, else its ``/bin/sh``, as an
interactive shell (line editing, job control) with the caller's ``TERM``.
"""

import fcntl
import importlib.util
import json
import os
import pathlib
import pty
import re
import select
import signal
import sys
import termios
import tty

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENTER_FAILED = 125
# TERM is handed to the node's shell as an argument, never interpreted; a value outside
# terminfo's names falls back to a common one
TERM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
SHELL_SCRIPT = ('TERM="$1"; export TERM; '
                'if [ -x /bin/bash ]; then exec /bin/bash -i; fi; exec /bin/sh -i')


def connection_plugin():
    """plugins/connection/nslab.py: the door's parts and command line live there, once.

    The plugin imports its collection's module_utils (nslab.lab, which this checkout is:
    collections/ links back to it), so collections/ goes on sys.path first. This file is
    also loaded by path (molecule/resources/nslab_verify.py), hence no import of nslab_cli."""
    collections = str(ROOT / "collections")
    if collections not in sys.path:
        sys.path.insert(0, collections)
    spec = importlib.util.spec_from_file_location(
        "nslab_connection_plugin", ROOT / "plugins" / "connection" / "nslab.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin


def door_source(plugin):
    return "\n".join((ROOT / "module_utils" / (name + ".py")).read_text()
                     for name in plugin.DOOR_MODULES)


def door_script(lab, node, argv):
    """The door as one Python script (for ``python3 -I -S -`` on another host)."""
    plugin = connection_plugin()
    config = {"record": plugin.record_path(lab, node), "lab": lab, "name": node, "argv": argv}
    return "%s\nenter(%s)\n" % (door_source(plugin), json.dumps(config))


def usage(message, shell=False):
    if shell:
        sys.stderr.write("nslab shell: %s\nusage: ./nslab shell LAB NODE\n" % message)
    else:
        sys.stderr.write("nslab exec: %s\nusage: ./nslab exec LAB NODE [--] [COMMAND...]\n"
                         % message)
    return 2


def shell_argv(term):
    """The interactive shell to run in the node, with the caller's TERM."""
    return ["/bin/sh", "-c", SHELL_SCRIPT, "sh",
            term if term and TERM_RE.match(term) else "xterm"]


def shell_refusal(lab, node):
    """Why a shell cannot start in ``node`` (one line), or None: from nslab's reader."""
    from nslab_inspect import Refused, running_node
    try:
        running_node(lab, node)
    except Refused as err:
        return str(err)
    return None


def copy_window_size(source_fd, target_fd):
    try:
        size = fcntl.ioctl(source_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target_fd, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def run_on_a_pty(argv):
    """Run ``argv`` on a new pseudo-terminal, relaying the caller's terminal to it."""
    pid, master = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    stdin = sys.stdin.fileno()
    copy_window_size(stdin, master)
    signal.signal(signal.SIGWINCH, lambda *_: copy_window_size(stdin, master))
    saved = termios.tcgetattr(stdin)
    tty.setraw(stdin)
    try:
        open_fds = [stdin, master]
        while master in open_fds:
            try:
                ready = select.select(open_fds, [], [])[0]
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:        # EIO: the pty's last user is gone
                    data = b""
                if not data:
                    open_fds.remove(master)
                else:
                    os.write(sys.stdout.fileno(), data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    open_fds.remove(stdin)
                else:
                    os.write(master, data)
    finally:
        termios.tcsetattr(stdin, termios.TCSAFLUSH, saved)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def main(args):
    shell = args[:1] == ["--shell"]
    if shell:
        args = args[1:]
        if len(args) != 2:
            return usage("name a lab and a node", shell)
    if len(args) < 2:
        return usage("name a lab and a node")
    lab, node, command = args[0], args[1], args[2:]
    if command[:1] == ["--"]:
        command = command[1:]
    plugin = connection_plugin()
    for what, value in (("lab", lab), ("node", node)):
        if not plugin.NAME_RE.match(value):
            return usage("%s '%s' is not an nslab name (letters, digits, '_', '.', '-')" % (
                what, value), shell)
    if os.geteuid() != 0:
        sys.stderr.write("nslab %s: entering a node needs root\n" % (
            "shell" if shell else "exec"))
        return ENTER_FAILED
    if shell:
        refusal = shell_refusal(lab, node)
        if refusal:
            sys.stderr.write("nslab shell: %s\n" % refusal)
            return 1
        command = shell_argv(os.environ.get("TERM"))
    argv = plugin.door_argv(sys.executable, door_source(plugin), lab, node,
                            command or ["/bin/sh"])
    if sys.stdin.isatty():
        code = run_on_a_pty(argv)
        return 128 - code if code < 0 else code
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

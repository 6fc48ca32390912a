# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: nslab
short_description: Run tasks inside a running nslab container
description:
  - Runs commands, and copies files in and out, inside a container that nslab_container
    started, as C(docker exec) does for a Docker container. The host is addressed as
    C(<lab>/<container>) (or a container name and O(lab)).
  - Each command goes through one door, C(enter) of nslab's module_utils C(nslab_init),
    run by the controller's Python as root. It reads the container's record
    C(/run/nslab/<lab>/containers/<container>.json), opens the init's namespaces and only
    then checks that the init is still the recorded process (start time and pid namespace),
    so a reused pid can never lead into another process's namespaces. It then joins the
    container's cgroups (its memory, CPU and pids limits hold what the task runs), all its
    namespaces (mount, pid, net, uts, ipc, cgroup, and its user namespace if it has one), so
    its root and C(/proc) are the container's, and runs the command as the container's
    root with the container's capability set (the bounding set too), no_new_privs, its
    seccomp filter (unless the container is privileged or C(seccomp=unconfined)) and the
    container's environment - not the host's. The door's own process, which keeps the
    host's descriptors while the command runs, is non-dumpable, so nothing inside can ptrace
    it.
  - Files are copied through the same door (C(cat) inside the container reads or writes
    them), never through the jail's path on the host, so a symlink inside the container
    resolves inside it and cannot redirect a write to the host.
  - Pipelining is on by default - modules are fed on standard input, one door per task -
    since there is no privilege escalation or tty to conflict with it.
author: nslab contributors
version_added: "0.1.0"
options:
  remote_addr:
    description:
      - The container, as C(<lab>/<container>), or a container name when O(lab) is set.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_nslab_host
  lab:
    description:
      - The lab of the container, when O(remote_addr) names only the container.
    type: str
    vars:
      - name: ansible_nslab_lab
    env:
      - name: ANSIBLE_NSLAB_LAB
  executable:
    description: The shell, inside the container, that runs each command.
    type: str
    default: /bin/sh
    vars:
      - name: ansible_executable
      - name: ansible_nslab_executable
  pipelining:
    description:
      - Feed modules on standard input instead of copying them into the container first.
    type: bool
    default: true
    vars:
      - name: ansible_pipelining
      - name: ansible_nslab_pipelining
    env:
      - name: ANSIBLE_NSLAB_PIPELINING
notes:
  - The controller must be the lab host, as for the chroot and lxc connection plugins - the
    containers' namespaces are entered there - and Ansible must run as root.
  - The door is read from the module_utils of the plugin's own collection, nslab.lab.
  - Commands run as the container's root; privilege escalation (C(become)) is not
    supported, and no_new_privs (as in the container) makes setuid programs such as sudo
    ineffective.
  - The target needs a POSIX shell (O(executable)) and C(cat); modules need Python in the
    container (a busybox container takes only the raw module).
  - In a container with its own user namespace (C(userns)) the jail's files belong to the
    host's root and are read-only inside; set C(ansible_remote_tmp) under C(/tmp).
"""

EXAMPLES = r"""
# inventory: every host is a container of the lab "web"
all:
  vars:
    ansible_connection: nslab.lab.nslab
    ansible_nslab_lab: web
  hosts:
    front: {}
    back: {ansible_host: web/back-1}
"""

import json
import os
import re
import shlex
import subprocess
import sys

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# A copy of nslab_paths.STATE_ROOT: this plugin loads before nslab's module_utils are
# importable (its test checks they agree).
STATE_ROOT = "/run/nslab"
# What nslab's names may look like (nslab_validate): no path separators, no dot-names.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# The door's script, in this order: the seccomp filter, then the door itself; both from
# this collection's plugins/module_utils (as installed and in a checkout alike).
DOOR_MODULES = ("nslab_seccomp", "nslab_init")
MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "module_utils")
# nslab_init's door reports a failure to get in with this status and stderr prefix.
ENTER_FAILED = 125
ENTER_PREFIX = b"nslab enter: "


def container_address(remote_addr, lab=None):
    """``lab/container`` or ``container`` (with ``lab``) -> (lab, container); raises
    AnsibleError naming what is wrong."""
    if "/" in remote_addr:
        addr_lab, _sep, name = remote_addr.partition("/")
        if lab and lab != addr_lab:
            raise AnsibleError("nslab connection: host '%s' names lab '%s' but lab is '%s'" % (
                remote_addr, addr_lab, lab))
        lab = addr_lab
    else:
        name = remote_addr
    if not lab:
        raise AnsibleError("nslab connection: host '%s' names no lab; expected "
                           "<lab>/<container> or the lab option (ansible_nslab_lab)" % remote_addr)
    for what, value in (("lab", lab), ("container", name)):
        if not NAME_RE.match(value):
            raise AnsibleError("nslab connection: %s name '%s' in host '%s' is not an nslab "
                               "name; expected letters, digits, '_', '.', '-'" % (
                                   what, value, remote_addr))
    return lab, name


def record_path(lab, name, root=STATE_ROOT):
    return os.path.join(root, lab, "containers", name + ".json")


def door_argv(python, source, lab, name, argv, root=STATE_ROOT):
    """The host command that runs ``argv`` inside the container: a fresh, isolated Python
    (no site packages, no user environment) running nslab_init's ``enter``."""
    config = {"record": record_path(lab, name, root), "lab": lab, "name": name, "argv": argv}
    return [python, "-I", "-S", "-c", "%s\nenter(%s)\n" % (source, json.dumps(config))]


class Connection(ConnectionBase):
    """Commands and files inside a running nslab container, through nslab_init's door."""

    transport = "nslab"
    has_pipelining = True
    has_tty = False
    default_user = "root"
    _door_source = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lab = self.container = None

    @classmethod
    def door_source(cls):
        """nslab_seccomp's source (the filter the door installs) followed by nslab_init's."""
        if cls._door_source is None:
            parts = []
            for name in DOOR_MODULES:
                path = os.path.join(MODULE_UTILS, name + ".py")
                if not os.path.isfile(path):
                    raise AnsibleError("nslab connection: %s is missing: the plugin reads "
                                       "the door from its own collection's module_utils; "
                                       "reinstall nslab.lab" % path)
                with open(path) as handle:
                    parts.append(handle.read())
            cls._door_source = "\n".join(parts)
        return cls._door_source

    def _connect(self):
        if not self._connected:
            self.lab, self.container = container_address(self.get_option("remote_addr"),
                                                         self.get_option("lab"))
            if os.geteuid() != 0:
                raise AnsibleConnectionFailure("nslab connection: entering container '%s/%s' "
                                               "needs root on the controller" % (
                                                   self.lab, self.container))
            display.vvv("ENTER nslab container %s/%s" % (self.lab, self.container),
                        host=self.container)
            self._connected = True
        return self

    def _door(self, argv, stdin, stdout=subprocess.PIPE):
        return subprocess.Popen(
            door_argv(sys.executable, self.door_source(), self.lab, self.container, argv),
            stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)

    def _failed_to_enter(self, returncode, stderr):
        if returncode == ENTER_FAILED and stderr.startswith(ENTER_PREFIX):
            raise AnsibleConnectionFailure(to_native(stderr[len(ENTER_PREFIX):].strip()))

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = [self.get_option("executable"), "-c", cmd]
        display.vvv("EXEC %s" % argv, host=self.container)
        proc = self._door(argv, subprocess.PIPE if in_data else subprocess.DEVNULL)
        stdout, stderr = proc.communicate(in_data)
        self._failed_to_enter(proc.returncode, stderr)
        return proc.returncode, stdout, stderr

    def _copy(self, what, shell_cmd, stdin, stdout):
        argv = [self.get_option("executable"), "-c", shell_cmd]
        proc = self._door(argv, stdin, stdout)
        _out, stderr = proc.communicate()
        self._failed_to_enter(proc.returncode, stderr)
        if proc.returncode != 0:
            raise AnsibleError("nslab connection: failed to %s: %s" % (what, to_native(stderr)))

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self.container)
        try:
            source = open(to_bytes(in_path), "rb")
        except FileNotFoundError:
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        with source:
            self._copy("write %s in container %s/%s" % (out_path, self.lab, self.container),
                       "cat > %s" % shlex.quote(to_text(out_path)), source, subprocess.DEVNULL)

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self.container)
        with open(to_bytes(out_path), "wb") as target:
            self._copy("read %s in container %s/%s" % (in_path, self.lab, self.container),
                       "cat %s" % shlex.quote(to_text(in_path)), subprocess.DEVNULL, target)

    def close(self):
        self._connected = False

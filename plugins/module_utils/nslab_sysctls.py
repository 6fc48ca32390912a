# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's own sysctls: read and written from the host inside its net namespace.

``/proc/sys/net`` shows the net namespace of the process that opens a file there, so a
short child joins the namespace (setns) and reads or writes; nothing else of the host
is touched. Values compare as the kernel prints them, whitespace-normalised ("4096
87380" and "4096\\t87380" are the same).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Dict, Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import SysctlError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_syscalls import setns

CLONE_NEWNET = 0x40000000
PROC_SYS = "/proc/sys"
SYSCTL_RE = re.compile(r"[a-z0-9_-]+(\.[A-Za-z0-9_-]+)+")
# net.* is the node's own (its net namespace) except these, which stay the host's (read-only
# or absent in any other net namespace).
HOST_WIDE_NET_SYSCTLS = {
    "net.ipv4.neigh.default.gc_thresh1", "net.ipv4.neigh.default.gc_thresh2",
    "net.ipv4.neigh.default.gc_thresh3", "net.ipv6.neigh.default.gc_thresh1",
    "net.ipv6.neigh.default.gc_thresh2", "net.ipv6.neigh.default.gc_thresh3",
    "net.nf_conntrack_max", "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_buckets", "net.netfilter.nf_conntrack_count",
}
# Namespaced by the kernel, but in the container's IPC or UTS namespace, which a restart
# replaces: not settable from the topology (the node's command can set them).
IPC_UTS_SYSCTLS = re.compile(r"kernel\.(shm[a-z_]*|msg[a-z_]*|sem|hostname|domainname)"
                             r"|fs\.mqueue\..*")


def sysctl_problem(where, name):
    """Why ``name`` is not a sysctl of the node's own net namespace, or None (the topology
    compiler and nslab_sysctl ask the same question)."""
    if not isinstance(name, str) or not SYSCTL_RE.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        return ("%s: %s is not a sysctl name; expected dotted names like "
                "net.ipv4.ip_forward" % (where, shown))
    if IPC_UTS_SYSCTLS.fullmatch(name):
        return ("%s: '%s' is namespaced in the container's IPC or UTS namespace, which "
                "nslab does not set; expected a net.* sysctl (the node's hostname is "
                "hostname:)" % (where, name))
    if not name.startswith("net."):
        return ("%s: '%s' is host-wide (it would change the host); expected a sysctl of the "
                "node's own net namespace, net.*" % (where, name))
    if name in HOST_WIDE_NET_SYSCTLS:
        return ("%s: '%s' is host-wide (not per net namespace); expected a sysctl of the "
                "node's own net namespace" % (where, name))
    return None


def sysctl_path(name):
    return os.path.join(PROC_SYS, *name.split("."))


def normalise(value):
    return " ".join(str(value).split())


@dataclass
class SysctlAction:
    netns: str
    name: str
    before: Optional[str]
    after: str

    @property
    def summary(self):
        return "set %s to '%s' in netns '%s' (was '%s')" % (self.name, self.after, self.netns,
                                                            self.before)


def plan_sysctls(netns, wanted, current):
    """{name: value} wanted vs. {name: value} read -> [SysctlAction] in the order given."""
    return [SysctlAction(netns, name, current.get(name), normalise(value))
            for name, value in wanted.items() if current.get(name) != normalise(value)]


def _in_netns(netns_file, work):
    """``work()`` (JSON-able result, or raises OSError) run in a child that joined the net
    namespace at ``netns_file``; its result, or SysctlError with the child's reason."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            fd = os.open(netns_file, os.O_RDONLY | os.O_CLOEXEC)
            setns(fd, CLONE_NEWNET)
            reply = {"result": work()}
        except Exception as err:     # the child reports every failure, then exits
            reply = {"error": str(err)}
        os.write(write_fd, json.dumps(reply).encode())
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    try:
        reply = json.loads(b"".join(chunks).decode() or "{}")
    except ValueError:
        reply = {}
    if "result" not in reply:
        raise SysctlError(reply.get("error") or "the child in %s died" % netns_file)
    return reply["result"]


def _read(names):
    """{name: {"value": normalised or None if missing, "writable": bool}}."""
    found = {}
    for name in names:
        path = sysctl_path(name)
        try:
            with open(path) as handle:
                value = normalise(handle.read())
        except FileNotFoundError:
            found[name] = {"value": None, "writable": False}
            continue
        except OSError as err:
            found[name] = {"value": None, "writable": False, "error": str(err)}
            continue
        found[name] = {"value": value, "writable": os.access(path, os.W_OK)
                       and bool(os.stat(path).st_mode & 0o222)}
    return found


def read_sysctls(netns_file, names):
    return _in_netns(netns_file, lambda: _read(names))


def _write(values):
    """Write each in order; on a failure put back what was already written, then raise.
    Returns the values read back."""
    done = []
    for name, value in values:
        path = sysctl_path(name)
        with open(path) as handle:
            before = handle.read()
        try:
            with open(path, "w") as handle:
                handle.write(value)
        except OSError as err:
            for old_name, old in reversed(done):
                try:
                    with open(sysctl_path(old_name), "w") as handle:
                        handle.write(old)
                except OSError:
                    pass
            raise OSError("writing '%s' to %s: %s (rolled back %d earlier write(s))" % (
                value, name, err.strerror or err, len(done)))
        done.append((name, before))
    return dict((name, info["value"]) for name, info in _read([n for n, _v in values]).items())


def write_sysctls(netns_file, values):
    """[(name, value)] written in the namespace; {name: value read back}."""
    return _in_netns(netns_file, lambda: _write(values))


def unsettable(where, found):
    """Problems of sysctls that are missing or read-only in a net namespace."""
    problems = []
    for name, info in found.items():
        if info["value"] is None:
            problems.append("%s.%s: no such sysctl in a net namespace of this kernel (%s); "
                            "expected a sysctl of the node's own net namespace" % (
                                where, name, info.get("error") or "not namespaced, or "
                                "misspelt"))
        elif not info["writable"]:
            problems.append("%s.%s: read-only in a net namespace (the host's own setting); "
                            "expected a sysctl the node's namespace can set" % (where, name))
    return problems


def current_values(found: Dict[str, dict]) -> Dict[str, Optional[str]]:
    return dict((name, info["value"]) for name, info in found.items())

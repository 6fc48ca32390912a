# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one command-runner layer: argv lists, ``LC_ALL=C``, JSON reads, ``ip -batch``.

``Runner`` wraps a ``run(argv, data=None) -> (rc, stdout, stderr)`` callable, which is
``subprocess_run`` everywhere: modules (``nslab_ansible.runner_for``), the command-line
tools, the inventory plugin, tests and benchmarks. Namespaced commands go
through ``nsenter --net=PATH``, never ``ip -n``/``ip netns exec``, which copy every mount on
each call (measured: 5 ms with one namespace, 18.5 ms with a thousand; nsenter stays at
4-6 ms).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.nslab.lab.plugins.module_utils import nslab_netlink
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import BatchError, CommandError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import (
    json_documents, parse_links)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import NETNS_DIR

_FAILED_LINE = re.compile(r"Command failed -:(\d+)")
# Reads of many namespaces are one short process each: run a few at once, on every core.
READ_WORKERS = max(2, min(8, 2 * (os.cpu_count() or 1)))


def netns_path(name):
    return os.path.join(NETNS_DIR, name)


def subprocess_run(argv, data=None):
    """Run ``argv`` with ``data`` on its stdin; ``(rc, stdout, stderr)``, as text.

    In a module this replaces ``module.run_command``, which passes a ``preexec_fn``:
    Python code run in the child between fork and exec, which Python documents as unsafe
    in a process with threads (apply_plan and the reads run commands from several), and
    which makes Python fork the module's whole process where it would otherwise use vfork
    (7 ms a command from a process of 120 MB against 1.8 ms). What run_command gives
    nslab's commands is kept: ``LC_ALL=C``, the other descriptors closed, SIGPIPE back to
    its default in the child (``restore_signals``), output decoded as UTF-8 with
    surrogates for bad bytes."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    proc = subprocess.run(argv, input=data, capture_output=True, encoding="utf-8",
                          errors="surrogateescape", env=env, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def _quote(token):
    # ip -batch splits on white space and honours double quotes.
    if token == "" or re.search(r"\s", token):
        return '"%s"' % token.replace('"', "")
    return token


# What ``ip_json`` asks ip for, per object.
IP_LISTINGS = {"link": "link show", "addr": "addr show", "route": "route show table all"}


class Runner:
    def __init__(self, run, ip="ip", nsenter="nsenter", bridge="bridge", netlink=False):
        self._run = run
        self.ip_bin = ip
        self.nsenter_bin = nsenter
        self.bridge_bin = bridge
        # Read links, addresses and routes over netlink in this process (nslab_netlink)
        # rather than with nsenter and ip: two processes fewer per namespace read.
        self.netlink = netlink and nslab_netlink.available()

    def run(self, argv, data=None, netns=None):
        """Run argv (in the named net namespace when given); raise CommandError on failure."""
        full = self.in_netns(argv, netns)
        rc, out, err = self._run(full, data)
        if rc != 0:
            raise CommandError(full, rc, err, out)
        return out

    def in_netns(self, argv, netns):
        if netns is None:
            return list(argv)
        return [self.nsenter_bin, "--net=%s" % netns_path(netns)] + list(argv)

    def ip_json(self, objects, netns=None):
        """What ``ip -j -d`` lists of ``objects`` (``link``, ``addr``, ``route``: every
        table) in the named net namespace: one JSON document each, in that order, read over
        netlink when the runner may, else with one ``ip -batch``."""
        if self.netlink:
            return "\n".join(json.dumps(doc) for doc in nslab_netlink.read_documents(
                objects, None if netns is None else netns_path(netns)))
        return self.run([self.ip_bin, "-j", "-d", "-batch", "-"],
                        data="".join(IP_LISTINGS[o] + "\n" for o in objects), netns=netns)

    def read_links(self, netns=None, addresses=True):
        """Every link, with its addresses unless told not to."""
        return parse_links(self.ip_json(["link", "addr"] if addresses else ["link"], netns))

    def each(self, function, items):
        """``[function(item) for item in items]``, up to READ_WORKERS at a time (threads
        that each wait on their own process): the first error raised, in the order of
        ``items``, is raised once every call has ended. For reads, and for writes that
        say what each call did whatever happened (apply_plan's namespaces, whose calls
        return their BatchError instead of raising it)."""
        items = list(items)
        if len(items) < 2:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(items))) as pool:
            return list(pool.map(function, items))

    def netns_ids(self):
        """{netns name: nsid} as the host numbers them (``link_netnsid`` of veth ends)."""
        out = self.run([self.ip_bin, "-j", "netns", "list-id"])
        return dict((e["name"], e["nsid"]) for e in json.loads(out or "[]") if "name" in e)

    def read_fdb(self, devices, netns=None):
        """{device: [fdb entry]} of the named devices, in one ``bridge -j -batch`` process."""
        if not devices:
            return {}
        out = self.run([self.bridge_bin, "-j", "-batch", "-"],
                       data="".join("fdb show dev %s\n" % d for d in devices), netns=netns)
        docs = json_documents(out)
        return dict((d, docs[i] if i < len(docs) else []) for i, d in enumerate(devices))

    def ip_batch(self, commands, netns=None, force=False, tool="ip"):
        """Run many ``ip`` commands in one process. ``commands`` are argv lists without 'ip'.
        With ``tool="bridge"`` they are ``bridge`` commands (forwarding entries) instead.

        Without ``force`` ip stops at the first failing line; BatchError.failed_index
        says which, so the caller knows exactly what was done.
        """
        if not commands:
            return
        lines = [" ".join(_quote(t) for t in cmd) for cmd in commands]
        binary = self.bridge_bin if tool == "bridge" else self.ip_bin
        argv = [binary] + (["-force"] if force else []) + ["-batch", "-"]
        full = self.in_netns(argv, netns)
        rc, out, err = self._run(full, "\n".join(lines) + "\n")
        if rc != 0:
            match = _FAILED_LINE.search(err or "")
            index = int(match.group(1)) - 1 if match else -1
            raise BatchError(full, rc, err, index, lines)

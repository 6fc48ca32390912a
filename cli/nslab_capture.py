#!/usr/bin/env python3
"""``./nslab capture LAB NODE IFACE [-w FILE.pcap|-] [-c COUNT] [FILTER...]``: tcpdump on
one interface of a node.

The host's tcpdump (Debian's package) runs in the node's net namespace only: ``nsenter
--net=PATH`` onto the namespace's nsfs mount that nslab recorded for the node (read through
nslab_labview), never the node's mount namespace, so nothing of the node's file system runs
and the node does not see the capture. Nothing in the lab changes.

Where the packets go:
  - ``-w FILE``: a pcap file (opened here, by the caller, before tcpdump starts);
  - ``-w -``, or no ``-w`` when standard output is not a terminal: pcap on standard output,
    written packet by packet, so ``./nslab capture demo a eth0 | wireshark -k -i -`` works;
  - no ``-w`` on a terminal: one decoded line per packet (``tcpdump -n -l``).
``-c COUNT`` stops after COUNT packets; FILTER is a pcap filter (``icmp``, ``port 53``...).
tcpdump's own options are not passed on: only these.

A lab, node or interface that does not exist, a stopped node or a bad name: one line on
stderr and exit status 1 (2 for usage). Otherwise the exit status is tcpdump's.
"""

import os
import shutil
import sys

import nslab_cli
from nslab_inspect import Refused, name_problem, running_node

USAGE = "usage: ./nslab capture LAB NODE IFACE [-w FILE.pcap|-] [-c COUNT] [FILTER...]\n"


def usage(message):
    sys.stderr.write("nslab capture: %s\n%s" % (message, USAGE))
    return 2


def parse(args):
    """(lab, node, iface, write_to or None, count or None, filter words); ValueError."""
    positional, write_to, count, words = [], None, None, []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-w", "-c") and not words:
            if i + 1 >= len(args):
                raise ValueError("%s needs a value" % arg)
            value = args[i + 1]
            if arg == "-w":
                write_to = value
            else:
                if not value.isdigit() or int(value) < 1:
                    raise ValueError("-c '%s': expected a number of packets (1 or more)"
                                     % value)
                count = int(value)
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            raise ValueError("unknown option '%s' (only -w and -c; tcpdump's own options "
                             "are not passed on)" % arg)
        if len(positional) < 3:
            positional.append(arg)
        else:
            words.append(arg)
        i += 1
    if len(positional) < 3:
        raise ValueError("name a lab, a node and an interface")
    return positional[0], positional[1], positional[2], write_to, count, words


def check_names(lab, node, iface):
    nslab_cli.use_module_utils()
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import ifname_problem
    problem = name_problem(lab=lab, node=node) or ifname_problem("IFACE", iface)
    if problem:
        raise Refused(problem)


def node_netns(lab, node):
    """(netns record name, nsfs path) of the running node's net namespace, from nslab's
    records; Refused otherwise."""
    container, view = running_node(lab, node)
    namespaces = dict((n["name"], n) for n in view.get("namespaces") or [])
    netns = namespaces.get(container.get("netns"))
    if not netns or "net" not in netns["paths"] or not netns["live"]:
        raise Refused("node '%s' of lab '%s' has no live net namespace (record '%s')" % (
            node, lab, container.get("netns")))
    return container["netns"], netns["paths"]["net"]


def check_interface(netns, iface, node):
    links = nslab_cli.local_runner().read_links(netns=netns, addresses=False)
    if iface not in links:
        raise Refused("node '%s' has no interface '%s' (it has: %s)" % (
            node, iface, ", ".join(sorted(links)) or "none"))


def tcpdump_argv(nsfs_path, iface, pcap, count, words):
    """The command: the host's tcpdump in the node's net namespace only. With ``pcap``, raw
    packets to standard output, flushed per packet (-U); otherwise decoded lines (-l)."""
    argv = [shutil.which("nsenter") or "/usr/bin/nsenter", "--net=%s" % nsfs_path,
            shutil.which("tcpdump") or "/usr/bin/tcpdump", "-i", iface, "-n"]
    argv += ["-U", "-w", "-"] if pcap else ["-l"]
    if count:
        argv += ["-c", str(count)]
    if words:
        argv += ["--"] + words
    return argv


def main(args):
    try:
        lab, node, iface, write_to, count, words = parse(args)
    except ValueError as err:
        return usage(str(err))
    try:
        check_names(lab, node, iface)
        if os.geteuid() != 0:
            raise Refused("a capture needs root (it enters the node's net namespace)")
        if not shutil.which("tcpdump"):
            raise Refused("tcpdump is not installed (Debian package tcpdump; ./nslab capture "
                          "installs it)")
        netns, nsfs_path = node_netns(lab, node)
        check_interface(netns, iface, node)
        pcap = write_to is not None or not sys.stdout.isatty()
        if write_to not in (None, "-"):
            try:
                fd = os.open(write_to, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                             0o600)
            except OSError as err:
                raise Refused("cannot write '%s': %s" % (write_to, err.strerror))
            os.dup2(fd, 1)
            os.close(fd)
    except Refused as err:
        sys.stderr.write("nslab capture: %s\n" % err)
        return 1
    argv = tcpdump_argv(nsfs_path, iface, pcap, count, words)
    sys.stdout.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``./nslab capture``: the host's tcpdump in a node's net namespace only (not its mount
namespace), packets of a ping between two nodes to a pcap file that ``tcpdump -r`` parses, or
streamed to standard output; an interface the node lacks, a stopped node or a bad name is
one line and a non-zero exit."""

import ipaddress
import os
import pty
import select
import shutil
import subprocess
import sys
import time

import pytest

from helpers.lab import RUNNING_LAB_SUBNET
from helpers.paths import ROOT
from helpers.terminal import Terminal

sys.path.insert(0, str(ROOT / "cli"))
import nslab_cli  # noqa: E402

NSLAB = str(ROOT / "nslab")
pytestmark = pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump (Debian package "
                                "tcpdump) is not installed; ./nslab test installs it")


def nodes_of(lab):
    view = nslab_cli.read_labs(lab)[lab]
    return dict((c["name"], c) for c in view["containers"])


def lan_address(node):
    """The node's address on running_lab's ``lan``."""
    lan = ipaddress.ip_network(RUNNING_LAB_SUBNET)
    return [a.split("/")[0] for a in node["addresses"]
            if ipaddress.ip_interface(a).ip in lan][0]


def wait_listening(capture):
    """tcpdump says so on stderr once its socket is bound; packets before that are lost."""
    seen, deadline = b"", time.monotonic() + 30
    while b"listening on" not in seen:
        assert time.monotonic() < deadline and capture.poll() is None, seen
        if select.select([capture.stderr], [], [], 1)[0]:
            seen += os.read(capture.stderr.fileno(), 4096)
    return seen


def ping(lab, source, target):
    done = subprocess.run([NSLAB, "exec", lab, source, "--", "ping", "-c", "2", "-W", "2",
                           target], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def read_pcap(source):
    """tcpdump's reading of a pcap file ('-' reads standard input: ``source`` bytes)."""
    if isinstance(source, bytes):
        done = subprocess.run(["tcpdump", "-n", "-r", "-"], input=source, capture_output=True,
                              timeout=30)
    else:
        done = subprocess.run(["tcpdump", "-n", "-r", source], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def assert_ping_between(text, a, b):
    assert "IP %s > %s: ICMP echo request" % (a, b) in text, text
    assert "IP %s > %s: ICMP echo reply" % (b, a) in text, text


def test_a_ping_is_captured_to_a_pcap_in_the_nodes_net_namespace_only(running_lab, tmp_path):
    lab, nodes = running_lab.name, nodes_of(running_lab.name)
    a, b = lan_address(nodes["a"]), lan_address(nodes["b"])
    pcap = tmp_path / "a-eth0.pcap"
    capture = subprocess.Popen([NSLAB, "capture", lab, "a", "eth0", "-w", str(pcap), "-c", "4",
                                "icmp"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        wait_listening(capture)
        # the capturing process (nsenter exec'd tcpdump, same pid): the node's net namespace,
        # the host's mount namespace
        ns = dict((kind, os.stat("/proc/%d/ns/%s" % (capture.pid, kind)).st_ino)
                  for kind in ("net", "mnt"))
        assert ns["net"] == os.stat("/proc/%d/ns/net" % nodes["a"]["pid"]).st_ino
        assert ns["mnt"] == os.stat("/proc/self/ns/mnt").st_ino
        assert ns["mnt"] != os.stat("/proc/%d/ns/mnt" % nodes["a"]["pid"]).st_ino
        ping(lab, "a", b)
        assert capture.wait(timeout=30) == 0, capture.stderr.read()
    finally:
        if capture.poll() is None:
            capture.kill()
            capture.wait()
    assert capture.stdout.read() == b""
    assert_ping_between(read_pcap(str(pcap)), a, b)


def test_packets_stream_to_standard_output_as_pcap(running_lab):
    lab, nodes = running_lab.name, nodes_of(running_lab.name)
    a, b = lan_address(nodes["a"]), lan_address(nodes["b"])
    # stdout is a pipe, not a terminal: pcap on stdout without -w
    capture = subprocess.Popen([NSLAB, "capture", lab, "b", "eth0", "-c", "4", "icmp"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        wait_listening(capture)
        ping(lab, "a", b)
        out, _err = capture.communicate(timeout=30)
    finally:
        if capture.poll() is None:
            capture.kill()
            capture.wait()
    assert capture.returncode == 0
    assert out[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")   # pcap's magic number
    assert_ping_between(read_pcap(out), a, b)


def test_on_a_terminal_packets_are_decoded_lines(running_lab):
    lab, nodes = running_lab.name, nodes_of(running_lab.name)
    a, b = lan_address(nodes["a"]), lan_address(nodes["b"])
    pid, master = pty.fork()
    if pid == 0:
        os.execv(NSLAB, [NSLAB, "capture", lab, "a", "eth0", "-c", "2", "icmp"])
    term = Terminal(master)
    try:
        term.read_until("listening on eth0")
        ping(lab, "a", b)
        seen = term.read_until("packets captured")
    except BaseException:
        os.kill(pid, 9)
        raise
    finally:
        _pid, status = os.waitpid(pid, 0)
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "IP %s > %s: ICMP echo request" % (a, b) in seen, seen


def nslab_capture(*args):
    return subprocess.run([NSLAB, "capture", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


@pytest.mark.parametrize("args, line", [
    (("a", "eth9"), "nslab capture: node 'a' has no interface 'eth9' (it has: eth0, eth1, lo)"),
    (("d", "eth0"), "nslab capture: node 'd' of lab '{lab}' is stopped"),
    (("nope", "eth0"), "nslab capture: no node 'nope' in lab '{lab}' on this host"),
    (("a", "a/eth0"), "nslab capture: IFACE: interface name 'a/eth0' is invalid; expected no "
                      "'/', ':', quotes, '#' or white space"),
])
def test_what_cannot_be_captured_is_one_line(running_lab, args, line):
    done = nslab_capture(running_lab.name, *args)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == line.format(lab=running_lab.name) + "\n"


def test_a_missing_lab_a_bad_name_or_a_tcpdump_option_is_refused():
    missing = nslab_capture("nosuchlab-%d" % os.getpid(), "a", "eth0")
    assert missing.returncode == 1
    assert missing.stderr == "nslab capture: no lab 'nosuchlab-%d' on this host\n" % os.getpid()
    bad = nslab_capture("../x", "a", "eth0")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    option = nslab_capture("x", "a", "eth0", "-z", "/bin/sh")
    assert option.returncode == 2 and option.stderr.startswith("nslab capture: unknown option")

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of user input: names, addresses, MACs, MTUs.

Each check returns a problem sentence (naming the option, the bad value and what was
expected) or None, so a module can collect every problem before failing once.
"""

from __future__ import annotations

import ipaddress
import os
import re

IFNAMSIZ = 16  # the kernel's limit, including the trailing NUL
# Matched with fullmatch: '$' alone would let a trailing newline through.
_LAB_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,23}")
_NS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
# RFC 1123 labels: letters, digits and '-', 1-63 each, not starting or ending with '-'.
_HOSTNAME_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def ifname_problem(option, value):
    """Linux accepts 1-15 bytes, not '.', '..', and no '/', ':' or white space."""
    if not isinstance(value, str) or not value:
        return "%s: interface name %r is empty; expected 1-15 bytes" % (option, value)
    if len(value.encode("utf-8")) >= IFNAMSIZ:
        return "%s: interface name '%s' is %d bytes; expected at most %d" % (
            option, value, len(value.encode("utf-8")), IFNAMSIZ - 1)
    if value in (".", "..") or re.search(r"[/:\s\"'#]", value):
        return ("%s: interface name '%s' is invalid; expected no '/', ':', quotes, '#' "
                "or white space" % (option, value))
    return None


def lab_problem(option, value):
    if not isinstance(value, str) or not _LAB_RE.fullmatch(value):
        return ("%s: lab name %r is invalid; expected 1-24 characters of a-z, 0-9, '-' "
                "and '_', starting with a letter or digit" % (option, value))
    return None


def object_name_problem(option, value, kind):
    """Names that become file names under nslab's directories: never '/', '.' or '..'."""
    if not isinstance(value, str) or not _NS_RE.fullmatch(value) or value in (".", ".."):
        return ("%s: %s name %r is invalid; expected 1-64 characters of A-Z, a-z, "
                "0-9, '.', '-' and '_', starting with a letter or digit" % (option, kind, value))
    return None


def nsname_problem(option, value):
    return object_name_problem(option, value, "namespace")


def abspath_problem(option, value):
    """An absolute path in normal form: no '..', '.', '//' or trailing '/' to hide behind."""
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        return "%s: path %r is not absolute; expected e.g. /srv/rootfs" % (option, value)
    if os.path.normpath(value) != value or value.startswith("//"):
        return ("%s: path '%s' is not in normal form (it has '..', '.', '//' or a trailing "
                "'/'); expected e.g. '%s'" % (option, value, os.path.normpath(value)))
    return None


def hostname_problem(option, value):
    if not isinstance(value, str) or len(value) > 64 or not _HOSTNAME_RE.fullmatch(value):
        return ("%s: hostname %r is invalid; expected at most 64 characters of labels "
                "of a-z, 0-9 and '-'" % (option, value))
    return None


def parse_interface_address(option, value):
    """Return (ip_interface, problem). Requires an explicit prefix length."""
    if not isinstance(value, str) or "/" not in value:
        return None, "%s: address %r has no prefix length; expected CIDR like 10.0.0.2/24" % (
            option, value)
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        return None, "%s: address '%s' is not a valid CIDR; expected e.g. 10.0.0.2/24 or fd00::2/64" % (
            option, value)
    net = iface.network
    if iface.version == 4 and net.prefixlen <= 30 and iface.ip in (net.network_address,
                                                                    net.broadcast_address):
        return None, "%s: address '%s' is the %s address of %s; expected a host address" % (
            option, value,
            "network" if iface.ip == net.network_address else "broadcast", net)
    return iface, None


def interface_addresses(option, values, problems):
    """The valid addresses of ``values`` as strings; a problem for each invalid one."""
    addresses = []
    for value in values or []:
        parsed, problem = parse_interface_address(option, value)
        problems.append(problem)
        if parsed is not None:
            addresses.append(str(parsed))
    return addresses


def mac_problem(option, value):
    if not isinstance(value, str) or not _MAC_RE.fullmatch(value.lower()):
        return "%s: MAC address %r is invalid; expected six hex octets like 02:42:ac:11:00:02" % (
            option, value)
    if int(value[:2], 16) & 1:
        return "%s: MAC address '%s' is a multicast address; expected a unicast one" % (
            option, value)
    return None


def mtu_problem(option, value):
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 68 <= value <= 65535:
        return "%s: MTU %r is out of range; expected 68-65535" % (option, value)
    return None

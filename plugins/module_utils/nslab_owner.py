# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ownership: what nslab created, and for which lab.

Links carry an ifalias ``nslab:<lab>:<role>`` set at creation, so ownership is read from
the kernel, not from a file that can drift. A net namespace carries the same kind of tag on
its ``lo`` (``nslab:<lab>:netns``), set by the child that made it, through one raw
rtnetlink request (no helper binary). Other namespaces cannot carry a tag: their record is
a JSON file under the state dir ``/run/nslab/<lab>/`` holding the namespace inodes, which
are checked against the kernel before the record is trusted. The netns record is kept too
(inodes, types); the tag is what lets a lab find its namespaces again when that record is
lost.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import tempfile

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    OwnershipError, StateError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import STATE_ROOT

ALIAS_PREFIX = "nslab:"
NETNS_ROLE = "netns"

# rtnetlink, as <linux/netlink.h> and <linux/rtnetlink.h> define it
NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
RTM_GETLINK, RTM_SETLINK = 18, 19
IFLA_IFALIAS = 20
LOOPBACK_IFINDEX = 1        # lo is registered first in every net namespace
NLMSG_HEADER = struct.Struct("=IHHII")      # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")        # family, type, index, flags, change
RTATTR = struct.Struct("=HH")               # len, type


def alias_for(lab, role):
    return "%s%s:%s" % (ALIAS_PREFIX, lab, role)


def parse_alias(alias):
    """Return (lab, role) for an nslab alias, or None for anything else."""
    if not alias or not alias.startswith(ALIAS_PREFIX):
        return None
    parts = alias[len(ALIAS_PREFIX):].split(":", 1)
    if len(parts) != 2 or not parts[0]:
        return None
    return parts[0], parts[1]


def describe_owner(alias):
    tag = parse_alias(alias)
    if tag is None:
        return "not nslab's (no nslab ifalias)"
    return "owned by nslab lab '%s' as a %s" % tag


def check_link_owner(link, lab, role, kind, netns=None):
    """Raise OwnershipError unless ``link`` is absent or tagged for (lab, role)."""
    if link is None:
        return
    if parse_alias(link.alias) != (lab, role):
        raise OwnershipError(kind, link.name, describe_owner(link.alias), netns)


def _align4(length):
    return (length + 3) & ~3


def _link_request(msg_type, flags, ifindex, attrs=b""):
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, ifindex, 0, 0) + attrs
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), msg_type, flags, 1, 0) + body


def _rtnetlink(request, what):
    """Send one request in the caller's net namespace; return the reply's payload."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        sock.send(request)
        reply = sock.recv(65536)
    length, msg_type = NLMSG_HEADER.unpack_from(reply)[:2]
    if msg_type == NLMSG_ERROR:
        error = -struct.unpack_from("=i", reply, NLMSG_HEADER.size)[0]
        if error:
            raise OSError(error, "%s: %s" % (what, os.strerror(error)))
    return reply[NLMSG_HEADER.size:length], msg_type


def set_lo_alias(alias):
    """Set the ifalias of ``lo`` in the caller's net namespace (RTM_SETLINK)."""
    data = alias.encode("utf-8") + b"\0"
    attr = RTATTR.pack(RTATTR.size + len(data), IFLA_IFALIAS) + data
    attr += b"\0" * (_align4(len(attr)) - len(attr))
    _rtnetlink(_link_request(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, LOOPBACK_IFINDEX, attr),
               "set the ifalias of lo")


def read_lo_alias():
    """The ifalias of ``lo`` in the caller's net namespace ("" when it has none)."""
    payload, msg_type = _rtnetlink(_link_request(RTM_GETLINK, NLM_F_REQUEST, LOOPBACK_IFINDEX),
                                   "read lo")
    if msg_type == NLMSG_ERROR:
        return ""
    offset = IFINFOMSG.size
    while offset + RTATTR.size <= len(payload):
        length, kind = RTATTR.unpack_from(payload, offset)
        if length < RTATTR.size:
            break
        if kind == IFLA_IFALIAS:
            data = payload[offset + RTATTR.size:offset + length]
            return data.split(b"\0", 1)[0].decode("utf-8", "replace")
        offset += _align4(length)
    return ""


def lab_dir(lab, root=STATE_ROOT):
    return os.path.join(root, lab)


def plan_record_path(lab, root=STATE_ROOT):
    """Where a host keeps the plan of a lab over several hosts (nslab_record), so the
    others can keep an unreachable host's share in place."""
    return os.path.join(lab_dir(lab, root), "plan.json")


def write_json_atomic(path, data):
    """Write JSON so that readers see the old or the new file, never half of one."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path):
    """The JSON document nslab wrote at ``path``, or None when there is no file. A file
    that is not valid JSON is never taken for "no record": StateError names it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    try:
        document = json.loads(data.decode("utf-8"))
    except ValueError as err:       # JSONDecodeError and UnicodeDecodeError
        raise StateError(path, "is not valid JSON (%s)" % err)
    if document is None:            # None means "no file" to every caller
        raise StateError(path, "holds JSON null; expected an object")
    return document


JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
              type(None): "null"}


def read_record(path, kind, lab, name=None):
    """The record of nslab's ``kind`` at ``path`` (a JSON object naming ``lab`` and, when
    given, ``name``), or None when there is no file. One that is not valid JSON, not an
    object, or names another lab or object, raises StateError naming the path."""
    record = read_json(path)
    if record is None:
        return None
    expected = "a %s record of lab '%s'%s" % (
        kind, lab, " for '%s'" % name if name is not None else "")
    if not isinstance(record, dict):
        raise StateError(path, "holds a JSON %s, not an object; expected %s" % (
            JSON_TYPES.get(type(record), "value"), expected))
    found = dict((key, record.get(key)) for key in ("lab", "name"))
    if found["lab"] != lab or (name is not None and found["name"] != name):
        raise StateError(path, "is not nslab's %s (it names lab %s, name %s); expected %s" % (
            kind, _quoted(found["lab"]), _quoted(found["name"]), expected))
    return record


def _quoted(value):
    return "'%s'" % value if isinstance(value, str) else "%s" % json.dumps(value)


def remove_empty_dirs(path, stop):
    """rmdir ``path`` and its parents while they are empty, up to ``stop``, which stays:
    a root all labs share goes only in nslab_shared's tidy, when no other run is going."""
    path = os.path.abspath(path)
    stop = os.path.abspath(stop)
    while path.startswith(stop + os.sep):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            return
        path = os.path.dirname(path)

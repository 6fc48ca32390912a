# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Links, addresses and routes read over rtnetlink, in this process: one socket per net
namespace instead of one ``nsenter ip`` pair of processes (issue #12: a lab of 500 nodes was
read with 1,000 processes, twice per run).

A netlink socket stays in the net namespace it was opened in, so the reader enters the
namespace (``setns`` of this thread only), opens the socket and comes back at once; the
dumps then run from here. Their messages are turned into the documents ``ip -j -d``
prints, with the fields nslab's parsers read (nslab_iproute, nslab_routes), so there is
one format to parse whichever way a namespace was read, and ``ip`` stays the reader where
this one cannot run (no libc setns).

The decoding (``documents``) is pure and unit-tested on captured dumps; the integration
tests compare it with ``ip -j -d`` on real namespaces.
"""

from __future__ import annotations

import os
import socket
import struct

from ansible_collections.nslab.lab.plugins.module_utils import nslab_syscalls
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    CommandError, NslabError)

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
AF_UNSPEC, AF_INET, AF_INET6 = 0, 2, 10

# The request of each object ip lists, and the struct its messages start with.
REQUESTS = {"link": (RTM_GETLINK, struct.pack("=BxHiII", AF_UNSPEC, 0, 0, 0, 0)),
            "addr": (RTM_GETADDR, struct.pack("=BBBBI", AF_UNSPEC, 0, 0, 0, 0)),
            "route": (RTM_GETROUTE, struct.pack("=BBBBBBBBI", AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0))}

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_QDISC = 1, 3, 4, 5, 6
IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_AF_SPEC, IFLA_LINK_NETNSID = 10, 18, 20, 26, 37
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_BR_STP_STATE = 5
IFLA_VXLAN_ID, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING = 1, 4, 7
IFLA_VXLAN_PORT, IFLA_VXLAN_LOCAL6 = 15, 17
IFLA_INET6_ADDR_GEN_MODE = 8
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15

# ip's names (iproute2: print_link_flags, rtnl_rtntype_n2a, rtnl_rttable_n2a, the built-in
# rt_protos and addr_gen_mode names).
IFF_NAMES = ((0x8, "LOOPBACK"), (0x2, "BROADCAST"), (0x10, "POINTOPOINT"),
             (0x1000, "MULTICAST"), (0x80, "NOARP"), (0x200, "ALLMULTI"), (0x100, "PROMISC"),
             (0x400, "MASTER"), (0x800, "SLAVE"), (0x1, "UP"), (0x10000, "LOWER_UP"),
             (0x20000, "DORMANT"))
IFF_UP, IFF_RUNNING = 0x1, 0x40
ROUTE_TYPES = {0: "none", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast",
               5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw",
               10: "nat", 11: "xresolve"}
TABLES = {253: "default", 254: "main", 255: "local"}
PROTOCOLS = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated",
             9: "ra", 10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp",
             15: "ntk", 16: "dhcp", 17: "keepalived", 18: "babel", 42: "openr", 99: "eigrp",
             186: "bgp", 187: "isis", 188: "ospf", 189: "rip", 192: "eigrp"}
PROTOCOL_FILES = ("/etc/iproute2/rt_protos", "/usr/share/iproute2/rt_protos")
ADDR_GEN_MODES = {0: "eui64", 1: "none", 2: "stable_secret", 3: "random"}
_PROTOCOLS = []                    # protocol_names(), read once per process


class NetlinkError(NslabError):
    """The kernel refused a dump, or a reading thread could not come back to its own
    namespace; never taken for a namespace that is merely missing (a CommandError)."""


# --- decoding (pure) ------------------------------------------------------------------------
def messages(data):
    """(type, payload) of each netlink message in ``data``; raises NetlinkError on an error
    message. DONE ends the list."""
    found, offset = [], 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            raise NetlinkError("malformed netlink message (length %d)" % length)
        payload = data[offset + 16:offset + length]
        if kind == NLMSG_ERROR:
            errno = -struct.unpack_from("=i", payload)[0]
            if errno:
                raise NetlinkError("netlink error: %s" % os.strerror(errno))
        elif kind != NLMSG_DONE:
            found.append((kind, payload))
        offset += (length + 3) & ~3
    return found


def attributes(data, offset=0):
    """{type: payload} of the rtattrs in ``data`` from ``offset`` (nested flag dropped)."""
    found = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3fff] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def _text(value):
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def _u32(value):
    return struct.unpack_from("=I", value)[0]


def _address(family, value):
    return socket.inet_ntop(socket.AF_INET6 if family == AF_INET6 else socket.AF_INET, value)


def protocol_names(files=PROTOCOL_FILES):
    """ip's names of route protocols: its built-in ones, then those of rt_protos files."""
    names = dict(PROTOCOLS)
    for path in files:
        try:
            with open(path) as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2 and fields[0].isdigit():
                names[int(fields[0])] = fields[1]
    return names


def _link_item(payload, names):
    _family, _type, index, flags, _change = struct.unpack_from("=BxHiII", payload)
    attrs = attributes(payload, 16)
    item = {"ifindex": index, "ifname": _text(attrs.get(IFLA_IFNAME, b"")),
            "flags": [name for bit, name in IFF_NAMES if flags & bit]}
    if flags & IFF_UP and not flags & IFF_RUNNING:
        item["flags"].insert(0, "NO-CARRIER")
    if IFLA_MTU in attrs:
        item["mtu"] = _u32(attrs[IFLA_MTU])
    if IFLA_QDISC in attrs:
        item["qdisc"] = _text(attrs[IFLA_QDISC])
    if IFLA_ADDRESS in attrs:
        item["address"] = ":".join("%02x" % b for b in bytearray(attrs[IFLA_ADDRESS]))
    if IFLA_LINK in attrs:
        link = _u32(attrs[IFLA_LINK])
        if link == 0:
            item["link"] = None
        elif IFLA_LINK_NETNSID in attrs:
            item["link_index"] = link
        else:
            item["link"] = names.get(link, "if%d" % link)
    if IFLA_LINK_NETNSID in attrs:
        item["link_netnsid"] = struct.unpack_from("=i", attrs[IFLA_LINK_NETNSID])[0]
    if IFLA_MASTER in attrs:
        master = _u32(attrs[IFLA_MASTER])
        item["master"] = names.get(master, "if%d" % master)
    if IFLA_LINKINFO in attrs:
        info = attributes(attrs[IFLA_LINKINFO])
        kind = _text(info.get(IFLA_INFO_KIND, b""))
        linkinfo = {"info_kind": kind}
        data = attributes(info.get(IFLA_INFO_DATA, b""))
        if kind == "bridge" and IFLA_BR_STP_STATE in data:
            linkinfo["info_data"] = {"stp_state": _u32(data[IFLA_BR_STP_STATE])}
        elif kind == "vxlan":
            vxlan = {}
            if IFLA_VXLAN_ID in data:
                vxlan["id"] = _u32(data[IFLA_VXLAN_ID])
            if IFLA_VXLAN_LOCAL in data:
                vxlan["local"] = _address(AF_INET, data[IFLA_VXLAN_LOCAL])
            if IFLA_VXLAN_LOCAL6 in data:
                vxlan["local6"] = _address(AF_INET6, data[IFLA_VXLAN_LOCAL6])
            if IFLA_VXLAN_PORT in data:
                vxlan["port"] = struct.unpack_from("!H", data[IFLA_VXLAN_PORT])[0]
            if IFLA_VXLAN_LEARNING in data:
                vxlan["learning"] = bool(bytearray(data[IFLA_VXLAN_LEARNING])[0])
            linkinfo["info_data"] = vxlan
        item["linkinfo"] = linkinfo
    inet6 = attributes(attributes(attrs.get(IFLA_AF_SPEC, b"")).get(AF_INET6, b""))
    if IFLA_INET6_ADDR_GEN_MODE in inet6:
        mode = bytearray(inet6[IFLA_INET6_ADDR_GEN_MODE])[0]
        item["inet6_addr_gen_mode"] = ADDR_GEN_MODES.get(mode, "%#.2x" % mode)
    if IFLA_IFALIAS in attrs:
        item["ifalias"] = _text(attrs[IFLA_IFALIAS])
    return item


def _addr_info(payload):
    family, prefixlen, _flags, _scope, index = struct.unpack_from("=BBBBI", payload)
    if family not in (AF_INET, AF_INET6):
        return None, None
    attrs = attributes(payload, 8)
    local = attrs.get(IFA_LOCAL, attrs.get(IFA_ADDRESS))
    if local is None:
        return index, None
    return index, {"family": "inet" if family == AF_INET else "inet6",
                   "local": _address(family, local), "prefixlen": prefixlen}


def _route_item(payload, names, protocols):
    family, dst_len, _src_len, _tos, table, protocol, _scope, kind, _flags = \
        struct.unpack_from("=BBBBBBBBI", payload)
    if family not in (AF_INET, AF_INET6):
        return None
    attrs = attributes(payload, 12)
    if RTA_TABLE in attrs:
        table = _u32(attrs[RTA_TABLE])
    if RTA_DST in attrs:
        dst = _address(family, attrs[RTA_DST])
        if dst_len != (32 if family == AF_INET else 128):
            dst = "%s/%d" % (dst, dst_len)
    else:
        dst = "default" if dst_len == 0 else "0/%d" % dst_len
    item = {"type": ROUTE_TYPES.get(kind, str(kind)), "dst": dst,
            "table": TABLES.get(table, str(table)),
            "protocol": protocols.get(protocol, str(protocol))}
    if RTA_GATEWAY in attrs:
        item["gateway"] = _address(family, attrs[RTA_GATEWAY])
    if RTA_OIF in attrs:
        oif = _u32(attrs[RTA_OIF])
        item["dev"] = names.get(oif, "if%d" % oif)
    return item


def documents(dumps, objects, protocols=None):
    """The ``ip -j -d`` documents of ``objects`` (``link``, ``addr``, ``route``, in that
    order of output), from ``dumps``: {object: raw netlink reply}; ``link`` is always
    needed (it names the interfaces the others refer to by index)."""
    replies = [p for kind, p in messages(dumps["link"]) if kind == RTM_NEWLINK]
    names = dict((struct.unpack_from("=BxHi", p)[2], _text(attributes(p, 16).get(IFLA_IFNAME, b"")))
                 for p in replies)
    links = [_link_item(p, names) for p in replies]
    docs = []
    for obj in objects:
        if obj == "link":
            docs.append(links)
        elif obj == "addr":
            per_link = dict((item["ifindex"], {"ifindex": item["ifindex"],
                                               "ifname": item["ifname"], "addr_info": []})
                            for item in links)
            for kind, payload in messages(dumps["addr"]):
                index, info = _addr_info(payload) if kind == RTM_NEWADDR else (None, None)
                if info is not None and index in per_link:
                    per_link[index]["addr_info"].append(info)
            docs.append(list(per_link.values()))
        elif obj == "route":
            if protocols is None:
                if not _PROTOCOLS:
                    _PROTOCOLS.append(protocol_names())
                protocols = _PROTOCOLS[0]
            routes = [_route_item(p, names, protocols) for kind, p in messages(dumps["route"])
                      if kind == RTM_NEWROUTE]
            docs.append([r for r in routes if r is not None])
        else:
            raise ValueError("unknown object %r" % obj)
    return docs


# --- the kernel -----------------------------------------------------------------------------
def available():
    """True when this process can read namespaces over netlink (Linux, libc's setns)."""
    if not hasattr(socket, "AF_NETLINK"):
        return False
    try:
        return hasattr(nslab_syscalls.libc(), "setns")
    except OSError:
        return False


def open_socket(netns_path=None):
    """A NETLINK_ROUTE socket in the net namespace at ``netns_path`` (this one if None).
    Only the calling thread enters the namespace, and leaves it before this returns."""
    if netns_path is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    target = os.open(netns_path, flags)
    try:
        home = os.open("/proc/thread-self/ns/net", flags)
    except OSError:
        os.close(target)
        raise
    try:
        nslab_syscalls.setns(target, nslab_syscalls.CLONE_NEWNET)
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        finally:
            # A thread left in the node's namespace would run every later command there:
            # not an OSError, so that read_documents does not report it as a missing
            # namespace, which a caller may pass over.
            try:
                nslab_syscalls.setns(home, nslab_syscalls.CLONE_NEWNET)
            except OSError as err:
                raise NetlinkError("cannot return to this thread's own net namespace after "
                                   "opening a socket in %s: %s" % (netns_path, err))
    finally:
        os.close(target)
        os.close(home)


def dump(sock, obj, sequence):
    """The raw reply of one dump request (every message up to DONE)."""
    kind, body = REQUESTS[obj]
    sock.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP,
                          sequence, 0) + body)
    chunks = []
    while True:
        data = sock.recv(1 << 20)
        if not data:
            raise NetlinkError("netlink socket closed during a dump")
        chunks.append(data)
        if _ends(data):
            return b"".join(chunks)


def _ends(data):
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return True
        if length < 16:
            return True
        offset += (length + 3) & ~3
    return False


def read_documents(objects, netns_path=None):
    """``documents`` of ``objects`` as the namespace at ``netns_path`` has them now. A
    namespace that cannot be entered raises CommandError, worded as nsenter words it."""
    try:
        sock = open_socket(netns_path)
    except OSError as err:
        argv = ["nsenter", "--net=%s" % netns_path]
        raise CommandError(argv, 1, "nsenter: cannot open %s: %s" % (
            netns_path, err.strerror or err), "")
    with sock:
        sock.settimeout(30)
        needed = ["link"] + [o for o in objects if o != "link"]
        dumps = dict((obj, dump(sock, obj, index + 1)) for index, obj in enumerate(needed))
    return documents(dumps, objects)

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data model of links and addresses, parsed from ``ip -j -d link show`` + ``addr show``.

``ip -j -d addr show`` lacks ``inet6_addr_gen_mode`` and ``ip -j link show`` lacks
addresses, so the runner asks for both in one ``ip -batch`` and this module merges them.

Pure: no AnsibleModule, no subprocess. Unit-tested on captured output.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

# The kernel omits inet6_addr_gen_mode when it is the default.
DEFAULT_ADDRGENMODE = "eui64"


@dataclass
class Link:
    name: str
    ifindex: int
    kind: Optional[str]            # linkinfo.info_kind: bridge, veth, ... (None: physical)
    mtu: int
    mac: Optional[str]
    up: bool                       # administratively up (IFF_UP)
    alias: Optional[str]
    master: Optional[str]
    peer_ifindex: Optional[int]    # veth: the peer's ifindex in its own netns
    peer_netnsid: Optional[int]    # veth: set when the peer lives in another netns
    addrgenmode: str
    stp: Optional[bool]            # bridge only
    addresses: List[str] = field(default_factory=list)   # "10.0.0.1/24", "fd00::1/64"
    vxlan: Optional[dict] = None   # vxlan only: {vni, local, port, learning}
    qdisc: Optional[str] = None    # the kind of its root qdisc: noqueue, netem, ...

    def managed_addresses(self):
        """Addresses nslab compares: all but kernel-made IPv6 link-local ones."""
        return [a for a in self.addresses if not ipaddress.ip_interface(a).is_link_local]


def json_documents(text):
    """Every JSON document in ``text`` (``ip -j -batch`` prints one per command)."""
    decoder, index, docs = json.JSONDecoder(), 0, []
    text = text or ""
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return docs
        doc, index = decoder.raw_decode(text, index)
        docs.append(doc)


def parse_links(text):
    """Parse the output of ``ip -j -d`` link and/or addr listings into {name: Link}."""
    merged: Dict[int, dict] = {}
    for doc in json_documents(text):
        for item in doc:
            if "ifindex" in item:
                merged.setdefault(item["ifindex"], {}).update(item)
    links: Dict[str, Link] = {}
    for item in merged.values():
        if "ifname" not in item:
            continue
        info = item.get("linkinfo") or {}
        info_data = info.get("info_data") or {}
        addresses = []
        for addr in item.get("addr_info") or []:
            if addr.get("family") in ("inet", "inet6") and "local" in addr:
                addresses.append(str(ipaddress.ip_interface(
                    "%s/%s" % (addr["local"], addr["prefixlen"]))))
        stp = None
        if info.get("info_kind") == "bridge":
            stp = bool(info_data.get("stp_state", 0))
        vxlan = None
        if info.get("info_kind") == "vxlan":
            vxlan = {"vni": info_data.get("id"), "local": info_data.get("local")
                     or info_data.get("local6"), "port": info_data.get("port"),
                     "learning": bool(info_data.get("learning"))}
        links[item["ifname"]] = Link(
            name=item["ifname"],
            ifindex=item["ifindex"],
            kind=info.get("info_kind"),
            mtu=item.get("mtu", 0),
            mac=item.get("address"),
            up="UP" in (item.get("flags") or []),
            alias=item.get("ifalias"),
            master=item.get("master"),
            peer_ifindex=item.get("link_index") if info.get("info_kind") == "veth" else None,
            peer_netnsid=item.get("link_netnsid"),
            addrgenmode=item.get("inet6_addr_gen_mode", DEFAULT_ADDRGENMODE),
            stp=stp,
            addresses=addresses,
            vxlan=vxlan,
            qdisc=item.get("qdisc"),
        )
    return links


def is_veth_pair(a, b):
    """True when links a and b (possibly in different namespaces) are each other's peer."""
    return (a is not None and b is not None and a.kind == "veth" and b.kind == "veth"
            and a.peer_ifindex == b.ifindex and b.peer_ifindex == a.ifindex)


def link_view(link, keys):
    """The user-visible state of a link (for results and diffs), limited to ``keys``."""
    if link is None:
        return {"state": "absent"}
    full = {
        "state": "present",
        "kind": link.kind,
        "mtu": link.mtu,
        "mac": link.mac,
        "up": link.up,
        "master": link.master,
        "addresses": sorted(link.managed_addresses()),
        "stp": link.stp,
        "ipv6": link.addrgenmode != "none",
        "ifindex": link.ifindex,
        "owner": link.alias,
    }
    return dict((k, full[k]) for k in keys if k in full)

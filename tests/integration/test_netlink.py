"""nslab_netlink against ``ip -j -d``: the same namespaces read both ways parse to the same
links, addresses and routes (what every nslab module and view reads of a namespace), the
reading thread comes back to its own namespace, and a namespace that cannot be entered is
refused the way nsenter refuses it.

The test's two namespaces hold one of each thing nslab reads: a bridge with STP, a veth
pair inside one namespace and one across both, a VXLAN device, a link left down with
IPv6 address generation off, an alias, a qdisc, IPv4 and IPv6 addresses, and routes of
several kinds and protocols (nslab's 213 among them), in 10.213.100.0/24 and
fd00:213:100::/48.

    PYTHONPATH=collections:tests .venv/bin/python tests/integration/test_netlink.py --capture DIR
builds the same namespaces and writes the raw dumps and ip's output of one of them to DIR
(how tests/unit/fixtures/netlink/ was captured).
"""

import base64
import json
import os
import sys
import threading

import pytest

from helpers.kernel import sh
from ansible_collections.nslab.lab.plugins.module_utils import nslab_netlink
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import CommandError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import (
    json_documents, parse_links)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_routes import (
    parse_routes, read_namespace_text)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import (
    Runner, netns_path, subprocess_run)

# The fields of ip's documents that nslab's parsers read, compared one by one too.
LINK_KEYS = ("ifindex", "ifname", "mtu", "address", "link", "link_index", "link_netnsid",
             "master", "qdisc", "ifalias", "inet6_addr_gen_mode")
ROUTE_KEYS = ("type", "dst", "table", "protocol", "gateway", "dev")


def build(ip, a, b):
    """The test's objects in namespaces ``a`` and ``b`` (which exist), with ``ip(netns,
    *argv)``; returns whether a VXLAN device could be made (a kernel may lack vxlan)."""
    ip(a, "link", "add", "br0", "type", "bridge", "stp_state", "1")
    ip(a, "link", "set", "br0", "alias", "nslab:test:bridge", "up")
    ip(a, "addr", "add", "10.213.100.1/24", "dev", "br0")
    ip(a, "addr", "add", "fd00:213:100::1/64", "dev", "br0", "nodad")
    ip(a, "link", "add", "v1", "type", "veth", "peer", "name", "v2")    # a pair inside a
    ip(a, "link", "set", "v1", "master", "br0", "up")
    ip(a, "link", "set", "v2", "up")
    ip(a, "addr", "add", "10.213.100.2/24", "dev", "v2")
    ip(a, "link", "add", "x1", "mtu", "1400", "type", "veth", "peer", "name", "x2",
       "netns", b)                                                       # a pair across
    ip(a, "link", "set", "x1", "up")
    ip(a, "addr", "add", "10.213.100.129/30", "dev", "x1")
    ip(b, "link", "set", "x2", "up")
    ip(b, "addr", "add", "10.213.100.130/30", "dev", "x2")
    ip(b, "addr", "add", "fd00:213:100:1::2/64", "dev", "x2", "nodad")
    ip(b, "route", "add", "default", "via", "10.213.100.129", "proto", "static")
    ip(a, "link", "add", "d0", "type", "veth", "peer", "name", "d0p")
    ip(a, "link", "set", "d0", "addrgenmode", "none", "mtu", "1280")      # left down
    ip(a, "addr", "add", "10.213.100.200/32", "dev", "d0")
    ip(a, "route", "add", "10.213.101.0/24", "via", "10.213.100.3", "proto", "213")
    ip(a, "route", "add", "10.213.102.7", "via", "10.213.100.4", "dev", "br0")
    ip(a, "route", "add", "blackhole", "10.213.103.0/24")
    ip(a, "route", "add", "fd00:213:101::/64", "via", "fd00:213:100::3", "proto", "213")
    ip(a, "route", "add", "10.213.104.0/24", "dev", "br0", "table", "213")
    ip(a, "route", "add", "default", "via", "10.213.100.254", "proto", "ospf", "metric", "20")
    tc = ip(a, "qdisc", "add", "dev", "x1", "root", "pfifo", tool="tc", check=False)
    vxlan = ip(a, "link", "add", "vx0", "type", "vxlan", "id", "4242", "local", "10.213.100.1",
               "dstport", "4789", "nolearning", check=False)
    if vxlan:
        ip(a, "link", "set", "vx0", "master", "br0", "up")
    return bool(vxlan), bool(tc)


def projection(docs):
    """ip's documents as the fields nslab reads: per listing, per item."""
    shown = []
    for doc in docs:
        items = []
        for item in doc:
            if "addr_info" in item:
                items.append((item["ifindex"], sorted(
                    (a["family"], a["local"], a["prefixlen"]) for a in item["addr_info"]
                    if a.get("family") in ("inet", "inet6"))))
            elif "dst" in item:
                if item.get("type", "unicast") not in ("multicast",):
                    items.append(tuple(item.get(k, "main" if k == "table" else None)
                                       for k in ROUTE_KEYS))
            else:
                info = item.get("linkinfo") or {}
                data = info.get("info_data") or {}
                items.append(tuple(item.get(k) for k in LINK_KEYS) + (
                    "UP" in item.get("flags", []), info.get("info_kind"),
                    data.get("stp_state") if info.get("info_kind") == "bridge" else None,
                    tuple(data.get(k) for k in ("id", "local", "port", "learning"))
                    if info.get("info_kind") == "vxlan" else None))
        shown.append(sorted(items, key=repr))
    return shown


@pytest.fixture
def spaces(lab, module):
    a, b = lab.n("nla"), lab.n("nlb")
    assert module("nslab_namespace", dict(lab=lab.name, namespaces=[
        dict(name=a), dict(name=b)]))["changed"]

    def ip(netns, *argv, tool="ip", check=True):
        return sh(tool, *argv, netns=netns, check=check).returncode == 0
    vxlan, qdisc = build(ip, a, b)
    return a, b, vxlan, qdisc


def test_a_namespace_read_over_netlink_is_what_ip_lists(spaces):
    a, b, vxlan, qdisc = spaces
    by_ip, by_netlink = Runner(subprocess_run), Runner(subprocess_run, netlink=True)
    assert by_netlink.netlink, "this machine cannot read namespaces over netlink"
    for netns in (a, b, None):
        listed, read = read_namespace_text(by_ip, netns), read_namespace_text(by_netlink, netns)
        assert parse_links(read) == parse_links(listed), netns
        assert sorted(parse_routes(read), key=repr) == sorted(parse_routes(listed), key=repr)
        if netns is not None:       # the host's links change under other tests' feet
            assert projection(json_documents(read)) == projection(json_documents(listed))
    links = parse_links(read_namespace_text(by_netlink, a))
    # what the comparison covered, so that it cannot pass on empty reads
    assert links["br0"].stp is True and links["br0"].alias == "nslab:test:bridge"
    assert links["v1"].master == "br0" and links["v1"].peer_ifindex is None
    assert links["x1"].peer_netnsid is not None and links["x1"].mtu == 1400
    assert links["d0"].addrgenmode == "none" and not links["d0"].up
    assert "fd00:213:100::1/64" in links["br0"].addresses
    assert not vxlan or links["vx0"].vxlan == {"vni": 4242, "local": "10.213.100.1",
                                               "port": 4789, "learning": False}
    assert not qdisc or links["x1"].qdisc == "pfifo"
    routes = dict((r.key, r) for r in parse_routes(read_namespace_text(by_netlink, a)))
    assert routes[(4, "10.213.101.0/24")].owned and routes[(6, "fd00:213:101::/64")].owned
    assert routes[(4, "default")].proto == "ospf"
    assert routes[(4, "10.213.102.7/32")].via == "10.213.100.4"


def test_the_reading_threads_stay_in_their_own_namespace(spaces):
    a, b, _vxlan, _qdisc = spaces
    runner = Runner(subprocess_run, netlink=True)
    home = os.stat("/proc/thread-self/ns/net").st_ino
    seen = []

    def read(netns):
        runner.read_links(netns=netns)
        seen.append(os.stat("/proc/thread-self/ns/net").st_ino)
        return threading.get_ident()

    runner.each(read, [a, b] * 8)
    assert set(seen) == {home} and os.stat("/proc/thread-self/ns/net").st_ino == home
    # a command run after the reads runs in the host's namespace, not in a node's
    out = runner.run(["readlink", "/proc/self/ns/net"])
    assert out.strip() == os.readlink("/proc/self/ns/net")


def test_a_namespace_that_cannot_be_entered_is_refused_as_nsenter_refuses_it(lab):
    runner = Runner(subprocess_run, netlink=True)
    with pytest.raises(CommandError) as err:
        runner.read_links(netns=lab.n("nosuch"))
    assert "cannot open %s" % netns_path(lab.n("nosuch")) in str(err.value.stderr)
    assert "No such file or directory" in str(err.value.stderr)


def capture(directory):
    """Builds the namespaces (nslab-nlcap-a/b), writes a's raw dumps and ip's output."""
    import subprocess
    a, b = "nslab-nlcap-a", "nslab-nlcap-b"

    def ip(netns, *argv, tool="ip", check=True):
        return subprocess.run([tool, "-n", netns] + list(argv), check=check).returncode == 0
    for name in (a, b):
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        build(ip, a, b)
        sock = nslab_netlink.open_socket(netns_path(a))
        with sock:
            dumps = dict((obj, nslab_netlink.dump(sock, obj, i + 1))
                         for i, obj in enumerate(("link", "addr", "route")))
        listed = Runner(subprocess_run).ip_json(["route", "link", "addr"], a)
    finally:
        for name in (a, b):
            subprocess.run(["ip", "netns", "del", name], check=False)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "dumps.json"), "w") as handle:
        json.dump(dict((k, base64.b64encode(v).decode()) for k, v in dumps.items()), handle,
                  indent=1)
    with open(os.path.join(directory, "ip.json"), "w") as handle:
        handle.write(listed)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--capture"] or len(sys.argv) != 3:
        sys.exit("usage: test_netlink.py --capture DIR")
    capture(sys.argv[2])

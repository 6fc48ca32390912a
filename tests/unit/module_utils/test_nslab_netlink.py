"""nslab_netlink's decoding, on dumps captured from a namespace with one of each thing nslab
reads (tests/integration/test_netlink.py --capture): it parses to what ip listed of the
same namespace at the same moment."""

import base64
import json
import struct

import pytest

from ansible_collections.nslab.lab.plugins.module_utils import nslab_netlink
from ansible_collections.nslab.lab.plugins.module_utils.nslab_iproute import parse_links
from ansible_collections.nslab.lab.plugins.module_utils.nslab_routes import parse_routes

from helpers.paths import ROOT

FIXTURES = ROOT / "tests" / "unit" / "fixtures" / "netlink"


@pytest.fixture(scope="module")
def captured():
    dumps = dict((k, base64.b64decode(v)) for k, v in json.loads(
        (FIXTURES / "dumps.json").read_text()).items())
    return dumps, (FIXTURES / "ip.json").read_text()


def text(docs):
    return "\n".join(json.dumps(doc) for doc in docs)


def test_the_captured_namespace_decodes_to_what_ip_listed(captured):
    dumps, listed = captured
    read = text(nslab_netlink.documents(dumps, ["route", "link", "addr"]))
    assert parse_links(read) == parse_links(listed)
    assert sorted(parse_routes(read), key=repr) == sorted(parse_routes(listed), key=repr)
    links = parse_links(read)
    assert {"br0", "v1", "v2", "x1", "d0", "d0p", "vx0", "lo"} <= set(links)
    assert links["vx0"].vxlan == {"vni": 4242, "local": "10.213.100.1", "port": 4789,
                                  "learning": False}
    assert links["br0"].stp and links["x1"].qdisc == "pfifo" and links["d0"].addrgenmode == "none"


def test_only_the_asked_listings_come_back_in_order(captured):
    dumps, _listed = captured
    docs = nslab_netlink.documents(dumps, ["link"])
    assert len(docs) == 1 and all("ifname" in item for item in docs[0])
    route, link = nslab_netlink.documents(dumps, ["route", "link"])
    assert all("dst" in item for item in route) and link == docs[0]
    with pytest.raises(ValueError):
        nslab_netlink.documents(dumps, ["neigh"])


def message(kind, payload):
    return struct.pack("=IHHII", 16 + len(payload), kind, 0, 1, 0) + payload


def test_an_error_reply_raises_with_the_kernels_reason():
    reply = message(nslab_netlink.NLMSG_ERROR, struct.pack("=i", -1) + b"\0" * 16)
    with pytest.raises(nslab_netlink.NetlinkError, match="Operation not permitted"):
        nslab_netlink.messages(reply)
    ack = message(nslab_netlink.NLMSG_ERROR, struct.pack("=i", 0) + b"\0" * 16)
    assert nslab_netlink.messages(ack + message(nslab_netlink.NLMSG_DONE, b"\0" * 4)) == []


def test_a_malformed_message_is_refused_not_looped_on():
    with pytest.raises(nslab_netlink.NetlinkError, match="malformed"):
        nslab_netlink.messages(struct.pack("=IHHII", 4, 16, 0, 1, 0))


def test_nested_attributes_lose_their_flag():
    inner = struct.pack("=HH", 8, 5) + struct.pack("=I", 1)
    outer = struct.pack("=HH", 4 + len(inner), 2 | 0x8000) + inner
    assert nslab_netlink.attributes(outer) == {2: inner}


def test_protocol_names_are_ips_and_those_of_rt_protos(tmp_path):
    protos = tmp_path / "rt_protos"
    protos.write_text("# local names\n213  nslab\n250 mine # comment\nbad line\n")
    names = nslab_netlink.protocol_names([str(protos), str(tmp_path / "missing")])
    assert names[2] == "kernel" and names[188] == "ospf"
    assert names[213] == "nslab" and names[250] == "mine"

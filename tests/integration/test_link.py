"""nslab_link against the real kernel: link state, netem on both ends, foreign qdiscs.

Two namespaces (nodes a and b) of the test lab: a's eth0 and b's eth0 on a bridge, and a
point-to-point eth1 between them. Subnets in 10.213.172.0/22.

The netem tests need the kernel's sch_netem; they skip (saying so) on a kernel built without
it, such as the 6.18 "fc" kernel of the development machines (CONFIG_NET_SCH_NETEM unset).
"""

import json
import re

import pytest

from helpers.ansible_runs import run_playbook
from helpers.kernel import sh


@pytest.fixture
def topo(lab, module):
    """Nodes a and b on a bridge, and a point-to-point link a:eth1 - b:eth1; one module
    run (nslab_nodes: the bridge, the namespaces, the veth pairs)."""
    built = module("nslab_nodes", dict(
        lab=lab.name,
        bridges=[dict(name=lab.n("br"), addresses=["10.213.172.1/24"])],
        namespaces=[dict(name=lab.n("a")), dict(name=lab.n("b"))],
        veths=[dict(name=lab.n("va"), bridge=lab.n("br"),
                    peer=dict(name="eth0", netns=lab.n("a"), addresses=["10.213.172.11/24"])),
               dict(name=lab.n("vb"), bridge=lab.n("br"),
                    peer=dict(name="eth0", netns=lab.n("b"), addresses=["10.213.172.12/24"])),
               dict(name="eth1", netns=lab.n("a"), addresses=["10.213.173.1/30"],
                    peer=dict(name="eth1", netns=lab.n("b"), addresses=["10.213.173.2/30"]))]))
    assert built["changed"] and list(built["parts"]) == ["bridges", "namespaces", "veths"], \
        built
    return lab


def netem_available(netns):
    """Can this kernel add a netem qdisc? Probed on lo of a namespace the test made."""
    added = sh("tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "netem", "delay",
               "1ms", netns=netns, check=False).returncode == 0
    if added:
        sh("tc", "qdisc", "del", "dev", "lo", "root", netns=netns)
    return added


@pytest.fixture
def netem_topo(topo):
    if not netem_available(topo.n("a")):
        pytest.skip("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not set)")
    return topo


def root_qdisc(dev, netns=None):
    out = sh("tc", "-j", "qdisc", "show", "dev", dev, netns=netns).stdout
    return [q for q in json.loads(out) if q.get("root")][0]


def operstate(dev, netns=None):
    return json.loads(sh("ip", "-j", "link", "show", "dev", dev, netns=netns).stdout)[0][
        "operstate"]


def ping_rtts(netns, address, count=10):
    proc = sh("ping", "-c", str(count), "-i", "0.2", "-W", "2", address, netns=netns,
              check=False)
    return [float(x) for x in re.findall(r"time=([\d.]+) ms", proc.stdout)]


def link_args(lab, **entry):
    return dict(lab=lab.name, links=[dict(dict(node="a", interface="eth1"), **entry)])


def test_state_down_and_up_on_both_ends_check_mode_and_rerun(topo, module):
    a, b = topo.n("a"), topo.n("b")
    assert ping_rtts(a, "10.213.173.2", count=1)
    down = link_args(topo, state="down")
    result = module("nslab_link", down, check=True, diff=True)
    assert result["changed"] is True
    assert result["actions"] == ["set eth1 in netns '%s' down" % a,
                                 "set eth1 in netns '%s' down" % b]
    assert result["diff"]["after"]["a:eth1"][1]["state"] == "down"
    assert operstate("eth1", a) == operstate("eth1", b) == "UP"      # check mode: untouched

    result = module("nslab_link", down, diff=True)
    assert result["changed"] is True
    assert operstate("eth1", a) == operstate("eth1", b) == "DOWN"
    assert ping_rtts(a, "10.213.173.2", count=1) == []
    assert ping_rtts(a, "10.213.172.12", count=1)                     # eth0 untouched
    assert module("nslab_link", down)["changed"] is False

    result = module("nslab_link", link_args(topo, state="up"))
    assert result["changed"] is True
    assert operstate("eth1", a) == operstate("eth1", b) == "UP"
    assert ping_rtts(a, "10.213.173.2", count=1)
    assert module("nslab_link", link_args(topo, state="up"))["changed"] is False


def test_bridge_attachment_down_takes_the_host_end_down(topo, module):
    result = module("nslab_link", dict(lab=topo.name, links=[
        dict(node="b", interface="eth0", state="down")]))
    assert result["changed"] is True
    assert result["links"][0]["ends"][1]["device"] == topo.n("vb")
    assert result["links"][0]["ends"][1]["netns"] is None
    assert operstate(topo.n("vb")) == "DOWN" and operstate("eth0", topo.n("b")) == "DOWN"
    assert ping_rtts(topo.n("a"), "10.213.172.12", count=1) == []


def test_foreign_root_qdisc_is_reported_and_not_replaced(topo, module):
    # A tbf someone put on the host end of b's eth0 by hand.
    sh("tc", "qdisc", "add", "dev", topo.n("vb"), "root", "handle", "1:", "tbf", "rate",
       "1mbit", "burst", "32kbit", "latency", "400ms")
    result = module("nslab_link", dict(lab=topo.name, links=[
        dict(node="b", interface="eth0", netem=dict(delay="20ms"))]))
    assert result["_status"] == "failed"
    assert ("device %s (host) has a foreign root qdisc (tbf 1:)" % topo.n("vb")
            in result["msg"])
    assert root_qdisc(topo.n("vb"))["kind"] == "tbf"
    assert root_qdisc("eth0", topo.n("b"))["kind"] == "noqueue"       # nothing half-done
    # No impairment wanted: a warning, and the tbf stays.
    result = module("nslab_link", dict(lab=topo.name, links=[
        dict(node="b", interface="eth0")]))
    assert result["changed"] is False
    assert "foreign root qdisc (tbf 1:)" in " ".join(result.get("warnings", []))
    assert root_qdisc(topo.n("vb"))["kind"] == "tbf"


@pytest.mark.parametrize("entry, message", [
    (dict(node="zz", interface="eth0"), "links[0].node: node 'zz' has no net namespace"),
    (dict(node="a", interface="eth9"), "links[0].interface: node 'a' has no interface 'eth9'"),
    (dict(node="a", interface="lo"), "links[0].interface: 'lo' of node 'a' is not a veth of "
                                     "lab"),
    (dict(node="a", interface="eth1", netem=dict(delay="-5ms")),
     "links[0].netem.delay: '-5ms' is not a time"),
    (dict(node="a", interface="eth1", netem=dict(loss="120%")),
     "links[0].netem.loss: '120%' is not a percentage from 0 to 100"),
])
def test_bad_entries_fail_naming_the_entry_and_key(topo, module, entry, message):
    result = module("nslab_link", dict(lab=topo.name, links=[entry]))
    assert result["_status"] == "failed"
    assert message in result["msg"], result["msg"]


def test_same_veth_twice_is_refused(topo, module):
    result = module("nslab_link", dict(lab=topo.name, links=[
        dict(node="a", interface="eth1"), dict(node="b", interface="eth1", state="down")]))
    assert result["_status"] == "failed"
    assert "links[1]: node 'b' interface 'eth1' is the same veth as links[0]" in result["msg"]
    assert operstate("eth1", topo.n("b")) == "UP"


def test_a_veth_of_another_lab_is_refused(topo, module):
    # b's eth1 exists, but as the lab "other" sees it, node b is not its node.
    result = module("nslab_link", dict(lab="zz" + topo.name, links=[
        dict(node="b", interface="eth1", state="down")]))
    assert result["_status"] == "failed"
    assert "has no net namespace" in result["msg"]
    assert operstate("eth1", topo.n("b")) == "UP"


def test_netem_on_both_ends_rtt_change_removal_and_rerun(netem_topo, module):
    topo = netem_topo
    a, b = topo.n("a"), topo.n("b")
    base = min(ping_rtts(a, "10.213.173.2"))
    args = link_args(topo, netem=dict(delay="20ms", loss="0%"))
    result = module("nslab_link", args, check=True)
    assert result["changed"] is True
    assert root_qdisc("eth1", a)["kind"] == "noqueue"                 # check mode: untouched

    result = module("nslab_link", args, diff=True)
    assert result["changed"] is True
    for netns in (a, b):
        qdisc = root_qdisc("eth1", netns)
        assert (qdisc["kind"], qdisc["handle"]) == ("netem", "4e53:")
        assert qdisc["options"]["delay"]["delay"] == pytest.approx(0.02)
    assert module("nslab_link", args)["changed"] is False
    # 20 ms on the egress of each end: ~40 ms more round trip. Tolerance: the minimum of 10
    # pings is within [+38 ms, +60 ms] of the unimpaired minimum (timer slack, a loaded CI).
    rtt = min(ping_rtts(a, "10.213.173.2"))
    assert 38 <= rtt - base <= 60, (base, rtt)

    full = dict(delay="30ms", jitter="1ms", loss="1%", rate="10mbit", corrupt="0.1%",
                duplicate="1%", reorder="25%")
    module("nslab_link", link_args(topo, netem=full))
    options = root_qdisc("eth1", b)["options"]
    assert options["rate"]["rate"] == 1250000 and options["reorder"]["reorder"] == 0.25
    # Dropping rate/corrupt/reorder (which a tc change would keep) really drops them.
    assert module("nslab_link", link_args(topo, netem=dict(delay="5ms")))["changed"] is True
    options = root_qdisc("eth1", b)["options"]
    assert "rate" not in options and "reorder" not in options and "corrupt" not in options
    assert module("nslab_link", link_args(topo, netem=dict(delay="5ms")))["changed"] is False

    result = module("nslab_link", link_args(topo))                    # no netem: removed
    assert result["changed"] is True
    assert root_qdisc("eth1", a)["kind"] == root_qdisc("eth1", b)["kind"] == "noqueue"
    assert module("nslab_link", link_args(topo))["changed"] is False


def test_per_direction_netem(netem_topo, module):
    topo = netem_topo
    module("nslab_link", dict(lab=topo.name, links=[dict(
        node="a", interface="eth0", netem=dict(egress=dict(delay="7ms"),
                                               ingress=dict(loss="5%")))]))
    assert root_qdisc("eth0", topo.n("a"))["options"]["delay"]["delay"] == pytest.approx(0.007)
    host = root_qdisc(topo.n("va"))["options"]
    assert host["loss-random"]["loss"] == pytest.approx(0.05) and "delay" not in host


def test_impair_playbook_degrades_and_restores(topo):
    a, b = topo.n("a"), topo.n("b")
    proc = run_playbook("playbooks/impair.yml", dict(lab=topo.name, node="a", interface="eth1",
                                                     state="down"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert operstate("eth1", a) == operstate("eth1", b) == "DOWN"
    proc = run_playbook("playbooks/impair.yml", dict(lab=topo.name, node="a", interface="eth1",
                                                     restore=True))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert operstate("eth1", a) == operstate("eth1", b) == "UP"


def test_a_veth_nslab_did_not_make_is_refused_by_name(topo, module):
    # A pair made by hand from node a's namespace to the host (no nslab ifalias): not the
    # lab's link, although it is in the lab's namespace and named after the lab.
    a, host_end = topo.n("a"), topo.n("hand1")
    sh("ip", "link", "add", "name", "hand0", "type", "veth", "peer", "name", host_end,
       "netns", "1", netns=a)
    sh("ip", "link", "set", "hand0", "up", netns=a)
    sh("ip", "link", "set", host_end, "up")
    result = module("nslab_link", dict(lab=topo.name, links=[
        dict(node="a", interface="hand0", state="down")]))
    assert result["_status"] == "failed"
    assert ("links[0].interface: 'hand0' of node 'a' is not a veth of lab '%s'" % topo.name
            in result["msg"])
    assert operstate("hand0", a) != "DOWN" and operstate(host_end) != "DOWN"

"""netem values, tc argv, the tc -j parser and the link planner (pure functions).

The tc_*.json fixtures are real `tc -j qdisc show` output (see fixtures/tc_README.txt).
"""

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ApplyError, CommandError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_netem import (
    NSLAB_HANDLE, EndDesired, EndState, RootQdisc, apply_actions, delete_argv, keep_addresses_argv,
    netem_argv, netem_equal, netem_problems, normalize_netem, parse_root_qdiscs, plan_end,
    plan_link)

from helpers.paths import UNIT_FIXTURES as FIXTURES


def fixture(name, dev=None):
    return parse_root_qdiscs((FIXTURES / name).read_text(), dev=dev)


# ---------------------------------------------------------------------------- validation

@pytest.mark.parametrize("value", [
    None, {}, {"delay": "20ms"}, {"delay": "20ms", "jitter": "2ms", "loss": "1%",
                                  "rate": "10mbit", "corrupt": "0.1%", "duplicate": "1%",
                                  "reorder": "25%"},
    {"delay": "1.5s"}, {"delay": "250us"}, {"rate": "12kbps"}, {"loss": "100%"},
    {"egress": {"delay": "10ms"}, "ingress": {"loss": "5%"}}, {"egress": {"rate": "1gbit"}},
    {"ingress": None, "egress": None}, {"delay": "0ms"}, {"rate": "10MBit"},
])
def test_good_values_have_no_problems(value):
    assert netem_problems("links[0].netem", value) == []


@pytest.mark.parametrize("value, fragment", [
    ({"delay": "-20ms"}, "links[0].netem.delay: '-20ms' is not a time: a number and us, ms or s"),
    ({"delay": 20}, "links[0].netem.delay: 20 is not a time"),
    ({"delay": "20 min"}, "links[0].netem.delay: '20 min' is not a time"),
    ({"loss": "101%"}, "links[0].netem.loss: '101%' is not a percentage from 0 to 100"),
    ({"loss": 1}, "links[0].netem.loss: 1 is not a percentage"),
    ({"loss": "-1%"}, "links[0].netem.loss: '-1%' is not a percentage"),
    ({"rate": "10"}, "links[0].netem.rate: '10' is not a rate: a number and bit, kbit"),
    ({"rate": "10mb"}, "links[0].netem.rate: '10mb' is not a rate"),
    ({"rate": "5000gbit"}, "links[0].netem.rate: '5000gbit' is not a rate"),
    ({"latency": "20ms"}, "links[0].netem: unknown key 'latency'; expected some of delay, jitter"),
    ({"jitter": "2ms"}, "links[0].netem.jitter: '2ms' needs a delay greater than 0"),
    ({"reorder": "25%"}, "links[0].netem.reorder: '25%' needs a delay greater than 0"),
    ("20ms", "links[0].netem: expected a mapping"),
    ({"egress": {"delay": "x"}}, "links[0].netem.egress.delay: 'x' is not a time"),
    ({"egress": {"delay": "1ms"}, "loss": "1%"}, "links[0].netem: either the keys egress/ingress"),
    ({"ingress": "1ms"}, "links[0].netem.ingress: expected a mapping"),
    ({"delay": True}, "links[0].netem.delay: True is not a time"),
])
def test_bad_values_name_the_key_the_value_and_the_expected_form(value, fragment):
    problems = netem_problems("links[0].netem", value)
    assert len(problems) == 1, problems
    assert problems[0].startswith(fragment), problems


def test_every_bad_key_is_listed():
    problems = netem_problems("n", {"delay": "x", "loss": "200%", "rate": "fast"})
    assert [p.split(":")[0] for p in problems] == ["n.delay", "n.loss", "n.rate"]


# ---------------------------------------------------------------------------- canonical form

def test_flat_value_applies_to_both_directions_in_canonical_units():
    normal = normalize_netem({"delay": "0.02s", "jitter": "2000us", "loss": "1.0%",
                              "rate": "1mbps", "corrupt": "0.10%", "duplicate": "0%"})
    want = {"delay": "20ms", "jitter": "2ms", "loss": "1%", "rate": "8mbit", "corrupt": "0.1%"}
    assert normal == {"egress": want, "ingress": want}
    assert normal["egress"] is not normal["ingress"]


def test_directional_value_and_empty_directions():
    assert normalize_netem({"egress": {"delay": "1500us"}}) == {
        "egress": {"delay": "1500us"}, "ingress": None}
    assert normalize_netem({"delay": "0ms", "loss": "0%"}) == {"egress": None, "ingress": None}
    assert normalize_netem(None) == {"egress": None, "ingress": None}


def test_rate_is_truncated_to_whole_bytes_as_the_kernel_stores_it():
    assert normalize_netem({"rate": "1001bit"})["egress"] == {"rate": "1kbit"}
    assert normalize_netem({"rate": "12kbps"})["egress"] == {"rate": "96kbit"}


def test_tc_argv_puts_nslab_handle_and_every_option():
    netem = normalize_netem({"delay": "20ms", "jitter": "2ms", "loss": "1%", "rate": "10mbit",
                             "corrupt": "0.1%", "duplicate": "1%", "reorder": "25%"})["egress"]
    assert netem_argv("eth1", netem) == [
        "qdisc", "add", "dev", "eth1", "root", "handle", "4e53:", "netem", "delay", "20ms", "2ms",
        "loss", "1%", "duplicate", "1%", "reorder", "25%", "corrupt", "0.1%", "rate", "10mbit"]
    assert delete_argv("eth1") == ["qdisc", "del", "dev", "eth1", "root", "handle", "4e53:"]


# ---------------------------------------------------------------------------- parser

def test_parse_full_netem_reads_back_what_was_added():
    qdisc = fixture("tc_qdisc_netem_full.json", dev="va")["va"]
    assert (qdisc.kind, qdisc.handle, qdisc.owner) == ("netem", NSLAB_HANDLE, "nslab")
    # The command was: netem delay 20ms 2ms loss 1% duplicate 1% reorder 25% corrupt 0.1%
    # rate 10mbit; reading it back gives exactly the canonical form of that input.
    added = normalize_netem({"delay": "20ms", "jitter": "2ms", "loss": "1%",
                             "duplicate": "1%", "reorder": "25%", "corrupt": "0.1%",
                             "rate": "10mbit"})["egress"]
    assert qdisc.netem == added


def test_parse_change_that_omitted_options_shows_the_sticky_ones():
    qdisc = fixture("tc_qdisc_netem_after_change.json", dev="va")["va"]
    assert qdisc.netem == {"delay": "100ms", "reorder": "25%", "corrupt": "0.1%",
                           "rate": "10mbit"}


def test_parse_rounding_of_json_times_still_compares_equal():
    qdisc = fixture("tc_qdisc_netem_rounding.json", dev="va")["va"]
    assert qdisc.netem == {"delay": "1234570us", "loss": "33.3333%", "rate": "1gbit"}
    wanted = normalize_netem({"delay": "1234567us", "loss": "33.3333%",
                              "rate": "1gbit"})["egress"]
    assert netem_equal(qdisc.netem, wanted)
    assert not netem_equal(qdisc.netem, dict(wanted, delay="1235ms"))


def test_parse_rate_in_bytes():
    assert fixture("tc_qdisc_netem_rate_kbps.json", dev="va")["va"].netem == {"rate": "96kbit"}


@pytest.mark.parametrize("name, dev, owner, kind, handle", [
    ("tc_qdisc_default_veth.json", "va", "default", "noqueue", "0:"),
    ("tc_qdisc_foreign_tbf.json", "vb", "foreign", "tbf", "1:"),
    ("tc_qdisc_foreign_netem.json", "vb", "foreign", "netem", "8001:"),
])
def test_owner_of_the_root_qdisc(name, dev, owner, kind, handle):
    qdisc = fixture(name, dev=dev)[dev]
    assert (qdisc.owner, qdisc.kind, qdisc.handle) == (owner, kind, handle)


def test_parse_all_devices_and_skip_non_root_qdiscs():
    assert list(fixture("tc_qdisc_all_devices.json")) == ["vb"]
    only = fixture("tc_qdisc_with_ingress.json", dev="vb")
    assert list(only) == ["vb"] and only["vb"].kind == "netem"
    host = fixture("tc_qdisc_host_fq_codel.json")
    assert {d: q.owner for d, q in host.items()} == {"lo": "default", "eth0": "default"}
    assert parse_root_qdiscs("[]", dev="x") == {}


# ---------------------------------------------------------------------------- planner

def end(dev, qdisc_file=None, up=True, netns="lab-n1"):
    qdisc = fixture(qdisc_file, dev=dev)[dev] if qdisc_file else None
    return EndState(netns=netns, dev=dev, qdisc=qdisc, up=up)


def down(dev):
    """A down action's commands: keep the IPv6 addresses, then set the device down."""
    return " ".join(keep_addresses_argv(dev) + ["ip", "link", "set", "dev", dev, "down"])


def argvs(actions):
    return [(a.netns, " ".join(" ".join(argv) for argv in a.argv)) for a in actions]


def test_plan_adds_netem_to_both_ends_of_a_default_link():
    node, peer = end("va", "tc_qdisc_default_veth.json"), end("vh", None, netns=None)
    actions, problems, warnings = plan_link(node, peer, {"delay": "20ms"})
    assert problems == [] and warnings == []
    assert argvs(actions) == [
        ("lab-n1", "tc qdisc add dev va root handle 4e53: netem delay 20ms"),
        (None, "tc qdisc add dev vh root handle 4e53: netem delay 20ms")]
    assert actions[0].undo == [["tc", "qdisc", "del", "dev", "va", "root", "handle", "4e53:"]]
    assert actions[1].summary == "add netem delay 20ms to vh (host)"


def test_plan_is_empty_when_the_kernel_already_matches():
    full = {"delay": "20ms", "jitter": "2ms", "loss": "1%", "duplicate": "1%",
            "reorder": "25%", "corrupt": "0.1%", "rate": "10mbit"}
    node = end("va", "tc_qdisc_netem_full.json")
    peer = end("va", "tc_qdisc_netem_full.json", netns="lab-n2")
    assert plan_link(node, peer, full) == ([], [], [])


def test_plan_changes_in_place_when_no_sticky_option_goes():
    node = end("va", "tc_qdisc_netem_full.json")
    actions, _, _ = plan_end(node, EndDesired(netem=normalize_netem(
        {"delay": "50ms", "loss": "2%", "reorder": "25%", "corrupt": "0.1%",
         "rate": "10mbit"})["egress"], up=True))
    assert argvs(actions) == [("lab-n1", "tc qdisc change dev va root handle 4e53: netem "
                                         "delay 50ms loss 2% reorder 25% corrupt 0.1% "
                                         "rate 10mbit")]
    # Undo restores the old impairment exactly: delete, then add the old one.
    assert [" ".join(u) for u in actions[0].undo] == [
        "tc qdisc del dev va root handle 4e53:",
        "tc qdisc add dev va root handle 4e53: netem delay 20ms 2ms loss 1% duplicate 1% "
        "reorder 25% corrupt 0.1% rate 10mbit"]


def test_plan_deletes_and_adds_when_a_sticky_option_goes():
    node = end("va", "tc_qdisc_netem_after_change.json")
    actions, _, _ = plan_end(node, EndDesired(netem={"delay": "100ms"}, up=True))
    assert argvs(actions) == [("lab-n1", "tc qdisc del dev va root handle 4e53: "
                                         "tc qdisc add dev va root handle 4e53: netem delay 100ms")]


def test_plan_removes_nslab_netem_when_no_impairment_is_wanted():
    node, peer = end("va", "tc_qdisc_netem_rate_kbps.json"), end("vb", "tc_qdisc_default_veth.json")
    actions, problems, _ = plan_link(node, peer, None)
    assert problems == []
    assert argvs(actions) == [("lab-n1", "tc qdisc del dev va root handle 4e53:")]
    assert actions[0].undo == [["tc", "qdisc", "add", "dev", "va", "root", "handle", "4e53:",
                                "netem", "rate", "96kbit"]]


def test_plan_sets_link_state_on_both_ends_only_where_it_differs():
    node, peer = end("va", up=True), end("vb", up=False, netns="lab-n2")
    actions, _, _ = plan_link(node, peer, None, state="down")
    assert argvs(actions) == [("lab-n1", down("va"))]
    assert actions[0].undo == [["ip", "link", "set", "dev", "va", "up"]]
    actions, _, _ = plan_link(node, peer, None, state="up")
    assert argvs(actions) == [("lab-n2", "ip link set dev vb up")]


def test_per_direction_netem_goes_egress_on_node_end_ingress_on_peer_end():
    node, peer = end("va"), end("vb", netns="lab-n2")
    actions, _, _ = plan_link(node, peer, {"egress": {"delay": "5ms"}, "ingress": {"loss": "3%"}})
    assert argvs(actions) == [
        ("lab-n1", "tc qdisc add dev va root handle 4e53: netem delay 5ms"),
        ("lab-n2", "tc qdisc add dev vb root handle 4e53: netem loss 3%")]


@pytest.mark.parametrize("qdisc_file", ["tc_qdisc_foreign_tbf.json", "tc_qdisc_foreign_netem.json"])
def test_foreign_root_qdisc_is_a_problem_naming_the_device_and_never_replaced(qdisc_file):
    node, peer = end("vb", qdisc_file, netns="lab-n2"), end("vh", netns=None)
    actions, problems, _ = plan_link(node, peer, {"delay": "20ms"})
    assert actions == []
    assert len(problems) == 1
    assert problems[0].startswith("device vb in netns 'lab-n2' has a foreign root qdisc (")


def test_foreign_root_qdisc_is_only_a_warning_when_no_impairment_is_wanted():
    node, peer = end("vb", "tc_qdisc_foreign_tbf.json", netns="lab-n2"), end("vh", netns=None)
    actions, problems, warnings = plan_link(node, peer, None, state="down")
    assert problems == []
    assert "foreign root qdisc (tbf 1:)" in warnings[0]
    # the link state is still converged; the tbf is not touched
    assert argvs(actions) == [("lab-n2", down("vb")), (None, down("vh"))]


def test_root_qdisc_owner_of_nslab_handle_with_another_kind_is_foreign():
    assert RootQdisc(dev="x", kind="tbf", handle=NSLAB_HANDLE).owner == "foreign"
    assert RootQdisc(dev="x", kind="pfifo_fast", handle="0:").owner == "default"
    assert RootQdisc(dev="x", kind="pfifo", handle="0:").owner == "foreign"


# ---------------------------------------------------------------------------- apply / rollback

class FakeKernel:
    """Records commands; the command matching ``fail_on`` (and any undo delete listed in
    ``also_fail``) fails like the real tool would."""

    def __init__(self, fail_on, also_fail=()):
        self.fail_on, self.also_fail, self.ran = fail_on, also_fail, []

    def __call__(self, netns, argv):
        line = " ".join(argv)
        if line == self.fail_on or line in self.also_fail:
            self.ran.append("FAIL %s" % line)
            raise CommandError(argv, 2, "RTNETLINK answers: No such file or directory")
        self.ran.append("%s: %s" % (netns, line))


def test_apply_runs_every_action_in_order():
    node, peer = end("va"), end("vh", netns=None)
    actions, _, _ = plan_link(node, peer, {"delay": "20ms"}, state="down")
    kernel = FakeKernel(fail_on=None)
    assert apply_actions(kernel, actions) == actions
    assert kernel.ran == ["lab-n1: tc qdisc add dev va root handle 4e53: netem delay 20ms",
                          "lab-n1: " + " ".join(keep_addresses_argv("va")),
                          "lab-n1: ip link set dev va down",
                          "None: tc qdisc add dev vh root handle 4e53: netem delay 20ms",
                          "None: " + " ".join(keep_addresses_argv("vh")),
                          "None: ip link set dev vh down"]


def test_a_failure_half_way_undoes_the_entry_newest_first():
    node, peer = end("va"), end("vh", netns=None)
    actions, _, _ = plan_link(node, peer, {"delay": "20ms"}, state="down")
    kernel = FakeKernel(fail_on="tc qdisc add dev vh root handle 4e53: netem delay 20ms")
    with pytest.raises(ApplyError) as caught:
        apply_actions(kernel, actions)
    assert kernel.ran[3:] == ["FAIL tc qdisc add dev vh root handle 4e53: netem delay 20ms",
                              "lab-n1: ip link set dev va up",
                              "lab-n1: tc qdisc del dev va root handle 4e53:"]
    assert caught.value.rolled_back == ["set va in netns 'lab-n1' down",
                                        "add netem delay 20ms to va in netns 'lab-n1'"]
    assert caught.value.rollback_errors == []
    assert "rolled back 2 step(s)" in str(caught.value)


def test_a_failed_add_after_delete_restores_the_old_netem():
    # Dropping rate/reorder/corrupt is delete + add; if the add fails, the old qdisc comes
    # back (the undo's delete finds nothing, which is expected, not an error).
    node = end("va", "tc_qdisc_netem_after_change.json")
    actions, _, _ = plan_end(node, EndDesired(netem={"delay": "100ms"}, up=True))
    add = "tc qdisc add dev va root handle 4e53: netem delay 100ms"
    calls = []

    def run(netns, argv):
        calls.append(" ".join(argv))
        if " ".join(argv) == add or (len(calls) > 2 and argv[1:3] == ["qdisc", "del"]):
            raise CommandError(argv, 2, "RTNETLINK answers: No such file or directory")

    with pytest.raises(ApplyError) as caught:
        apply_actions(run, actions)
    assert calls == ["tc qdisc del dev va root handle 4e53:", add,
                     "tc qdisc del dev va root handle 4e53:",
                     "tc qdisc add dev va root handle 4e53: netem delay 100ms reorder 25% "
                     "corrupt 0.1% rate 10mbit"]
    assert caught.value.rollback_errors == []
    # Half of the action ran (the delete): it is reported done, and undone.
    assert caught.value.done == caught.value.rolled_back == [actions[0].summary]


def test_a_failure_of_the_first_command_undoes_nothing():
    node = end("va", "tc_qdisc_netem_full.json")
    actions, _, _ = plan_end(node, EndDesired(netem={"delay": "50ms"}, up=True))
    kernel = FakeKernel(fail_on=" ".join(actions[0].argv[0]))
    with pytest.raises(ApplyError) as caught:
        apply_actions(kernel, actions)
    assert len(kernel.ran) == 1 and caught.value.rolled_back == []

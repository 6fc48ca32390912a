"""apply_plan: one ip process per (phase, netns), rollback of done steps on failure.

The runner is a recording fake: this tests the ordering and rollback logic only;
integration tests run the same code against the kernel.
"""

import pytest

from ansible.module_utils.nslab_errors import ApplyError, BatchError
from ansible.module_utils.nslab_plan import ADDRESS, CREATE, UP, Action, Step, apply_plan, batches, ordered_steps
from ansible.module_utils.nslab_runner import Runner


class FakeRunner:
    def __init__(self, fail_on=None):
        self.calls = []
        self.fail_on = fail_on

    def ip_batch(self, commands, netns=None, force=False, tool="ip"):
        prefix = "" if tool == "ip" else tool + " "
        self.calls.append((netns, [prefix + " ".join(c) for c in commands], force))
        for index, cmd in enumerate(commands):
            if " ".join(cmd) == self.fail_on:
                raise BatchError(["ip"], 1, "RTNETLINK answers: File exists\n", index,
                                 [" ".join(c) for c in commands])


def plan():
    return [
        Action("create a", [Step(CREATE, None, ["link", "add", "a"], (None, ["link", "del", "a"])),
                            Step(UP, "ns", ["link", "set", "b", "up"], ("ns", ["link", "set", "b", "down"]))]),
        Action("address", [Step(ADDRESS, "ns", ["addr", "add", "x", "dev", "b"],
                                ("ns", ["addr", "del", "x", "dev", "b"]))]),
        Action("create c", [Step(CREATE, None, ["link", "add", "c"], (None, ["link", "del", "c"]))]),
    ]


def test_steps_are_grouped_into_one_batch_per_phase_and_namespace():
    groups = batches(ordered_steps(plan()))
    assert [(g[0].phase, g[0].netns, len(g)) for g in groups] == [
        (CREATE, None, 2), (ADDRESS, "ns", 1), (UP, "ns", 1)]
    runner = FakeRunner()
    apply_plan(runner, plan())
    assert len(runner.calls) == 3


def test_bridge_steps_get_their_own_batch_and_rollback():
    fdb = ["fdb", "append", "00:00:00:00:00:00", "dev", "vx", "dst", "192.0.2.2"]
    actions = plan() + [Action("peer", [Step(ADDRESS, "ns", fdb, ("ns", ["fdb", "del"] + fdb[2:]),
                                             tool="bridge")])]
    groups = batches(ordered_steps(actions))
    assert [(g[0].phase, g[0].netns, g[0].tool) for g in groups] == [
        (CREATE, None, "ip"), (ADDRESS, "ns", "ip"), (ADDRESS, "ns", "bridge"), (UP, "ns", "ip")]
    runner = FakeRunner(fail_on="link set b up")
    with pytest.raises(ApplyError) as err:
        apply_plan(runner, actions)
    assert runner.calls[-3] == ("ns", ["bridge fdb del 00:00:00:00:00:00 dev vx dst 192.0.2.2"],
                                True)
    assert "bridge fdb del 00:00:00:00:00:00 dev vx dst 192.0.2.2 (netns ns)" in \
        err.value.rolled_back


def test_failure_rolls_back_done_steps_newest_first():
    runner = FakeRunner(fail_on="addr add x dev b")
    with pytest.raises(ApplyError) as err:
        apply_plan(runner, plan())
    rollback = runner.calls[-1]
    assert rollback == (None, ["link del c", "link del a"], True)
    assert "rolled back 2 step(s)" in str(err.value)


def test_failure_in_the_middle_of_a_batch_keeps_the_steps_before_it():
    runner = FakeRunner(fail_on="link add c")
    with pytest.raises(ApplyError) as err:
        apply_plan(runner, plan())
    assert runner.calls[-1] == (None, ["link del a"], True)
    assert err.value.rolled_back == ["ip link del a"]


def test_runner_reports_the_failing_batch_line():
    def run(argv, data=None):
        return 1, "", "Cannot find device \"nosuch\"\nCommand failed -:2\n"
    with pytest.raises(BatchError) as err:
        Runner(run).ip_batch([["link", "add", "a"], ["link", "set", "nosuch", "up"]], netns="ns1")
    assert err.value.failed_index == 1
    assert err.value.argv[:2] == ["nsenter", "--net=/run/netns/ns1"]
    assert "'ip link set nosuch up' failed" in str(err.value)

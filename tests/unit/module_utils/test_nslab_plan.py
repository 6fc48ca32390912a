"""apply_plan: one ip process per (phase, netns), rollback of done steps on failure.

The runner is a recording fake: this tests the ordering and rollback logic only;
integration tests run the same code against the kernel.
"""

import threading

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ApplyError, BatchError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_plan import (
    ADDRESS, CREATE, DELETE, UP, Action, Step, apply_plan, batches, ordered_steps)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import Runner


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

    def each(self, function, items):
        return [function(item) for item in items]


def plan():
    return [
        Action("create a", [Step(CREATE, None, ["link", "add", "a"], (None, ["link", "del", "a"])),
                            Step(UP, "ns", ["link", "set", "b", "up"], ("ns", ["link", "set", "b", "down"]))]),
        Action("address", [Step(ADDRESS, "ns", ["addr", "add", "x", "dev", "b"],
                                ("ns", ["addr", "del", "x", "dev", "b"]))]),
        Action("create c", [Step(CREATE, None, ["link", "add", "c"], (None, ["link", "del", "c"]))]),
    ]


def test_steps_are_grouped_into_one_batch_per_stage_and_namespace():
    groups = batches(ordered_steps(plan()))
    assert [(g[0].phase, g[0].netns, len(g)) for g in groups] == [
        (CREATE, None, 2), (ADDRESS, "ns", 2)]
    # After the creations, a namespace's steps run in one process, in phase order.
    assert [s.phase for s in groups[1]] == [ADDRESS, UP]
    runner = FakeRunner()
    apply_plan(runner, plan())
    assert len(runner.calls) == 2


def test_creations_in_every_namespace_come_before_any_later_step():
    actions = [Action("b", [Step(CREATE, "n1", ["link", "add", "b"]),
                            Step(UP, "n1", ["link", "set", "b", "up"])]),
               Action("a", [Step(UP, None, ["link", "set", "a", "up"]),
                            Step(CREATE, None, ["link", "add", "a"])]),
               Action("d", [Step(DELETE, "n1", ["link", "del", "old"])])]
    order = [(s.phase, s.netns) for s in ordered_steps(actions)]
    assert order == [(DELETE, "n1"), (CREATE, "n1"), (CREATE, None), (UP, "n1"), (UP, None)]


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
    # rolled_back names the steps undone (as done does), not their undo lines.
    assert "bridge fdb append 00:00:00:00:00:00 dev vx dst 192.0.2.2 (netns ns)" in \
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
    assert err.value.done == ["ip link add a"]
    assert err.value.rolled_back == ["ip link add a"]


def test_done_lists_every_finished_line_and_undo_costs_one_process_per_batch():
    runner = FakeRunner(fail_on="link set b up")
    with pytest.raises(ApplyError) as err:
        apply_plan(runner, plan())
    assert err.value.done == ["ip link add a", "ip link add c", "ip addr add x dev b (netns ns)"]
    assert err.value.rolled_back == ["ip addr add x dev b (netns ns)", "ip link add c",
                                     "ip link add a"]
    assert runner.calls[-2:] == [("ns", ["addr del x dev b"], True),
                                 (None, ["link del c", "link del a"], True)]


def two_namespaces():
    """Two veth pairs: made in the host, each peer then configured in its namespace."""
    return [Action("pair %s" % ns, [
        Step(CREATE, None, ["link", "add", ns], (None, ["link", "del", ns])),
        Step(ADDRESS, ns, ["addr", "add", "x", "dev", "eth0"],
             (ns, ["addr", "del", "x", "dev", "eth0"])),
        Step(UP, ns, ["link", "set", "eth0", "up"], (ns, ["link", "set", "eth0", "down"]))])
        for ns in ("n1", "n2")]


class MeetingRunner(FakeRunner):
    """Runner.each's threads; a namespace's batch waits until the other namespace's has
    started (BrokenBarrierError when the batches run one after the other)."""

    def __init__(self, fail_on=None):
        super().__init__(fail_on)
        self.meeting = threading.Barrier(2, timeout=10)

    def ip_batch(self, commands, netns=None, force=False, tool="ip"):
        if netns and not force:
            self.meeting.wait()
        return super().ip_batch(commands, netns, force, tool)

    each = Runner.each


def test_the_namespaces_batches_after_the_creations_run_at_once():
    runner = MeetingRunner()
    apply_plan(runner, two_namespaces())
    assert runner.calls[0] == (None, ["link add n1", "link add n2"], False)
    assert sorted(runner.calls[1:]) == [
        ("n1", ["addr add x dev eth0", "link set eth0 up"], False),
        ("n2", ["addr add x dev eth0", "link set eth0 up"], False)]


def test_a_namespace_that_fails_rolls_back_the_others_too():
    runner = MeetingRunner(fail_on="link set eth0 up")
    with pytest.raises(ApplyError) as err:
        apply_plan(runner, two_namespaces())
    # Both namespaces' address lines were done; all of it is undone, creations last.
    assert sorted(err.value.rolled_back[:2]) == ["ip addr add x dev eth0 (netns n1)",
                                                 "ip addr add x dev eth0 (netns n2)"]
    assert err.value.rolled_back[2:] == ["ip link add n2", "ip link add n1"]
    assert runner.calls[-1] == (None, ["link del n2", "link del n1"], True)


class FailingUndoRunner(FakeRunner):
    """Applies every line; an undo batch (force) fails on the lines in ``undo_fails``,
    reporting each as ip -force -batch does."""

    def __init__(self, fail_on, undo_fails):
        super().__init__(fail_on)
        self.undo_fails = undo_fails

    def ip_batch(self, commands, netns=None, force=False, tool="ip"):
        if not force:
            return super().ip_batch(commands, netns, force, tool)
        self.calls.append((netns, [" ".join(c) for c in commands], force))
        failed = [i for i, c in enumerate(commands) if " ".join(c) in self.undo_fails]
        if failed:
            stderr = "".join('Cannot find device "x"\nCommand failed -:%d\n' % (i + 1)
                             for i in failed)
            raise BatchError(["ip", "-force"], 1, stderr, failed[0],
                             [" ".join(c) for c in commands])


def test_an_undo_line_that_fails_is_reported_and_the_others_count_as_undone():
    runner = FailingUndoRunner("addr add x dev b", {"link del c"})
    with pytest.raises(ApplyError) as err:
        apply_plan(runner, plan())
    assert runner.calls[-1] == (None, ["link del c", "link del a"], True)
    assert err.value.rolled_back == ["ip link add a"]
    assert len(err.value.rollback_errors) == 1
    assert err.value.rollback_errors[0].startswith("ip link add c: 'ip link del c' failed")
    assert "rolled back 1 step(s), but could not undo: ip link add c" in str(err.value)


def test_a_callers_log_undoes_the_plan_after_a_later_failure():
    runner = FakeRunner()
    log = apply_plan(runner, plan())
    err = log.fail(OSError(5, "Input/output error"))
    assert err.rolled_back == ["ip link set b up (netns ns)", "ip addr add x dev b (netns ns)",
                               "ip link add c", "ip link add a"]
    assert runner.calls[-2:] == [("ns", ["link set b down", "addr del x dev b"], True),
                                 (None, ["link del c", "link del a"], True)]


def test_runner_reports_the_failing_batch_line():
    def run(argv, data=None):
        return 1, "", "Cannot find device \"nosuch\"\nCommand failed -:2\n"
    with pytest.raises(BatchError) as err:
        Runner(run).ip_batch([["link", "add", "a"], ["link", "set", "nosuch", "up"]], netns="ns1")
    assert err.value.failed_index == 1
    assert err.value.argv[:2] == ["nsenter", "--net=/run/netns/ns1"]
    assert "'ip link set nosuch up' failed" in str(err.value)

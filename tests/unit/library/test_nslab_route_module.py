"""nslab_route's apply (module_utils/nslab_converge_route.py): one batch per namespace, the
undo of what ran on failure.

A recording fake runner: the rollback logic only (test_link/test_lab run it on a kernel).
"""

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ApplyError, BatchError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_routes import RouteAction

from ansible_collections.nslab.lab.plugins.module_utils import (
    nslab_converge_route as nslab_route)


class FakeRunner:
    def __init__(self, fail_on):
        self.fail_on, self.calls = fail_on, []

    def ip_batch(self, commands, netns=None, force=False, tool="ip"):
        lines = [" ".join(c) for c in commands]
        self.calls.append((netns, lines))
        if self.fail_on in lines:
            raise BatchError(["ip", "-batch", "-"], 1, "Error: Nexthop has invalid gateway.\n",
                             lines.index(self.fail_on), lines)


def route(to, via, old_via=None):
    undo = (["route", "replace", to, "via", old_via] if old_via
            else ["route", "del", to, "via", via])
    return RouteAction("route %s via %s" % (to, via), ["route", "replace", to, "via", via], undo)


def test_a_failed_line_undoes_this_namespace_and_the_earlier_ones_newest_first():
    runner = FakeRunner(fail_on="route replace 10.0.3.0/24 via 10.0.0.9")
    plans = [("n1", [route("10.0.1.0/24", "10.0.0.1")]),
             ("n2", [route("10.0.2.0/24", "10.0.0.2", old_via="10.0.0.5"),
                     route("10.0.3.0/24", "10.0.0.9")])]
    with pytest.raises(ApplyError) as caught:
        nslab_route.apply(runner, plans)
    assert runner.calls[2:] == [("n2", ["route replace 10.0.2.0/24 via 10.0.0.5"]),
                                ("n1", ["route del 10.0.1.0/24 via 10.0.0.1"])]
    assert caught.value.done == ["route 10.0.1.0/24 via 10.0.0.1",
                                 "route 10.0.2.0/24 via 10.0.0.2"]
    assert caught.value.rolled_back == ["route 10.0.2.0/24 via 10.0.0.2",
                                        "route 10.0.1.0/24 via 10.0.0.1"]
    assert "invalid gateway.; rolled back 2 step(s)" in str(caught.value)

"""Runner.each: reads of many namespaces at once, in the order asked, errors not lost."""

import threading

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import READ_WORKERS, Runner


def test_each_keeps_the_order_of_its_items_and_runs_them_at_once():
    runner = Runner(lambda argv, data=None: (0, "", ""))
    barrier = threading.Barrier(2, timeout=5)

    def read(item):
        if item < 2:
            barrier.wait()        # the first two only pass once both are running
        return item * 10

    assert runner.each(read, range(7)) == [0, 10, 20, 30, 40, 50, 60]
    assert READ_WORKERS >= 2


def test_each_raises_the_first_error_in_the_order_of_its_items():
    runner = Runner(lambda argv, data=None: (0, "", ""))

    def read(item):
        if item in (3, 5):
            raise ValueError("bad %d" % item)
        return item

    with pytest.raises(ValueError, match="bad 3"):
        runner.each(read, range(8))
    assert runner.each(read, []) == [] and runner.each(read, [4]) == [4]

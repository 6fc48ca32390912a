"""A state record that is not valid JSON, or not nslab's, stops the task with its path
named: it never reads as "no record" (which would start a second init beside the running
one, or make state=absent remove nothing)."""

import json
import os

import pytest

from helpers.lab import BUSYBOX_SKIP, STATE_ROOT

from ansible_collections.nslab.lab.plugins.module_utils.nslab_adopt import labelled_pids

pytestmark = BUSYBOX_SKIP


@pytest.fixture
def box(lab, module, rootfs):
    """A running container 'box': its record's path, its init's pid, and its arguments."""
    netns = lab.n("c")
    assert module("nslab_namespace", dict(lab=lab.name, name=netns))["changed"]
    args = dict(lab=lab.name, name="box", rootfs=str(rootfs), netns=netns,
                command=["sleep", "1000"])
    started = module("nslab_container", args)
    assert started["_status"] == "ok", started.get("msg")
    return (os.path.join(STATE_ROOT, lab.name, "containers", "box.json"),
            started["containers"][0]["pid"], args)


def inits(lab):
    """Every process labelled as container box's init (unshare's and its child's)."""
    label = "nslab:%s:box" % lab.name
    return sorted(labelled_pids([label]).get(label, []))


def assert_stopped_on(result, path, problem):
    assert result["_status"] == "failed", result
    assert "state record %s %s" % (path, problem) in result["msg"], result["msg"]
    assert "repair the file or remove it by hand" in result["msg"]
    assert result["state_record"] == path


def test_started_over_a_corrupt_record_fails_and_starts_no_second_init(lab, module, box):
    path, pid, args = box
    running = inits(lab)
    assert running
    with open(path, "w") as handle:
        handle.write('{"lab": "%s", "name": "box", "pid": ' % lab.name)   # cut short
    result = module("nslab_container", args)
    assert_stopped_on(result, path, "is not valid JSON")
    assert inits(lab) == running
    assert os.path.exists("/proc/%d" % pid)


def test_absent_over_another_labs_record_fails_and_leaves_the_init(lab, module, box):
    path, pid, args = box
    with open(path) as handle:
        record = json.load(handle)
    with open(path, "w") as handle:
        json.dump(dict(record, lab="someone-else"), handle)
    result = module("nslab_container", dict(args, state="absent"))
    assert_stopped_on(result, path, "is not nslab's container (it names lab 'someone-else'")
    assert os.path.exists("/proc/%d" % pid)
    assert inits(lab)


def test_a_namespace_with_a_corrupt_record_is_neither_removed_nor_rebuilt(lab, module):
    name = lab.n("ns")
    assert module("nslab_namespace", dict(lab=lab.name, name=name, types=["net", "uts"]))[
        "changed"]
    path = os.path.join(STATE_ROOT, lab.name, "ns", name + ".json")
    uts = os.path.join(STATE_ROOT, lab.name, "ns", name, "uts")
    inode = os.stat(uts).st_ino
    with open(path, "w") as handle:
        handle.write("[]")
    for state in ("present", "absent"):
        result = module("nslab_namespace", dict(lab=lab.name, name=name, types=["net", "uts"],
                                                state=state))
        assert_stopped_on(result, path, "holds a JSON array, not an object")
        assert os.path.exists("/run/netns/" + name)
        assert os.stat(uts).st_ino == inode

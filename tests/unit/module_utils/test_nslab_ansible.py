"""run_module is the error boundary: what a user or the host can cause becomes one
fail_json message; a bug stays a traceback."""

import ast
import errno
import os
import pathlib
import subprocess

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import run_module
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils import nslab_syscalls

LIBRARY = pathlib.Path(__file__).resolve().parents[3] / "library"


class Exited(Exception):
    def __init__(self, failed, result):
        super().__init__(result)
        self.failed, self.result = failed, result


class FakeModule:
    params = {"lab": "demo"}

    def fail_json(self, **result):
        raise Exited(True, result)

    def exit_json(self, **result):
        raise Exited(False, result)


def outcome(core):
    with pytest.raises(Exited) as exited:
        run_module(FakeModule(), "converge things", core)
    return exited.value


def test_a_result_exits():
    done = outcome(lambda module: {"changed": True})
    assert not done.failed and done.result == {"changed": True}


def test_an_nslab_error_fails_with_its_message_and_details():
    def core(module):
        raise ValidationError(["name: bad", "mtu: too big"])
    done = outcome(core)
    assert done.failed
    assert done.result["msg"] == "Failed to converge things: name: bad; mtu: too big"
    assert done.result["problems"] == ["name: bad", "mtu: too big"]


def test_an_unreadable_file_fails_naming_the_operation_and_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "state.json"

    def core(module):
        with open(missing) as handle:
            return handle.read()
    done = outcome(core)
    assert done.failed
    assert done.result["msg"] == ("Failed to converge things: cannot open '%s': "
                                  "No such file or directory" % missing)
    details = done.result["os_error"]
    assert details["path"] == str(missing) and details["errno"] == errno.ENOENT
    assert details["where"].startswith("test_nslab_ansible.py:")


def test_a_directory_that_cannot_go_fails_naming_it(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "child").write_text("x")

    def core(module):
        os.rmdir(tmp_path / "busy")
    done = outcome(core)
    assert done.result["msg"] == ("Failed to converge things: cannot remove directory '%s': "
                                  "Directory not empty" % (tmp_path / "busy"))


def test_a_syscall_wrapper_error_names_the_call_of_its_caller(tmp_path):
    def core(module):
        nslab_syscalls.umount2(str(tmp_path))   # not a mount point: EINVAL
    done = outcome(core)
    assert done.failed
    assert done.result["msg"].startswith(
        "Failed to converge things: cannot unmount '%s': umount2: " % tmp_path)


def test_a_rename_names_both_paths(tmp_path):
    def core(module):
        os.rename(tmp_path / "a", tmp_path / "b")
    done = outcome(core)
    assert done.result["msg"] == ("Failed to converge things: cannot rename '%s' to '%s': "
                                  "No such file or directory" % (tmp_path / "a", tmp_path / "b"))


def test_a_hung_command_fails():
    def core(module):
        raise subprocess.TimeoutExpired(["nsenter", "-t", "1"], 5)
    done = outcome(core)
    assert done.result["msg"] == ("Failed to converge things: command nsenter -t 1 did not "
                                  "finish within 5 s")


@pytest.mark.parametrize("bug", [KeyError("lab"), TypeError("x"), AttributeError("y"),
                                 ValueError("z")])
def test_a_bug_stays_a_traceback(bug):
    def core(module):
        raise bug
    with pytest.raises(type(bug)):
        run_module(FakeModule(), "converge things", core)


def _calls(function):
    return {node.func.id for node in ast.walk(function)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("nslab_*.py")), ids=lambda p: p.stem)
def test_every_module_main_goes_through_the_boundary(path):
    tree = ast.parse(path.read_text())
    main = next(node for node in tree.body
                if isinstance(node, ast.FunctionDef) and node.name == "main")
    assert _calls(main) & {"run_module", "main_of"}, (
        "%s: main() must run its core through nslab_ansible.run_module or main_of" % path.name)


def test_a_lock_held_past_the_timeout_fails_with_the_lock_named(monkeypatch, tmp_path):
    from ansible_collections.nslab.lab.plugins.module_utils import nslab_ansible
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_lock import LabLock
    monkeypatch.setattr(nslab_ansible, "LabLock",
                        lambda lab, timeout: LabLock(lab, root=str(tmp_path), timeout=timeout))
    monkeypatch.setenv("NSLAB_LOCK_TIMEOUT", "0.1")
    with LabLock("demo", root=str(tmp_path)):
        with pytest.raises(Exited) as exited:
            run_module(FakeModule(), "converge things", lambda module: {}, lock=True)
    assert exited.value.failed
    assert exited.value.result["msg"].startswith(
        "Failed to converge things: lab 'demo' is locked by another nslab run (held by pid %d) "
        "for more than 0 s (lock %s/demo.lock)" % (os.getpid(), tmp_path))

"""nslab_container's pure parts (module_utils/nslab_converge_container.py): the items the
task gives -> ContainerSpecs (build_specs), bind handling (bind_specs), files, and the
before/after views of diff mode. Nothing here starts a process or mounts anything."""

import os

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_containers import (
    DEFAULT_CAPABILITIES, owned_bind_dir)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import STATE_ROOT

from ansible_collections.nslab.lab.plugins.module_utils import (
    nslab_converge_container as container)


def items(*containers, **top):
    """The items nslab_container converges, made from its parameters as the module does."""
    params = dict({"lab": "demo", "state": "started"}, containers=list(containers), **top)
    return container.items_from_params(params, "containers", container.ITEM_KEYS)


def specs(*containers, check_mode=False, warnings=None):
    warnings = [] if warnings is None else warnings
    return container.build_specs(items(*containers), "demo", check_mode, warnings, None)


def problems_of(*containers, **kwargs):
    with pytest.raises(ValidationError) as err:
        specs(*containers, **kwargs)
    return err.value.problems if hasattr(err.value, "problems") else str(err.value)


def test_a_started_container_gets_the_defaults(tmp_path):
    [spec] = specs({"name": "web", "rootfs": str(tmp_path)})
    assert spec.name == "web" and spec.hostname == "web"
    assert spec.rootfs == os.path.realpath(str(tmp_path))
    assert spec.capabilities == sorted(DEFAULT_CAPABILITIES)
    assert (spec.workdir, spec.stop_timeout, spec.seccomp) == ("/", 10, "default")
    assert spec.log_max_size == 1024 * 1024
    assert spec.userns_base is None and spec.privileged is False and spec.binds == []
    assert spec.state == "started"                      # inherited from the top level


def test_capabilities_are_added_and_dropped_by_any_spelling(tmp_path):
    [spec] = specs({"name": "web", "rootfs": str(tmp_path), "cap_add": ["cap_net_admin"],
                    "cap_drop": ["CAP_NET_RAW", "chown"]})
    assert "NET_ADMIN" in spec.capabilities
    assert "NET_RAW" not in spec.capabilities and "CHOWN" not in spec.capabilities
    assert spec.capabilities == sorted(spec.capabilities)


def test_every_problem_is_listed_at_once_with_the_option_that_has_it(tmp_path):
    text = str(problems_of(
        {"name": "web", "rootfs": str(tmp_path), "cap_add": ["FLY"], "log_max_size": "max",
         "userns": True, "userns_base": 0, "stop_timeout": -1, "env": {"A=B": "x"}},
        {"name": "web", "rootfs": str(tmp_path), "jail": "j"}))
    for expected in ("containers[0].cap_add: unknown capability 'FLY'",
                     "containers[0].log_max_size: 'max' is not allowed",
                     "containers[0].userns_base: 0 is out of range; expected 1 to",
                     "containers[0].stop_timeout: -1 is negative",
                     "containers[0].env: name 'A=B' is not allowed",
                     "containers[1].name: container 'web' is listed twice",
                     "containers[1].jail: give a jail or a rootfs, not both"):
        assert expected in text, (expected, text)


def test_privileged_with_its_own_user_namespace_is_refused(tmp_path):
    text = str(problems_of({"name": "web", "rootfs": str(tmp_path), "privileged": True,
                            "userns": True, "userns_base": 100000}))
    assert "containers[0].privileged: a privileged container cannot have its own user" in text


@pytest.mark.parametrize("rootfs, expected", [
    (None, "containers[0].rootfs: missing; expected a jail (or a rootfs)"),
    ("/", "containers[0].rootfs: '/' is not allowed"),
    ("relative/dir", "containers[0].rootfs: 'relative/dir' is not allowed"),
    ("/nonexistent-nslab-rootfs", "is not a directory; expected a root filesystem"),
])
def test_a_started_container_needs_a_root_that_is_not_the_hosts(rootfs, expected):
    assert expected in str(problems_of({"name": "web", "rootfs": rootfs}))


def test_a_stopped_or_absent_container_needs_no_root():
    stopped, absent = specs({"name": "a", "state": "stopped"}, {"name": "b", "state": "absent"})
    assert (stopped.rootfs, absent.rootfs) == ("", "")


def binds(binds, starting=True, check_mode=False):
    problems, warnings = [], []
    result = container.bind_specs("containers[0].", "demo", "web", binds, starting, check_mode,
                                  problems, warnings)
    return result, problems, warnings


def test_a_bind_without_a_source_gets_a_directory_of_nslab_own(tmp_path):
    result, problems, _ = binds([{"path": "/data"},
                                 {"path": "/srv", "source": str(tmp_path), "readonly": True}])
    assert problems == []
    assert result == [
        {"path": "/data", "source": owned_bind_dir("demo", "web") + "/data", "readonly": False},
        {"path": "/srv", "source": os.path.realpath(str(tmp_path)), "readonly": True}]


@pytest.mark.parametrize("path", ["data", "/", "/a/../b", "/proc", "/sys/fs", "/dev/shm"])
def test_a_bind_path_must_be_absolute_normal_and_outside_the_inits_mounts(path):
    _, problems, _ = binds([{"path": path}])
    assert problems == ["containers[0].binds[0].path: '%s' is not allowed; expected an absolute,"
                        " normal path other than /, outside /proc, /sys and /dev" % path]


def test_a_path_bound_twice_is_refused():
    _, problems, _ = binds([{"path": "/data"}, {"path": "/data"}])
    assert problems == ["containers[0].binds[1].path: '/data' is bound twice"]


@pytest.mark.parametrize("source", ["/", "/proc", "/sys/kernel", "/dev", STATE_ROOT,
                                    STATE_ROOT + "/demo"])
def test_a_bind_source_may_not_expose_the_hosts_root_kernel_or_nslab_state(source):
    _, problems, _ = binds([{"path": "/x", "source": source}])
    assert len(problems) == 1 and problems[0].startswith(
        "containers[0].binds[0].source: '%s' is not allowed" % source)


def test_a_symlink_to_a_forbidden_source_is_judged_by_where_it_leads(tmp_path):
    (tmp_path / "innocent").symlink_to("/proc")
    _, problems, _ = binds([{"path": "/x", "source": str(tmp_path / "innocent")}])
    assert len(problems) == 1 and "is not allowed" in problems[0]


@pytest.mark.parametrize("source", ["relative", "/srv/../etc"])
def test_a_bind_source_must_be_an_absolute_normal_path(source):
    _, problems, _ = binds([{"path": "/x", "source": source}])
    assert problems == ["containers[0].binds[0].source: '%s' is not an absolute, normal path; "
                        "expected a host directory" % source]


def test_a_missing_source_stops_a_start_warns_in_check_mode_and_is_fine_when_stopping():
    missing = [{"path": "/x", "source": "/nonexistent-nslab-bind"}]
    message = ("containers[0].binds[0].source: '/nonexistent-nslab-bind' is not a directory; "
               "expected an existing host directory")
    assert binds(missing)[1:] == ([message], [])
    assert binds(missing, check_mode=True)[1:] == ([], [message])
    assert binds(missing, starting=False)[1:] == ([], [])


def test_files_take_a_string_or_content_mode_and_restart():
    problems = []
    contents, modes, restart = container.file_specs("", {
        "/etc/motd": "hello", "/etc/app.conf": {"content": "x", "mode": "0640", "restart": True},
    }, problems)
    assert problems == []
    assert contents == {"/etc/motd": "hello", "/etc/app.conf": "x"}
    assert modes == {"/etc/app.conf": 0o640} and restart == ["/etc/app.conf"]


@pytest.mark.parametrize("files, expected", [
    ({"etc/motd": "x"}, "files: 'etc/motd' is not allowed"),
    ({"/proc/x": "x"}, "files: '/proc/x' is not allowed"),
    ({"/a": {"content": "x", "mode": "999"}}, "files./a.mode: '999' is not allowed"),
    ({"/a": {"content": "x", "restart": "yes"}}, "files./a.restart: 'yes' is not a boolean"),
    ({"/a": {"text": "x"}}, "files./a: {'text': 'x'} is not a file"),
])
def test_a_bad_file_is_one_problem_naming_it(files, expected):
    problems = []
    container.file_specs("", files, problems)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_a_file_too_big_is_refused_with_its_size():
    problems = []
    container.file_specs("", {"/big": "x" * (container.FILE_MAX + 1)}, problems)
    assert problems == ["files./big: %d bytes is too big; expected at most %d" % (
        container.FILE_MAX + 1, container.FILE_MAX)]


def test_diff_mode_predicts_each_state_from_the_spec_and_the_current_view(tmp_path):
    started, stopped, absent = specs(
        {"name": "a", "rootfs": str(tmp_path), "env": {"K": "v"}, "hostname": "box"},
        {"name": "b", "state": "stopped"}, {"name": "c", "state": "absent"})
    running = {"state": "running", "hostname": "b", "pid": 42}
    after = container.predicted_view(started, {"state": "absent"})
    assert after["state"] == "running" and after["hostname"] == "box"
    assert not {"env", "workdir", "file_digests"} & set(after)
    assert container.predicted_view(stopped, running) == dict(running, state="stopped")
    assert container.predicted_view(stopped, {"state": "absent"}) == {"state": "absent"}
    assert container.predicted_view(absent, running) == {"state": "absent"}


def test_the_diff_view_keeps_only_what_a_reader_compares():
    view = {"state": "running", "hostname": "h", "command": ["sh"], "rootfs": "/r",
            "netns": "n", "cgroup": None, "capabilities": ["KILL"], "userns_base": None,
            "privileged": False, "binds": [], "pid": 42, "env": {"SECRET": "x"},
            "started_at": 1.0}
    assert container.diff_view(view) == dict((k, view[k]) for k in (
        "state", "hostname", "command", "rootfs", "netns", "cgroup", "capabilities",
        "userns_base", "privileged", "binds"))
    assert container.diff_view({"state": "absent"}) == {"state": "absent"}

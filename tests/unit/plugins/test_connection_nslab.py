"""The nslab connection plugin's pure parts: addresses and the door's command line."""

import importlib.util
import json

import pytest

from ansible.errors import AnsibleError

from helpers.paths import ROOT

SPEC = importlib.util.spec_from_file_location("nslab_connection",
                                              ROOT / "plugins" / "connection" / "nslab.py")
plugin = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(plugin)


@pytest.mark.parametrize("remote_addr, lab, expected", [
    ("web/front", None, ("web", "front")),
    ("front", "web", ("web", "front")),
    ("web/front", "web", ("web", "front")),
    ("web/front-1.a_b", None, ("web", "front-1.a_b")),
])
def test_addresses(remote_addr, lab, expected):
    assert plugin.container_address(remote_addr, lab) == expected


@pytest.mark.parametrize("remote_addr, lab, message", [
    ("front", None, "names no lab"),
    ("web/front", "other", "names lab 'web' but lab is 'other'"),
    ("web/../etc", None, "container name '../etc'"),
    ("web/a/b", None, "container name 'a/b'"),
    ("../x/front", None, "lab name '..'"),
    ("web/.hidden", None, "container name '.hidden'"),
    ("web/", None, "container name ''"),
])
def test_bad_addresses_are_refused_with_what_is_wrong(remote_addr, lab, message):
    with pytest.raises(AnsibleError, match=message.replace(".", r"\.")):
        plugin.container_address(remote_addr, lab)


def test_the_door_is_an_isolated_python_running_enter_with_the_record():
    argv = plugin.door_argv("/usr/bin/python3", "def enter(c): pass", "web", "front",
                            ["/bin/sh", "-c", "echo 'x'"])
    assert argv[:4] == ["/usr/bin/python3", "-I", "-S", "-c"]
    source, call = argv[4].rstrip("\n").rsplit("\n", 1)
    assert source == "def enter(c): pass"
    config = json.loads(call[len("enter("):-1])
    assert config == {"record": "/run/nslab/web/containers/front.json", "lab": "web",
                      "name": "front", "argv": ["/bin/sh", "-c", "echo 'x'"]}


def test_the_door_failure_markers_match_nslab_init():
    from ansible_collections.nslab.lab.plugins.module_utils import nslab_init
    assert plugin.ENTER_FAILED == nslab_init.ENTER_FAILED
    assert plugin.ENTER_PREFIX == nslab_init.ENTER_PREFIX.encode()


def test_the_doors_script_is_the_seccomp_filter_then_nslab_init():
    """The door installs the container's seccomp filter: its source must come first, read
    from the plugin's own collection (plugins/module_utils), with no Ansible path set."""
    plugin.Connection._door_source = None
    source = plugin.Connection.door_source()
    seccomp = (ROOT / "plugins" / "module_utils" / "nslab_seccomp.py").read_text()
    init = (ROOT / "plugins" / "module_utils" / "nslab_init.py").read_text()
    assert plugin.DOOR_MODULES == ("nslab_seccomp", "nslab_init")
    assert source == seccomp + "\n" + init
    namespace = {}
    exec(compile(source, "door", "exec"), namespace)      # one script: no clashing names
    assert callable(namespace["seccomp_install"]) and callable(namespace["enter"])

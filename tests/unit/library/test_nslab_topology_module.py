"""library/nslab_topology.py's core (compile_topology takes the module object): what it
plans for ``absent`` and which topologies it refuses."""

import pytest

from helpers.library import load_library_module

library = load_library_module("nslab_topology")


class NoLinks:
    """A runner for a host with no address of its own."""

    def read_links(self):
        return {}


def test_absent_over_a_fleet_with_a_host_down_plans_this_hosts_removal_from_any_file():
    fleet = [{"item": "h1", "labs": {"demo": {"containers": [{"name": "a"}],
                                              "namespaces": [{"name": "demo-a"}],
                                              "bridges": [{"name": "demo-lan"}]}}},
             {"item": "h2", "unreachable": True}]
    params = {"topology": {"lab": "demo", "nodes": "not even a mapping", "colour": 1},
              "fleet": fleet, "host": "h1", "current": {}, "state": "absent",
              "read": False, "packages": []}
    result = library.compile_topology(type("Module", (), {"params": params})())
    assert result["changed"] is False
    remove = result["lab"]["remove"]
    assert remove["containers"] == [{"name": "a"}]
    assert remove["namespaces"] == [{"name": "demo-a"}]
    assert remove["bridges"] == [{"name": "demo-lan"}]


def test_absent_still_needs_a_valid_lab_name():
    params = {"topology": {"lab": "demo\n"}, "fleet": [], "host": None, "current": {},
              "state": "absent", "read": False, "packages": []}
    with pytest.raises(library.ValidationError) as err:
        library.compile_topology(type("Module", (), {"params": params})())
    assert str(err.value).startswith("topology.lab: lab name 'demo\\n' is invalid")


def test_a_compile_error_is_a_user_error_naming_the_key():
    library = load_library_module("nslab_topology")
    topology = {"lab": "demo", "networks": {"lan": {"subnet": "10.213.168.0/30"}},
                "nodes": dict((name, {"networks": ["lan"]}) for name in ("a", "b", "c"))}
    params = {"topology": topology, "fleet": [], "host": None, "current": {},
              "state": "present", "read": False, "packages": []}
    library.runner_for = lambda module: NoLinks()
    with pytest.raises(library.ValidationError) as err:
        library.compile_topology(type("Module", (), {"params": params})())
    assert str(err.value) == ("networks.lan: 10.213.168.0/30 has no free address left for "
                              "node b")
    assert err.value.details()["paths"] == ["networks.lan"]


def test_a_bug_in_the_compiler_is_not_reported_as_a_user_error():
    library = load_library_module("nslab_topology")
    params = {"topology": {"lab": "demo", "nodes": {"a": {}}}, "fleet": [], "host": None,
              "current": {}, "state": "present", "read": False, "packages": []}
    library.runner_for = lambda module: NoLinks()

    def broken(*args, **kwargs):
        raise ValueError("a bug: int('x')")
    library.compile_lab = broken
    with pytest.raises(ValueError) as err:
        library.compile_topology(type("Module", (), {"params": params})())
    assert not isinstance(err.value, library.ValidationError)


@pytest.mark.parametrize("given", ["current", "fleet"])
def test_read_refuses_what_it_would_read_given_as_well(given):
    params = {"topology": {"lab": "demo", "nodes": {"a": {}}}, "fleet": [], "host": "h1",
              "current": {}, "state": "present", "read": True, "packages": []}
    params[given] = {"netns_addresses": {}} if given == "current" else [{"item": "h1"}]
    with pytest.raises(library.ValidationError) as err:
        library.compile_topology(type("Module", (), {"params": params})())
    assert str(err.value).startswith("%s: given with read; expected one of them" % given)


def test_read_needs_the_hosts_name():
    params = {"topology": {"lab": "demo", "nodes": {"a": {}}}, "fleet": [], "host": None,
              "current": {}, "state": "present", "read": True, "packages": []}
    with pytest.raises(library.ValidationError) as err:
        library.compile_topology(type("Module", (), {"params": params})())
    assert str(err.value).startswith("host: missing; expected this host's name")

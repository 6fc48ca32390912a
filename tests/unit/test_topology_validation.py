"""One validation pass over the whole topology (issue #16): every key any module will
receive, with its type, range and form; each problem names the key's path and the
expected form, and no bad input reaches Python's own errors."""

import copy

import pytest

from ansible.module_utils.nslab_compile import compile_lab, removal_plan, validate

GOOD = {
    "lab": "demo",
    "description": "a lab",
    "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "64M", "cpus": 0.5,
                                                          "pids": 64},
                 "env": {"LANG": "C.UTF-8"}, "cap_drop": ["NET_RAW"]},
    "networks": {"lan": {"subnet": "10.213.192.0/24", "nat": False, "ipv6": False,
                         "mtu": 1400}},
    "nodes": {
        "web1": {"networks": ["lan"], "hostname": "web1.lab.example", "env": {"MOTD": "a\nb"},
                 "cap_add": ["CAP_NET_ADMIN", "sys_time"], "limits": {"cpu_weight": 200},
                 "command": ["httpd", "-f"]},
        "web2": {"networks": {"lan": "10.213.192.12"}},
    },
    "links": [{"endpoints": ["web1:eth1", "web2:eth1"], "subnet": "10.213.193.0/30"}],
}

PYTHON_ERRORS = ("object has no attribute", "not supported between", "unhashable",
                 "Traceback", "object is not", "NoneType")


def with_change(path, value):
    """GOOD with the value at ``path`` (keys separated by '/') set, or removed if
    ``value`` is DELETE."""
    spec = copy.deepcopy(GOOD)
    *parents, last = path.split("/")
    target = spec
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = int(last) if isinstance(target, list) else last
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return spec


DELETE = object()

# (path in GOOD, bad value, the one problem expected: its start and a fragment of it)
BAD = [
    ("nodes/web1\n", {}, "nodes.web1\n: node name 'web1\\n' is invalid", "expected 1-32"),
    ("lab", "demo\n", "lab: lab name 'demo\\n' is invalid", "expected 1-24"),
    ("networks/lan\n", {"subnet": "10.213.194.0/24"},
     "networks.lan\n: network name 'lan\\n' is invalid", "expected 1-32"),
    ("nodes/web1/hostname", "web_1", "nodes.web1.hostname: hostname 'web_1' is invalid",
     "labels of a-z, 0-9 and '-'"),
    ("nodes/web1/hostname", "a" * 65, "nodes.web1.hostname: hostname", "at most 64"),
    ("nodes/web1/hostname", "-web", "nodes.web1.hostname: hostname '-web' is invalid",
     "expected"),
    ("nodes/web1/hostname", "web1\n", "nodes.web1.hostname: hostname 'web1\\n' is invalid",
     "expected"),
    ("nodes/web1/cap_add", ["NET_ADMIN", "CAP_FLY"],
     "nodes.web1.cap_add[1]: 'CAP_FLY' is not a capability", "with or without CAP_"),
    ("nodes/web1/cap_drop", "NET_RAW", "nodes.web1.cap_drop: 'NET_RAW' is a string",
     "expected a list of capability names"),
    ("nodes/web1/env", {"A=B": "x"}, "nodes.web1.env: variable name 'A=B' is invalid",
     "no '='"),
    ("nodes/web1/env", {"A\nB": "x"}, "nodes.web1.env: variable name 'A\\nB' is invalid",
     "newline"),
    ("nodes/web1/env", {"1A": "x"}, "nodes.web1.env: variable name '1A' is invalid",
     "not starting with a digit"),
    ("nodes/web1/env", {"PORT": 80}, "nodes.web1.env.PORT: 80 is an integer",
     "expected a string"),
    ("nodes/web1/env", {"X": "a\0b"}, "nodes.web1.env.X: 'a\\x00b' holds a NUL byte",
     "expected text"),
    ("nodes/web1/env", ["A=1"], "nodes.web1.env: ['A=1'] is a list", "expected a mapping"),
    ("defaults/env", "A=1", "defaults.env: 'A=1' is a string", "expected a mapping"),
    ("nodes/web1/limits/cpu_weight", "high",
     "nodes.web1.limits.cpu_weight: 'high' is a string", "expected an integer from 1 to 10000"),
    ("nodes/web1/limits/cpu_weight", 0, "nodes.web1.limits.cpu_weight: weight 0 is out of "
     "range", "expected 1-10000"),
    ("nodes/web1/limits/cpu_weight", True, "nodes.web1.limits.cpu_weight: True is a boolean",
     "expected an integer"),
    ("nodes/web1/limits/memory", "lots", "nodes.web1.limits.memory: size 'lots' is invalid",
     "like 256M"),
    ("nodes/web1/limits/pids", [1], "nodes.web1.limits.pids: [1] is a list",
     "expected an integer from 1"),
    ("nodes/web1/limits/cpuset", "1-0", "nodes.web1.limits.cpuset: '1-0' is not a list of CPUs",
     "like 0-1,3"),
    ("nodes/web1/limits/cpus", float("nan"), "nodes.web1.limits.cpus: nan is a number",
     "a finite number"),
    ("nodes/web1/limits/cpus", "inf", "nodes.web1.limits.cpus: 'inf' is a string",
     "a finite number"),
    ("nodes/web1/limits/pids", "nan", "nodes.web1.limits.pids: 'nan' is a string",
     "a finite number"),
    ("nodes/web1/limits/memory", "9" * 400 + "M", "nodes.web1.limits.memory: '999",
     "a finite number"),
    ("nodes/web1/disk", "9" * 400 + "M", "nodes.web1.disk: '999", "a size like 512M"),
    ("nodes/web1/limits/memroy", "64M", "nodes.web1.limits: unknown key 'memroy'",
     "expected one of cpu_weight"),
    ("nodes/web1/limits/io", [{"device": 8}], "nodes.web1.limits.io[0].device: 8 is an "
     "integer", "MAJOR:MINOR"),
    ("nodes/web1/limits", [{"memory": "64M"}], "nodes.web1.limits: [{'memory': '64M'}] is a "
     "list", "expected a mapping"),
    ("defaults/limits", "64M", "defaults.limits: '64M' is a string", "expected a mapping"),
    ("nodes/web1/jail", {"source": "busybox", "pth": "/bin/busybox"},
     "nodes.web1.jail: unknown key 'pth'", "expected one of overlay, path, source"),
    ("nodes/web1/jail", {"source": "busybox", "suite": "bookworm"},
     "nodes.web1.jail.suite: only used with source 'debootstrap'", "source is 'busybox'"),
    ("nodes/web1/jail", {"source": "busybox", "command": ["mount", "-t", "proc", "p", "/proc"]},
     "nodes.web1.jail.command: a jail's command runs as the host's root", "nodes.<name>.command"),
    ("defaults/jail", {"source": "busybox", "command": ["id"]},
     "defaults.jail.command: a jail's command runs as the host's root", "not allowed"),
    ("nodes/web1/jail", {"source": "zip"}, "nodes.web1.jail.source: 'zip' is not a jail source",
     "expected one of busybox"),
    ("nodes/web1/jail", {"source": "directory", "path": "/"},
     "nodes.web1.jail.path: '/' is (or holds, or is inside) the host's root", "separate tree"),
    ("nodes/web1/jail", {"source": "directory", "path": "/srv/../"},
     "nodes.web1.jail.path: path '/srv/../' is not in normal form", "expected"),
    ("nodes/web1/jail", {"source": "tarball"}, "nodes.web1.jail: source 'tarball' needs path",
     "absolute path"),
    ("defaults/jail", {"source": "host"}, "defaults.jail: source 'host' needs binaries",
     "like [sh, ls]"),
    ("nodes/web1/jail", {"source": "tarball", "path": "/srv/r.tar", "keep_setuid": "yes"},
     "nodes.web1.jail.keep_setuid: 'yes' is a string", "true or false"),
    ("nodes/web1/jail", {"source": "busybox", "keep_setuid": True},
     "nodes.web1.jail.keep_setuid: only used with source 'tarball' or 'directory'", "busybox"),
    ("nodes/web1/jail", {"source": "debootstrap", "suite": "bookworm\n"},
     "nodes.web1.jail.suite: 'bookworm\\n' is a string", "a Debian suite name"),
    ("nodes/web1/jail", {"source": "debootstrap", "suite": "bookworm", "include": "vim"},
     "nodes.web1.jail.include: 'vim' is a string", "a list of Debian package names"),
    ("nodes/web1/jail", "busybox", "nodes.web1.jail: 'busybox' is a string",
     "expected a mapping like {source: busybox}"),
    ("nodes/web1/disk", "lots", "nodes.web1.disk: 'lots' is a string", "a size like 512M"),
    ("nodes/web1/disk", "max", "nodes.web1.disk: 'max' is a string", "a size like 512M"),
    ("nodes/web1/command", "httpd -f", "nodes.web1.command: 'httpd -f' is a string",
     "a list of strings (an argv)"),
    ("nodes/web1/command", ["httpd", 80], "nodes.web1.command: ['httpd', 80] is a list",
     "a list of strings"),
    ("nodes/web1/networks", "lan", "nodes.web1.networks: 'lan' is a string",
     "a list of network names"),
    ("nodes/web1/networks", ["lan", "lan"], "nodes.web1.networks: network 'lan' is listed twice",
     "each once"),
    ("nodes/web2/networks", {"lan": 12}, "nodes.web2.networks.lan: 12 is an integer",
     "an address of 10.213.192.0/24"),
    ("nodes/web1/host", ["h1"], "nodes.web1.host: ['h1'] is a list", "an inventory host"),
    ("nodes/web1/colour", "blue", "nodes.web1: unknown key 'colour'", "expected one of"),
    ("nodes/web1", ["lan"], "nodes.web1: ['lan'] is a list", "expected a mapping"),
    ("nodes", ["web1"], "nodes: ['web1'] is a list", "a mapping of node name"),
    ("networks", [{"subnet": "10.213.194.0/24"}], "networks: [{'subnet'", "a mapping of "
     "network name"),
    ("networks/lan/nat", "false", "networks.lan.nat: 'false' is a string",
     "true or false (a YAML boolean, not quoted)"),
    ("networks/lan/ipv6", 1, "networks.lan.ipv6: 1 is an integer", "true or false"),
    ("networks/lan/isolate_host", "yes", "networks.lan.isolate_host: 'yes' is a string",
     "true or false"),
    ("networks/lan/antispoof", None, "networks.lan.antispoof: None is null", "true or false"),
    ("networks/lan/mtu", "1400", "networks.lan.mtu: MTU '1400' is out of range",
     "expected 68-65535"),
    ("networks/lan/mtu", True, "networks.lan.mtu: MTU True is out of range", "68-65535"),
    ("networks/lan/subnet", "0.0.0.0/0", "networks.lan.subnet: 0.0.0.0/0 overlaps 0.0.0.0/8",
     "a private range"),
    ("networks/lan/subnet", "127.0.0.0/8", "networks.lan.subnet: 127.0.0.0/8 overlaps "
     "127.0.0.0/8 (loopback)", "expected"),
    ("networks/lan/subnet", "169.254.0.0/24", "networks.lan.subnet: 169.254.0.0/24 overlaps "
     "169.254.0.0/16 (link-local)", "expected"),
    ("networks/lan/subnet", "224.1.0.0/24", "networks.lan.subnet: 224.1.0.0/24 overlaps "
     "224.0.0.0/4 (multicast)", "expected"),
    ("networks/lan/subnet", "240.0.0.0/24", "networks.lan.subnet: 240.0.0.0/24 overlaps "
     "240.0.0.0/4 (reserved", "expected"),
    ("networks/lan/subnet", "::/0", "networks.lan.subnet: ::/0 overlaps ::/8", "expected"),
    ("networks/lan/subnet", "fe80::/64", "networks.lan.subnet: fe80::/64 overlaps fe80::/10 "
     "(link-local)", "expected"),
    ("networks/lan/subnet", ["10.213.192.0/24"], "networks.lan.subnet: ['10.213.192.0/24'] is "
     "a list", "a network in CIDR form"),
    ("networks/lan/subnet", DELETE, "networks.lan.subnet: missing", "CIDR form"),
    ("networks/lan", "10.213.192.0/24", "networks.lan: '10.213.192.0/24' is a string",
     "a mapping like {subnet"),
    ("links/0/subnet", "10.213.192.0/30", "links[0].subnet: 10.213.192.0/30 overlaps "
     "networks.lan (10.213.192.0/24)", "subnets of their own"),
    ("links/0/subnet", "127.0.0.0/30", "links[0].subnet: 127.0.0.0/30 overlaps 127.0.0.0/8",
     "expected"),
    ("links/0/endpoints", "web1:eth1", "links[0].endpoints: 'web1:eth1' is a string",
     "two endpoints"),
    ("links/0/endpoints", ["web1:eth1\n", "web2:eth1"], "links[0]: interface 'eth1\n' in",
     "1-15 characters"),
    ("links/0/endpoints", ["web1", "web2:eth1"], "links[0]: 'web1' has no interface",
     "node:ifname"),
    ("links/0/endpoints", ["web1:lo", "web2:eth1"], "links[0]: interface lo of node web1 is "
     "already used", ""),
    ("links/0/mtu", 20, "links[0].mtu: MTU 20 is out of range", "68-65535"),
    ("links/0", "web1:eth1 web2:eth1", "links[0]: 'web1:eth1 web2:eth1' is a string",
     "two endpoints"),
    ("links", {"a": 1}, "links: {'a': 1} is a mapping", "a list of links"),
    ("defaults", ["x"], "defaults: ['x'] is a list", "a mapping"),
    ("defaults/hostname", "x", "defaults: unknown key 'hostname'", "expected one of cap_add"),
    ("description", ["x"], "description: ['x'] is a list", "a string"),
]


def test_the_good_topology_is_valid():
    assert validate(GOOD) == []


@pytest.mark.parametrize("path,value,start,fragment", BAD,
                         ids=[("%s=%r" % (b[0], b[1]))[:60] for b in BAD])
def test_a_bad_input_is_one_problem_naming_its_path_and_the_expected_form(
        path, value, start, fragment):
    problems = validate(with_change(path, value))
    assert len(problems) == 1, problems
    assert problems[0].startswith(start), problems
    assert fragment in problems[0], problems
    assert not any(e in problems[0] for e in PYTHON_ERRORS), problems


def test_everything_wrong_at_once_is_listed_at_once():
    spec = copy.deepcopy(GOOD)
    spec["networks"]["lan"]["nat"] = "false"
    spec["nodes"]["web1"]["hostname"] = "web_1"
    spec["nodes"]["web1"]["cap_add"] = ["FLY"]
    spec["nodes"]["web1"]["limits"]["cpu_weight"] = "x"
    spec["nodes"]["web2"]["jail"] = {"source": "busybox", "command": ["id"]}
    problems = validate(spec)
    assert [p.split(":")[0] for p in problems] == [
        "networks.lan.nat", "nodes.web1.limits.cpu_weight", "nodes.web1.cap_add[0]",
        "nodes.web1.hostname", "nodes.web2.jail.command"]


@pytest.mark.parametrize("value", [None, [], "lab: x", 3, [{"lab": "x"}]])
def test_a_top_level_that_is_not_a_mapping_is_one_problem(value):
    assert validate(value) == ["topology: %r is %s; expected a mapping with lab, networks, "
                               "nodes and links" % (value, {
                                   type(None): "null", list: "a list", str: "a string",
                                   int: "an integer"}[type(value)])]


def test_a_problem_from_defaults_is_named_once_not_per_node():
    spec = with_change("defaults/jail", {"source": "busybox", "mirror": "http://x/"})
    assert validate(spec) == ["defaults.jail.mirror: only used with source 'debootstrap' "
                              "(source is 'busybox')"]


def test_a_node_jail_of_another_source_does_not_inherit_the_defaults_keys_silently():
    spec = with_change("defaults/jail", {"source": "debootstrap", "suite": "bookworm"})
    spec["nodes"]["web1"]["jail"] = {"source": "tarball", "path": "/srv/root.tar"}
    assert validate(spec) == ["defaults.jail.suite: only used with source 'debootstrap' "
                              "(source is 'tarball')"]


def test_a_subnet_the_host_uses_on_its_own_interface_is_refused():
    hosts = [("eth0", "192.0.2.2/24"), ("lo", "127.0.0.1/8"), ("eth1", "10.213.192.77/16")]
    problems = validate(GOOD, host_addresses=hosts)
    assert problems == [
        "networks.lan.subnet: 10.213.192.0/24 overlaps the host's own address "
        "10.213.192.77/16 on eth1; expected a subnet that no interface of the host uses",
        "links[0].subnet: 10.213.193.0/30 overlaps the host's own address 10.213.192.77/16 "
        "on eth1; expected a subnet that no interface of the host uses"]
    assert validate(GOOD, host_addresses=hosts[:2]) == []


def test_a_subnet_inside_the_hosts_own_subnet_is_refused():
    spec = with_change("networks/lan/subnet", "192.0.2.0/25")
    spec["nodes"]["web2"]["networks"] = ["lan"]
    assert validate(spec, host_addresses=[("eth0", "192.0.2.200/24")]) == [
        "networks.lan.subnet: 192.0.2.0/25 overlaps the host's own address 192.0.2.200/24 "
        "on eth0; expected a subnet that no interface of the host uses"]


def test_new_keys_are_compiled_into_the_module_items():
    spec = copy.deepcopy(GOOD)
    spec["networks"]["lan"].update(isolate_host=True, antispoof=False)
    spec["networks"]["dmz"] = {"subnet": "10.213.195.0/24"}
    spec["nodes"]["web1"]["networks"] = ["lan", "dmz"]
    spec["links"][0]["endpoints"] = ["web1:eth2", "web2:eth1"]
    spec["nodes"]["web1"]["disk"] = "512M"
    spec["nodes"]["web2"]["jail"] = {"source": "directory", "path": "/srv/rootfs",
                                     "keep_setuid": True}
    assert validate(spec) == []
    lab = compile_lab(spec)
    bridges = dict((b["name"], b) for b in lab["bridges"])
    assert bridges["demo-lan"]["isolate_host"] is True
    assert "isolate_host" not in bridges["demo-dmz"]       # the module's default: off
    by_bridge = dict(((v.get("bridge"), v["peer"]["netns"]), v) for v in lab["veths"])
    assert by_bridge[("demo-lan", "demo-web1")]["antispoof"] is False
    assert by_bridge[("demo-lan", "demo-web2")]["antispoof"] is False
    assert "antispoof" not in by_bridge[("demo-dmz", "demo-web1")]   # the default: on
    assert "antispoof" not in by_bridge[(None, "demo-web2")]         # a p2p link
    jails = dict((j["name"], j) for j in lab["jails"])
    assert jails["web1"] == {"name": "web1", "source": "busybox", "disk": "512M"}
    assert jails["web2"] == {"name": "web2", "source": "directory", "path": "/srv/rootfs",
                             "keep_setuid": True}


def test_defaults_disk_applies_to_every_node_unless_it_has_its_own():
    spec = with_change("defaults/disk", "1G")
    spec["nodes"]["web2"]["disk"] = 268435456
    jails = dict((j["name"], j) for j in compile_lab(spec)["jails"])
    assert jails["web1"]["disk"] == "1G" and jails["web2"]["disk"] == 268435456


def test_absent_plans_from_what_the_host_has_not_from_the_file():
    current = {"containers": [{"name": "web1"}, {"name": "gone"}],
               "namespaces": [{"name": "demo-web1"}, {"name": "demo-gone"}],
               "bridges": [{"name": "demo-lan"}],
               "veths": [{"name": "demo-web1-0", "netns": None},
                         {"name": "eth0", "netns": "demo-web1"}],
               "vxlans": [{"name": "demo-lan-vx", "netns": None}],
               "jails": [{"name": "web1"}, {"name": "gone"}],
               "cgroups": [{"name": "web1"}]}
    plan = removal_plan("demo", current)
    assert plan["containers"] == plan["jails"] == plan["bridges"] == []
    assert plan["remove"] == {
        "containers": [{"name": "gone"}, {"name": "web1"}],
        "namespaces": [{"name": "demo-gone"}, {"name": "demo-web1"}],
        "bridges": [{"name": "demo-lan"}],
        "veths": [{"name": "demo-web1-0", "netns": None}],
        "jails": [{"name": "gone"}, {"name": "web1"}],
        "cgroups": [{"name": "web1"}],
        "vxlans": [{"name": "demo-lan-vx", "netns": None}]}
    assert removal_plan("demo", {})["remove"] == dict(
        (k, []) for k in ("containers", "namespaces", "bridges", "veths", "jails", "cgroups",
                          "vxlans"))


def paths(value, prefix=()):
    """Every path (tuple of keys and indexes) into a nested value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, prefix + (index,))


ANY_VALUE = [None, True, 0, -1, 1.5, float("nan"), "", "x\n", "max", [], {}, ["a"], [1],
             {"k": "v"}, {1: 2}]


RICH = copy.deepcopy(GOOD)
RICH["nodes"]["web1"]["jail"] = {"source": "debootstrap", "suite": "bookworm", "variant": "minbase",
                            "include": ["iproute2"], "mirror": "http://deb.debian.org/debian",
                            "overlay": True}
RICH["nodes"]["web2"].update(jail={"source": "tarball", "path": "/srv/r.tar",
                                   "keep_setuid": False}, disk="1G", host="h1",
                             limits={"io": [{"device": "/dev/null", "read_bps": "1M"}],
                                     "cpuset": "0", "swap": 0})
RICH["networks"]["lan"].update(vni=7, isolate_host=True, antispoof=True)
RICH["links"].append(["web1:eth2", "web2:eth2"])


def any_disk(device):
    """A stand-in for nslab_cgroup's block_device: every string names disk 8:0."""
    return "8:0", None


def test_no_value_anywhere_makes_the_validator_or_the_compiler_raise():
    checked = 0
    for base in (GOOD, RICH):
        assert validate(base, resolve=any_disk) == []
        for path in paths(base):
            for value in ANY_VALUE:
                spec = copy.deepcopy(base)
                if not path:
                    spec = value
                else:
                    target = spec
                    for key in path[:-1]:
                        target = target[key]
                    target[path[-1]] = value
                problems = validate(spec, resolve=any_disk)          # raises nothing
                assert all(isinstance(p, str) and ": " in p for p in problems), (path, value)
                assert not any(e in p for p in problems for e in PYTHON_ERRORS), problems
                if not problems:
                    compile_lab(spec)              # a valid topology compiles
                checked += 1
    assert checked > 1500


def topology_module():
    """library/nslab_topology.py, loaded as a module (its core takes a module object)."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[2] / "library" / "nslab_topology.py"
    spec = importlib.util.spec_from_file_location("nslab_topology_library", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_absent_over_a_fleet_with_a_host_down_plans_this_hosts_removal_from_any_file():
    library = topology_module()
    fleet = [{"item": "h1", "labs": {"demo": {"containers": [{"name": "a"}],
                                              "namespaces": [{"name": "demo-a"}],
                                              "bridges": [{"name": "demo-lan"}]}}},
             {"item": "h2", "unreachable": True}]
    params = {"topology": {"lab": "demo", "nodes": "not even a mapping", "colour": 1},
              "fleet": fleet, "host": "h1", "current": {}, "state": "absent"}
    result = library.compile_topology(type("Module", (), {"params": params})())
    assert result["changed"] is False
    remove = result["lab"]["remove"]
    assert remove["containers"] == [{"name": "a"}]
    assert remove["namespaces"] == [{"name": "demo-a"}]
    assert remove["bridges"] == [{"name": "demo-lan"}]


def test_absent_still_needs_a_valid_lab_name():
    library = topology_module()
    params = {"topology": {"lab": "demo\n"}, "fleet": [], "host": None, "current": {},
              "state": "absent"}
    with pytest.raises(library.ValidationError) as err:
        library.compile_topology(type("Module", (), {"params": params})())
    assert str(err.value).startswith("topology.lab: lab name 'demo\\n' is invalid")


def test_a_compile_error_is_a_user_error_naming_the_key():
    library = topology_module()
    topology = {"lab": "demo", "networks": {"lan": {"subnet": "10.213.168.0/30"}},
                "nodes": dict((name, {"networks": ["lan"]}) for name in ("a", "b", "c"))}
    params = {"topology": topology, "fleet": [], "host": None, "current": {},
              "state": "present"}
    library.host_addresses = lambda module: []
    with pytest.raises(library.ValidationError) as err:
        library.compile_topology(type("Module", (), {"params": params})())
    assert str(err.value) == ("networks.lan: 10.213.168.0/30 has no free address left for "
                              "node b")
    assert err.value.details()["paths"] == ["networks.lan"]


def test_a_bug_in_the_compiler_is_not_reported_as_a_user_error():
    library = topology_module()
    params = {"topology": {"lab": "demo", "nodes": {"a": {}}}, "fleet": [], "host": None,
              "current": {}, "state": "present"}
    library.host_addresses = lambda module: []

    def broken(*args, **kwargs):
        raise ValueError("a bug: int('x')")
    library.compile_lab = broken
    with pytest.raises(ValueError) as err:
        library.compile_topology(type("Module", (), {"params": params})())
    assert not isinstance(err.value, library.ValidationError)

"""The topology the validation tests start from (GOOD) and the table of bad inputs (BAD):
each one change to GOOD and the one problem the validator reports for it. Shared by the
validator's tests and the published JSON Schema's."""

import copy

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

"""Integration fixtures: run nslab modules through Ansible against the real kernel.

Every test gets its own lab name (random), and every kernel object a test makes is named
after it. Teardown removes whatever is left of that lab straight through the kernel
(not through nslab, which may be what failed) and then checks that nothing remains.
"""

import json
import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ansible.module_utils.nslab_paths import DATA_ROOT, STATE_ROOT  # noqa: F401 (tests import them)

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent

pytestmark = pytest.mark.integration


def ansible_env():
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "tests" / "integration" / "callback_plugins"),
        ANSIBLE_STDOUT_CALLBACK="nslab_json",
        ANSIBLE_NOCOLOR="1",
        LC_ALL="C.UTF-8",
    )


def run_module(module, args, check=False, diff=False, interpreter=None, netns=None):
    """Run one module on localhost with ``ansible`` and return its result dict.

    With ``netns`` the whole run happens inside that (test-made) network namespace, which
    is then the module's "host"."""
    argv = [str(BIN / "ansible"), "localhost", "-m", module]
    argv += ["-a", json.dumps(args)] if args else []
    if netns:
        argv = ["nsenter", "--net=/run/netns/%s" % netns] + argv
    if interpreter:
        argv += ["-e", "ansible_python_interpreter=%s" % interpreter]
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    proc = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True)
    results = task_results(proc.stdout)
    if results:
        return results[0]
    raise AssertionError("no result from %s (rc %s):\n%s\n%s" % (
        module, proc.returncode, proc.stdout, proc.stderr))


def task_results(stdout):
    """The task results (one dict each, with ``_task``, ``_host``, ``_status``, ``changed``,
    ``actions``...) that the nslab_json callback printed, one JSON line per result."""
    return [json.loads(line) for line in stdout.splitlines()
            if line.startswith("{") and '"_status"' in line]


def run_playbook(playbook, extra_vars=None, check=False, json_results=False, inventory=None):
    """Run a playbook (on localhost, or on ``inventory``); with ``json_results`` return its
    task results instead of the process."""
    argv = [str(BIN / "ansible-playbook"), str(ROOT / playbook)]
    argv += ["-i", inventory] if inventory else []
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    argv += ["--check"] if check else []
    env = ansible_env()
    if not json_results:
        env["ANSIBLE_STDOUT_CALLBACK"] = "default"
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if not json_results:
        return proc
    results = task_results(proc.stdout)
    assert results, "no results from %s:\n%s\n%s" % (playbook, proc.stdout, proc.stderr)
    return results


def build(lab, tmp_path, spec, state="present"):
    """lab.yml on ``spec`` written as ``<lab>.yml`` in tmp_path; its task results."""
    path = tmp_path / ("%s.yml" % lab.name)
    path.write_text(yaml.safe_dump(spec))
    return run_playbook("lab.yml", {"lab": str(path), "state": state}, json_results=True)


def changed(results):
    """{task name without its role: actions} of the tasks that changed something."""
    return dict((r["_task"].split(" : ")[-1], r.get("actions", True))
                for r in results if r.get("changed"))


def failed(results):
    return [r for r in results if r["_status"] == "failed"]


def sh(*argv, check=True, netns=None):
    if netns:
        argv = ("nsenter", "--net=/run/netns/%s" % netns) + argv
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def ip_links(netns=None):
    out = sh("ip", "-j", "-d", "link", "show", netns=netns).stdout
    return dict((link["ifname"], link) for link in json.loads(out or "[]"))


def nsfs_mounts():
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if " - nsfs " in line]


def cgroup_mounts():
    """Mount points of every cgroup v1 and v2 hierarchy."""
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle
                if line.partition(" - ")[2].split()[0] in ("cgroup", "cgroup2")]


def lab_cgroup_dirs(lab_name):
    """``<hierarchy>/nslab/<lab>`` wherever it exists: the only cgroups a test may make."""
    return [d for d in (os.path.join(m, "nslab", lab_name) for m in cgroup_mounts())
            if os.path.isdir(d)]


def remove_cgroup_tree(top):
    """SIGKILL the processes in ``top`` and below (the tests' own children), rmdir deepest
    first, then ``nslab`` itself if no other lab uses it."""
    for directory, _dirs, _files in os.walk(top, topdown=False):
        deadline = time.monotonic() + 5
        while True:
            with open(os.path.join(directory, "cgroup.procs")) as handle:
                pids = [int(p) for p in handle.read().split()]
            if not pids or time.monotonic() > deadline:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        os.rmdir(directory)
    try:
        os.rmdir(os.path.dirname(top))
    except OSError:
        pass


def mounts_under(path):
    """Mount points at or below ``path`` (octal escapes left as they are: nslab's paths
    have none), in mount order."""
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    return [m for m in points if m == path or m.startswith(path + "/")]


def proc_status(pid):
    """/proc/<pid>/status as {field: value}."""
    with open("/proc/%d/status" % pid) as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


def proc_children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
        return [int(p) for p in handle.read().split()]


def hosts_on_an_underlay(lab, underlay):
    """Net namespaces h1 and h2 of ``lab`` acting as two hosts, joined by a veth (u1, u2)
    that holds their ``underlay`` addresses ({"h1": ..., "h2": ...}, a /24)."""
    for host in ("h1", "h2"):
        sh("ip", "netns", "add", lab.n(host))
        sh("ip", "link", "set", "lo", "up", netns=lab.n(host))
    sh("ip", "link", "add", lab.n("u1"), "netns", lab.n("h1"), "type", "veth",
       "peer", lab.n("u2"), "netns", lab.n("h2"))
    for host, end in (("h1", "u1"), ("h2", "u2")):
        sh("ip", "addr", "add", underlay[host] + "/24", "dev", lab.n(end), netns=lab.n(host))
        sh("ip", "link", "set", lab.n(end), "up", netns=lab.n(host))


class Lab:
    """A test lab: a unique name, its objects' names, cleanup and leftover checks."""

    def __init__(self, name=None):
        self.name = name or "t" + secrets.token_hex(3)          # 7 characters

    def n(self, suffix):
        """A kernel object name of this lab (at most 15 bytes for suffixes up to 7)."""
        return "%s-%s" % (self.name, suffix)

    def owns(self, name, alias=None):
        return name.startswith(self.name + "-") or (alias or "").startswith(
            "nslab:%s:" % self.name)

    def init_pids(self):
        """Container inits of this lab, found by the label in their command line."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as handle:
                        argv = handle.read().split(b"\0")
                except OSError:
                    continue
                if any(a.startswith(b"nslab:%s:" % self.name.encode()) for a in argv):
                    pids.append(int(entry))
        return pids

    def leftovers(self):
        found = ["container init %d" % pid for pid in self.init_pids()]
        found += ["link %s" % n for n, l in ip_links().items() if self.owns(n, l.get("ifalias"))]
        if os.path.isdir("/run/netns"):
            found += ["netns %s" % n for n in os.listdir("/run/netns") if self.owns(n)]
        found += ["mount %s" % m for m in nsfs_mounts()
                  if self.name in m and (m.startswith(STATE_ROOT) or m.startswith("/run/netns"))]
        if os.path.exists(os.path.join(STATE_ROOT, self.name)):
            found.append("state dir %s/%s" % (STATE_ROOT, self.name))
        found += ["cgroup %s" % d for d in lab_cgroup_dirs(self.name)]
        found += ["nft rule %s" % c for f in NFT_FAMILIES for c, _h in nft_rules(f)
                  if c.startswith("nslab:%s:" % self.name)]
        found += ["mount %s" % m for m in mounts_under(self.data_dir)]
        if os.path.lexists(self.data_dir):
            found.append("data dir %s" % self.data_dir)
        return found

    @property
    def data_dir(self):
        """The lab's jails and bases (nslab_jail)."""
        return os.path.join(DATA_ROOT, self.name)

    def cleanup(self):
        for pid in self.init_pids():
            try:
                os.kill(pid, 9)           # the kernel then ends its whole pid namespace
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2
        while self.init_pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        for name, link in ip_links().items():
            if self.owns(name, link.get("ifalias")):
                sh("ip", "link", "del", "dev", name, check=False)
        remove_lab_rules(self.name)
        for mount in sorted(nsfs_mounts(), reverse=True):
            if self.name in mount and (mount.startswith(STATE_ROOT)
                                       or mount.startswith("/run/netns")):
                sh("umount", "-l", mount, check=False)
        if os.path.isdir("/run/netns"):
            for name in os.listdir("/run/netns"):
                if self.owns(name):
                    os.unlink(os.path.join("/run/netns", name))
        for directory in lab_cgroup_dirs(self.name):
            remove_cgroup_tree(directory)
        remove_tree(os.path.join(STATE_ROOT, self.name))
        release_state_root()
        for mount in reversed(mounts_under(self.data_dir)):      # deepest, newest first
            sh("umount", "-l", mount, check=False)
        if not mounts_under(self.data_dir):
            remove_tree(self.data_dir)
        if os.path.isdir(DATA_ROOT) and not os.listdir(DATA_ROOT):
            os.rmdir(DATA_ROOT)


NFT_FAMILIES = ("ip", "inet", "bridge")       # nslab's tables: "<family> nslab"


def nft_rules(family, netns=None):
    """[(comment, handle)] of the rules in nslab's table of ``family`` ([] without one)."""
    if shutil.which("nft") is None:
        return []
    proc = sh("nft", "-j", "list", "table", family, "nslab", check=False, netns=netns)
    if proc.returncode != 0:
        return []
    return [(item["rule"].get("comment", ""), item["rule"]["handle"])
            for item in json.loads(proc.stdout)["nftables"] if "rule" in item]


def rule_chains(family):
    """{handle: chain} of the rules in nslab's table of ``family``."""
    proc = sh("nft", "-j", "list", "table", family, "nslab", check=False)
    if proc.returncode != 0:
        return {}
    return dict((item["rule"]["handle"], item["rule"]["chain"])
                for item in json.loads(proc.stdout)["nftables"] if "rule" in item)


def remove_lab_rules(lab_name):
    """Delete the lab's rules (named ``nslab:<lab>:...``) from nslab's tables in the host,
    and a table left empty."""
    for family in NFT_FAMILIES:
        rules = nft_rules(family)
        mine = [(c, h) for c, h in rules if c.startswith("nslab:%s:" % lab_name)]
        chains = rule_chains(family) if mine else {}
        for _comment, handle in mine:
            # inet nslab holds port publishing's chains beside nslab_bridge's input.
            sh("nft", "delete", "rule", family, "nslab", chains.get(handle, "input"),
               "handle", str(handle), check=False)
        if mine and len(mine) == len(rules):
            sh("nft", "delete", "table", family, "nslab", check=False)


def remove_tree(path):
    """rm -rf without a recursion limit (tests make 1,100-deep trees in jails), never
    crossing into a mount."""
    sh("rm", "-rf", "--one-file-system", path, check=False)


def release_state_root():
    """Unmount nslab's private state root once no lab uses it (as the modules do)."""
    if os.path.isdir(STATE_ROOT) and not os.listdir(STATE_ROOT):
        with open("/proc/self/mountinfo") as handle:
            if any(line.split()[4] == STATE_ROOT for line in handle):
                sh("umount", "-l", STATE_ROOT, check=False)
        os.rmdir(STATE_ROOT)


@pytest.fixture
def lab():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (namespaces, links, mounts)")
    test_lab = Lab()
    try:
        yield test_lab
    finally:
        test_lab.cleanup()
        left = test_lab.leftovers()
        assert not left, "cleanup left %s" % left


@pytest.fixture
def module():
    return run_module


BUSYBOX = shutil.which("busybox") or "/bin/busybox"
BUSYBOX_APPLETS = ["sh", "ls", "cat", "sleep", "mount", "mkdir", "echo", "ps", "hostname",
                   "chroot", "ping", "ip", "id", "true", "head"]
BUSYBOX_SKIP = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox (Debian "
                                  "package busybox-static) is not installed")


@pytest.fixture
def rootfs(tmp_path):
    """A minimal busybox jail: /bin/busybox and its applet links, an empty /tmp."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    (root / "tmp").mkdir()
    return root


# No other test uses 10.213.128.0/19. A random /24 of it (lan in its first half, the link's
# /30 at its end) lets two sessions run at once, as engineers do while they work.
_RUNNING_LAB_THIRD = 128 + secrets.randbelow(32)
RUNNING_LAB_SUBNET = "10.213.%d.0/25" % _RUNNING_LAB_THIRD
RUNNING_LAB_LINK = "10.213.%d.252/30" % _RUNNING_LAB_THIRD


@pytest.fixture(scope="session")
def running_lab(tmp_path_factory):
    """One lab built once with lab.yml and shared by the tests that only read it (inventory,
    inspect, graph, exec): busybox nodes a, b and c on the network ``lan``
    (RUNNING_LAB_SUBNET), a point-to-point link a:eth1 - c:eth1 (RUNNING_LAB_LINK), and a
    node ``d`` on lan that is stopped. Do not change it in a test: build a lab of your own
    for that."""
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (namespaces, links, mounts)")
    shared = Lab()
    spec = {
        "lab": shared.name,
        "defaults": {"jail": {"source": "busybox"},
                     "limits": {"memory": "64M", "cpus": 0.5, "pids": 64}},
        "networks": {"lan": {"subnet": RUNNING_LAB_SUBNET}},
        "nodes": {"a": {"networks": ["lan"]}, "b": {"networks": ["lan"]},
                  "c": {"networks": ["lan"], "limits": {"memory": "32M"}},
                  "d": {"networks": ["lan"]}},
        "links": [{"endpoints": ["a:eth1", "c:eth1"], "subnet": RUNNING_LAB_LINK}],
    }
    path = tmp_path_factory.mktemp("running_lab") / ("%s.yml" % shared.name)
    path.write_text(yaml.safe_dump(spec))
    try:
        built = run_playbook("lab.yml", {"lab": str(path)})
        assert built.returncode == 0, built.stdout[-3000:]
        stopped = run_module("nslab_container", {"lab": shared.name, "name": "d",
                                                 "state": "stopped"})
        assert stopped.get("changed"), stopped
        shared.spec, shared.topology_file = spec, path
        yield shared
    finally:
        shared.cleanup()
        left = shared.leftovers()
        assert not left, "cleanup left %s" % left

"""The nslab connection plugin against real containers: what a command run through it sees
(its root, hostname, processes), what the kernel says about that process (namespaces,
cgroups, capabilities), files put and fetched through it, and a planted symlink."""

import importlib.util
import json
import os
import subprocess
import time

import pytest

from helpers.ansible_runs import ansible_env
from helpers.kernel import proc_children, proc_status
from helpers.lab import BUSYBOX_SKIP
from helpers.paths import BIN, ROOT

from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader

pytestmark = BUSYBOX_SKIP
PLUGIN_SPEC = importlib.util.spec_from_file_location("nslab_connection",
                                                     ROOT / "plugins" / "connection" / "nslab.py")
plugin = importlib.util.module_from_spec(PLUGIN_SPEC)
PLUGIN_SPEC.loader.exec_module(plugin)


@pytest.fixture
def box(lab, module):
    """A busybox container 'box' in its own net namespace and cgroup (pids limited)."""
    netns = lab.n("box")
    assert module("nslab_namespace", dict(lab=lab.name, name=netns))["changed"]
    assert module("nslab_jail", dict(lab=lab.name, name="box", source="busybox"))["changed"]
    assert module("nslab_cgroup", dict(lab=lab.name, name="box", pids=40))["changed"]
    result = module("nslab_container", dict(lab=lab.name, name="box", jail="box", netns=netns,
                                            cgroup="box", hostname="boxhost"))
    assert result["_status"] == "ok", result.get("msg")
    return result["containers"][0]


def adhoc(host, module_name, args, extra=()):
    argv = [str(BIN / "ansible"), "all", "-i", host + ",", "-c", "nslab.lab.nslab", "-m", module_name,
            "-a", args, *extra]
    env = dict(ansible_env(), ANSIBLE_STDOUT_CALLBACK="default")
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.fixture
def connection():
    """The plugin driven in-process, as Ansible's worker drives it."""

    def connect(address):
        conn = connection_loader.get("nslab.lab.nslab", PlayContext())
        conn.set_options(direct={"remote_addr": address})
        return conn
    return connect


def test_a_command_sees_the_container(lab, box):
    proc = adhoc("%s/box" % lab.name, "raw", "hostname; ls /; ps -o pid,args")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()[1:]
    assert lines[0] == "boxhost"
    assert "linuxrc" in lines and "work" not in lines and "home" not in lines
    ps = [line.split(None, 1) for line in lines if line.strip()[:1].isdigit()]
    assert ps[0][0] == "1" and "nslab:%s:box" % lab.name in ps[0][1]   # the container's init
    assert all("pytest" not in args for _pid, args in ps)               # no host process


def test_the_kernel_holds_what_runs_through_it_like_the_container(lab, box, connection):
    """A process left running by a command: same namespaces, cgroups, capabilities and
    no_new_privs as the container's init, from the kernel's side."""
    init = box["pid"]
    conn = connection("%s/box" % lab.name)
    rc, _out, err = conn.exec_command("sleep 300 >/dev/null 2>&1 &")
    assert rc == 0, err
    deadline = time.monotonic() + 5
    while not proc_children(init) and time.monotonic() < deadline:
        time.sleep(0.02)
    (sleeper,) = proc_children(init)          # orphaned inside: adopted by the container's PID 1
    for nstype in ("mnt", "pid", "net", "uts", "ipc", "cgroup", "user"):
        assert os.stat("/proc/%d/ns/%s" % (sleeper, nstype)).st_ino == os.stat(
            "/proc/%d/ns/%s" % (init, nstype)).st_ino, nstype
    assert os.readlink("/proc/%d/root" % sleeper) == "/"
    assert os.stat("/proc/%d/root/linuxrc" % sleeper).st_ino == os.stat(
        "/proc/%d/root/linuxrc" % init).st_ino
    with open("/proc/%d/cgroup" % sleeper) as mine, open("/proc/%d/cgroup" % init) as its:
        assert sorted(mine) == sorted(its)
    for key in ("CapBnd", "CapEff", "CapPrm", "NoNewPrivs"):
        assert proc_status(sleeper)[key] == proc_status(init)[key], key
    assert proc_status(sleeper)["NoNewPrivs"] == "1"
    rc, out, _err = conn.exec_command("mount -t tmpfs x /tmp; echo $?")
    assert out.split()[-1] != b"0"                  # no CAP_SYS_ADMIN, as in the container


def test_the_containers_pids_limit_holds_its_commands(lab, box, connection):
    conn = connection("%s/box" % lab.name)
    rc, _out, err = conn.exec_command("for i in $(seq 60); do sleep 2 & done")
    assert b"can't fork" in err             # forks stop at the cgroup's pids.max (40)


def test_files_put_and_fetched_byte_for_byte(lab, box, connection, tmp_path):
    payload = os.urandom(3 * 1024 * 1024) + b"\0end"
    (tmp_path / "in").write_bytes(payload)
    conn = connection("%s/box" % lab.name)
    conn.put_file(str(tmp_path / "in"), "/tmp/a file")
    with open("/proc/%d/root/tmp/a file" % box["pid"], "rb") as inside:
        assert inside.read() == payload
    conn.fetch_file("/tmp/a file", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == payload


def test_a_planted_symlink_resolves_inside_the_container(lab, box, connection, tmp_path):
    """A link inside the jail to an absolute path: a write through it must land on that
    path inside the container, never on the host's file of that name."""
    host_file = tmp_path / "host-file"
    host_file.write_text("host\n")
    conn = connection("%s/box" % lab.name)
    rc, _out, err = conn.exec_command("mkdir -p %s && busybox ln -s %s /tmp/planted" % (
        tmp_path, host_file))
    assert rc == 0, err
    (tmp_path / "new").write_text("written through the connection\n")
    conn.put_file(str(tmp_path / "new"), "/tmp/planted")
    assert host_file.read_text() == "host\n"
    rc, out, _err = conn.exec_command("cat %s" % host_file)
    assert out == b"written through the connection\n"


def test_ping_and_a_module_with_python_inside(lab, module):
    """A debootstrap jail with python3 (cached in /var/cache/nslab after the first build):
    the ping module and setup run inside, and see the container's facts."""
    netns = lab.n("py")
    assert module("nslab_namespace", dict(lab=lab.name, name=netns))["changed"]
    jail = module("nslab_jail", dict(lab=lab.name, name="py", source="debootstrap",
                                     suite="bookworm", include=["python3"]))
    assert jail["_status"] == "ok", jail.get("msg")
    started = module("nslab_container", dict(lab=lab.name, name="py", jail="py", netns=netns,
                                             hostname="pyhost"))
    assert started["_status"] == "ok", started.get("msg")
    ping = adhoc("%s/py" % lab.name, "ping", "")
    assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr
    facts = adhoc("%s/py" % lab.name, "setup", "filter=ansible_hostname,ansible_virtualization*",
                  ["-e", "ansible_python_interpreter=/usr/bin/python3", "-o"])
    assert facts.returncode == 0, facts.stdout + facts.stderr
    found = json.loads(facts.stdout.split("=>", 1)[1])["ansible_facts"]
    assert found["ansible_hostname"] == "pyhost"


def test_a_missing_or_stale_container_is_unreachable(lab, connection, tmp_path):
    conn = connection("%s/nothing" % lab.name)
    with pytest.raises(AnsibleConnectionFailure, match="no container 'nothing'"):
        conn.exec_command("true")
    # A record whose pid is now another process (here: this test's own pid).
    record = tmp_path / lab.name / "containers" / "stale.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({
        "name": "stale", "running": True, "pid": os.getpid(), "start_time": 1,
        "namespaces": {"pid": os.stat("/proc/self/ns/pid").st_ino}, "cgroup_dirs": [],
        "config": {"capabilities": [], "hostname": "x"}}))
    proc = subprocess.run(plugin.door_argv(str(BIN / "python3"), plugin.Connection.door_source(),
                                           lab.name, "stale", ["/bin/true"], root=str(tmp_path)),
                          capture_output=True, text=True)
    assert proc.returncode == 125
    assert "is another process now" in proc.stderr


def test_a_userns_container_is_entered_in_its_user_namespace(lab, module, connection):
    """Root through the connection is the container's root: the host's uid userns_base,
    whose writes to the jail's (host-owned) files are refused."""
    netns = lab.n("u")
    assert module("nslab_namespace", dict(lab=lab.name, name=netns))["changed"]
    assert module("nslab_jail", dict(lab=lab.name, name="u", source="busybox"))["changed"]
    started = module("nslab_container", dict(lab=lab.name, name="u", jail="u", netns=netns,
                                             userns=True, userns_base=300000))
    assert started["_status"] == "ok", started.get("msg")
    init = started["containers"][0]["pid"]
    conn = connection("%s/u" % lab.name)
    rc, out, err = conn.exec_command("id -u; sleep 300 >/dev/null 2>&1 & touch /bin/x")
    assert out.split()[0] == b"0" and rc != 0 and b"Permission denied" in err
    deadline = time.monotonic() + 5
    while not proc_children(init) and time.monotonic() < deadline:
        time.sleep(0.02)
    (sleeper,) = proc_children(init)
    assert os.stat("/proc/%d/ns/user" % sleeper).st_ino == os.stat(
        "/proc/%d/ns/user" % init).st_ino != os.stat("/proc/self/ns/user").st_ino
    assert proc_status(sleeper)["Uid"].split()[0] == "300000"        # an ordinary host user

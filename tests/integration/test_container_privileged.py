"""nslab_container's system containers (privileged) and binds, against the real kernel:
what a fleet host needs - every capability, nested namespaces, veths and bridges, cgroups
made inside landing below its own on the host - and host directories bound into its root."""

import os
import time

from helpers.kernel import lab_cgroup_dirs, proc_children, proc_status, sh
from helpers.capabilities import DEFAULT_CAPS

# Runs inside the container: everything a nested lab does, each step's status in /tmp/out.
NESTED_SCRIPT = """
exec > /tmp/out 2>&1
ip link add br0 type bridge && echo bridge=ok
ip link add v0 type veth peer name v1 && ip link set v0 master br0 && echo veth=ok
mkdir -p /run && ip netns add inner && ip link set v1 netns inner && ip -n inner -br link show v1 \
  && echo netns=ok
mkdir /sys/fs/cgroup/pids/inner && echo $$ > /sys/fs/cgroup/pids/inner/cgroup.procs \
  && echo cgroup=ok
cat /proc/self/cgroup | grep pids
echo 1 > /proc/sys/net/ipv4/ip_forward && echo forward=ok
echo data > /var/lib/nslab/file && echo bind=ok
cat /srv/ro/hello && touch /srv/ro/x 2>/dev/null || echo readonly=ok
echo done
exec sleep 1000
"""


def wait_for_done(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and "done\n" in open(path).read():
            return open(path).read()
        time.sleep(0.05)
    raise AssertionError("%s never said done" % path)


def full_mask():
    """Every capability the host's root holds here (a sandbox may withhold some)."""
    return int(proc_status(os.getpid())["CapBnd"], 16)


def test_privileged_container_nests_labs_and_binds_host_directories(lab, module, tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    (readonly / "hello").write_text("hello\n")
    assert module("nslab_namespace", dict(lab=lab.name, namespaces=[
        {"name": lab.n("p")}, {"name": lab.n("u")}]))["changed"]
    assert module("nslab_cgroup", dict(lab=lab.name, cgroups=[
        {"name": "sys", "pids": 256, "memory": "256M"}, {"name": "app", "pids": 64}]))["changed"]
    jails = module("nslab_jail", dict(lab=lab.name, source="host", jails=[
        {"name": "sys"}, {"name": "app"}], binaries=[
            "sh", "ip", "cat", "mkdir", "grep", "sleep", "touch"]))
    assert jails["_status"] == "ok", jails.get("msg")
    args = dict(lab=lab.name, containers=[
        dict(name="sys", jail="sys", netns=lab.n("p"), cgroup="sys", privileged=True,
             binds=[{"path": "/var/lib/nslab"},
                    {"path": "/srv/ro", "source": str(readonly), "readonly": True}],
             command=["sh", "-c", NESTED_SCRIPT]),
        dict(name="app", jail="app", netns=lab.n("u"), cgroup="app",
             command=["sleep", "1000"])])
    result = module("nslab_container", args, diff=True)
    assert result["_status"] == "ok", result.get("msg")
    system, app = result["containers"]
    owned = "/var/lib/nslab/%s/binds/sys/var/lib/nslab" % lab.name
    assert system["privileged"] is True and system["binds"] == [
        {"path": "/var/lib/nslab", "source": owned, "readonly": False},
        {"path": "/srv/ro", "source": str(readonly), "readonly": True}]
    assert result["diff"]["after"]["sys"]["privileged"] is True

    out = wait_for_done("/proc/%d/root/tmp/out" % system["pid"])
    lines = out.split("\n")
    for step in ("bridge", "veth", "netns", "cgroup", "forward", "bind", "readonly"):
        assert step + "=ok" in lines, (step, out)
    # inside, its own cgroup is the root; on the host the new one is below it
    assert "pids:/inner" in out
    pids_dirs = [d for d in lab_cgroup_dirs(lab.name) if "/pids/" in d]
    assert os.path.isdir(os.path.join(pids_dirs[0], "sys", "inner"))
    # the bridge and veth are in the container's net namespace, not the host's
    inside = sh("ip", "-br", "link", netns=lab.n("p")).stdout
    assert "br0" in inside and "v0@" in inside
    assert "br0" not in sh("ip", "-br", "link").stdout
    # the forwarding switch it flipped is its own namespace's
    assert sh("cat", "/proc/sys/net/ipv4/ip_forward", netns=lab.n("p")).stdout.strip() == "1"
    assert open(os.path.join(owned, "file")).read() == "data\n"
    assert sorted(os.listdir(readonly)) == ["hello"]

    # every capability in the privileged one, no no_new_privs; the default set elsewhere
    command = proc_children(system["pid"])[0]
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert int(proc_status(command)[key], 16) == full_mask(), key
    assert full_mask() & (1 << 21)                          # SYS_ADMIN among them
    assert proc_status(command)["NoNewPrivs"] == "0"
    plain = proc_children(app["pid"])[0]
    mask = sum(1 << n for n in DEFAULT_CAPS.values())
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert int(proc_status(plain)[key], 16) == mask, key
    assert proc_status(plain)["NoNewPrivs"] == "1"
    assert "/sys/fs/cgroup/pids" not in open("/proc/%d/mountinfo" % app["pid"]).read()

    assert module("nslab_container", args)["changed"] is False

    # stopping removes what it made inside its cgroup; its own cgroup and data stay
    stopped = module("nslab_container", dict(lab=lab.name, name="sys", state="stopped"))
    assert stopped["actions"] == ["stop container 'sys'"]
    assert not os.path.exists(os.path.join(pids_dirs[0], "sys", "inner"))
    assert os.path.isdir(os.path.join(pids_dirs[0], "sys"))
    assert os.path.exists(os.path.join(owned, "file"))

    gone = module("nslab_container", dict(lab=lab.name, containers=[
        {"name": "sys"}, {"name": "app"}], state="absent"))
    assert gone["actions"][0] == "remove container 'sys' and its bind directory " \
        "/var/lib/nslab/%s/binds/sys" % lab.name
    assert not os.path.exists("/var/lib/nslab/%s/binds" % lab.name)
    assert (readonly / "hello").exists()


def test_bad_binds_are_refused(lab, module, tmp_path, rootfs):
    result = module("nslab_container", dict(lab=lab.name, name="b", rootfs=str(rootfs), binds=[
        {"path": "/"}, {"path": "/proc/x"}, {"path": "relative"},
        {"path": "/a", "source": "/"}, {"path": "/b", "source": "/run/nslab"},
        {"path": "/c", "source": str(tmp_path / "missing")},
        {"path": "/d"}, {"path": "/d"}], privileged=True, userns=True))
    assert result["_status"] == "failed"
    problems = result["problems"]
    for index in (0, 1, 2):
        assert any(p.startswith("binds[%d].path: " % index) and "not allowed" in p
                   for p in problems), index
    assert any(p.startswith("binds[3].source: '/' is not allowed") for p in problems)
    assert any(p.startswith("binds[4].source: '/run/nslab' is not allowed") for p in problems)
    assert any(p.startswith("binds[5].source: ") and "not a directory" in p for p in problems)
    assert any(p.startswith("binds[7].path: '/d' is bound twice") for p in problems)
    assert any(p.startswith("privileged: ") for p in problems)
    assert not os.path.exists("/var/lib/nslab/%s" % lab.name)


def test_removing_a_container_whose_bind_source_is_gone_is_a_no_op(lab, module, tmp_path,
                                                                    rootfs):
    """A bind source must exist to start with it, not to remove what is not there."""
    result = module("nslab_container", dict(lab=lab.name, name="gone", rootfs=str(rootfs),
                                            state="absent", binds=[
                                                {"path": "/srv", "source": str(tmp_path / "x")}]))
    assert result["_status"] != "failed", result
    assert result["changed"] is False and result["actions"] == []

"""nslab_nodes against the real kernel: a lab's node parts in one module run, each left as
its own module leaves it (a bridge, a jail, namespaces, cgroup, veth pairs, link state,
route, sysctl, and a container inside them), a rerun without a change, check mode that makes nothing, a wrong
part refused by its module's argument spec before anything is made, a failing part named
together with what the parts before it did, and state=absent leaving nothing."""

import json
import os
import secrets
import time

from helpers.kernel import lab_cgroup_dirs, sh
from helpers.lab import BUSYBOX_SKIP

pytestmark = BUSYBOX_SKIP

# 10.77.0.0/16 is this file's own; a random /30 of it per test.
THIRD = secrets.randbelow(256)


def in_netns(netns, *argv):
    return sh("nsenter", "--net=/run/netns/%s" % netns, *argv).stdout


def nodes(lab, rootfs, **changes):
    a, b = lab.n("a"), lab.n("b")
    args = dict(
        lab=lab.name,
        bridges=[{"name": lab.n("lan"), "addresses": ["10.77.%d.5/30" % THIRD]}],
        jails=[{"name": "a", "source": "busybox"}],
        namespaces=[{"name": a, "types": ["net", "uts", "ipc"]}, {"name": b}],
        cgroups=[{"name": "a", "memory": "64M", "pids": 32}],
        veths=[{"name": "eth1", "netns": a, "addresses": ["10.77.%d.1/30" % THIRD],
                "peer": {"name": "eth1", "netns": b, "addresses": ["10.77.%d.2/30" % THIRD]}},
               {"name": lab.n("a0"), "bridge": lab.n("lan"),
                "peer": {"name": "eth0", "netns": a, "addresses": ["10.77.%d.6/30" % THIRD]}}],
        # Not netem: this machine's kernel has none (test_link covers it where there is).
        links=[{"node": "a", "interface": "eth1", "state": "up"}],
        routes=[{"netns": a, "routes": [{"to": "10.78.0.0/16", "via": "10.77.%d.2" % THIRD}]}],
        sysctls=[{"netns": a, "sysctls": {"net.ipv4.ip_default_ttl": 33}}],
        containers=[{"name": "a", "jail": "a", "netns": a, "cgroup": "a",
                     "command": ["sleep", "1000"]}],
        files={"/tmp/greeting": "hello\n"})
    args.update(changes)
    return args


def removal(lab):
    return dict(lab=lab.name, state="absent", containers=[{"name": "a"}],
                namespaces=[{"name": lab.n("a")}, {"name": lab.n("b")}],
                cgroups=[{"name": "a"}], jails=[{"name": "a"}],
                bridges=[{"name": lab.n("lan")}])


def test_every_part_in_one_run_is_what_its_module_makes_and_a_rerun_changes_nothing(
        lab, module, rootfs):
    a = lab.n("a")
    done = module("nslab_nodes", nodes(lab, rootfs), diff=True)
    assert done["changed"] is True, done
    assert list(done["parts"]) == ["bridges", "jails", "namespaces", "cgroups", "veths",
                                   "links", "routes", "sysctls", "containers"]
    assert "start container 'a'" in done["actions"]
    containers = done["parts"]["containers"]
    assert (containers["changed"], containers["actions"]) == (True, [
        "write /tmp/greeting in container 'a'", "start container 'a'"])
    # Each part's own wall time.
    assert all(part["seconds"] > 0 for part in done["parts"].values())
    assert set(done["diff"]["before"]) == set(done["parts"])

    [box] = done["containers"]
    pid = box["pid"]
    assert box["state"] == "running"
    # The container runs in the namespace and the cgroup the parts before it made.
    assert os.stat("/proc/%d/ns/net" % pid).st_ino == os.stat("/run/netns/" + a).st_ino
    memory = done["cgroups"][0]["paths"]["memory"]
    assert memory.endswith("/nslab/%s/a" % lab.name)
    assert str(pid) in open(os.path.join(memory, "cgroup.procs")).read().split()
    limit = [f for f in ("memory.max", "memory.limit_in_bytes")
             if os.path.exists(os.path.join(memory, f))]
    assert open(os.path.join(memory, limit[0])).read().strip() == "67108864"
    with open("/proc/%d/root/tmp/greeting" % pid) as handle:
        assert handle.read() == "hello\n"
    # Its network is the veth pair (both ends up, as the links part wants), the route and
    # the sysctl.
    assert [end["state"] for end in done["links"][0]["ends"]] == ["up", "up"], done["links"]
    [end] = json.loads(in_netns(a, "ip", "-j", "link", "show", "dev", "eth1"))
    assert "UP" in end["flags"]
    routes = json.loads(in_netns(a, "ip", "-j", "route", "show", "proto", "213"))
    assert [(r["dst"], r["gateway"]) for r in routes] == [("10.78.0.0/16",
                                                           "10.77.%d.2" % THIRD)]
    assert in_netns(a, "cat", "/proc/sys/net/ipv4/ip_default_ttl").strip() == "33"
    in_netns(a, "ping", "-c1", "-W2", "10.77.%d.2" % THIRD)
    # The bridge the parts made first, with a's veth on it; the jail is the container's root.
    [bridge] = json.loads(sh("ip", "-j", "-d", "link", "show", "dev", lab.n("lan")).stdout)
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    [port] = json.loads(sh("ip", "-j", "link", "show", "dev", lab.n("a0")).stdout)
    assert port["master"] == lab.n("lan")
    in_netns(a, "ping", "-c1", "-W2", "10.77.%d.5" % THIRD)
    assert os.stat("/proc/%d/root" % pid).st_ino == os.stat(done["jails"][0]["root"]).st_ino

    # brief: the same run, only the containers' views come back
    again = module("nslab_nodes", nodes(lab, rootfs, brief=True))
    assert again["changed"] is False and again["actions"] == [], again
    assert again["containers"] == [dict((k, view[k]) for k in (
        "name", "state", "pid", "netns", "cgroup")) for view in done["containers"]]
    assert again["containers"][0]["pid"] == pid
    assert list(again["parts"]) == list(done["parts"])
    assert not set(again) & {"bridges", "jails", "namespaces", "cgroups", "layout", "veths",
                             "links", "routes", "sysctls"}, sorted(again)

    gone = module("nslab_nodes", removal(lab))
    assert gone["changed"] is True, gone
    assert list(gone["parts"]) == ["containers", "namespaces", "cgroups", "jails", "bridges"]
    assert not os.path.exists("/sys/class/net/" + lab.n("lan"))
    assert not lab.init_pids() and not os.path.exists("/run/netns/" + a)
    assert not any(os.path.isdir(os.path.join(d, "a")) for d in lab_cgroup_dirs(lab.name))
    assert module("nslab_nodes", removal(lab))["changed"] is False
    assert lab.leftovers() == []


def test_check_mode_makes_nothing_and_leaves_the_links_out(lab, module, rootfs):
    planned = module("nslab_nodes", nodes(lab, rootfs), check=True)
    assert planned["changed"] is True, planned
    assert list(planned["parts"]) == ["bridges", "jails", "namespaces", "cgroups", "veths",
                                      "routes", "sysctls", "containers"]
    assert "start container 'a'" in planned["actions"]
    assert not os.path.exists("/run/netns/" + lab.n("a"))
    assert not os.path.exists("/sys/class/net/" + lab.n("lan"))
    assert not lab_cgroup_dirs(lab.name) and not lab.init_pids()
    assert not os.path.exists(lab.data_dir)


def test_a_wrong_part_is_refused_by_its_own_spec_before_anything_is_made(lab, module, rootfs):
    wrong = module("nslab_nodes", nodes(lab, rootfs, containers=[
        {"name": "a", "rootfs": str(rootfs), "netns": lab.n("a"), "restart": "always"}]))
    assert wrong["_status"] == "failed", wrong
    assert wrong["msg"].startswith("Failed to converge the nodes of lab '%s': containers: "
                                   % lab.name), wrong["msg"]
    assert "restart" in wrong["msg"]
    bad = module("nslab_nodes", nodes(lab, rootfs, veths=[{"name": "eth1", "state": "gone"}]))
    assert bad["_status"] == "failed", bad
    assert bad["msg"].startswith("Failed to converge the nodes of lab '%s': veths: "
                                 % lab.name) and "gone" in bad["msg"], bad["msg"]
    assert not os.path.exists("/run/netns/" + lab.n("a")) and not lab_cgroup_dirs(lab.name)


def test_a_failing_part_is_named_and_the_parts_before_it_say_what_they_did(lab, module,
                                                                          rootfs):
    missing = str(rootfs) + "-missing"
    failed = module("nslab_nodes", nodes(lab, rootfs, containers=[
        {"name": "a", "rootfs": missing, "netns": lab.n("a"), "command": ["true"]}]))
    assert failed["_status"] == "failed", failed
    assert failed["msg"].startswith("Failed to converge containers of lab '%s': "
                                    % lab.name), failed["msg"]
    assert failed["changed"] is True
    assert "create net, uts, ipc namespaces '%s'" % lab.n("a") in failed["actions"]
    assert os.path.exists("/run/netns/" + lab.n("a")) and not lab.init_pids()
    deadline = time.monotonic() + 5
    gone = module("nslab_nodes", removal(lab))
    assert gone["changed"] is True, gone
    while lab.leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lab.leftovers() == []

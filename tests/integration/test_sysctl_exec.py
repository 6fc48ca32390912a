"""nslab_sysctl and nslab_exec against the real kernel: check mode first (nothing
changes), a real run, a rerun without a change; a sysctl that is not the namespace's own
refused with nothing written; exec once per start of a container, through the door."""

import os

from helpers.kernel import sh
from helpers.lab import BUSYBOX_SKIP


def ns_sysctl(netns, name):
    return sh("nsenter", "--net=/run/netns/%s" % netns, "cat",
              "/proc/sys/" + name.replace(".", "/")).stdout.strip()


def test_sysctls_are_set_in_the_namespace_only_and_converge(lab, module):
    netns = lab.n("a")
    assert module("nslab_namespace", dict(lab=lab.name, name=netns, types=["net"]))["changed"]
    host_ttl = open("/proc/sys/net/ipv4/ip_default_ttl").read()
    args = dict(lab=lab.name, namespaces=[{"netns": netns, "sysctls": {
        "net.ipv4.ip_default_ttl": 33, "net.ipv4.tcp_rmem": "4096 65536 1048576"}}])

    check = module("nslab_sysctl", args, check=True, diff=True)
    assert check["changed"] and check["actions"] == [
        "set net.ipv4.ip_default_ttl to '33' in netns '%s' (was '64')" % netns,
        "set net.ipv4.tcp_rmem to '4096 65536 1048576' in netns '%s' (was '%s')" % (
            netns, check["diff"]["before"][netns]["net.ipv4.tcp_rmem"])]
    assert ns_sysctl(netns, "net.ipv4.ip_default_ttl") == "64"

    done = module("nslab_sysctl", args, diff=True)
    assert done["changed"], done
    assert done["namespaces"] == [{"netns": netns, "sysctls": {
        "net.ipv4.ip_default_ttl": "33", "net.ipv4.tcp_rmem": "4096 65536 1048576"}}]
    assert ns_sysctl(netns, "net.ipv4.ip_default_ttl") == "33"
    assert open("/proc/sys/net/ipv4/ip_default_ttl").read() == host_ttl

    again = module("nslab_sysctl", args)
    assert not again["changed"] and again["actions"] == []


def test_a_sysctl_that_is_not_the_namespaces_own_is_refused_and_nothing_is_written(lab,
                                                                                    module):
    netns = lab.n("a")
    module("nslab_namespace", dict(lab=lab.name, name=netns, types=["net"]))
    result = module("nslab_sysctl", dict(lab=lab.name, namespaces=[{"netns": netns, "sysctls": {
        "net.ipv4.ip_default_ttl": 40, "net.netfilter.nf_conntrack_max": 1,
        "kernel.panic": 1, "net.ipv4.no_such_thing": 1}}]))
    assert result["_status"] == "failed"
    assert sorted(p.split(": ")[0] for p in result["problems"]) == [
        "namespaces[0].sysctls.kernel.panic", "namespaces[0].sysctls.net.netfilter."
        "nf_conntrack_max"], result
    # Past the name check, what the kernel says: missing in a namespace, or read-only.
    missing = module("nslab_sysctl", dict(lab=lab.name, namespaces=[{"netns": netns, "sysctls": {
        "net.ipv4.ip_default_ttl": 40, "net.ipv4.no_such_thing": 1,
        "net.core.rps_default_mask": "0"}}]))
    assert missing["_status"] == "failed"
    assert [p.split(": ")[0] for p in missing["problems"]][:1] == [
        "namespaces[0].sysctls.net.ipv4.no_such_thing"], missing
    assert ns_sysctl(netns, "net.ipv4.ip_default_ttl") == "64"
    other = module("nslab_sysctl", dict(lab=lab.name, namespaces=[{"netns": "nobody-x",
                                                                   "sysctls": {}}]))
    assert other["_status"] == "failed" and "does not exist" in other["msg"], other


def test_a_failure_in_a_later_namespace_puts_the_earlier_ones_back(lab, module):
    first, second = lab.n("a"), lab.n("b")
    for netns in (first, second):
        module("nslab_namespace", dict(lab=lab.name, name=netns, types=["net"]))
    # The kernel refuses a TTL of 0 (EINVAL) in the second namespace, after the first
    # namespace's TTL was written.
    result = module("nslab_sysctl", dict(lab=lab.name, namespaces=[
        {"netns": first, "sysctls": {"net.ipv4.ip_default_ttl": 33}},
        {"netns": second, "sysctls": {"net.ipv4.ip_default_ttl": 0}}]))
    assert result["_status"] == "failed", result
    assert "netns '%s'" % second in result["msg"] and "rolled back 1 step(s)" in result["msg"]
    assert result["done"] == result["rolled_back"] == [
        "set net.ipv4.ip_default_ttl to '33' in netns '%s' (was '64')" % first]
    assert ns_sysctl(first, "net.ipv4.ip_default_ttl") == "64"
    assert ns_sysctl(second, "net.ipv4.ip_default_ttl") == "64"


@BUSYBOX_SKIP
def test_exec_runs_once_per_start_through_the_door(lab, module, rootfs):
    assert module("nslab_container", dict(lab=lab.name, name="box", rootfs=str(rootfs),
                                          command=["sleep", "100000"]))["changed"]
    args = dict(lab=lab.name, containers=[{"name": "box", "commands": [
        "hostname", "cat /proc/self/status | grep CapEff"]}])
    check = module("nslab_exec", args, check=True)
    assert check["changed"] and check["results"] == []
    assert check["actions"] == ["run 'hostname' in container 'box'",
                                "run 'cat /proc/self/status | grep CapEff' in container 'box'"]
    assert not os.path.exists("/run/nslab/%s/containers/box.exec" % lab.name)

    done = module("nslab_exec", args)
    assert done["changed"]
    assert [(r["stdout"], r["rc"]) for r in done["results"]][0] == ("box\n", 0)
    # The container's own capability set, not the host root's.
    assert done["results"][1]["stdout"] != "CapEff:\t000001ffffffffff\n"
    assert not module("nslab_exec", args)["changed"]
    assert module("nslab_exec", dict(args, trigger="always"))["changed"]

    # A restart is a new start: the commands run again.
    module("nslab_container", dict(lab=lab.name, name="box", rootfs=str(rootfs),
                                   command=["sleep", "100000"], state="restarted"))
    assert module("nslab_exec", args)["changed"]

    failing = module("nslab_exec", dict(lab=lab.name, containers=[{"name": "box", "commands": [
        "echo first", "echo oops >&2; exit 3", "echo never"]}]))
    assert failing["_status"] == "failed"
    assert "'echo oops >&2; exit 3' in container 'box' exited 3: oops" in failing["msg"]
    assert [r["command"] for r in failing["results"]] == ["echo first", "echo oops >&2; exit 3"]

    missing = module("nslab_exec", dict(lab=lab.name, containers=[{"name": "nope",
                                                                   "commands": ["true"]}]))
    assert missing["_status"] == "failed" and "is not running" in missing["msg"]
    module("nslab_container", dict(lab=lab.name, name="box", state="absent"))
    assert not os.path.exists("/run/nslab/%s/containers/box.exec" % lab.name)

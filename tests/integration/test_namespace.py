"""nslab_namespace against the real kernel."""

import json
import os

from helpers.kernel import nsfs_mounts, sh
from helpers.lab import STATE_ROOT

ALL_TYPES = ["net", "uts", "ipc", "mnt", "cgroup"]


def ns_inode(path):
    return os.stat(path).st_ino


def test_check_mode_creates_nothing(lab, module):
    result = module("nslab_namespace", dict(lab=lab.name, name=lab.n("a"), types=ALL_TYPES),
                    check=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["after"][lab.n("a")]["types"] == sorted(ALL_TYPES)
    assert not os.path.exists("/run/netns/" + lab.n("a"))
    assert not os.path.exists(os.path.join(STATE_ROOT, lab.name))


def test_every_type_is_a_new_namespace_that_outlives_the_module(lab, module):
    name = lab.n("a")
    result = module("nslab_namespace", dict(lab=lab.name, name=name, types=ALL_TYPES,
                                            hostname="web1"))
    assert result["changed"] is True
    paths = result["namespaces"][0]["paths"]
    assert paths["net"] == "/run/netns/" + name
    for nstype in ALL_TYPES:
        assert paths[nstype] in nsfs_mounts()
        # a different namespace from the host's (the host = this test's own process)
        assert ns_inode(paths[nstype]) != ns_inode("/proc/self/ns/" + nstype), nstype
    assert name in sh("ip", "netns", "list").stdout
    # entered by name: its own hostname, its own (empty, down) network
    assert sh("nsenter", "--uts=" + paths["uts"], "uname", "-n").stdout.strip() == "web1"
    assert os.uname().nodename != "web1"
    links = json.loads(sh("ip", "-j", "link", netns=name).stdout)
    assert [l["ifname"] for l in links] == ["lo"]
    # the new mount namespace holds no copy of nslab's private namespace mounts
    mounts = sh("nsenter", "--mount=" + paths["mnt"], "cat", "/proc/self/mountinfo").stdout
    assert STATE_ROOT not in mounts

    again = module("nslab_namespace", dict(lab=lab.name, name=name, types=ALL_TYPES,
                                           hostname="web1"))
    assert again["changed"] is False and again["actions"] == []


def test_types_hostname_change_and_delete(lab, module):
    name = lab.n("b")
    module("nslab_namespace", dict(lab=lab.name, name=name, types=["net", "uts", "ipc"]))
    net_inode = ns_inode("/run/netns/" + name)
    result = module("nslab_namespace", dict(lab=lab.name, name=name, types=["net", "uts"],
                                            hostname="renamed"), diff=True)
    assert sorted(result["actions"]) == sorted([
        "remove ipc namespace '%s'" % name,
        "set hostname of namespace '%s' from '%s' to 'renamed'" % (name, name)])
    assert result["diff"]["before"][name]["hostname"] == name
    assert result["diff"]["after"][name]["hostname"] == "renamed"
    # the net namespace was kept, not recreated
    assert ns_inode("/run/netns/" + name) == net_inode
    uts = result["namespaces"][0]["paths"]["uts"]
    assert sh("nsenter", "--uts=" + uts, "uname", "-n").stdout.strip() == "renamed"

    gone = module("nslab_namespace", dict(lab=lab.name, name=name, state="absent"))
    assert gone["changed"] is True
    assert not os.path.exists("/run/netns/" + name)
    assert lab.leftovers() == []
    assert module("nslab_namespace", dict(lab=lab.name, name=name,
                                          state="absent"))["changed"] is False


def test_a_vanished_bind_mount_is_recreated(lab, module):
    name = lab.n("c")
    module("nslab_namespace", dict(lab=lab.name, name=name))
    sh("ip", "netns", "del", name)          # someone removed it behind nslab's back
    result = module("nslab_namespace", dict(lab=lab.name, name=name))
    assert result["actions"] == ["create net namespace '%s'" % name]
    assert "/run/netns/" + name in nsfs_mounts()


def test_foreign_netns_is_refused_and_untouched(lab, module):
    name = lab.n("hand")
    sh("ip", "netns", "add", name)
    inode = ns_inode("/run/netns/" + name)
    for state in ("present", "absent"):
        result = module("nslab_namespace", dict(lab=lab.name, name=name, state=state))
        assert result["_status"] == "failed"
        assert "netns '%s' exists and is not nslab's" % name in result["msg"]
    assert ns_inode("/run/netns/" + name) == inode


def test_other_labs_namespace_and_bad_input(lab, module):
    module("nslab_namespace", dict(lab=lab.name, name=lab.n("d")))
    other = module("nslab_namespace", dict(lab="otherlab", name=lab.n("d"), state="absent"))
    assert other["_status"] == "failed" and "owned by nslab lab '%s'" % lab.name in other["msg"]
    bad = module("nslab_namespace", dict(lab=lab.name, namespaces=[
        dict(name="../escape"), dict(name=lab.n("e"), types=["net"], hostname="h")]))
    assert bad["_status"] == "failed"
    assert any(p.startswith("namespaces[0].name: ") for p in bad["problems"])
    assert any(p.startswith("namespaces[1].hostname: ") and "needs 'uts'" in p
               for p in bad["problems"])
    wrong_type = module("nslab_namespace", dict(lab=lab.name, name=lab.n("f"), types=["pid"]))
    assert wrong_type["_status"] == "failed" and "pid" in wrong_type["msg"]
    assert not os.path.exists("/run/netns/" + lab.n("e"))


def test_failure_half_way_rolls_back_this_runs_namespaces(lab, module):
    # Inject a failure for the second namespace: its state directory path is taken by a
    # file inside the test lab's own state dir, so making its uts bind mount fails.
    first, second = lab.n("r1"), lab.n("r2")
    blocker = os.path.join(STATE_ROOT, lab.name, "ns", second)
    os.makedirs(os.path.dirname(blocker))
    open(blocker, "w").close()
    result = module("nslab_namespace", dict(lab=lab.name, namespaces=[
        dict(name=first, types=["net", "uts"]), dict(name=second, types=["net", "uts"])]))
    assert result["_status"] == "failed"
    assert "rolled back 1 step(s)" in result["msg"]
    assert result["rolled_back"] == ["create net, uts namespaces '%s'" % first]
    assert not os.path.exists("/run/netns/" + first)
    assert not os.path.exists("/run/netns/" + second)
    assert not [m for m in nsfs_mounts() if lab.name in m]
    assert not os.path.exists(os.path.join(STATE_ROOT, lab.name, "ns", first + ".json"))


def lo_alias(name):
    links = json.loads(sh("ip", "-j", "-d", "link", "show", "lo", netns=name).stdout)
    return links[0].get("ifalias")


def test_a_netns_is_tagged_and_adopted_when_its_record_is_lost(lab, module):
    name = lab.n("lost")
    module("nslab_namespace", dict(lab=lab.name, namespaces=[
        dict(name=name, types=["net", "uts", "ipc"], hostname="keep")]))
    # the kernel holds the owner: lo's ifalias in the namespace nslab made
    assert lo_alias(name) == "nslab:%s:netns" % lab.name
    inodes = dict((t, ns_inode(p)) for t, p in [
        ("net", "/run/netns/" + name),
        ("uts", os.path.join(STATE_ROOT, lab.name, "ns", name, "uts"))])
    os.unlink(os.path.join(STATE_ROOT, lab.name, "ns", name + ".json"))   # record lost

    check = module("nslab_namespace", dict(lab=lab.name, name=name, types=["net", "uts"],
                                           hostname="keep"), check=True)
    assert check["changed"] is True
    assert not os.path.exists(os.path.join(STATE_ROOT, lab.name, "ns", name + ".json"))
    result = module("nslab_namespace", dict(lab=lab.name, name=name, types=["net", "uts"],
                                            hostname="keep"))
    assert result["actions"] == [
        "adopt namespace '%s', found without its record (net: lo tagged nslab:%s:netns; "
        "uts: mounted at %s; ipc: mounted at %s)" % (
            name, lab.name, os.path.join(STATE_ROOT, lab.name, "ns", name, "uts"),
            os.path.join(STATE_ROOT, lab.name, "ns", name, "ipc")),
        "remove ipc namespace '%s'" % name]
    # the same namespaces, kept: adopted, not recreated
    assert ns_inode("/run/netns/" + name) == inodes["net"]
    assert ns_inode(os.path.join(STATE_ROOT, lab.name, "ns", name, "uts")) == inodes["uts"]
    again = module("nslab_namespace", dict(lab=lab.name, name=name, types=["net", "uts"],
                                           hostname="keep"))
    assert again["changed"] is False

    # lost again, then removed without its record
    os.unlink(os.path.join(STATE_ROOT, lab.name, "ns", name + ".json"))
    gone = module("nslab_namespace", dict(lab=lab.name, name=name, state="absent"))
    assert gone["changed"] is True
    assert lab.leftovers() == []


def test_a_netns_tagged_for_another_lab_or_untagged_is_refused(lab, module):
    tagged, plain = lab.n("other"), lab.n("plain")
    sh("ip", "netns", "add", tagged)
    sh("ip", "link", "set", "lo", "alias", "nslab:otherlab:netns", netns=tagged)
    sh("ip", "netns", "add", plain)
    sh("ip", "link", "set", "lo", "alias", "my own", netns=plain)
    for state in ("present", "absent"):
        result = module("nslab_namespace", dict(lab=lab.name, name=tagged, state=state))
        assert result["_status"] == "failed"
        assert ("netns '%s' exists and is owned by nslab lab 'otherlab' (its lo's ifalias)"
                % tagged) in result["msg"]
        result = module("nslab_namespace", dict(lab=lab.name, name=plain, state=state))
        assert result["_status"] == "failed"
        assert "netns '%s' exists and is not nslab's" % plain in result["msg"]
    assert os.path.exists("/run/netns/" + tagged) and os.path.exists("/run/netns/" + plain)


def test_a_netns_made_before_tags_is_tagged_once(lab, module):
    name = lab.n("old")
    module("nslab_namespace", dict(lab=lab.name, name=name))
    # as an older nslab left it: no tag on lo, no net_tagged in the record
    sh("ip", "link", "set", "lo", "alias", "", netns=name)
    record_path = os.path.join(STATE_ROOT, lab.name, "ns", name + ".json")
    with open(record_path) as handle:
        record = json.load(handle)
    del record["net_tagged"]
    with open(record_path, "w") as handle:
        json.dump(record, handle)
    inode = ns_inode("/run/netns/" + name)
    assert not lo_alias(name)

    result = module("nslab_namespace", dict(lab=lab.name, name=name))
    assert result["actions"] == [
        "tag net namespace '%s' with its lab on lo (made before nslab tagged them)" % name]
    assert lo_alias(name) == "nslab:%s:netns" % lab.name
    assert ns_inode("/run/netns/" + name) == inode
    assert module("nslab_namespace", dict(lab=lab.name, name=name))["changed"] is False


def test_the_private_state_root_is_made_again_when_it_was_removed(tmp_path):
    # nslab's own functions over a root of this test's (the real /run/nslab is shared with
    # every other lab on the host): removed, it is made again, as a private self-bind mount.
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
        ensure_private_root, release_private_root)
    root = str(tmp_path / "state")

    def mount_of(path):
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                fields = line.split()
                if fields[4] == path:
                    return fields[6:fields.index("-")]
        return None

    for _ in range(2):
        ensure_private_root(root)
        assert mount_of(root) is not None
        assert not any(tag.startswith(("shared:", "master:")) for tag in mount_of(root))
        release_private_root(root)        # empty: unmounted and removed, as after rm -rf
        assert mount_of(root) is None and not os.path.exists(root)


def test_a_net_namespace_alone_is_made_in_the_callers_thread_which_stays_home(lab):
    # nslab_namespace makes a net-only namespace without a child process: the thread that
    # made it must be back in its own namespace (every later command runs from it).
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
        bind_new_net_namespace, unbind)
    target = "/run/netns/" + lab.n("t")
    home = ns_inode("/proc/thread-self/ns/net")
    try:
        inode = bind_new_net_namespace(target, "nslab:%s:netns" % lab.n("t"))
        assert ns_inode("/proc/thread-self/ns/net") == home
        assert inode == ns_inode(target) != home
        assert target in nsfs_mounts()
        links = json.loads(sh("ip", "-j", "-d", "link", netns=lab.n("t")).stdout)
        assert [(link["ifname"], link.get("ifalias")) for link in links] == [
            ("lo", "nslab:%s:netns" % lab.n("t"))]
    finally:
        unbind(target)
    assert not os.path.exists(target) and target not in nsfs_mounts()

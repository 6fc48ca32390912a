"""mountinfo parsing and namespace planning (pure)."""

import errno
import os
import pathlib

import pytest

from ansible_collections.nslab.lab.plugins.module_utils import nslab_namespaces
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    ApplyError, OwnershipError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import (
    mount_points, parse_mountinfo)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NamespaceAction, NamespaceApplier, NamespaceSpec, NamespaceState, NamespaceStore,
    plan_namespaces)

from helpers.paths import UNIT_FIXTURES as FIXTURES


def test_mountinfo_fixture_has_nslab_private_root_and_nsfs_binds():
    entries = parse_mountinfo((FIXTURES / "mountinfo.txt").read_text())
    nsfs = mount_points(entries, "nsfs")
    assert "/run/netns/t1-a" in nsfs
    root = [e for e in entries if e.mount_point == "/run/nslab"][0]
    assert root.propagation == []            # private: no shared:N / master:N tag
    netns = [e for e in entries if e.mount_point == "/run/netns"][0]
    assert netns.propagation[0].startswith("shared:")


def test_mountinfo_unescapes_octal():
    line = r"36 35 98:0 /mnt1 /mnt\040with\040space rw,noatime master:1 - ext3 /dev/root rw"
    entry = parse_mountinfo(line)[0]
    assert entry.mount_point == "/mnt with space"
    assert entry.propagation == ["master:1"] and entry.fstype == "ext3"


def test_store_paths():
    store = NamespaceStore("demo", root="/r", netns_dir="/n")
    assert store.path("demo", "x", "net") == "/n/x"
    assert store.path("demo", "x", "uts") == "/r/demo/ns/x/uts"
    assert store.record_path("demo", "x") == "/r/demo/ns/x.json"


def state(name, owner="demo", types=(), missing=(), hostname=None):
    return NamespaceState(name, owner, dict((t, 1) for t in types), list(missing), hostname)


def test_plan_creates_only_missing_types_and_removes_extra_ones():
    specs = [NamespaceSpec("a", ["net", "uts"], "a")]
    actions = plan_namespaces(specs, {"a": state("a", types=["net", "ipc"])}, "demo")
    assert [(a.verb, a.types, a.hostname) for a in actions] == [
        ("create", ["uts"], "a"), ("remove", ["ipc"], None)]


def test_plan_recreates_a_type_whose_bind_mount_vanished():
    specs = [NamespaceSpec("a", ["net"])]
    actions = plan_namespaces(specs, {"a": state("a", missing=["net"])}, "demo")
    assert [(a.verb, a.types) for a in actions] == [("create", ["net"])]


def test_plan_hostname_change_and_no_change():
    specs = [NamespaceSpec("a", ["uts"], "web")]
    assert plan_namespaces(specs, {"a": state("a", types=["uts"], hostname="web")}, "demo") == []
    actions = plan_namespaces(specs, {"a": state("a", types=["uts"], hostname="a")}, "demo")
    assert actions[0].summary == "set hostname of namespace 'a' from 'a' to 'web'"


def test_plan_absent_and_other_labs():
    absent = [NamespaceSpec("a", ["net"], state="absent")]
    assert plan_namespaces(absent, {"a": state("a", owner=None)}, "demo") == []
    actions = plan_namespaces(absent, {"a": state("a", types=["net", "uts"])}, "demo")
    assert actions[0].verb == "delete" and actions[0].types == ["net", "uts"]
    with pytest.raises(OwnershipError) as err:
        plan_namespaces(absent, {"a": state("a", owner="other", types=["net"])}, "demo")
    assert "lab 'other'" in str(err.value)


def test_plan_adopts_a_namespace_found_without_its_record_before_changing_it():
    found = state("x", types=["net", "ipc"])
    found.adopted = "net: lo tagged nslab:demo:netns"
    actions = plan_namespaces([NamespaceSpec("x", ["net", "uts"], "x")], {"x": found}, "demo")
    assert [(a.verb, a.types) for a in actions] == [
        ("adopt", ["ipc", "net"]), ("create", ["uts"]), ("remove", ["ipc"])]
    assert actions[0].summary == ("adopt namespace 'x', found without its record "
                                  "(net: lo tagged nslab:demo:netns)")
    # removing it needs no adoption: the delete forgets it anyway
    gone = plan_namespaces([NamespaceSpec("x", ["net"], state="absent")], {"x": found}, "demo")
    assert [(a.verb, a.types) for a in gone] == [("delete", ["ipc", "net"])]


def test_lo_alias_requests_are_well_formed_rtnetlink():
    from ansible_collections.nslab.lab.plugins.module_utils import nslab_owner as owner
    request = owner._link_request(owner.RTM_GETLINK, owner.NLM_F_REQUEST, 1)
    length, kind, flags = owner.NLMSG_HEADER.unpack_from(request)[:3]
    assert (length, kind, flags) == (len(request), 18, 1) and length == 32
    assert owner.IFINFOMSG.unpack_from(request, 16)[2] == 1          # ifindex of lo


def test_plan_tags_a_recorded_netns_made_before_tags_once():
    old = state("x", types=["net"])
    old.untagged = True
    actions = plan_namespaces([NamespaceSpec("x", ["net"])], {"x": old}, "demo")
    assert [(a.verb, a.types) for a in actions] == [("tag", ["net"])]
    assert plan_namespaces([NamespaceSpec("x", ["net"], state="absent")], {"x": old},
                           "demo")[0].verb == "delete"
    assert plan_namespaces([NamespaceSpec("x", ["net"])], {"x": state("x", types=["net"])},
                           "demo") == []


def fake_kernel(monkeypatch, fail_for):
    """unshare_and_bind writes plain files (a fake inode each) and fails for the name
    ``fail_for``; unbind deletes them: the applier's undo logic without a kernel."""
    def unshare_and_bind(types, targets, hostname=None, private_root=None, net_tag=None):
        if any(os.path.basename(os.path.dirname(t)) == fail_for or t.endswith("/" + fail_for)
               for t in targets.values()):
            raise OSError(errno.ENOSPC, "No space left on device")
        inodes = {}
        for nstype, target in targets.items():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            pathlib.Path(target).write_text("")
            inodes[nstype] = os.stat(target).st_ino
        return inodes
    monkeypatch.setattr(nslab_namespaces, "unshare_and_bind", unshare_and_bind)
    monkeypatch.setattr(nslab_namespaces, "unbind", os.unlink)
    monkeypatch.setattr(nslab_namespaces, "ensure_private_root", lambda root: None)
    monkeypatch.setattr(nslab_namespaces, "release_private_root", lambda root: None)


def test_a_failed_creation_undoes_the_earlier_ones_and_reports_every_action(tmp_path,
                                                                           monkeypatch):
    fake_kernel(monkeypatch, fail_for="b")
    store = NamespaceStore("demo", root=str(tmp_path / "run"), netns_dir=str(tmp_path / "netns"))
    actions = [NamespaceAction("create uts namespace 'a'", "create", "a", ["uts"]),
               NamespaceAction("create uts namespace 'b'", "create", "b", ["uts"])]
    with pytest.raises(ApplyError) as caught:
        NamespaceApplier(store).apply(actions)
    assert caught.value.done == ["create uts namespace 'a'"]
    assert caught.value.rolled_back == ["create uts namespace 'a'"]
    assert "No space left on device; rolled back 1 step(s)" in str(caught.value)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []         # no bind file, no record


def test_every_verb_a_plan_makes_has_a_handler():
    applier = NamespaceApplier(NamespaceStore("demo"))
    # The verbs NamespaceAction documents; a new verb must be added to the table.
    assert set(applier.handlers) == {"adopt", "tag", "create", "remove", "hostname", "delete"}

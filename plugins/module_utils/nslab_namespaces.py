# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Persistent, named namespaces: read, plan, apply.

A namespace outlives the process that made it when its ``/proc/<pid>/ns/<type>`` file is
bind-mounted somewhere. nslab puts net namespaces at ``/run/netns/<name>`` (so ``ip netns``
and ``nsenter --net=`` see them) and the other types at
``/run/nslab/<lab>/ns/<name>/<type>``. ``/run/nslab`` is a private bind mount of itself:
the kernel refuses to bind a mount namespace onto a shared mount, and a private mount keeps
nslab's bind mounts from propagating into other mount namespaces, where they would keep
namespaces alive after nslab removed them.

Ownership: ``/run/nslab/<lab>/ns/<name>.json`` records which types nslab made and their
inode numbers; a bind mount whose inode differs from the record is not trusted. A net
namespace also carries its lab in the kernel: the child that makes it tags its ``lo`` with
the ifalias ``nslab:<lab>:netns`` (nslab_owner; 0.012 ms each). When the record is lost
(``/run/nslab/<lab>`` emptied), a netns at ``/run/netns/<name>`` whose ``lo`` carries this
lab's tag, and a namespace still bind-mounted at its place in the lab's own directory, are
the lab's: adopted (record rewritten, reported as a change) or removed. A netns without the
tag stays "not nslab's"; one tagged for another lab is that lab's. A recorded netns made
before nslab tagged them (its record lacks ``net_tagged``) is tagged by the next run, once,
as a change.

Namespaces are made in a forked child (``unshare(2)``), which the parent bind-mounts and
then lets exit: ~1 ms each, no helper binary.
"""

from __future__ import annotations

import glob
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    NamespaceError, OwnershipError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_lock import exclusively
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import (
    mount_points, read_mountinfo)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import NETNS_DIR, STATE_ROOT
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import (
    NETNS_ROLE, alias_for, lab_dir, parse_alias, read_lo_alias, read_record, remove_empty_dirs,
    set_lo_alias, write_json_atomic)
from ansible_collections.nslab.lab.plugins.module_utils import nslab_syscalls as sc
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog

# Types that persist with a bind mount alone. pid needs an init process and user needs
# its id maps written by a process: nslab_container makes those with the container's init.
NS_FLAGS = {
    "net": sc.CLONE_NEWNET,
    "uts": sc.CLONE_NEWUTS,
    "ipc": sc.CLONE_NEWIPC,
    "mnt": sc.CLONE_NEWNS,
    "cgroup": sc.CLONE_NEWCGROUP,
}
NS_TYPES = list(NS_FLAGS)


@dataclass
class NamespaceSpec:
    name: str
    types: List[str]
    hostname: Optional[str] = None
    state: str = "present"


@dataclass
class NamespaceState:
    name: str
    owner: Optional[str]                  # lab whose record names it, or None
    types: Dict[str, int] = field(default_factory=dict)   # live types -> inode
    missing: List[str] = field(default_factory=list)      # recorded, bind mount gone
    hostname: Optional[str] = None
    adopted: str = ""         # found without a record, and why it is the lab's
    untagged: bool = False    # its netns was made before nslab tagged lo (record says)

    def view(self, store):
        if self.owner is None and not self.types:
            return {"state": "absent"}
        return {
            "state": "present",
            "types": sorted(self.types),
            "hostname": self.hostname,
            "paths": dict((t, store.path(self.owner, self.name, t)) for t in sorted(self.types)),
        }


@dataclass
class NamespaceAction:
    summary: str
    verb: str                 # adopt, tag, create, remove, hostname, delete
    name: str
    types: List[str] = field(default_factory=list)
    hostname: Optional[str] = None


class NamespaceStore:
    """Where a lab's namespaces live on disk, and what the kernel says about them."""

    def __init__(self, lab, root=STATE_ROOT, netns_dir=NETNS_DIR):
        self.lab, self.root, self.netns_dir = lab, root, netns_dir

    def path(self, lab, name, nstype):
        if nstype == "net":
            return os.path.join(self.netns_dir, name)
        return os.path.join(lab_dir(lab or self.lab, self.root), "ns", name, nstype)

    def record_path(self, lab, name):
        return os.path.join(lab_dir(lab, self.root), "ns", name + ".json")

    def find_record(self, name):
        for path in sorted(glob.glob(os.path.join(self.root, "*", "ns", name + ".json"))):
            lab = os.path.basename(os.path.dirname(os.path.dirname(path)))
            record = read_record(path, "namespace", lab, name)
            if record is not None:
                return record
        return None

    def lab_records(self):
        pattern = os.path.join(lab_dir(self.lab, self.root), "ns", "*.json")
        records = (read_record(p, "namespace", self.lab, os.path.basename(p)[:-len(".json")])
                   for p in sorted(glob.glob(pattern)))
        return [r for r in records if r is not None]

    def read(self, name, nsfs=None, with_hostname=False):
        """The kernel's truth about namespace ``name``, checked against its record."""
        if nsfs is None:
            nsfs = mount_points(read_mountinfo(), "nsfs")
        record = self.find_record(name)
        state = NamespaceState(name=name, owner=record["lab"] if record else None)
        if record is None:
            return self._unrecorded(state, nsfs, with_hostname)
        for nstype, info in sorted(record.get("types", {}).items()):
            path = info["path"]
            if path not in nsfs:
                state.missing.append(nstype)
                continue
            inode = os.stat(path).st_ino
            if inode != info["inode"]:
                raise OwnershipError("%s namespace" % nstype, name,
                                     "a different namespace than the one nslab made "
                                     "(inode %d, recorded %d)" % (inode, info["inode"]))
            state.types[nstype] = inode
        state.untagged = "net" in state.types and not record.get("net_tagged")
        if with_hostname and "uts" in state.types:
            state.hostname = read_hostname(state_path(self, state, "uts"))
        return state

    def _unrecorded(self, state, nsfs, with_hostname):
        """Namespace ``state.name`` without a record: what the kernel says is this lab's
        (see the module docstring), or OwnershipError."""
        name, found = state.name, []
        net = os.path.join(self.netns_dir, name)
        if os.path.lexists(net):
            self.check_netns_tag(name)
            state.types["net"] = os.stat(net).st_ino
            found.append("net: lo tagged %s" % alias_for(self.lab, NETNS_ROLE))
        for nstype in NS_TYPES:
            path = self.path(self.lab, name, nstype)
            if nstype != "net" and path in nsfs:
                state.types[nstype] = os.stat(path).st_ino
                found.append("%s: mounted at %s" % (nstype, path))
        if state.types:
            state.owner, state.adopted = self.lab, "; ".join(found)
            if with_hostname and "uts" in state.types:
                state.hostname = read_hostname(self.path(self.lab, name, "uts"))
        return state

    def check_netns_tag(self, name):
        """Raise OwnershipError unless net namespace ``name`` (existing, no record) is
        bind-mounted and its lo carries this lab's tag."""
        path = os.path.join(self.netns_dir, name)
        if path not in mount_points(read_mountinfo(), "nsfs"):
            raise OwnershipError("netns", name, "not nslab's (no nslab record, and %s is "
                                 "not a namespace mount)" % path)
        tag = parse_alias(read_netns_tag(path))
        if tag == (self.lab, NETNS_ROLE):
            return
        if tag is not None and tag[1] == NETNS_ROLE:
            raise OwnershipError("netns", name, "owned by nslab lab '%s' (its lo's ifalias)"
                                 % tag[0])
        raise OwnershipError("netns", name, "not nslab's (no nslab record, no nslab tag "
                             "on its lo)")


def read_netns_tag(path):
    """The ifalias of ``lo`` in the net namespace bind-mounted at ``path``."""
    return in_namespaces({"net": path}, read_lo_alias)


def check_lab_netns(store, name):
    """True if net namespace ``name`` exists and is this lab's, False if it does not exist;
    raise OwnershipError if it exists and is not this lab's. Without a record, the tag on
    its lo decides (a rerun after the lab's state was lost)."""
    if not os.path.exists(os.path.join(store.netns_dir, name)):
        return False
    record = store.find_record(name)
    if record is None:
        store.check_netns_tag(name)
        return True
    if record.get("lab") != store.lab or "net" not in record.get("types", {}):
        raise OwnershipError("netns", name, "owned by nslab lab '%s'" % record["lab"])
    return True


def state_path(store, state, nstype):
    return store.path(state.owner, state.name, nstype)


def plan_namespaces(specs, states, lab):
    """Pure: desired specs vs. states -> NamespaceActions."""
    actions = []
    for spec in specs:
        state = states[spec.name]
        if state.owner not in (None, lab):
            raise OwnershipError("namespace", spec.name,
                                 "owned by nslab lab '%s'" % state.owner)
        if state.adopted and spec.state != "absent":
            actions.append(NamespaceAction(
                "adopt namespace '%s', found without its record (%s)" % (
                    spec.name, state.adopted), "adopt", spec.name, sorted(state.types)))
        elif state.untagged and spec.state != "absent" and "net" in spec.types:
            actions.append(NamespaceAction(
                "tag net namespace '%s' with its lab on lo (made before nslab tagged them)"
                % spec.name, "tag", spec.name, ["net"]))
        if spec.state == "absent":
            if state.owner is not None:
                actions.append(NamespaceAction(
                    "delete namespace '%s' (%s)" % (spec.name, ", ".join(
                        sorted(set(state.types) | set(state.missing))) or "no live types"),
                    "delete", spec.name, sorted(set(state.types) | set(state.missing))))
            continue
        new = [t for t in spec.types if t not in state.types]
        if new:
            actions.append(NamespaceAction(
                "create %s namespace%s '%s'" % (", ".join(new), "s" if len(new) > 1 else "",
                                                spec.name),
                "create", spec.name, new, spec.hostname if "uts" in new else None))
        extra = [t for t in sorted(state.types) if t not in spec.types]
        if extra:
            actions.append(NamespaceAction(
                "remove %s namespace%s '%s'" % (", ".join(extra), "s" if len(extra) > 1 else "",
                                                spec.name), "remove", spec.name, extra))
        if ("uts" in state.types and "uts" in spec.types and spec.hostname
                and state.hostname != spec.hostname):
            actions.append(NamespaceAction(
                "set hostname of namespace '%s' from '%s' to '%s'" % (
                    spec.name, state.hostname, spec.hostname),
                "hostname", spec.name, ["uts"], spec.hostname))
    return actions


# --- applying ---------------------------------------------------------------------------

def _child_exit(write_fd, message):
    try:
        os.write(write_fd, message.encode("utf-8", "replace")[:4000])
    finally:
        os._exit(0 if message == "ok" else 1)


def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks).decode("utf-8", "replace")
        chunks.append(chunk)


def in_namespaces(paths, func):
    """Run ``func() -> str`` in a child that has joined the namespaces at ``paths``
    ({type: path}); return its string. The caller's namespaces are never changed."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            for path in paths.values():
                fd = os.open(path, os.O_RDONLY)
                sc.setns(fd, 0)
                os.close(fd)
            _child_exit(write_fd, "ok" + (func() or ""))
        except BaseException as err:  # the child must never return into Ansible
            _child_exit(write_fd, "error:%s" % err)
    os.close(write_fd)
    out = _read_all(read_fd)
    os.close(read_fd)
    os.waitpid(pid, 0)
    if not out.startswith("ok"):
        raise NamespaceError(out[len("error:"):] or "child process died")
    return out[2:]


def read_hostname(uts_path):
    return in_namespaces({"uts": uts_path}, lambda: os.uname().nodename)


def set_hostname(uts_path, hostname):
    in_namespaces({"uts": uts_path}, lambda: socket.sethostname(hostname))


def _detach_inherited_mounts(private_root):
    """In a new mount namespace: become a slave of the host (host unmounts reach us, ours
    never reach it), and drop the copy of nslab's private namespace mounts."""
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
    if private_root in mount_points(read_mountinfo()):
        sc.umount2(private_root, sc.MNT_DETACH)


def _touch(target):
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):
            pass


def bind_new_net_namespace(target, net_tag=None):
    """Make a net namespace and bind-mount it at ``target`` as ``ip netns add`` does, in
    this thread and no child (issue #12: a fork of this module's process per namespace
    was most of the namespaces' build); its lo gets ``net_tag`` as ifalias. Only this
    thread enters the new namespace, and it is back in its own before this returns.
    Returns the namespace's inode."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _touch(target)
        try:
            sc.unshare(sc.CLONE_NEWNET)
        except OSError as err:
            raise NamespaceError("unshare(net) failed: %s" % err)
        try:
            try:
                sc.mount("/proc/thread-self/ns/net", target, None, sc.MS_BIND)
            except OSError as err:
                raise NamespaceError("cannot bind the new net namespace at %s: %s" % (
                    target, err))
            try:
                if net_tag:
                    set_lo_alias(net_tag)
            except OSError as err:
                unbind(target)
                raise NamespaceError("cannot tag the new net namespace at %s: %s" % (
                    target, err))
        finally:
            try:
                sc.setns(home, sc.CLONE_NEWNET)
            except OSError as err:
                # This thread would run every later command in the new namespace.
                raise NamespaceError("cannot return to this thread's own net namespace "
                                     "after making %s: %s" % (target, err))
    finally:
        os.close(home)
    return os.stat(target).st_ino


def unshare_and_bind(types, targets, hostname=None, private_root=STATE_ROOT, net_tag=None):
    """Make new namespaces of ``types`` and bind-mount them at ``targets``; a new net
    namespace gets ``net_tag`` as the ifalias of its lo. A net namespace alone is made in
    this thread (bind_new_net_namespace); other types in a child, which unshares them."""
    if list(types) == ["net"]:
        return {"net": bind_new_net_namespace(targets["net"], net_tag)}
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(done_w)
        try:
            flags = 0
            for nstype in types:
                flags |= NS_FLAGS[nstype]
            sc.unshare(flags)
            if "mnt" in types:
                _detach_inherited_mounts(private_root)
            if hostname and "uts" in types:
                socket.sethostname(hostname)
            if net_tag and "net" in types:
                set_lo_alias(net_tag)
            os.write(ready_w, b"ok")
            os.read(done_r, 1)   # stay alive until the parent has bound our namespaces
            os._exit(0)
        except BaseException as err:
            _child_exit(ready_w, "error:%s" % err)
    os.close(ready_w)
    os.close(done_r)
    bound = []
    try:
        status = os.read(ready_r, 4096).decode("utf-8", "replace")
        if status != "ok":
            raise NamespaceError("unshare(%s) failed: %s" % (
                ",".join(types), status[len("error:"):] or "child died"))
        for nstype in types:
            target = targets[nstype]
            _touch(target)
            sc.mount("/proc/%d/ns/%s" % (pid, nstype), target, None, sc.MS_BIND)
            bound.append(target)
        return dict((t, os.stat(targets[t]).st_ino) for t in types)
    except BaseException:
        for target in reversed(bound):
            unbind(target)
        raise
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def unbind(path):
    try:
        sc.umount2(path, sc.MNT_DETACH)
    except OSError:
        pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# Two labs' runs may both find /run/nslab unmounted: one of them mounts it.
PRIVATE_ROOT_LOCK = ".private-root.lock"


def ensure_private_root(root=STATE_ROOT):
    with exclusively(PRIVATE_ROOT_LOCK):
        os.makedirs(root, mode=0o755, exist_ok=True)
        if root not in mount_points(read_mountinfo()):
            sc.mount(root, root, None, sc.MS_BIND)
            sc.mount(None, root, None, sc.MS_PRIVATE)


def release_private_root(root=STATE_ROOT):
    """Unmount and remove ``root`` once no lab has anything left in it."""
    try:
        if os.listdir(root):
            return
    except FileNotFoundError:
        return
    if root in mount_points(read_mountinfo()):
        sc.umount2(root, sc.MNT_DETACH)
    try:
        os.rmdir(root)
    except OSError:
        pass


class NamespaceApplier:
    """Applies NamespaceActions; on failure undoes this run's creations, newest first."""

    def __init__(self, store, runner=None, wait_seconds=5.0):
        self.store = store
        self.runner = runner
        self.wait_seconds = wait_seconds
        self.log = UndoLog()
        # verb -> method: every verb a NamespaceAction may carry, in one place.
        self.handlers = {
            "create": self._create,
            "adopt": self._adopt,
            "tag": self._tag,
            "hostname": self._hostname,
            "remove": self._remove,
            "delete": self._delete,
        }

    def record(self, name):
        return read_record(self.store.record_path(self.store.lab, name), "namespace",
                           self.store.lab, name) or {
            "lab": self.store.lab, "name": name, "types": {}}

    def save(self, record):
        path = self.store.record_path(self.store.lab, record["name"])
        if record["types"]:
            write_json_atomic(path, record)
        elif os.path.exists(path):
            os.unlink(path)

    def apply(self, actions):
        if not actions:
            return
        ensure_private_root(self.store.root)
        deleted_nets = [a.name for a in actions if a.verb == "delete" and "net" in a.types]
        host_ends = self._host_veth_ends(deleted_nets) if deleted_nets else {}
        self.log = UndoLog()        # this run's steps only
        # /run/nslab stays mounted when this lab leaves it empty: nslab_shared's tidy
        # unmounts it once no other lab's run is going.
        with self.log.guard():
            for action in actions:
                # Each handler records its action, with the undo of a creation.
                self.handlers[action.verb](action)
            self._wait_gone(host_ends)

    def _create(self, action):
        record = self.record(action.name)
        targets = dict((t, self.store.path(self.store.lab, action.name, t))
                       for t in action.types)
        for nstype, target in targets.items():
            if os.path.lexists(target):
                # A leftover file (its namespace is gone): nslab's own, recorded path.
                unbind(target)
        inodes = unshare_and_bind(action.types, targets, action.hostname, self.store.root,
                                  alias_for(self.store.lab, NETNS_ROLE))
        for nstype in action.types:
            record["types"][nstype] = {"path": targets[nstype], "inode": inodes[nstype]}
        if "net" in action.types:
            record["net_tagged"] = True
        if action.hostname:
            record["hostname"] = action.hostname
        self.save(record)

        def undo(name=action.name, types=tuple(action.types)):
            rec = self.record(name)
            for nstype in types:
                unbind(self.store.path(self.store.lab, name, nstype))
                rec["types"].pop(nstype, None)
            self.save(rec)
            remove_empty_dirs(os.path.dirname(self.store.path(self.store.lab, name, "uts")),
                              self.store.root)
        self.log.record(action.summary, undo)

    def _adopt(self, action):
        record = self.record(action.name)
        for nstype in action.types:
            path = self.store.path(self.store.lab, action.name, nstype)
            record["types"][nstype] = {"path": path, "inode": os.stat(path).st_ino}
        if "net" in action.types:
            record["net_tagged"] = True
        self.save(record)
        self.log.record(action.summary)

    def _tag(self, action):
        tag = alias_for(self.store.lab, NETNS_ROLE)
        in_namespaces({"net": self.store.path(self.store.lab, action.name, "net")},
                      lambda: set_lo_alias(tag))
        record = self.record(action.name)
        record["net_tagged"] = True
        self.save(record)
        self.log.record(action.summary)

    def _hostname(self, action):
        set_hostname(self.store.path(self.store.lab, action.name, "uts"), action.hostname)
        record = self.record(action.name)
        record["hostname"] = action.hostname
        self.save(record)
        self.log.record(action.summary)

    def _unbind_types(self, action):
        record = self.record(action.name)
        for nstype in action.types:
            unbind(self.store.path(self.store.lab, action.name, nstype))
            record["types"].pop(nstype, None)
        if "net" in action.types:
            record.pop("net_tagged", None)
        self.save(record)

    def _remove(self, action):
        # A namespace let go cannot be made again: done, with nothing to undo.
        self._unbind_types(action)
        self.log.record(action.summary)

    def _delete(self, action):
        self._unbind_types(action)
        remove_empty_dirs(os.path.dirname(self.store.path(self.store.lab, action.name, "uts")),
                          self.store.root)
        self.log.record(action.summary)

    def _host_veth_ends(self, names):
        """Host ends of veths whose peers live in the net namespaces ``names``: the kernel
        removes them asynchronously after the namespaces go, and their names must be free
        before a rerun reuses them. One read of the host for all of them."""
        if self.runner is None:
            return {}
        ids = self.runner.netns_ids()
        nsids = set(ids[n] for n in names if n in ids)
        if not nsids:
            return {}
        return dict((link.name, link.ifindex) for link in self.runner.read_links().values()
                    if link.kind == "veth" and link.peer_netnsid in nsids)

    def _wait_gone(self, host_ends):
        # The kernel frees namespaces in batches, in the background: more take longer.
        deadline = time.monotonic() + self.wait_seconds + 0.02 * len(host_ends)
        while host_ends and time.monotonic() < deadline:
            links = self.runner.read_links(addresses=False)
            host_ends = dict((n, i) for n, i in host_ends.items()
                             if n in links and links[n].ifindex == i)
            if host_ends:
                time.sleep(0.02)

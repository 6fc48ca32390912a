# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What all labs on a host share, and when it goes.

Every lab lives under the same roots: nslab's cgroup in each hierarchy
(``/sys/fs/cgroup/nslab``), ``/run/nslab`` (a private mount), ``/var/lib/nslab``, and
nslab's nftables tables (``ip nslab`` for NAT, ``inet nslab`` for host isolation and
published ports, ``bridge nslab`` for anti-spoofing). A run creates a root when its lab
needs it, but never removes one while it works: another lab's run may be creating in it
at that moment (nslab_lock). ``tidy`` removes the roots no lab uses any more; runs call it
on release, holding nslab_lock's shared lock exclusively, so no other run is going.
"""

from __future__ import annotations

import errno
import json
import os

from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import read_mountinfo
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    release_private_root)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import (
    CGROUP_SUBTREE, DATA_ROOT, NFT_TABLE, STATE_ROOT)

NFT_FAMILIES = ("ip", "inet", "bridge")


def _items(listing):
    return json.loads(listing or "{}").get("nftables", [])


def nslab_tables(listing):
    """The families of nslab's tables, from ``nft -j list tables``."""
    return [f for f in NFT_FAMILIES if any(
        (i.get("table") or {}).get("name") == NFT_TABLE and i["table"].get("family") == f
        for i in _items(listing))]


def holds_rules(listing):
    """Whether ``nft -j list table ...`` shows a rule."""
    return any("rule" in item for item in _items(listing))


def _rmdir_if_empty(path):
    try:
        os.rmdir(path)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY, errno.EEXIST):
            return False
        raise
    return True


def cgroup_mounts(entries):
    """Every cgroup hierarchy's mount point, from parsed mountinfo: ``nslab`` is nslab's
    name in each (also in a cgroup2 mount beside v1 controllers, which nslab's layout
    leaves out but a device program may use)."""
    return sorted(set(e.mount_point for e in entries if e.fstype in ("cgroup", "cgroup2")))


def tidy(run=None, nft=None, mounts=None, state_root=STATE_ROOT, data_root=DATA_ROOT):
    """Remove the shared roots that no lab uses any more; what was removed, one line each.

    ``run(argv) -> (rc, stdout, stderr)`` runs ``nft`` (the binary's path; None when it
    is not installed: then nslab made no table either); ``mounts``: the cgroup
    hierarchies (None: this host's). A root that still holds anything stays: an rmdir of
    a non-empty directory or of a cgroup with children fails, and a table with a rule is
    kept."""
    removed = []
    for mount in cgroup_mounts(read_mountinfo(containing="cgroup")) if mounts is None \
            else mounts:
        path = os.path.join(mount, CGROUP_SUBTREE)
        if _rmdir_if_empty(path):
            removed.append("remove nslab's empty cgroup %s" % path)
    if os.path.isdir(state_root) and not os.listdir(state_root):
        release_private_root(state_root)
        removed.append("remove nslab's empty state directory %s" % state_root)
    if _rmdir_if_empty(data_root):
        removed.append("remove nslab's empty data directory %s" % data_root)
    if run is None or nft is None:
        return removed
    rc, out, _err = run([nft, "-j", "list", "tables"])
    for family in nslab_tables(out) if rc == 0 else []:
        rc, out, _err = run([nft, "-j", "list", "table", family, NFT_TABLE])
        if rc == 0 and not holds_rules(out) and \
                run([nft, "delete", "table", family, NFT_TABLE])[0] == 0:
            removed.append("remove nslab's empty nftables table %s %s" % (family, NFT_TABLE))
    return removed

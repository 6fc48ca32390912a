# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ownership: what nslab created, and for which lab.

Links carry an ifalias ``nslab:<lab>:<role>`` set at creation, so ownership is read from
the kernel, not from a file that can drift. Namespaces cannot carry a tag, so their record
is a JSON file under the state dir ``/run/nslab/<lab>/`` holding the namespace inodes,
which are checked against the kernel before the record is trusted.
"""

from __future__ import annotations

import json
import os
import tempfile

from ansible.module_utils.nslab_errors import OwnershipError

ALIAS_PREFIX = "nslab:"
STATE_ROOT = "/run/nslab"


def alias_for(lab, role):
    return "%s%s:%s" % (ALIAS_PREFIX, lab, role)


def parse_alias(alias):
    """Return (lab, role) for an nslab alias, or None for anything else."""
    if not alias or not alias.startswith(ALIAS_PREFIX):
        return None
    parts = alias[len(ALIAS_PREFIX):].split(":", 1)
    if len(parts) != 2 or not parts[0]:
        return None
    return parts[0], parts[1]


def describe_owner(alias):
    tag = parse_alias(alias)
    if tag is None:
        return "not nslab's (no nslab ifalias)"
    return "owned by nslab lab '%s' as a %s" % tag


def check_link_owner(link, lab, role, kind, netns=None):
    """Raise OwnershipError unless ``link`` is absent or tagged for (lab, role)."""
    if link is None:
        return
    if parse_alias(link.alias) != (lab, role):
        raise OwnershipError(kind, link.name, describe_owner(link.alias), netns)


def lab_dir(lab, root=STATE_ROOT):
    return os.path.join(root, lab)


def plan_record_path(lab, root=STATE_ROOT):
    """Where a host keeps the plan of a lab over several hosts (nslab_record), so the
    others can keep an unreachable host's share in place."""
    return os.path.join(lab_dir(lab, root), "plan.json")


def write_json_atomic(path, data):
    """Write JSON so that readers see the old or the new file, never half of one."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError:
        return None


def remove_empty_dirs(path, stop):
    """rmdir ``path`` and its parents up to (and including) ``stop`` while they are empty."""
    path = os.path.abspath(path)
    stop = os.path.abspath(stop)
    while path.startswith(stop):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            return
        if path == stop:
            return
        path = os.path.dirname(path)

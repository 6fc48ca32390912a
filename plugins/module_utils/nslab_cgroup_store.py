# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record of the cgroups a lab made: ``/run/nslab/<lab>/cgroups.json``, one entry per
cgroup with the inode of its directory in every hierarchy and what the kernel made of the
values nslab asked for (``settled``). When the record file itself is missing (the lab's
state was lost), nslab_adopt rebuilds the entries of the directories a task names under
``nslab/<lab>/`` from the kernel.
"""

from __future__ import annotations

import os

from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import (
    lab_dir, read_json, remove_empty_dirs, write_json_atomic)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import STATE_ROOT


class CgroupStore:
    """The record of the cgroups a lab made: /run/nslab/<lab>/cgroups.json."""

    def __init__(self, lab, root=STATE_ROOT):
        self.lab, self.root = lab, root
        self.path = os.path.join(lab_dir(lab, root), "cgroups.json")

    def load(self):
        record = read_json(self.path) or {"lab": self.lab, "cgroups": {}}
        record["_path"] = self.path
        return record

    def save(self, record):
        data = dict((k, v) for k, v in record.items() if not k.startswith("_"))
        if data.get("cgroups"):
            write_json_atomic(self.path, data)
            return
        if os.path.exists(self.path):
            os.unlink(self.path)
        remove_empty_dirs(lab_dir(self.lab, self.root), self.root)

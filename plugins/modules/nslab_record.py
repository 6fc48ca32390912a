#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_record
short_description: Keep the plan of a lab over several hosts on each of its hosts
description:
  - Writes the plan that nslab_topology compiled for a lab over several hosts (its
    C(lab.record); where each node runs, its addresses, each host's underlay and bridge
    addresses, the VNIs, and a generation) to C(/run/nslab/<lab>/plan.json) on the host.
    nslab_info returns it, and nslab_topology uses the newest one among the reachable
    hosts to keep an unreachable host's nodes where they are, with their addresses.
  - Replaced as a whole, atomically; unchanged (and not rewritten) when it is the same.
  - O(state=absent) removes it, and the lab's state directory when nothing else is left
    in it.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  record:
    description: The plan to keep; required with O(state=present).
    type: dict
  state:
    description: V(present) keeps O(record), V(absent) removes the lab's record.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - nslab.lab.nslab
  - action_common_attributes
seealso:
  - module: nslab.lab.nslab_topology
  - module: nslab.lab.nslab_info
"""

EXAMPLES = r"""
- name: Keep the plan of the lab on this host, once built
  nslab_record:
    lab: wide
    record: "{{ compiled.lab.record }}"

- name: Forget it
  nslab_record:
    lab: wide
    state: absent
"""

RETURN = r"""
path:
  description: Where the record is kept.
  returned: always
  type: str
  sample: /run/nslab/wide/plan.json
diff:
  description: The record before and after.
  returned: when diff mode is on
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import check_lab, run_module
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import (
    lab_dir, plan_record_path, read_json, remove_empty_dirs, write_json_atomic)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import STATE_ROOT


def plan_change(before, wanted, state):
    """The record the host should have (None: none), and whether that is a change."""
    after = wanted if state == "present" else None
    return after, after != before


def keep_record(module):
    params = module.params
    check_lab(params)
    if params["state"] == "present" and params["record"] is None:
        raise ValidationError("record: missing; expected the plan to keep (nslab_topology's "
                              "lab.record) with state=present")
    path = plan_record_path(params["lab"])
    before = read_json(path)
    after, changed = plan_change(before, params["record"], params["state"])
    if changed and not module.check_mode:
        if after is None:
            os.unlink(path)
            remove_empty_dirs(lab_dir(params["lab"]), STATE_ROOT)
        else:
            write_json_atomic(path, after)
    result = {"changed": changed, "path": path}
    if module._diff:
        result["diff"] = {"before": before or {}, "after": after or {}}
    return result


def get_argument_spec():
    return dict(lab=dict(type="str", required=True), record=dict(type="dict"),
                state=dict(type="str", choices=["present", "absent"], default="present"))


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "keep the lab's plan", keep_record, lock=True)


if __name__ == "__main__":
    main()

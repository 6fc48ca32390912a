#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_topology
short_description: Validate an nslab topology and compile it into what each module builds
description:
  - Reads a lab's topology (networks, nodes, point-to-point links, defaults) and checks it as
    a whole; unknown keys, bad names, an address outside its subnet or used twice,
    overlapping subnets, a link to an unknown node or an interface used twice, limits that do
    not parse. Every problem is listed in one failure, before anything is changed anywhere.
  - Compiles a valid topology into the object lists that nslab_namespace, nslab_bridge,
    nslab_veth, nslab_jail, nslab_cgroup and nslab_container converge, so a lab of any size
    costs a fixed number of module runs per host.
  - Addresses are allocated in the order of the file, skipping explicit ones, and are
    sticky; an address a node already has (O(current)) is kept, so adding or removing a
    node never renumbers the others.
  - Reads and changes nothing on the target; it never reports a change.
version_added: "0.1.0"
author: nslab contributors
options:
  topology:
    description:
      - The topology, as loaded from its YAML file (keys C(lab), C(defaults), C(networks),
        C(nodes), C(links)); see C(labs/demo.yml).
    type: dict
    required: true
  current:
    description:
      - What the lab has now on the host, as nslab_info returns it for the lab
        (C(info.labs[lab])). Its addresses are kept (sticky), and what it has that the
        topology no longer names is returned in RV(lab.remove).
    type: dict
    default: {}
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
seealso:
  - module: nslab_info
"""

EXAMPLES = r"""
- name: Validate and compile the topology on the controller
  nslab_topology:
    topology: "{{ lookup('ansible.builtin.file', 'labs/demo.yml') | from_yaml }}"
  delegate_to: localhost
  run_once: true
  register: topology
"""

RETURN = r"""
lab:
  description: The compiled lab.
  returned: success
  type: dict
  contains:
    lab:
      description: Lab name.
      type: str
    nodes:
      description: Per node, its net namespace and interfaces with addresses.
      type: dict
    namespaces:
      description: Items for nslab_namespace.
      type: list
    bridges:
      description: Items for nslab_bridge.
      type: list
    veths:
      description: Items for nslab_veth.
      type: list
    containers:
      description: Items for nslab_container; each names its jail and cgroup, which carry
        the node's name.
      type: list
    jails:
      description: Items for nslab_jail, one per node.
      type: list
    cgroups:
      description: Items for nslab_cgroup, one per node, with its limits.
      type: list
    hosts:
      description: Node name to its first address, for /etc/hosts.
      type: dict
    remove:
      description: Names of containers, namespaces, bridges, veths, jails and cgroups the
        host has and the topology no longer names.
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nslab_errors import ValidationError
from ansible.module_utils.nslab_ansible import run_module
from ansible.module_utils.nslab_topology import compile_lab, validate


def compile_topology(module):
    problems = validate(module.params["topology"])
    if problems:
        raise ValidationError(problems)
    try:
        lab = compile_lab(module.params["topology"], module.params["current"])
    except ValueError as err:
        raise ValidationError(str(err))
    return {"changed": False, "lab": lab}


def get_argument_spec():
    return dict(
        topology=dict(type="dict", required=True),
        current=dict(type="dict", default={}),
    )


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "validate the topology", compile_topology)


if __name__ == "__main__":
    main()

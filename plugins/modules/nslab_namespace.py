#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_namespace
short_description: Persistent, named Linux namespaces owned by an nslab lab
description:
  - Creates and deletes namespaces that outlive the module and any process, by
    bind-mounting them. A container's view of the system is a set of these.
  - C(net) namespaces are bind-mounted at C(/run/netns/<name>), so C(ip netns) lists them and
    C(nsenter --net=/run/netns/<name>) enters them. The types C(uts), C(ipc), C(mnt) and
    C(cgroup) are bind-mounted at C(/run/nslab/<lab>/ns/<name>/<type>); the module returns
    every path, for use with C(nsenter --uts=PATH ...).
  - C(pid) and C(user) namespaces are not persisted here. A pid namespace lives only as long
    as its first process (its init), and a user namespace needs its id maps written by a
    process; both are created by nslab_container together with the container's init.
  - New C(mnt) namespaces are slaves of the host's mounts and drop the copy of nslab's own
    namespace mounts, so they never keep other namespaces alive.
  - Converges one namespace (O(name)) or a list (O(namespaces)) per invocation.
  - Ownership is recorded in C(/run/nslab/<lab>/ns/<name>.json) with the namespaces' inode
    numbers. A namespace of the same name that nslab did not make (for example one from
    C(ip netns add)) is never changed or deleted.
  - A new C(net) namespace also carries its lab in the kernel, as the ifalias of its C(lo),
    C(nslab:<lab>:netns). When the record is lost (C(/run/nslab/<lab>) emptied while the lab
    runs), a net namespace whose C(lo) carries this lab's tag, and the other types still
    bind-mounted at their place under C(/run/nslab/<lab>/ns/), are adopted (the record is
    rewritten, reported as a change) or, with V(absent), deleted. One without the tag, or
    tagged for another lab, is refused as before. A net namespace made before nslab tagged
    them is tagged by the next run (a change, once).
  - C(/run/nslab) is a private bind mount of itself, made again when it was removed.
  - Deleting a net namespace deletes the veths inside it; the module waits until their host
    ends are gone, so their names can be reused at once.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  name:
    description: Namespace name. Mutually exclusive with O(namespaces).
    type: str
  types:
    description: Namespace types to hold under this name.
    type: list
    elements: str
    choices: [net, uts, ipc, mnt, cgroup]
    default: [net]
  hostname:
    description:
      - Hostname inside the C(uts) namespace. Defaults to the namespace name when C(uts) is
        among O(types).
    type: str
  state:
    description: V(present) or V(absent). The default for items of O(namespaces).
    type: str
    choices: [present, absent]
    default: present
  namespaces:
    description: Several namespaces converged at once. Each item takes the options above.
    type: list
    elements: dict
    suboptions:
      name:
        description: Namespace name.
        type: str
        required: true
      types:
        description: Namespace types.
        type: list
        elements: str
        choices: [net, uts, ipc, mnt, cgroup]
        default: [net]
      hostname:
        description: Hostname inside the C(uts) namespace.
        type: str
      state:
        description: V(present) or V(absent); defaults to the top-level O(state).
        type: str
        choices: [present, absent]
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - Linux with namespaces; root (CAP_SYS_ADMIN)
  - iproute2 and util-linux (nsenter) on the target
seealso:
  - module: nslab.lab.nslab_veth
"""

EXAMPLES = r"""
- name: A network namespace, visible to ip netns
  nslab_namespace:
    lab: demo
    name: demo-apt101

- name: A container's namespaces, several at once
  nslab_namespace:
    lab: demo
    namespaces:
      - {name: demo-apt101, types: [net, uts, ipc]}
      - {name: demo-apt102, types: [net, uts, ipc], hostname: web}

- name: Run a command inside it
  ansible.builtin.command: nsenter --net=/run/netns/demo-apt101 ip -br addr
  changed_when: false

- name: Remove it
  nslab_namespace:
    lab: demo
    name: demo-apt102
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence per change.
  returned: always
  type: list
  elements: str
  sample:
    - "create net, uts namespaces 'demo-apt101'"
    - "adopt namespace 'demo-apt102', found without its record (net: lo tagged nslab:demo:netns)"
namespaces:
  description: Each requested namespace as the kernel shows it after the run.
  returned: always
  type: list
  elements: dict
  sample:
    - name: demo-apt101
      state: present
      types: [net, uts]
      hostname: demo-apt101
      paths:
        net: /run/netns/demo-apt101
        uts: /run/nslab/demo/ns/demo-apt101/uts
diff:
  description: Before and after, keyed by namespace name.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import main_of
from ansible_collections.nslab.lab.plugins.module_utils.nslab_converge_namespace import (
    converge, get_argument_spec)


def main():
    main_of(AnsibleModule, get_argument_spec(), "namespaces", "namespaces", converge)


if __name__ == "__main__":
    main()

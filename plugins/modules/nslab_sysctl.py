#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_sysctl
short_description: Sysctls of an nslab node's own net namespace
description:
  - Sets the sysctls of net namespaces of a lab (made by nslab_namespace), such as
    C(net.ipv4.ip_forward) for a router, from the host - a short child joins the namespace
    and writes C(/proc/sys/net/...) there - so the node needs no capability for it and
    no other namespace, the host's included, is changed.
  - Only C(net.*) names are taken. One that does not exist in a net namespace of this
    kernel, or is read-only there (a host-wide setting such as
    C(net.netfilter.nf_conntrack_max)), fails the task by name before anything is written.
  - Each value is read first and written only when it differs (whitespace-normalised, as
    the kernel prints it), then read back; the value read back is returned, and a rerun
    reports no change. If a write fails, the values already written in that namespace and
    in the namespaces listed before it are put back.
  - Sysctls live as long as the net namespace, whatever happens to the container in it;
    the module never resets a value that is no longer listed (the namespace goes with its
    node).
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  namespaces:
    description: Net namespaces of the lab and the sysctls each gets.
    type: list
    elements: dict
    required: true
    suboptions:
      netns:
        description: Net namespace made by nslab_namespace for this lab.
        type: str
        required: true
      sysctls:
        description: Name (C(net.*), dotted) to value (an integer or a string like
          C("4096 87380 6291456")).
        type: dict
        required: true
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - Linux, root; python3 >= 3.9 on the target
seealso:
  - module: nslab.lab.nslab_namespace
"""

EXAMPLES = r"""
- name: A router forwards IPv4 and IPv6
  nslab_sysctl:
    lab: routers
    namespaces:
      - netns: routers-r1
        sysctls: {net.ipv4.ip_forward: 1, net.ipv6.conf.all.forwarding: 1}
"""

RETURN = r"""
actions:
  description: What was set (or would be, in check mode), one sentence per value.
  returned: always
  type: list
  elements: str
  sample: ["set net.ipv4.ip_forward to '1' in netns 'routers-r1' (was '0')"]
namespaces:
  description: Each namespace with the values its sysctls have after the run (read back).
  returned: always
  type: list
  elements: dict
  sample: [{netns: routers-r1, sysctls: {net.ipv4.ip_forward: "1"}}]
diff:
  description: Before and after, keyed by namespace.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import run_module
from ansible_collections.nslab.lab.plugins.module_utils.nslab_converge_sysctl import (
    converge, get_argument_spec)


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "set the sysctls of lab '%s'" % module.params["lab"], converge,
               lock=True)


if __name__ == "__main__":
    main()

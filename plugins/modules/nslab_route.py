#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_route
short_description: Static routes (IPv4 and IPv6) in the net namespaces of an nslab lab
description:
  - Converges the static routes of each listed net namespace to exactly O(nodes[].routes),
    from the host (a node's own processes lack CAP_NET_ADMIN). Reads the kernel's main
    table with C(ip -j route show table all), plans, then applies one C(ip -batch) per
    namespace; if a batch fails, what it and the earlier namespaces' batches did is undone,
    newest first.
  - Every route nslab adds carries the routing protocol number 213 (C(ip route show proto
    213) lists them). Only such routes are changed or deleted; routes of the kernel, of a
    user or of a routing daemon (FRR's are 186-198) are left alone. A listed destination
    that another owner already routes is refused, naming that route, and nothing changes.
  - A route whose gateway is on no subnet of an interface that is up in the namespace
    (its link is down, or not made yet) cannot be added; it is returned in RV(waiting),
    is not a change, and is added by the first run after its interface comes up.
  - A route is identified by its family and destination; C(to=default) is the default
    route of the gateway's family.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  nodes:
    description:
      - The namespaces to converge, each with all of its nslab routes. A namespace listed
        with no routes loses the ones nslab added; one not listed is not touched.
    type: list
    elements: dict
    required: true
    suboptions:
      netns:
        description: Net namespace (made by nslab_namespace for this lab).
        type: str
        required: true
      routes:
        description: Its routes.
        type: list
        elements: dict
        default: []
        suboptions:
          to:
            description: V(default), or a destination network in CIDR form (IPv4 or IPv6).
            type: str
            required: true
          via:
            description: Gateway address, of the same family as O(nodes[].routes[].to).
            type: str
            required: true
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - Linux; root (CAP_NET_ADMIN, CAP_SYS_ADMIN for nsenter)
  - iproute2 and util-linux (nsenter) on the target
seealso:
  - module: nslab.lab.nslab_namespace
  - module: nslab.lab.nslab_veth
"""

EXAMPLES = r"""
- name: A default route and a route to a remote subnet, IPv4 and IPv6
  nslab_route:
    lab: demo
    nodes:
      - netns: demo-r1
        routes:
          - {to: default, via: 10.213.1.1}
          - {to: 10.9.0.0/16, via: 10.213.1.254}
          - {to: default, via: "fd00:213:1::1"}

- name: Remove every route nslab added in a namespace
  nslab_route:
    lab: demo
    nodes:
      - {netns: demo-r1, routes: []}
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence per change.
  returned: always
  type: list
  elements: str
  sample:
    - "add route default via 10.213.1.1 in netns 'demo-r1'"
    - "delete route 10.9.0.0/16 via 10.213.1.254 in netns 'demo-r1' (no longer listed)"
routes:
  description: nslab's routes of each namespace as the kernel shows them after the run.
  returned: always
  type: dict
  sample:
    demo-r1:
      - {to: default, via: 10.213.1.1}
waiting:
  description: Routes not added because their gateway is on no interface that is up.
  returned: always
  type: dict
  sample:
    demo-r1:
      - {to: 10.9.0.0/16, via: 10.213.9.2}
diff:
  description: nslab's routes before and after, keyed by namespace.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import run_module
from ansible_collections.nslab.lab.plugins.module_utils.nslab_converge_route import (
    converge, get_argument_spec)


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "converge routes of lab '%s'" % module.params["lab"], converge,
               lock=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_link
short_description: Impairment (netem) and link state of a running nslab lab's links
description:
  - Sets delay, jitter, loss, rate, corruption, duplication and reordering (the kernel's
    C(netem) queueing discipline) and the up/down state of a node's interface and of the
    other end of its veth (the host end on the lab's bridge, or the other node's interface
    of a point-to-point link), without touching anything else of the lab.
  - Reads both ends' root qdiscs (C(tc -j qdisc show)) and link state, and changes only
    what differs. A rerun with the same arguments changes nothing.
  - A flat O(links[].netem) applies to the egress of B(both) ends, so a C(delay) of C(20ms) gives
    about 40 ms of round trip. A netem with the keys C(egress) and C(ingress) sets each
    direction as seen from the node (its C(ingress) is the egress of the other end).
  - nslab's qdisc is the root qdisc with handle C(4e53:). A root qdisc that is neither the
    kernel's default (handle C(0:)) nor nslab's is foreign; an impairment on that end fails,
    naming the device, and the qdisc is left alone; with no impairment wanted it is a
    warning.
  - Only this lab's veths (ifalias C(nslab:<lab>:veth)) are touched; any other interface is
    refused by name.
  - If a change fails half way, what was done for that entry is undone, newest first.
  - Needs the kernel's C(sch_netem) (module or built in) for an impairment; link state
    works without it.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  links:
    description: The attachments to converge.
    type: list
    elements: dict
    required: true
    suboptions:
      node:
        description: Node (its net namespace is C(<lab>-<node>), as nslab_topology names it).
        type: str
        required: true
      interface:
        description: The node's interface, for example C(eth0).
        type: str
        required: true
      netem:
        description:
          - Impairment; omitted or null means none (nslab's qdisc is removed).
          - Keys C(delay), C(jitter) (a number and C(us), C(ms) or C(s)); C(loss),
            C(corrupt), C(duplicate), C(reorder) (a percentage such as C(1%), 0-100); C(rate)
            (a number and C(bit), C(kbit), C(mbit), C(gbit), C(bps), C(kbps), C(mbps) or
            C(gbps)). C(jitter) and C(reorder) need a C(delay).
          - Or C(egress) and C(ingress), each a mapping of those keys.
        type: dict
      state:
        description: C(up) or C(down), for both ends of the veth.
        type: str
        choices: [up, down]
        default: up
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - iproute2 (C(ip), C(tc)) and util-linux (C(nsenter)) on the target
  - the kernel's netem qdisc (C(CONFIG_NET_SCH_NETEM)) for an impairment
seealso:
  - module: nslab.lab.nslab_veth
  - module: nslab.lab.nslab_topology
"""

EXAMPLES = r"""
- name: 50 ms more round trip and 1% loss each way on apt101's eth0
  nslab_link:
    lab: demo
    links:
      - {node: apt101, interface: eth0, netem: {delay: 25ms, loss: 1%}}

- name: A slow uplink (10 Mbit/s out of the node) and 20 ms on what comes back
  nslab_link:
    lab: demo
    links:
      - node: r1
        interface: eth1
        netem: {egress: {rate: 10mbit}, ingress: {delay: 20ms}}

- name: Cut a point-to-point link (both ends go down), and restore another
  nslab_link:
    lab: demo
    links:
      - {node: r1, interface: eth2, state: down}
      - {node: r2, interface: eth3}
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence each.
  returned: always
  type: list
  elements: str
  sample: ["add netem delay 25ms loss 1% to eth0 in netns 'demo-apt101'"]
links:
  description: Each entry's two ends as the kernel reports them after the run (in check
    mode, before).
  returned: always
  type: list
  elements: dict
  sample:
    - node: apt101
      interface: eth0
      state: up
      ends:
        - {netns: demo-apt101, device: eth0, qdisc: "netem 4e53:", state: up,
           netem: {delay: 25ms, loss: 1%}}
        - {netns: null, device: demo-apt101-0, qdisc: "netem 4e53:", state: up,
           netem: {delay: 25ms, loss: 1%}}
diff:
  description: Both ends of each entry before and after, keyed C(<node>:<interface>).
  returned: in diff mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import run_module
from ansible_collections.nslab.lab.plugins.module_utils.nslab_converge_link import (
    converge, get_argument_spec)


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "converge links of lab '%s'" % module.params["lab"], converge, lock=True)


if __name__ == "__main__":
    main()

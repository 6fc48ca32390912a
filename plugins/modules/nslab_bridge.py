#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_bridge
short_description: Linux bridges owned by an nslab lab
description:
  - Creates, updates and deletes Linux bridges in the host's network namespace, the switch
    that nslab containers' veth pairs plug into (Docker's default bridge model).
  - Converges one bridge (O(name)) or a list of them (O(bridges)) in a single invocation, with
    one C(ip -batch) process for all changes.
  - Every bridge it creates is tagged with the ifalias C(nslab:<lab>:bridge). A bridge that
    exists without this lab's tag (made by hand, by Docker, by another lab) is never changed
    or deleted; the module fails and names its owner instead.
  - Addresses are converged exactly (IPv6 link-local addresses made by the kernel are
    ignored). IPv6 address generation is off unless O(ipv6=true), because router
    solicitations and DAD on hundreds of bridge ports flood the bridge.
  - If applying fails half way, every step already done is undone, newest first.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  name:
    description:
      - Bridge name (at most 15 bytes). Mutually exclusive with O(bridges).
    type: str
  addresses:
    description:
      - Addresses of the bridge in CIDR form (IPv4 and IPv6). The bridge ends up with exactly
        these.
    type: list
    elements: str
    default: []
  mtu:
    description: MTU of the bridge. Left as the kernel sets it when omitted.
    type: int
  mac:
    description: MAC address of the bridge. Left as the kernel sets it when omitted.
    type: str
  stp:
    description: Spanning tree protocol on the bridge.
    type: bool
    default: false
  ipv6:
    description: IPv6 address generation (link-local, SLAAC) on the bridge.
    type: bool
    default: false
  nat:
    description:
      - Masquerade the bridge's IPv4 subnets to the host's uplink (like Docker's default
        bridge), with one nftables rule per subnet in nslab's own table C(ip nslab).
      - Needs the C(nft) command (Debian package C(nftables)). If the host does not forward
        IPv4 (C(net.ipv4.ip_forward=0)), the module turns forwarding on, which is a
        host-wide setting; it says so in RV(actions) and in a warning, and does not
        turn it off again.
    type: bool
    default: false
  isolate_host:
    description:
      - Nodes on the bridge reach no address of the host except the bridge's own (the
        host side of the lab network, their gateway). Packets that arrive on the bridge
        for any other local address of the host (its uplink, loopback, other bridges, IPv4
        and IPv6) are dropped, by one nftables rule in nslab's own table C(inet nslab)
        (chain C(input)), named by its comment C(nslab:<lab>:<bridge>:isolate-host).
      - Traffic the host forwards (routing, O(nat)) is not affected, nor are replies to
        connections the host opens from the bridge's address.
      - Needs the C(nft) command (Debian package C(nftables)).
    type: bool
    default: false
  state:
    description:
      - V(present) creates or updates, V(absent) deletes (with its rules in nslab's
        nftables tables, including the anti-spoofing rules of its ports, see nslab_veth). The default for items of
        O(bridges) that do not set their own.
    type: str
    choices: [present, absent]
    default: present
  bridges:
    description: Several bridges converged at once. Each item takes the options above.
    type: list
    elements: dict
    suboptions:
      name:
        description: Bridge name.
        type: str
        required: true
      addresses:
        description: Addresses in CIDR form.
        type: list
        elements: str
        default: []
      mtu:
        description: MTU.
        type: int
      mac:
        description: MAC address.
        type: str
      stp:
        description: Spanning tree protocol.
        type: bool
        default: false
      ipv6:
        description: IPv6 address generation.
        type: bool
        default: false
      nat:
        description: Masquerade the bridge's IPv4 subnets to the host's uplink.
        type: bool
        default: false
      isolate_host:
        description: Nodes on the bridge reach no address of the host but the bridge's.
        type: bool
        default: false
      state:
        description: V(present) or V(absent); defaults to the top-level O(state).
        type: str
        choices: [present, absent]
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - iproute2 and util-linux (nsenter) on the target
  - nftables (C(nft)) only with O(nat=true) or O(isolate_host=true)
notes:
  - The bridge lives in the host's network namespace. Host-wide settings such as
    C(net.bridge.bridge-nf-call-iptables) or ARP table sizes are not changed.
seealso:
  - module: nslab.lab.nslab_veth
  - module: nslab.lab.nslab_namespace
"""

EXAMPLES = r"""
- name: One bridge with an address, like Docker's docker0
  nslab_bridge:
    lab: demo
    name: nslab-demo-lan
    addresses: [10.213.1.1/24]

- name: Every bridge of a lab in one invocation
  nslab_bridge:
    lab: demo
    bridges:
      - {name: nslab-demo-lan, addresses: [10.213.1.1/24, "fd00:213:1::1/64"], ipv6: true}
      - {name: nslab-demo-dmz, mtu: 9000, stp: true}

- name: A lab network whose nodes cannot reach the host's other addresses
  nslab_bridge:
    lab: demo
    name: nslab-demo-lan
    addresses: [10.213.1.1/24]
    isolate_host: true

- name: Remove a bridge
  nslab_bridge:
    lab: demo
    name: nslab-demo-dmz
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence per change.
  returned: always
  type: list
  elements: str
  sample: ["create bridge 'nslab-demo-lan'", "add address 10.213.1.1/24 to bridge 'nslab-demo-lan'"]
bridges:
  description: Each requested bridge as the kernel reports it after the run (before it, in
    check mode).
  returned: always
  type: list
  elements: dict
  sample:
    - name: nslab-demo-lan
      state: present
      kind: bridge
      mtu: 1500
      mac: 1e:e1:b5:fe:f4:9e
      up: true
      addresses: [10.213.1.1/24]
      stp: false
      ipv6: false
      nat: false
      isolate_host: false
      ifindex: 7
      owner: "nslab:demo:bridge"
diff:
  description: Before and after, keyed by bridge name, over the options that were set.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import main_of
from ansible_collections.nslab.lab.plugins.module_utils.nslab_converge_bridge import (
    converge, get_argument_spec)


def main():
    main_of(AnsibleModule, get_argument_spec(), "bridges", "bridges", converge)


if __name__ == "__main__":
    main()

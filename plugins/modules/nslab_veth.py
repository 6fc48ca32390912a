#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_veth
short_description: veth pairs between namespaces and bridges, owned by an nslab lab
description:
  - Creates, updates and deletes veth pairs, the virtual cable of a container network. One
    end (O(name)) usually stays in the host and is attached to a bridge, the other (O(peer))
    lives in a container's net namespace under its own name, for example C(eth0). Both ends
    may also live in two namespaces, a point-to-point link with no bridge.
  - Each end is created directly in its namespace, so no temporary name ever appears in the
    host. All creations cost one C(ip -batch) process on the host, and the settings inside
    each namespace one C(nsenter --net=... ip -batch) process per namespace, whatever the
    number of pairs.
  - Both ends carry the ifalias C(nslab:<lab>:veth). A link of the same name that is not
    this lab's is never changed or deleted. A pair whose two ends are no longer each other's
    peer (rewired by hand) is deleted and created again.
  - Namespaces must exist and belong to the same lab (see nslab_namespace), and a bridge must
    be this lab's (see nslab_bridge). In check mode a namespace or bridge that does not exist
    yet is only warned about, so a whole lab can be checked before it is built. A pair to
    remove whose namespace no longer exists went with it, so removing a lab twice is safe.
  - IPv6 address generation is off on both ends unless O(ipv6=true).
  - A pair that plugs a node into a bridge (one end attached to a bridge, the other not)
    is guarded against MAC and ARP spoofing unless O(antispoof=false); see there.
  - If applying fails half way, every step already done is undone, newest first.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  name:
    description: Name of the first end (at most 15 bytes). Mutually exclusive with O(veths).
    type: str
  netns:
    description: Net namespace (by name, as in C(/run/netns)) of the first end; the host's
      when omitted.
    type: str
  bridge:
    description: Bridge the first end is attached to. Only for an end in the host namespace.
    type: str
  addresses:
    description: Addresses of the first end, in CIDR form. The end ends up with exactly these.
    type: list
    elements: str
    default: []
  mac:
    description: MAC address of the first end.
    type: str
  peer:
    description: The other end. Required with O(state=present).
    type: dict
    suboptions:
      name:
        description: Name of the other end (at most 15 bytes).
        type: str
        required: true
      netns:
        description: Its net namespace; the host's when omitted.
        type: str
      bridge:
        description: Bridge it is attached to (only in the host namespace).
        type: str
      addresses:
        description: Its addresses, in CIDR form.
        type: list
        elements: str
        default: []
      mac:
        description: Its MAC address.
        type: str
  mtu:
    description: MTU of both ends. Left as the kernel sets it when omitted.
    type: int
  ipv6:
    description: IPv6 address generation (link-local, SLAAC) on both ends.
    type: bool
    default: false
  keep_state:
    description:
      - Leave the up/down state of an existing pair as it is (a new pair is still brought
        up). For a pair whose state nslab_link sets (a topology's C(state=down)), so that
        this module does not bring it back up on every run.
    type: bool
    default: false
  antispoof:
    description:
      - For a pair with one end on a bridge (the port) and the other not (the node end),
        frames entering the bridge from the port must carry the node end's MAC as source,
        and ARP from it must carry that MAC as sender and one of the node end's IPv4
        O(peer.addresses) (or 0.0.0.0, an ARP probe) as sender IP. Anything else is
        dropped before the bridge learns from it, so a node cannot poison its neighbours'
        ARP caches or the bridge's forwarding table. IP source addresses are not checked
        (a node may route others' traffic).
      - The node end's MAC is the one given in its C(mac), else one derived from lab,
        namespace and name (locally administered, stable across rebuilds), set at creation
        and kept. It is known before the link exists, so the rules are in place before the
        port is, and it is never taken from the kernel, where a node could have changed it.
      - Three rules per port in nslab's own table C(bridge nslab) (chain C(prerouting)),
        named by their comment C(nslab:<lab>:<bridge>:port:<port>:<check>), removed with
        the pair, or by the next run once the port is gone (its namespace deleted), or
        with the bridge (see nslab_bridge).
      - A node with C(CAP_NET_ADMIN) can still change its MAC or add addresses; its
        frames are then dropped (until the next run sets the MAC back). ARP of VLAN-tagged
        frames and IPv6 neighbour discovery are not inspected (only their source MAC is).
        A node end with no IPv4 address may send ARP probes only; set O(antispoof=false)
        for a node that configures its own addresses (DHCP).
      - Needs the C(nft) command (Debian package C(nftables)) when a pair has a port.
    type: bool
    default: true
  state:
    description: V(present) or V(absent). The default for items of O(veths).
    type: str
    choices: [present, absent]
    default: present
  veths:
    description: Several pairs converged at once. Each item takes the options above.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the first end.
        type: str
        required: true
      netns:
        description: Net namespace of the first end; the host's when omitted.
        type: str
      bridge:
        description: Bridge the first end is attached to (host namespace only).
        type: str
      addresses:
        description: Addresses of the first end, in CIDR form.
        type: list
        elements: str
        default: []
      mac:
        description: MAC address of the first end.
        type: str
      peer:
        description: The other end. Required with O(state=present).
        type: dict
        suboptions:
          name:
            description: Name of the other end.
            type: str
            required: true
          netns:
            description: Its net namespace; the host's when omitted.
            type: str
          bridge:
            description: Bridge it is attached to (host namespace only).
            type: str
          addresses:
            description: Its addresses, in CIDR form.
            type: list
            elements: str
            default: []
          mac:
            description: Its MAC address.
            type: str
      mtu:
        description: MTU of both ends.
        type: int
      ipv6:
        description: IPv6 address generation on both ends.
        type: bool
        default: false
      antispoof:
        description: Guard the bridge port of a node against MAC and ARP spoofing.
        type: bool
        default: true
      keep_state:
        description: Leave an existing pair's up/down state alone.
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
  - nftables (C(nft)) for pairs on a bridge with O(antispoof=true)
seealso:
  - module: nslab.lab.nslab_bridge
  - module: nslab.lab.nslab_namespace
"""

EXAMPLES = r"""
- name: A container's eth0 on the lab bridge, Docker style
  nslab_veth:
    lab: demo
    name: nsl-demo-101
    bridge: nslab-demo-lan
    peer:
      name: eth0
      netns: demo-apt101
      addresses: [10.213.1.11/24]

- name: Every pair of a lab at once, with a point-to-point link between two containers
  nslab_veth:
    lab: demo
    veths:
      - {name: nsl-demo-101, bridge: nslab-demo-lan,
         peer: {name: eth0, netns: demo-apt101, addresses: [10.213.1.11/24]}}
      - {name: eth1, netns: demo-apt101, addresses: [10.213.9.1/30],
         peer: {name: eth1, netns: demo-apt103, addresses: [10.213.9.2/30]}}

- name: A node that runs its own DHCP client, so its addresses are not known here
  nslab_veth:
    lab: demo
    name: nsl-demo-102
    bridge: nslab-demo-lan
    antispoof: false
    peer: {name: eth0, netns: demo-apt102}

- name: Remove a pair (both ends go)
  nslab_veth:
    lab: demo
    name: nsl-demo-101
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence per change.
  returned: always
  type: list
  elements: str
  sample: ["create veth 'nsl-demo-101' with peer 'eth0' in netns 'demo-apt101'"]
veths:
  description: Each requested pair as the kernel reports it after the run.
  returned: always
  type: list
  elements: dict
  sample:
    - name: nsl-demo-101
      netns: null
      state: present
      mtu: 1500
      master: nslab-demo-lan
      addresses: []
      antispoof: true
      peer:
        name: eth0
        netns: demo-apt101
        state: present
        mac: 6a:1f:0c:5e:93:d2
        addresses: [10.213.1.11/24]
diff:
  description: Before and after, keyed by C(netns/name) of the first end.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import main_of
from ansible_collections.nslab.lab.plugins.module_utils.nslab_converge_veth import (
    converge, get_argument_spec)


def main():
    main_of(AnsibleModule, get_argument_spec(), "veths", "veths", converge)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_info
short_description: Everything nslab owns on a host, lab by lab
description:
  - Reads, never changes. For each lab (or the one named by O(lab)) it reports its
    namespaces, containers (running or not, pid, addresses), bridges with their ports, veth
    ends in the host and in the lab's namespaces, and the addresses found in each of the
    lab's net namespaces.
  - Reports leftovers too, things of nslab's that no longer make a whole; a namespace record
    whose bind mount is gone, a container record whose init died, links tagged for a lab that
    has no namespace or container left.
  - All from the kernel (C(ip -j), C(bridge -j fdb), C(/proc), C(/proc/self/mountinfo)) and
    nslab's records under C(/run/nslab), which are checked against the kernel before they
    are believed.
  - For a lab over several hosts, O(underlay) finds this host's underlay interface and
    its MTU, and O(fleet) merges what every host reported into one lab-wide view
    (RV(fleet)); which node runs where, its addresses and state.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  lab:
    description: Only this lab. All labs found on the host when omitted.
    type: str
  underlay:
    description: The address (or a name the host resolves) the other hosts of a lab reach
      this host at; RV(underlay) reports the interface that holds it and its MTU.
    type: str
  fleet:
    description: The registered results of this module looped over a lab's hosts with
      C(delegate_to) (each names its host by C(item)); merged into RV(fleet).
    type: list
    elements: dict
    default: []
  brief:
    description: Only what planning a run needs (lab.yml reads every host so, on every
      run) - names, addresses, states, each veth end's qdisc, nslab's routes - without the
      cgroups' limits and usage and the jails' details, which a lab of thousands of nodes
      would read, and send to the controller, on every run.
    type: bool
    default: false
  packages:
    description: Debian packages to report as installed or not (RV(packages)), asked of
      dpkg in the same run, so that a play which reads the host first need not ask again
      before it installs what is missing (lab.yml does so for the jails' sources and nft).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: linux
seealso:
  - module: nslab.lab.nslab_topology
"""

EXAMPLES = r"""
- name: What does lab demo consist of on this host?
  nslab_info:
    lab: demo
  register: info

- name: Show its containers
  ansible.builtin.debug:
    msg: "{{ info.labs.demo.containers | map(attribute='name') }}"
"""

RETURN = r"""
labs:
  description: Per lab name, what nslab owns of it on this host.
  returned: always
  type: dict
  contains:
    namespaces:
      description: Namespaces with their types, paths and whether all are live.
      type: list
    containers:
      description: Containers with state (running, stopped), pid, hostname, netns, addresses
        and C(usage), what their cgroup consumes (memory, pids, cpu, OOM kills, throttling).
      type: list
    jails:
      description: Jails with their root, base, source and whether they are mounted.
      type: list
    cgroups:
      description: cgroups with their limits, processes and usage.
      type: list
    bridges:
      description: Bridges with addresses and ports.
      type: list
    veths:
      description: veth ends, in the host (netns null) and in the lab's namespaces, with
        the kind of their root qdisc (C(netem) when impaired).
      type: list
    vxlans:
      description: VXLAN devices, in the host (netns null) and in the lab's namespaces, with
        VNI, local address, port, bridge, MTU and peers (all-zero forwarding entries).
      type: list
    netns_addresses:
      description: Addresses (CIDR) found in each of the lab's net namespaces, C(lo) excluded.
      type: dict
    netns_routes:
      description: nslab's own routes (proto 213, C({to, via})) in each of the lab's net
        namespaces.
      type: dict
    ports:
      description: The lab's published ports in nslab's nftables table, as nslab_ports
        reports them (empty when the host has no nft command).
      type: list
      elements: str
    port_guards:
      description: The bridges where the lab's published ports keep nodes off the host's
        loopback addresses (nslab_ports' guard rules).
      type: list
      elements: str
    record:
      description: For a lab over several hosts, the plan of its last build kept on this
        host (see nslab_record), or null.
      type: dict
    leftovers:
      description: Sentences naming what no longer makes a whole.
      type: list
      elements: str
  sample:
    demo:
      namespaces: [{name: demo-apt101, types: [net], live: true}]
      containers: [{name: apt101, state: running, pid: 4242, netns: demo-apt101,
                    addresses: [10.213.1.2/24]}]
      bridges: [{name: demo-lan, addresses: [10.213.1.1/24], up: true, ports: [demo-apt101-0]}]
      veths: [{name: demo-apt101-0, netns: null, master: demo-lan, addresses: []}]
      jails: [{name: apt101, state: present, root: /var/lib/nslab/demo/jails/apt101/root}]
      cgroups: [{name: apt101, state: present, limits: {memory: 67108864, pids: 64}}]
      netns_addresses: {demo-apt101: [10.213.1.2/24]}
      netns_routes: {demo-apt101: []}
      ports: ["tcp *:8080 -> node apt101 10.213.1.2:80"]
      port_guards: []
      leftovers: []
packages:
  description: With O(packages), each one's name and whether dpkg has it installed (all
    false on a host without dpkg).
  returned: when O(packages) is given
  type: dict
  sample: {busybox-static: true, nftables: false}
underlay:
  description: With O(underlay), the address, the interface holding it and its MTU
    (device and mtu null when no interface of the host holds it).
  returned: when O(underlay) is given
  type: dict
  sample: {address: 10.213.250.11, device: eth0, mtu: 1500}
fleet:
  description: With O(fleet), per lab, one view over its hosts; per node the host it runs
    on, its state, pid and addresses; per host its bridges and VXLAN devices (VNI, peers,
    MTU) and leftovers. A host whose read was unreachable is marked C(unreachable), and the
    nodes the newest record places on it are listed with state C(unknown).
  returned: when O(fleet) is given
  type: dict
  sample:
    wide:
      nodes: {a: {host: fleet1, state: running, pid: 4242, addresses: [10.213.1.2/24]}}
      hosts:
        fleet1:
          bridges: [{name: wide-lan, addresses: [10.213.1.254/24], mtu: 1450}]
          vxlans: [{name: wide-lan-vx, netns: null, vni: 4242, peers: [10.213.250.12]}]
          leftovers: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    installed_packages, run_module, runner_for)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_labview import (
    find_underlay, read_labs)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import lab_problem


def gather(module):
    lab = module.params["lab"]
    if lab is not None and lab_problem("lab", lab):
        raise ValidationError(lab_problem("lab", lab))
    labs, host_links = read_labs(runner_for(module), lab, brief=module.params["brief"],
                                 nft=module.get_bin_path("nft"))
    result = {"changed": False, "labs": labs}
    if module.params["underlay"]:
        result["underlay"] = find_underlay(module.params["underlay"], host_links)
    if module.params["fleet"]:
        # Imported only here: a module imports its module_utils from source on every run
        # (AnsiballZ keeps no bytecode), and the compiler is nslab's largest (~0.08 s).
        from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import (
            fleet_view)
        result["fleet"] = fleet_view(module.params["fleet"])
    if module.params["packages"]:
        result["packages"] = installed_packages(module, module.params["packages"])
    return result


def get_argument_spec():
    return dict(lab=dict(type="str"), underlay=dict(type="str"),
                fleet=dict(type="list", elements="dict", default=[]),
                brief=dict(type="bool", default=False),
                packages=dict(type="list", elements="str", default=[]))


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "read what nslab owns", gather)


if __name__ == "__main__":
    main()

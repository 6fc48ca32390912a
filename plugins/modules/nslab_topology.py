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
  - A lab over several hosts (O(fleet)) is placed, then each host gets its share. A node's
    C(host) key wins; a node that runs on a host of the fleet stays there; every other
    node goes, in the order of the file, to the host with the fewest nodes so far (the
    first in the fleet's order on a tie). So adding a host moves nothing already placed.
    Every host compiles the same lab-wide plan from the same input and builds only its own
    nodes; addresses are allocated and kept sticky over the whole lab.
  - A node that runs nowhere now but that the lab's record (the plan of its last build,
    see O(fleet)) places on a host of the fleet goes back there with its addresses; so a
    host that is down, or came back without its nodes, moves nothing.
  - In a lab over several hosts every network is one layer-2 segment; its bridge on each
    host that has a member of it is joined to every other host by a VXLAN device (unicast,
    static peers, see nslab_vxlan), and gets an address of its own from the top of the
    subnet. A point-to-point link whose ends are on two hosts becomes a VXLAN tunnel of its
    own, one device per end in the node's namespace. The VNI of a network or link is its
    C(vni) key, or derived from a hash of the lab and its name (endpoints for a link),
    the next free one on a clash. The MTU of every stretched segment is the smallest
    underlay MTU of the fleet minus 50 (IPv4 underlay) or 70 (IPv6), unless a smaller
    C(mtu) is given. Both are reported in RV(lab.networks) and RV(lab.links).
  - Validation knows every key any module will receive, with its type (a boolean is a YAML
    boolean, not the string V("false"); a mapping is a mapping), range and form; names are
    matched whole; hostnames follow RFC 1123; capabilities are those nslab_container knows;
    limits are parsed by nslab_cgroup's own parsers; jail keys are those nslab_jail takes
    for the jail's source, and a jail C(command) (it would run as the host's root in a
    plain chroot) is refused. Every problem names the key's path, the bad value and the
    expected form.
  - A subnet that is 0.0.0.0/0-like, loopback, link-local, multicast or reserved, or that
    meets an address the target host has on an interface nslab does not own (read with
    C(ip -j addr) on that host, so each host of a lab checks its own view), is refused.
  - With O(state=absent) only the lab's name is taken from the topology; the rest of it
    may be invalid. Everything the host has of the lab (O(current), or this host's item
    of O(fleet)) is returned in RV(lab.remove), and the other lists are empty.
  - Reads the host's addresses and changes nothing on the target; it never reports a
    change.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
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
  fleet:
    description:
      - For a lab over several hosts, what every host of the lab has now, in the fleet's
        order; the registered results of nslab_info with its C(underlay) option,
        looped over the lab's hosts with C(delegate_to). Each item names its host by
        C(item) (or C(name)) and carries nslab_info's C(labs) and C(underlay).
      - An item marked C(unreachable) (the read had C(ignore_unreachable)) is a host whose
        state is unknown. Its nodes are not moved and their addresses are not given to
        anyone; the newest record of the lab's plan among the reachable hosts (nslab_info's
        C(record), written by nslab_record after each build) places them on it as before,
        and gives its underlay. It gets no new nodes. Without such a record the compile
        fails and names the host.
      - With one item, or none, the lab is built on one host as before.
    type: list
    elements: dict
    default: []
  host:
    description: The host to compile for (its share), one of O(fleet); required with
      O(fleet) and with O(read).
    type: str
  read:
    description:
      - Read what the lab has now on this host in the same module run (what nslab_info
        with C(brief) reports of it) and compile as for a fleet of this one host, instead
        of being given it in O(current) or O(fleet). A lab on one host then costs one
        module run less (lab.yml does so). Not with O(current) or O(fleet).
    type: bool
    default: false
  packages:
    description: Debian packages to report as installed or not (RV(packages)), asked of
      dpkg in the same run, as nslab_info's option of that name does.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) validates the whole topology and compiles it.
      - V(absent) plans the lab's removal from what the host has of it; of the topology
        only C(lab) is read and checked.
    type: str
    choices: [present, absent]
    default: present
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
  - module: nslab.lab.nslab_info
"""

EXAMPLES = r"""
- name: This host's share of a lab over the fleet
  nslab_topology:
    topology: "{{ lookup('nslab.lab.nslab_topology_file', 'labs/wide.yml') }}"
    fleet: "{{ fleet_info.results }}"    # nslab_info looped over the hosts, delegated
    host: "{{ inventory_hostname }}"
  register: topology

- name: Validate and compile the topology on the controller
  nslab_topology:
    topology: "{{ lookup('nslab.lab.nslab_topology_file', 'labs/demo.yml') }}"
  delegate_to: localhost
  run_once: true
  register: topology

- name: Plan the removal of a lab from what the host has, whatever the rest of the file says
  nslab_topology:
    topology: "{{ lookup('nslab.lab.nslab_topology_file', 'labs/demo.yml') }}"
    current: "{{ info.labs.demo | default({}) }}"    # nslab_info's view of the lab
    state: absent
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
      description: Per node, lab-wide, its host, net namespace and interfaces with addresses.
      type: dict
    networks:
      description: Per network, the hosts that have members, its bridge and, over several
        hosts, its VNI, MTU, VXLAN device and each host's bridge address.
      type: dict
    links:
      description: Per point-to-point link, its endpoints, their hosts, whether it is a
        tunnel and then its VNI and MTU.
      type: list
    vxlans:
      description: Items for nslab_vxlan, this host's tunnels.
      type: list
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
    ports:
      description: With O(state=present), items for nslab_ports, this host's published
        ports (the nodes' C(ports), each to the node's address on its first network); null
        when there are none and the host holds none of the lab's (nothing for nslab_ports
        to do). With O(state=absent), an empty list when the host holds some of the lab's
        (nslab_ports then removes them), else null.
      type: list
    record:
      description: Over several hosts, the lab-wide plan for each host to keep with
        nslab_record; where each node runs and its addresses, each host's underlay and
        bridge addresses, the VNIs, and a generation that grows when the plan changes.
        With O(state=absent), the plan the host keeps now (null when it keeps none).
      type: dict
    remove:
      description: Names of containers, namespaces, bridges, veths, vxlans, jails and
        cgroups the host has and the topology (or this host's share of it) no longer names.
      type: dict
packages:
  description: With O(packages), each one's name and whether dpkg has it installed (all
    false on a host without dpkg).
  returned: when O(packages) is given
  type: dict
  sample: {busybox-static: true, nftables: false}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    installed_packages, run_module, runner_for)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_labview import read_labs
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import parse_alias
from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import (
    compile_lab, removal_plan, validate)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import lab_problem


def host_addresses(links):
    """(interface, address/prefix) of the host's addresses on interfaces nslab does not
    own: a lab subnet must not meet them."""
    return [(link.name, address) for link in links.values() if parse_alias(link.alias) is None
            for address in link.managed_addresses()]


def fleet_members(results, lab):
    """{name, underlay, current, record} per host from nslab_info's registered loop
    results; {name, unreachable} for a host that could not be read."""
    members, problems = [], []
    for index, result in enumerate(results):
        name = result.get("item", result.get("name"))
        if not isinstance(name, str) or not name:
            problems.append("fleet[%d]: no host name; expected the registered result of a "
                            "loop over the hosts (item) or a name" % index)
            continue
        if result.get("unreachable"):
            members.append({"name": name, "unreachable": True})
            continue
        current = (result.get("labs") or {}).get(lab) or {}
        members.append({"name": name, "underlay": result.get("underlay"), "current": current,
                        "record": current.get("record")})
    if problems:
        raise ValidationError(problems)
    return members


def current_of_host(module, fleet):
    """What this host has of the lab: its item of the fleet, else O(current)."""
    for member in fleet:
        if member["name"] == module.params["host"]:
            return member.get("current") or {}
    return module.params["current"]


def read_here(module, lab):
    """The fleet's results (nslab_info's registered results: O(fleet)) and None. With
    O(read), the fleet of this one host read in this run, as nslab_info's result would
    give it, and the host's links (read once, for the compile too)."""
    if not module.params["read"]:
        return module.params["fleet"], None
    for name in ("current", "fleet"):
        if module.params[name]:
            raise ValidationError("%s: given with read; expected one of them (read reads "
                                  "what the host has of the lab itself)" % name)
    if not module.params["host"]:
        raise ValidationError("host: missing; expected this host's name (read compiles "
                              "for a fleet of this one host)")
    runner = runner_for(module)
    if lab_problem("lab", lab):
        return [], runner.read_links()          # the compile names the bad lab name
    labs, links = read_labs(runner, lab, brief=True, nft=module.get_bin_path("nft"))
    return [{"item": module.params["host"], "labs": labs}], links


def compile_topology(module):
    topology = module.params["topology"]
    result = {"changed": False}
    if module.params["state"] == "absent":
        problem = lab_problem("topology.lab", topology.get("lab"))
        if problem:
            raise ValidationError(problem)
        results, _links = read_here(module, topology["lab"])
        fleet = fleet_members(results, topology["lab"])
        result["lab"] = removal_plan(topology["lab"], current_of_host(module, fleet))
    else:
        results, links = read_here(module, topology.get("lab"))
        if links is None:
            links = runner_for(module).read_links()
        problems = validate(topology, host_addresses(links))
        if problems:
            raise ValidationError(problems)
        fleet = fleet_members(results, topology["lab"])
        if fleet and not module.params["host"]:
            raise ValidationError("host: missing; expected the host to compile for, one "
                                  "of %s" % ", ".join(m["name"] for m in fleet))
        # compile_lab raises TopologyError (a ValidationError) for what the file asks that
        # the hosts cannot give; run_module reports it. Anything else it raises is a bug.
        result["lab"] = compile_lab(topology, module.params["current"], fleet,
                                    module.params["host"])
    if module.params["packages"]:
        result["packages"] = installed_packages(module, module.params["packages"])
    return result


def get_argument_spec():
    return dict(
        topology=dict(type="dict", required=True),
        current=dict(type="dict", default={}),
        fleet=dict(type="list", elements="dict", default=[]),
        host=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        read=dict(type="bool", default=False),
        packages=dict(type="list", elements="str", default=[]),
    )


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "validate the topology", compile_topology)


if __name__ == "__main__":
    main()

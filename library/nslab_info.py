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
  - All from the kernel (C(ip -j), C(/proc), C(/proc/self/mountinfo)) and nslab's records
    under C(/run/nslab), which are checked against the kernel before they are believed.
version_added: "0.1.0"
author: nslab contributors
options:
  lab:
    description: Only this lab. All labs found on the host when omitted.
    type: str
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
  - module: nslab_topology
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
      description: veth ends, in the host (netns null) and in the lab's namespaces.
      type: list
    netns_addresses:
      description: Addresses (CIDR) found in each of the lab's net namespaces, C(lo) excluded.
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
      leftovers: []
"""

import glob
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nslab_ansible import run_module, runner_for
from ansible.module_utils.nslab_cgroups import CgroupStore, cgroup_view, detect_layout, read_cgroup
from ansible.module_utils.nslab_containers import ContainerStore
from ansible.module_utils.nslab_errors import ValidationError
from ansible.module_utils.nslab_jails import DATA_ROOT, JailStore, jail_view
from ansible.module_utils.nslab_mountinfo import mount_points, read_mountinfo
from ansible.module_utils.nslab_namespaces import NamespaceStore
from ansible.module_utils.nslab_owner import STATE_ROOT, parse_alias
from ansible.module_utils.nslab_validate import lab_problem


def labs_on_host(links):
    labs = set()
    for root in (STATE_ROOT, DATA_ROOT):
        if os.path.isdir(root):
            labs.update(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    for link in links.values():
        tag = parse_alias(link.alias)
        if tag:
            labs.add(tag[0])
    return sorted(labs)


def link_item(link, netns=None):
    return {"name": link.name, "netns": netns, "master": link.master, "up": link.up,
            "mtu": link.mtu, "addresses": sorted(link.managed_addresses())}


def lab_cgroups(lab, layout):
    record = CgroupStore(lab).load()
    return [dict(name=name, **cgroup_view(layout, read_cgroup(layout, lab, name, record)))
            for name in sorted(record.get("cgroups", {}))]


def lab_jails(lab):
    store = JailStore(lab)
    names = sorted(store.read([]).records)
    state = store.read(names)
    return [dict(name=name, **jail_view(store, name, state)) for name in names]


def lab_info(lab, runner, host_links, nsfs, layout):
    leftovers = []
    cgroups = lab_cgroups(lab, layout)
    usage = dict((c["name"], c.get("usage")) for c in cgroups)
    store = NamespaceStore(lab)
    namespaces, netns_addresses, veths = [], {}, []
    for record in store.lab_records():
        state = store.read(record["name"], nsfs)
        live = not state.missing
        namespaces.append({"name": record["name"], "types": sorted(record["types"]),
                           "paths": dict((t, i["path"]) for t, i in record["types"].items()),
                           "live": live})
        if not live:
            leftovers.append("namespace '%s': %s no longer mounted" % (
                record["name"], ", ".join(state.missing)))
        if "net" in state.types:
            inside = runner.read_links(netns=record["name"])
            netns_addresses[record["name"]] = sorted(
                a for link in inside.values() if link.name != "lo"
                for a in link.managed_addresses())
            veths += [link_item(l, record["name"]) for l in inside.values()
                      if parse_alias(l.alias) == (lab, "veth")]

    containers = []
    cstore = ContainerStore(lab)
    for path in sorted(glob.glob(os.path.join(cstore.directory(), "*.json"))):
        state = cstore.read(os.path.basename(path)[:-len(".json")])
        if state.record is None:
            continue
        view = dict(name=state.name, **state.view())
        view["addresses"] = netns_addresses.get(view.get("netns"), [])
        view["usage"] = usage.get(view.get("cgroup"))
        containers.append(view)
        if state.died:
            leftovers.append("container '%s': its init died" % state.name)

    bridges = []
    for link in host_links.values():
        tag = parse_alias(link.alias)
        if tag == (lab, "bridge"):
            ports = sorted(p.name for p in host_links.values() if p.master == link.name)
            bridges.append(dict(link_item(link), ports=ports))
        elif tag == (lab, "veth"):
            veths.append(link_item(link))
    jails = lab_jails(lab)
    if (bridges or veths) and not namespaces and not containers:
        leftovers += ["%s '%s' belongs to lab '%s', which has no namespace or container "
                      "left" % ("bridge" if "ports" in item else "veth", item["name"], lab)
                      for item in bridges + veths]
    return {"namespaces": namespaces, "containers": containers,
            "bridges": sorted(bridges, key=lambda b: b["name"]),
            "veths": sorted(veths, key=lambda v: (v["netns"] or "", v["name"])),
            "jails": jails, "cgroups": cgroups, "netns_addresses": netns_addresses,
            "leftovers": leftovers}


def gather(module):
    lab = module.params["lab"]
    if lab is not None and lab_problem("lab", lab):
        raise ValidationError(lab_problem("lab", lab))
    runner = runner_for(module)
    host_links = runner.read_links()
    mounts = read_mountinfo()
    nsfs = mount_points(mounts, "nsfs")
    layout = detect_layout(mounts)
    labs = [lab] if lab else labs_on_host(host_links)
    return {"changed": False,
            "labs": dict((name, lab_info(name, runner, host_links, nsfs, layout))
                         for name in labs)}


def get_argument_spec():
    return dict(lab=dict(type="str"))


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "read what nslab owns", gather)


if __name__ == "__main__":
    main()

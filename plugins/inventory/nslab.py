# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: nslab
short_description: Every node of the nslab labs on this machine, as hosts
description:
  - Lists every node of every lab on this machine (or of the labs in O(labs)), read the way
    the nslab_info module reads them (nslab's module_utils C(nslab_labview)) - from the
    kernel and nslab's records, not from a topology file.
  - Each node is a host named C(<lab>/<node>) with C(ansible_connection=nslab.lab.nslab), so a task on
    it runs inside the node through the nslab connection plugin's door (the node's
    namespaces, cgroups, capabilities, seccomp filter and no_new_privs).
  - "Groups: one per lab (C(<lab>)), one per network of a lab (C(<lab>_<network>)), one
    per host of a lab over several hosts (C(<lab>_on_<host>)), C(nslab_running) and
    C(nslab_stopped). A stopped node is listed, in C(nslab_stopped), never dropped; a task
    on it fails with the door's message that it is not running."
  - "Host variables: C(nslab_lab), C(nslab_node), C(nslab_host) (where it runs),
    C(nslab_state) (V(running), V(stopped), or V(remote) for a node on another host of
    the lab), C(nslab_pid), C(nslab_addresses), C(nslab_interfaces) (each interface's
    addresses and network), C(nslab_networks), C(nslab_netns), C(nslab_cgroup) and
    C(nslab_limits) (memory, cpus, pids... as the kernel holds them)."
  - Group names go through Ansible's usual group-name check (a lab named with C(-) gives
    the usual warning, see C(TRANSFORM_INVALID_GROUP_CHARS)).
author: nslab contributors
version_added: "0.1.0"
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description:
      - Marks the file as a source for this plugin; its name must end in C(nslab.yml) or
        C(nslab.yaml) (as C(inventory/nslab.yml) or C(demo.nslab.yml)).
    required: true
    type: str
    choices: [nslab.lab.nslab]
  labs:
    description:
      - Only these labs. Empty lists every lab found on this machine.
    type: list
    elements: str
    default: []
notes:
  - Runs on the lab host, as root (the labs' net namespaces are read, and the nslab
    connection plugin enters the nodes there); it reads them with the module_utils of its
    own collection, nslab.lab.
  - A lab over several hosts keeps its lab-wide plan on each host (nslab_record); this
    plugin lists every node of it from that plan. Nodes on this host are reachable; nodes
    on the lab's other hosts are listed with C(nslab_state=remote) and their C(nslab_host),
    in the group C(nslab_remote), but not reachable from here - the nslab connection
    enters nodes on the machine Ansible runs on only. Use this inventory on each host of
    the lab (or run lab.yml's hosts) to reach those.
  - A network's name comes from the lab's plan when it has one (a lab over several hosts);
    on a single host it is read from the bridge's name C(<lab>-<network>), which is exact
    while that fits in 15 bytes; a longer one is shortened with a hash, and the group is
    named after the bridge's shortened name instead.
  - A point-to-point link is not a network; its interfaces are in C(nslab_interfaces),
    with their addresses, and in no network group.
"""

EXAMPLES = r"""
# inventory/nslab.yml, every node of every lab on this machine, is just:
#   plugin: nslab.lab.nslab
# This one takes the lab "demo" only, with a group per memory limit and a variable of its own:
plugin: nslab.lab.nslab
labs: [demo]
keyed_groups:
  - key: nslab_limits.memory | string
    prefix: memory
compose:
  mgmt_address: nslab_addresses | first
groups:
  small: (nslab_limits.memory | default(0)) < 67108864
# then:
#   ansible -i inventory/nslab.yml demo -m raw -a hostname
#   ansible -i inventory/nslab.yml 'demo:!nslab_stopped' -m raw -a 'ip -br addr'
#   ansible-inventory -i inventory/nslab.yml --graph
"""

import os
import re
import socket

from ansible.errors import AnsibleParserError
from ansible.inventory.group import to_safe_group_name
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

# nslab's names (nslab_validate): no path separators, no dot-names.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ETH_RE = re.compile(r"^eth([0-9]+)$")


def network_names(lab, view, bridge_name):
    """{bridge: network}: from the lab's plan when it has one, else from ``<lab>-<network>``."""
    names = {}
    for network in ((view.get("record") or {}).get("networks") or {}):
        names[bridge_name(lab, network)] = network
    prefix = lab + "-"
    for bridge in view.get("bridges") or []:
        name = bridge["name"]
        network = name[len(prefix):] if name.startswith(prefix) else None
        # A name shortened with a hash does not give its network back: keep the bridge's.
        names.setdefault(name, network if network and bridge_name(lab, network) == name
                         else name)
    return names


def node_interfaces(lab, container, view, networks, host_end_name):
    """{ifname: {addresses, network}} of one node on this host: its interfaces read in its
    net namespace; eth<i> is on the network whose bridge holds its host end."""
    on_bridge = dict((port, networks.get(bridge["name"], bridge["name"]))
                     for bridge in view.get("bridges") or [] for port in bridge.get("ports") or [])
    interfaces = {}
    for veth in view.get("veths") or []:
        if veth.get("netns") is None or veth.get("netns") != container.get("netns"):
            continue
        item = {"addresses": list(veth.get("addresses") or []), "network": None}
        index = ETH_RE.match(veth["name"])
        if index:
            item["network"] = on_bridge.get(host_end_name(lab, container["name"],
                                                          str(int(index.group(1)))))
        interfaces[veth["name"]] = item
    return interfaces


def lab_hosts(lab, view, this_host, bridge_name, host_end_name):
    """The hosts (name -> vars) and groups (name -> [hosts]) of one lab's view
    (nslab_labview's ``lab_info``); ``this_host`` names this machine when the lab has no
    plan of its own (a lab on one host)."""
    record = view.get("record") or {}
    planned = record.get("nodes") or {}
    multi = len(record.get("hosts") or {}) > 1
    networks = network_names(lab, view, bridge_name)
    limits = dict((c["name"], c.get("limits")) for c in view.get("cgroups") or [])
    local = dict((c["name"], c) for c in view.get("containers") or [])
    # This host's name in the lab's plan: the one that places the nodes found here.
    here = [planned[n].get("host") for n in local if (planned.get(n) or {}).get("host")]
    this_host = here[0] if here else this_host
    hosts, groups = {}, {lab: []}
    for name in sorted(set(local) | set(planned)):
        container, plan = local.get(name), planned.get(name) or {}
        if container:
            interfaces = node_interfaces(lab, container, view, networks, host_end_name)
            host_vars = {
                "nslab_host": plan.get("host") or this_host,
                "nslab_state": container.get("state"),
                "nslab_pid": container.get("pid"),
                "nslab_addresses": list(container.get("addresses") or []),
                "nslab_interfaces": interfaces,
                "nslab_networks": sorted(set(i["network"] for i in interfaces.values()
                                             if i["network"]) | set(plan.get("addresses") or {})),
                "nslab_netns": container.get("netns"),
                "nslab_cgroup": container.get("cgroup"),
                "nslab_limits": limits.get(container.get("cgroup")) or {},
            }
        else:
            # Placed on another host of the lab by its plan: what the plan says, no more.
            host_vars = {
                "nslab_host": plan.get("host"), "nslab_state": "remote", "nslab_pid": None,
                "nslab_addresses": sorted((plan.get("addresses") or {}).values()),
                "nslab_interfaces": {}, "nslab_networks": sorted(plan.get("addresses") or {}),
                "nslab_netns": None, "nslab_cgroup": None, "nslab_limits": {},
            }
        host = "%s/%s" % (lab, name)
        hosts[host] = dict(host_vars, nslab_lab=lab, nslab_node=name,
                           ansible_connection="nslab.lab.nslab")
        memberships = [lab] + ["%s_%s" % (lab, n) for n in host_vars["nslab_networks"]]
        if multi and host_vars["nslab_host"]:
            memberships.append("%s_on_%s" % (lab, host_vars["nslab_host"]))
        state = host_vars["nslab_state"]
        memberships.append("nslab_%s" % (state if state in ("running", "stopped", "remote")
                                         else "stopped"))
        for group in memberships:
            groups.setdefault(group, []).append(host)
    return hosts, groups


def inventory_of(labs, this_host, bridge_name, host_end_name):
    """{hosts, groups} of every lab in ``labs`` ({lab: view}), pure (unit-tested)."""
    hosts, groups = {}, {}
    for lab in sorted(labs):
        lab_host_vars, lab_groups = lab_hosts(lab, labs[lab], this_host, bridge_name,
                                              host_end_name)
        hosts.update(lab_host_vars)
        for group, members in lab_groups.items():
            groups.setdefault(group, []).extend(members)
    return {"hosts": hosts, "groups": groups}


class InventoryModule(BaseInventoryPlugin, Constructable):
    """The nodes of nslab's labs on this machine, from nslab_labview's reading of them."""

    NAME = "nslab.lab.nslab"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(
            ("nslab.yml", "nslab.yaml", "nslab_inventory.yml", "nslab_inventory.yaml"))

    def read_labs(self, labs):
        from ansible_collections.nslab.lab.plugins.module_utils.nslab_labview import read_labs
        from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import (
            Runner, subprocess_run)
        runner = Runner(subprocess_run)
        if not labs:
            return read_labs(runner)[0]
        found = {}
        for lab in labs:
            found.update(read_labs(runner, lab)[0])
        return found

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        labs = self.get_option("labs") or []
        for lab in labs:
            if not isinstance(lab, str) or not NAME_RE.match(lab):
                raise AnsibleParserError("nslab inventory %s: labs: '%s' is not an nslab lab "
                                         "name; expected letters, digits, '_', '.', '-'" % (
                                             path, lab))
        if os.geteuid() != 0:
            raise AnsibleParserError("nslab inventory %s: reading the labs needs root (their "
                                     "net namespaces are entered)" % path)
        try:
            views = self.read_labs(labs)
        except Exception as exc:  # the reader's own errors name what failed
            raise AnsibleParserError("nslab inventory %s: failed to read the labs: %s" % (
                path, exc))
        views = dict((lab, view) for lab, view in views.items()
                     if view.get("containers") or (view.get("record") or {}).get("nodes"))
        for lab in labs:
            if lab not in views:
                self.display.warning("nslab inventory %s: lab '%s' has no node on this "
                                     "machine" % (path, lab))
        from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import (
            bridge_name, host_end_name)
        self.populate(inventory_of(views, socket.gethostname(), bridge_name, host_end_name))

    def populate(self, built):
        strict = self.get_option("strict")
        names = {}
        for group in sorted(built["groups"]):
            names[group] = self.inventory.add_group(to_safe_group_name(group))
        for host, host_vars in sorted(built["hosts"].items()):
            self.inventory.add_host(host)
            for key, value in host_vars.items():
                self.inventory.set_variable(host, key, value)
            self._set_composite_vars(self.get_option("compose"), host_vars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), host_vars, host,
                                              strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), host_vars, host,
                                           strict=strict)
        for group, members in built["groups"].items():
            for host in members:
                self.inventory.add_child(names[group], host)

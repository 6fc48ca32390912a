#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_ports
short_description: Publish host ports to the nodes of an nslab lab (DNAT in nslab's own table)
description:
  - Traffic to a host port (on one host address, or on every address of the host) is
    DNATed to a node's address and port, like Docker's C(-p [HOST_IP:]HOST_PORT:NODE_PORT).
    It works for connections from other machines or namespaces (prerouting) and from the
    host itself (output), including to 127.0.0.1.
  - The rules live in nslab's own nftables table C(inet nslab), in the chains
    C(ports-prerouting), C(ports-output), C(ports-postrouting) and C(ports-guard), each
    rule named by its comment C(nslab:<lab>:<node>:publish:<proto>:<host_ip|*>:<port>).
    No other table or chain is touched; rules of another lab are never changed.
  - O(ports) is the lab's whole list on this host; a port of the lab that is not listed
    is unpublished. O(state=absent) unpublishes every port of the lab.
  - Connections are masqueraded to the bridge's address on their way to the node, so
    replies come back whatever routes the node has; the node sees the bridge's address
    as its client.
  - Connections to 127.0.0.1 from the host itself need
    C(net.ipv4.conf.<bridge>.route_localnet=1) on the node's bridge (the kernel does not
    route loopback addresses elsewhere otherwise). The module sets it on that bridge only,
    while a port of the bridge listens on 127.0.0.1 or every address, after adding rules
    that drop loopback sources and destinations arriving on that bridge (which the setting
    would otherwise let the bridge's nodes reach), and clears it when no such port is left.
  - Connections from other machines or namespaces are forwarded by the host, which needs
    C(net.ipv4.ip_forward=1) (a C(nat) network turns it on); the module warns when it is
    off and does not change it.
  - Refuses, before changing anything, a port listed twice and a port another nslab lab on
    this host publishes already (a port on every address clashes with the same port on any
    one address).
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  ports:
    description:
      - The lab's published ports on this host.
    type: list
    elements: dict
    default: []
    suboptions:
      node:
        description: Node the port leads to (names the rules).
        type: str
        required: true
      port:
        description:
          - Docker's C([HOST_IP:]HOST_PORT:NODE_PORT[/tcp|udp]), tcp by default; HOST_IP an
            IPv4 address (0.0.0.0 or none means every address of the host).
        type: str
        required: true
      address:
        description: The node's IPv4 address the port is DNATed to (with or without prefix).
        type: str
        required: true
      bridge:
        description: The bridge the node's address is on.
        type: str
        required: true
  state:
    description: V(present) makes the lab's published ports exactly O(ports); V(absent)
      removes every port of the lab.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Needs the C(nft) command (Debian package C(nftables)) for O(state=present); without it
    there is nothing to remove, so O(state=absent) succeeds unchanged.
  - IPv4 only.
extends_documentation_fragment:
  - nslab.lab.nslab
  - action_common_attributes
seealso:
  - module: nslab.lab.nslab_bridge
  - module: nslab.lab.nslab_topology
"""

EXAMPLES = r"""
- name: Publish the web node's port 80 on every host address, and ssh on the loopback only
  nslab_ports:
    lab: demo
    ports:
      - {node: web, port: "8080:80", address: 10.213.1.2, bridge: nslab-demo-lan}
      - {node: web, port: "127.0.0.1:2222:22/tcp", address: 10.213.1.2, bridge: nslab-demo-lan}

- name: Unpublish every port of the lab
  nslab_ports:
    lab: demo
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence each.
  returned: always
  type: list
  elements: str
  sample: ["publish every host address:8080/tcp -> node web 10.213.1.2:80/tcp"]
published:
  description: The lab's published ports as the kernel's rules say, after the run.
  returned: always
  type: list
  elements: str
  sample: ["every host address:8080/tcp -> node web 10.213.1.2:80"]
diff:
  description: RV(published) before and after.
  returned: when diff mode is on
  type: dict
"""

import functools
import ipaddress
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, run_module, runner_for)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_publish import (
    Published, conflict_problems, expected_view, lab_clash_problems, parse_port,
    localnet_bridges, localnet_guarded, plan_ports, read_table, script, undo_script, view,
    PORT_FORM)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog

CONF = "/proc/sys/net/ipv4/conf"
FORWARD = "/proc/sys/net/ipv4/ip_forward"


def localnet_path(bridge):
    return os.path.join(CONF, bridge, "route_localnet")


def read_localnet(bridge):
    """route_localnet of a bridge, or None when it does not exist."""
    try:
        with open(localnet_path(bridge)) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def write_localnet(bridge, value):
    with open(localnet_path(bridge), "w") as handle:
        handle.write("%d\n" % value)


def build_published(items):
    """Validate every item; raise once with every problem."""
    problems, published, where_specs = [], [], []
    for index, item in enumerate(items):
        where = "ports[%d]" % index
        try:
            spec = parse_port(item["port"])
        except ValueError as err:
            problems.append("%s.port: %r is invalid (%s); expected %s" % (
                where, item["port"], err, PORT_FORM))
            continue
        try:
            address = ipaddress.IPv4Interface(item["address"]).ip
        except ValueError:
            problems.append("%s.address: %r is not an IPv4 address; expected the node's "
                            "IPv4 address like 10.213.1.2" % (where, item["address"]))
            continue
        if not item["node"] or ":" in item["node"]:
            problems.append("%s.node: %r is not a node name" % (where, item["node"]))
            continue
        published.append(Published(item["node"], spec, str(address), item["bridge"]))
        where_specs.append((where + ".port", spec))
    problems += lab_clash_problems(where_specs)
    if problems:
        raise ValidationError(problems)
    return published


def apply(runner, nft, plan):
    """localnet off, then the rules (one atomic script), then localnet on; what was done
    is taken back, newest first, if a later step fails."""
    log = UndoLog()
    with log.guard():
        for bridge in plan.localnet_off:
            write_localnet(bridge, 0)
            log.record("clear route_localnet of %s" % bridge,
                       functools.partial(write_localnet, bridge, 1))
        commands = script(plan)
        if commands:
            runner.run([nft, "-j", "-f", "-"], data=json_text(commands))
            log.record("apply nslab's port rules", lambda: restore_rules(runner, nft, plan))
        for bridge in plan.localnet_on:
            write_localnet(bridge, 1)
            log.record("set route_localnet of %s" % bridge,
                       functools.partial(write_localnet, bridge, 0))


def restore_rules(runner, nft, plan):
    """Put nslab's port rules back as they were before ``plan`` was applied."""
    undo = undo_script(plan, read_table(runner, nft))
    if undo:
        runner.run([nft, "-j", "-f", "-"], data=json_text(undo))


def json_text(commands):
    return json.dumps({"nftables": commands})


def converge(module):
    params = module.params
    lab = params["lab"]
    check_lab(params)
    items = params["ports"] if params["state"] == "present" else []
    published = build_published(items)
    nft = module.get_bin_path("nft")
    runner = runner_for(module)
    problems = []
    if published and nft is None:
        problems.append("ports: publishing needs the nft command on the target; expected "
                        "the nftables package to be installed")
    table = read_table(runner, nft)
    problems += conflict_problems(lab, published, table)
    bridges = set(localnet_bridges(published)) | localnet_guarded(table, lab)
    localnet = dict((b, read_localnet(b)) for b in bridges)
    for index, item in enumerate(published):
        if item.bridge in localnet and localnet[item.bridge] is None:
            if module.check_mode:
                # A check run of a whole lab: the bridge would have been made before.
                localnet[item.bridge] = 0
                continue
            problems.append("ports[%d].bridge: bridge '%s' does not exist; expected the "
                            "node's bridge, created before its ports are published" % (
                                index, item.bridge))
    if problems:
        raise ValidationError(problems)

    plan = plan_ports(lab, published, table, localnet)
    before = view(lab, table)
    after = before
    if plan and not module.check_mode:
        apply(runner, nft, plan)
        after = view(lab, read_table(runner, nft))
    elif plan:
        after = expected_view(published)
    if published:
        try:
            with open(FORWARD) as handle:
                forwarding = handle.read().strip() == "1"
        except OSError:
            forwarding = True
        if not forwarding:
            module.warn("ports: net.ipv4.ip_forward is 0, so published ports are reachable "
                        "from this host only; a nat network turns forwarding on")
    result = {"changed": bool(plan), "actions": plan.summaries, "published": after}
    if module._diff:
        result["diff"] = {"before": {"published": before}, "after": {"published": after}}
    return result


def get_argument_spec():
    return dict(
        lab=dict(type="str", required=True),
        ports=dict(type="list", elements="dict", default=[], options=dict(
            node=dict(type="str", required=True),
            port=dict(type="str", required=True),
            address=dict(type="str", required=True),
            bridge=dict(type="str", required=True))),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "publish the ports of lab '%s'" % module.params["lab"], converge,
               lock=True)


if __name__ == "__main__":
    main()

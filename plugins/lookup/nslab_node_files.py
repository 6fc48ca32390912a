# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: nslab_node_files
author: nslab contributors (@nslab-lab)
version_added: "0.1.0"
short_description: A compiled lab's containers with their files ready for nslab_container
description:
  - Takes a lab compiled by nslab_topology and returns its C(containers) with every
    file of the topology's C(files) as C({content, mode, restart}), rendering each
    C(template) on the controller with Jinja2 (Ansible's C(template) lookup), as
    nslab_container takes them. A template path is relative to the topology file's
    directory (or absolute).
  - A template sees every variable of the play, plus C(node) - its C(name), C(lab),
    C(hostname), C(host), C(netns), C(interfaces) (name, network or link, address/prefix),
    C(addresses) (network to address) and C(neighbours) (the other nodes on its networks
    and links - C(name), C(network) or C(link), its own C(interface), the
    C(peer_interface) and the peer's C(address)) - and C(nslab_lab), the whole compiled lab.
  - Files in O(common) (like C(/etc/hosts)) go to every container, under its own.
  - Every template that is missing or fails to render is named at once, by node and path,
    in one error, before anything of the lab changes.
options:
  _terms:
    description: The lab as nslab_topology compiled it (its registered C(lab)).
    required: true
  topology:
    description: The topology file, as given to the C(nslab_topology_file) lookup (found the
      same way); its directory is where templates are looked for.
    type: str
    required: true
  common:
    description: Path to content of files every container gets, under its own.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Containers with their templates rendered
  ansible.builtin.set_fact:
    containers: "{{ query('nslab.lab.nslab_node_files', compiled.lab, topology='labs/routers.yml')[0] }}"
"""

RETURN = r"""
_list:
  description: One item, the list of containers (nslab_container items).
  type: list
  elements: list
"""

import os

from jinja2 import Undefined
from jinja2.exceptions import TemplateError

from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.plugins.loader import lookup_loader
from ansible.plugins.lookup import LookupBase


# Here, not in nslab_compile (90 KB with what it imports): ansible's collection loader
# compiles a controller plugin's imports from source on every run (0.1 s of each lab.yml
# run; issue #12), and this is all of nslab_compile the lookup needs.
def node_facts(lab, names):
    """Per node of ``names``, what its templates see besides the compiled ``lab`` - its
    name, lab, hostname, host, netns, interfaces, ``addresses`` ({network: ip}) and
    ``neighbours`` (the other nodes on its networks and links, with their addresses
    there). Made only for the nodes asked for (those with templates), from one index of
    the segments: every node's neighbours on a 2,000-node network would be 4 million
    entries, and a lab's compiled result must stay linear in its size (issue #12)."""
    nodes = lab["nodes"]
    hostnames = dict((c["name"], c["hostname"]) for c in lab["containers"])
    by_segment = {}
    for name, node in nodes.items():
        for interface in node["interfaces"]:
            segment = ("network", interface["network"]) if "network" in interface \
                else ("link", interface["link"])
            by_segment.setdefault(segment, []).append((name, interface))
    facts = {}
    for name in names:
        node = nodes[name]
        neighbours = []
        for interface in node["interfaces"]:
            kind = "network" if "network" in interface else "link"
            for peer, peer_interface in by_segment[(kind, interface[kind])]:
                if peer == name:
                    continue
                address = peer_interface.get("address")
                neighbours.append({kind: interface[kind], "name": peer,
                                   "interface": interface["name"],
                                   "peer_interface": peer_interface["name"],
                                   "address": address.split("/")[0] if address else None})
        facts[name] = {
            "name": name, "lab": lab["lab"], "hostname": hostnames.get(name, name),
            "host": node["host"], "netns": node["netns"], "interfaces": node["interfaces"],
            "addresses": dict((i["network"], i["address"].split("/")[0])
                              for i in node["interfaces"] if "network" in i),
            "neighbours": neighbours}
    return facts


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1 or not isinstance(terms[0], dict):
            raise AnsibleLookupError("nslab_node_files: expected one compiled lab")
        lab = terms[0]
        topology = self.get_option("topology")
        found = self.find_file_in_search_path(variables, "files", topology, ignore_missing=True)
        if found is None:
            raise AnsibleLookupError("nslab_node_files: could not find the topology file "
                                     "'%s'" % topology)
        base = os.path.dirname(os.path.realpath(found))
        template = lookup_loader.get("ansible.builtin.template", loader=self._loader,
                                     templar=self._templar)
        common = dict(self.get_option("common") or {})
        templated = [c["name"] for c in lab.get("containers") or []
                     if any(isinstance(spec, dict) and "template" in spec
                            for spec in (c.get("files") or {}).values())]
        facts = node_facts(lab, templated) if templated else {}
        problems, containers = [], []
        for container in lab.get("containers") or []:
            name = container["name"]
            files = dict(common)
            for path, spec in (container.get("files") or {}).items():
                if isinstance(spec, dict) and "template" in spec:
                    where = "nodes.%s.files (path %s).template" % (name, path)
                    source = os.path.join(base, spec["template"])
                    if not os.path.isfile(source):
                        problems.append("%s: '%s' is not a file (looked for %s); expected a "
                                        "Jinja2 template relative to the topology file's "
                                        "directory %s" % (where, spec["template"], source, base))
                        continue
                    try:
                        content = template.run([source], variables, template_vars={
                            "node": facts.get(name, {"name": name}), "nslab_lab": lab})[0]
                        if isinstance(content, Undefined):
                            # Templating is lazy: an undefined value is only a marker here.
                            content._fail_with_undefined_error()
                    except (AnsibleError, TemplateError) as err:
                        problems.append("%s: '%s' does not render: %s" % (
                            where, spec["template"], getattr(err, "message", None) or err))
                        continue
                    spec = dict((k, v) for k, v in spec.items() if k != "template")
                    spec["content"] = str(content)
                files[path] = spec
            containers.append(dict(container, files=files))
        if problems:
            raise AnsibleLookupError("nslab_node_files: %s" % "; ".join(problems))
        return [containers]

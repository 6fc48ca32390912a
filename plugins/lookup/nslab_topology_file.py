# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: nslab_topology_file
author: nslab contributors (@nslab-lab)
version_added: "0.1.0"
short_description: Read an nslab topology file with bounded YAML loading
description:
  - Reads a topology file on the controller and returns its top-level mapping, refusing
    what would make the run hang or blow up before the topology is even validated.
  - The file must be at most O(max_bytes) bytes.
  - YAML is parsed with PyYAML's safe loader (no Python objects), and the document is
    refused when it has more than O(max_aliases) aliases or when its nodes, with every
    alias expanded, number more than O(max_nodes). A "billion laughs" document (anchors
    nested in anchors) therefore fails at once, by name, instead of growing without end
    later in the templating. A recursive alias is refused too.
  - The top level must be a mapping (one document); anything else is refused.
  - A relative path is searched like the M(ansible.builtin.file) lookup does (the role's
    and the play's C(files), then the playbook's directory).
options:
  _terms:
    description: The topology file, one path.
    required: true
    type: path
  max_bytes:
    description: The largest file accepted, in bytes.
    type: int
    default: 4194304
  max_aliases:
    description: The most aliases (C(*name)) the document may use.
    type: int
    default: 1000
  max_nodes:
    description: The most YAML nodes (scalars, sequences, mappings) the document may have
      with every alias expanded.
    type: int
    default: 100000
notes:
  - nslab_lab's role loads the topology with it; nslab_topology then validates what it
    returns.
"""

EXAMPLES = r"""
- name: Load a topology
  ansible.builtin.set_fact:
    spec: "{{ lookup('nslab.lab.nslab_topology_file', 'labs/demo.yml') }}"

- name: A smaller bound for files from elsewhere
  ansible.builtin.set_fact:
    spec: "{{ lookup('nslab.lab.nslab_topology_file', upload, max_bytes=65536, max_aliases=10) }}"
"""

RETURN = r"""
_raw:
  description: The topology, the file's top-level mapping.
  type: list
  elements: dict
"""

import os

import yaml

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


class LimitExceeded(yaml.YAMLError):
    """The document is larger, once expanded, than the loader accepts."""


def bounded_loader(max_aliases, max_nodes):
    """A SafeLoader class that counts aliases while composing and, before constructing
    anything, the nodes of the document with every alias expanded."""

    class BoundedLoader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > max_aliases:
                    mark = self.peek_event().start_mark
                    raise LimitExceeded("more than %d aliases (the %dth is at line %d); "
                                        "expected at most %d" % (
                                            max_aliases, self.aliases, mark.line + 1,
                                            max_aliases))
            return super().compose_node(parent, index)

        def compose_document(self):
            node = super().compose_document()
            expanded_size(node, max_nodes)
            return node

    return BoundedLoader


def _children(node):
    """A YAML node's direct children: a sequence's items, a mapping's keys and values."""
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def expanded_size(root, limit):
    """How many nodes ``root`` has with aliases expanded (a node reached twice counts
    twice), computed once per distinct node; raises LimitExceeded above ``limit`` or on a
    recursive alias."""
    sizes, stack, active = {}, [(root, False)], set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > limit:
                raise LimitExceeded("more than %d nodes once its aliases are expanded "
                                    "(at line %d); expected at most %d" % (
                                        limit, node.start_mark.line + 1, limit))
            continue
        if key in sizes:
            continue
        if key in active:
            raise LimitExceeded("a recursive alias at line %d; expected a tree" % (
                node.start_mark.line + 1))
        active.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in active:
                raise LimitExceeded("a recursive alias at line %d; expected a tree" % (
                    child.start_mark.line + 1))
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def load_topology(path, max_bytes=4194304, max_aliases=1000, max_nodes=100000):
    """The top-level mapping of the YAML file ``path``; ValueError naming the file and
    the limit it broke."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise ValueError("cannot read %s: %s" % (path, err.strerror))
    if len(data) > max_bytes:
        raise ValueError("%s is larger than %d bytes; expected a topology file of at most "
                         "that size" % (path, max_bytes))
    try:
        documents = list(yaml.load_all(data, Loader=bounded_loader(max_aliases, max_nodes)))
    except LimitExceeded as err:
        raise ValueError("%s: the YAML has %s" % (path, err))
    except yaml.YAMLError as err:
        raise ValueError("%s is not valid YAML: %s" % (path, err))
    if len(documents) != 1 or not isinstance(documents[0], dict):
        kinds = {type(None): "empty", list: "a list", str: "a string", int: "an integer",
                 float: "a number", bool: "a boolean"}
        found = ("%d documents" % len(documents) if len(documents) != 1
                 else kinds.get(type(documents[0]), type(documents[0]).__name__))
        raise ValueError("%s: the top level is %s; expected one mapping with lab, networks, "
                         "nodes and links" % (path, found))
    return documents[0]


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError("nslab_topology_file: expected one topology file, got "
                                     "%d terms" % len(terms))
        path = self.find_file_in_search_path(variables, "files", terms[0], ignore_missing=True)
        if path is None:
            raise AnsibleLookupError("nslab_topology_file: could not find the topology file "
                                     "'%s'" % terms[0])
        try:
            topology = load_topology(os.path.realpath(path), self.get_option("max_bytes"),
                                     self.get_option("max_aliases"),
                                     self.get_option("max_nodes"))
        except ValueError as err:
            raise AnsibleLookupError("nslab_topology_file: %s" % err)
        return [topology]

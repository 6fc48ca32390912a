"""The lookup nslab_topology_file: bounded YAML loading of a topology on the controller."""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from helpers.paths import ROOT

sys.path.insert(0, str(ROOT / "plugins" / "lookup"))

from nslab_topology_file import load_topology  # noqa: E402

LAUGHS = """lab: laughs
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def write(tmp_path, text, name="t.yml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", ["labs/demo.yml", "labs/wide.yml",
                                  "molecule/default/topology.yml",
                                  "molecule/nslab_lab/topology.yml"])
def test_the_projects_topologies_load(name):
    topology = load_topology(str(ROOT / name))
    assert isinstance(topology, dict) and topology["lab"]


def test_ordinary_anchors_are_fine(tmp_path):
    path = write(tmp_path, "lab: x\nlimits: &l {memory: 64M}\nnodes:\n  a: {limits: *l}\n"
                           "  b: {limits: *l}\n")
    assert load_topology(path)["nodes"]["b"]["limits"] == {"memory": "64M"}


def test_a_billion_laughs_fails_at_once_by_name(tmp_path):
    path = write(tmp_path, LAUGHS)
    start = time.monotonic()
    with pytest.raises(ValueError) as err:
        load_topology(path)
    assert time.monotonic() - start < 1
    assert str(err.value) == ("%s: the YAML has more than 100000 nodes once its aliases are "
                              "expanded (at line 7); expected at most 100000" % path)


def test_too_many_aliases(tmp_path):
    path = write(tmp_path, "lab: x\na: &a 1\nb: [%s]\n" % ", ".join(["*a"] * 20))
    with pytest.raises(ValueError, match="more than 10 aliases .* expected at most 10"):
        load_topology(path, max_aliases=10)
    assert load_topology(path, max_aliases=20)["b"] == [1] * 20


def test_a_recursive_alias_is_refused(tmp_path):
    path = write(tmp_path, "lab: x\na: &a [1, *a]\n")
    with pytest.raises(ValueError, match="a recursive alias at line 2; expected a tree"):
        load_topology(path)


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = write(tmp_path, "lab: x\n" + "# padding\n" * 100)
    with pytest.raises(ValueError, match="is larger than 512 bytes"):
        load_topology(path, max_bytes=512)


@pytest.mark.parametrize("text,found", [
    ("- lab: x\n", "a list"), ("just text\n", "a string"), ("", "0 documents"),
    ("lab: x\n---\nlab: y\n", "2 documents"), ("~\n", "empty")])
def test_the_top_level_must_be_one_mapping(tmp_path, text, found):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as err:
        load_topology(path)
    assert str(err.value) == ("%s: the top level is %s; expected one mapping with lab, "
                              "networks, nodes and links" % (path, found))


def test_python_tags_are_not_constructed(tmp_path):
    path = write(tmp_path, "lab: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_topology(path)


def test_its_documentation_renders_for_ansible_doc():
    proc = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-doc"), "-t",
                           "lookup", "-j", "nslab.lab.nslab_topology_file"], capture_output=True,
                          text=True, cwd=ROOT,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["nslab.lab.nslab_topology_file"]
    assert set(doc["doc"]["options"]) == {"_terms", "max_bytes", "max_aliases", "max_nodes"}
    assert doc["examples"].strip() and doc["return"]

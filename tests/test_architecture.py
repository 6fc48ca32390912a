"""The layers of module_utils, as docs/architecture.md declares them, hold in the code.

docs/architecture.md is the one place that says which layer each module_utils file is in and
which layers a layer may import (two Markdown tables between ``<!-- layers: ... -->``
markers). This test reads those tables and every ``import`` of every module_utils file
(function-level imports included, parsed with ``ast``, never executed) and fails when:

- a module_utils file is missing from the table, or the table names a file that is gone;
- a file imports a file of a layer its own layer may not import (a higher one);
- module_utils imports AnsibleModule (only library/ may: module_utils stays testable without
  Ansible's module machinery);
- module_utils files import each other in a cycle.

It also keeps the picture honest: docs/images/architecture.dot must be what the code draws
today. After moving, splitting or renaming a module_utils file, edit its row in the table,
then redraw (needs Debian's graphviz for the SVG):

    .venv/bin/python tests/test_architecture.py --write
"""
import ast
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = pathlib.Path("docs/architecture.md")
DOT = pathlib.Path("docs/images/architecture.dot")
SVG = pathlib.Path("docs/images/architecture.svg")
PACKAGE = "ansible_collections.nslab.lab.plugins.module_utils"
BASIC = "ansible.module_utils.basic"  # ansible-core's, where AnsibleModule lives
# Above module_utils: they may import any layer. library/ is plugins/modules (a link), and
# plugins/ here means the controller plugins beside them.
CONSUMERS = ("library", "plugins", "cli")
NOT_CONSUMERS = ("plugins/modules", "plugins/module_utils")

_ROW = re.compile(r"^\|(.*)\|\s*$")


def _block(text, name):
    """The lines between ``<!-- layers: NAME -->`` and ``<!-- layers: end NAME -->``."""
    match = re.search(r"<!-- layers: %s -->\n(.*?)<!-- layers: end %s -->" % (name, name),
                      text, re.S)
    if not match:
        raise ValueError("%s has no '<!-- layers: %s -->' ... '<!-- layers: end %s -->' block"
                         % (DOC, name, name))
    return match.group(1)


def _rows(block):
    """The cells of a Markdown table's body rows (header and separator dropped)."""
    rows = [[cell.strip().strip("`").strip() for cell in m.group(1).split("|")]
            for m in map(_ROW.match, block.splitlines()) if m]
    return [row for row in rows[2:] if any(row)]


def read_layers(text):
    """(layers, files) from the architecture page.

    layers: {name: (rank, set of layer names it may import)} in the page's order, bottom
    first; files: {module_utils file stem: layer name}.
    """
    layers = {}
    for rank, row in enumerate(_rows(_block(text, "order"))):
        name, may_import = row[0], row[-1]
        allowed = {n.strip() for n in may_import.split(",") if n.strip() not in ("", "-")}
        layers[name] = (rank, allowed)
    files = {}
    for row in _rows(_block(text, "files")):
        files[pathlib.PurePath(row[0]).stem] = row[1]
    return layers, files


def imported_names(path):
    """Every nslab module_utils name a Python file imports, wherever the import is, and
    ``AnsibleModule`` if it imports that."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE:
                names.update(alias.name for alias in node.names)
            elif node.module.startswith(PACKAGE + "."):
                names.add(node.module[len(PACKAGE) + 1:].split(".")[0])
            elif node.module == BASIC:
                names.add("AnsibleModule")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    names.add(alias.name[len(PACKAGE) + 1:].split(".")[0])
    return names


def module_utils_graph(root):
    """{file stem: set of nslab module_utils stems it imports (itself excluded)}."""
    stems = {p.stem for p in (root / "module_utils").glob("nslab_*.py")}
    graph = {}
    for stem in sorted(stems):
        names = imported_names(root / "module_utils" / (stem + ".py"))
        graph[stem] = {n for n in names if n.startswith("nslab_") and n != stem}
    return graph


def _cycles(graph):
    """Each import cycle once, as a list of stems (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in graph:
                continue
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def layer_problems(root):
    """One sentence per way the code under ``root`` breaks its architecture page."""
    layers, files = read_layers((root / DOC).read_text())
    problems = []
    for name, (rank, allowed) in layers.items():
        for other in sorted(allowed):
            if other not in layers:
                problems.append("layer '%s' may import '%s', which is not a layer" % (name, other))
            elif layers[other][0] > rank:
                problems.append("layer '%s' may import '%s', a higher layer" % (name, other))
    for stem, layer in sorted(files.items()):
        if layer not in layers:
            problems.append("module_utils/%s.py: layer '%s' is not in the order table"
                            % (stem, layer))
    stems = {p.stem for p in (root / "module_utils").glob("*.py") if p.stem != "__init__"}
    for stem in sorted(stems - set(files)):
        problems.append("module_utils/%s.py is not in the table of layers in %s: add a row "
                        "'| `module_utils/%s.py` | LAYER | what it answers |'" % (stem, DOC, stem))
    for stem in sorted(set(files) - stems):
        problems.append("%s lists module_utils/%s.py, which does not exist" % (DOC, stem))
    for path in sorted((root / "module_utils").glob("*.py")):
        if "AnsibleModule" in imported_names(path):
            problems.append("module_utils/%s imports ansible.module_utils.basic (AnsibleModule): "
                            "only library/ may; pass what is needed in" % path.name)
    graph = module_utils_graph(root)
    for stem, deps in sorted(graph.items()):
        mine = files.get(stem)
        if mine not in layers:
            continue
        for dep in sorted(deps):
            theirs = files.get(dep)
            if dep not in graph:
                problems.append("module_utils/%s.py imports %s, which is not a module_utils file"
                                % (stem, dep))
            elif theirs not in layers:
                continue  # reported above: the file has no row
            elif theirs not in layers[mine][1]:
                problems.append("module_utils/%s.py (layer '%s') imports %s (layer '%s'): "
                                "'%s' may import only %s"
                                % (stem, mine, dep, theirs, mine,
                                   ", ".join(sorted(layers[mine][1])) or "nothing of nslab"))
    for cycle in _cycles(graph):
        problems.append("module_utils files import each other in a cycle: %s" % ", ".join(cycle))
    return problems


def consumer_imports(root, directory):
    """{module_utils stem} a top-level directory (library, plugins, cli) uses.

    cli/ imports module_utils by bare name once nslab_cli put them on sys.path, and the
    connection plugin loads nslab_init by name: both count, as do ordinary imports.
    """
    stems = {p.stem for p in (root / "module_utils").glob("nslab_*.py")}
    used = set()
    skip = [root / d for d in NOT_CONSUMERS]
    for path in sorted((root / directory).rglob("*.py")):
        if any(top in path.parents for top in skip):
            continue
        used |= imported_names(path) & stems
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module in stems:
                used.add(node.module)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value[:-3] if node.value.endswith(".py") else node.value
                if name in stems:
                    used.add(name)
    return used


def _quote(text):
    return '"%s"' % text.replace('"', '\\"')


def draw(root):
    """The layer picture as DOT text: one box per layer, one arrow per import.

    Imports of the bottom layer (errors, constants) are left out: nearly every file has one.
    """
    layers, files = read_layers((root / DOC).read_text())
    graph = module_utils_graph(root)
    order = sorted(layers, key=lambda name: layers[name][0])
    bottom = order[0] if order else None
    out = ["// Drawn by tests/test_architecture.py --write from docs/architecture.md and the",
           "// imports of module_utils; do not edit by hand.",
           "digraph layers {",
           "  rankdir=TB; compound=true; newrank=true; nodesep=0.2; ranksep=0.5;",
           '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica",'
           " fontsize=10];",
           '  edge [color="#555555", arrowsize=0.6];',
           '  graph [fontname="Helvetica", fontsize=11, style="rounded,filled",'
           ' fillcolor="#f2f2f2", color="#999999"];']
    first = {}
    for name in order:
        members = sorted(stem for stem, layer in files.items() if layer == name)
        if not members:
            continue
        first[name] = members[0]
        out.append("  subgraph %s {" % _quote("cluster_" + name))
        out.append("    label=%s; labeljust=l;" % _quote("%d %s" % (layers[name][0], name)))
        out.append("    { rank=same; %s }" % " ".join(_quote(stem) + ";" for stem in members))
        out.append("  }")
    # Invisible arrows stack the layers: each one below the layer above it.
    stacked = [first[name] for name in reversed(order) if name in first]
    for upper, lower in zip(stacked, stacked[1:]):
        out.append("  %s -> %s [style=invis];" % (_quote(upper), _quote(lower)))
    for stem in sorted(graph):
        for dep in sorted(graph[stem]):
            if files.get(dep) == bottom or stem not in files or dep not in files:
                continue
            out.append("  %s -> %s;" % (_quote(stem), _quote(dep)))
    top = order[-1] if order else None
    out.append("  { rank=min; %s }" % " ".join(_quote(d + "/") + ";" for d in CONSUMERS))
    for directory in CONSUMERS:
        used = consumer_imports(root, directory)
        node = _quote(directory + "/")
        out.append('  %s [shape=folder, fillcolor="#dde8f5"];' % node)
        if top in first:
            out.append("  %s -> %s [style=invis];" % (node, _quote(first[top])))
        for name in order:
            if name == bottom or name not in first:
                continue
            count = len({stem for stem in used if files.get(stem) == name})
            if count:
                out.append("  %s -> %s [lhead=%s, style=dashed, label=%s, fontsize=9];"
                           % (node, _quote(first[name]), _quote("cluster_" + name),
                              _quote(str(count))))
    out.append("}")
    return "\n".join(out) + "\n"


def write(root=ROOT):
    """Redraw docs/images/architecture.dot and, with graphviz, architecture.svg."""
    dot_text = draw(root)
    (root / DOT).write_text(dot_text)
    if not shutil.which("dot"):
        sys.exit("wrote %s; install graphviz (apt-get install graphviz) to render %s" % (DOT, SVG))
    svg = subprocess.run(["dot", "-Tsvg"], input=dot_text.encode(), check=True,
                         stdout=subprocess.PIPE).stdout
    (root / SVG).write_bytes(svg)
    print("wrote %s and %s" % (DOT, SVG))


def test_module_utils_keeps_its_layers():
    problems = layer_problems(ROOT)
    assert problems == [], "\n".join(problems)


def test_the_picture_is_drawn_from_the_code_as_it_is():
    assert (ROOT / DOT).read_text() == draw(ROOT), (
        "%s is stale: run .venv/bin/python tests/test_architecture.py --write" % DOT)


# A fake tree with one module_utils file per layer; each case breaks it one way. The checks
# must report exactly that, or test_module_utils_keeps_its_layers proves nothing.
FAKE_DOC = """# Architecture

<!-- layers: order -->
| layer | what it holds | may import |
|---|---|---|
| base | errors | - |
| model | parsers | base |
| planner | planners | base, model, planner |
<!-- layers: end order -->

<!-- layers: files -->
| file | layer | what it answers |
|---|---|---|
| `module_utils/nslab_errors.py` | base | errors |
| `module_utils/nslab_parse.py` | model | parsing |
| `module_utils/nslab_plan.py` | planner | planning |
| `module_utils/nslab_plan2.py` | planner | planning more |
<!-- layers: end files -->
"""

FAKE_FILES = {
    "nslab_errors.py": "class NslabError(Exception):\n    pass\n",
    "nslab_parse.py": "from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import NslabError\n",
    "nslab_plan.py": ("from ansible_collections.nslab.lab.plugins.module_utils.nslab_parse import x\n"
                      "from ansible_collections.nslab.lab.plugins.module_utils.nslab_plan2 import y\n"),
    "nslab_plan2.py": "z = 1\n",
}


def fake_tree(tmp_path, doc=FAKE_DOC, **changed):
    (tmp_path / "docs").mkdir()
    (tmp_path / DOC).write_text(doc)
    (tmp_path / "module_utils").mkdir()
    for name, source in dict(FAKE_FILES, **changed).items():
        if source is not None:
            (tmp_path / "module_utils" / name).write_text(source)
    return tmp_path


def test_the_fake_tree_is_clean(tmp_path):
    assert layer_problems(fake_tree(tmp_path)) == []


@pytest.mark.parametrize("changed, expected", [
    ({"nslab_parse.py": "from ansible_collections.nslab.lab.plugins.module_utils.nslab_plan2 import y\n"},
     "module_utils/nslab_parse.py (layer 'model') imports nslab_plan2 (layer 'planner')"),
    ({"nslab_parse.py": "def f():\n    from ansible_collections.nslab.lab.plugins.module_utils import nslab_plan2\n"},
     "module_utils/nslab_parse.py (layer 'model') imports nslab_plan2 (layer 'planner')"),
    ({"nslab_errors.py": "import ansible_collections.nslab.lab.plugins.module_utils.nslab_plan2\n"},
     "module_utils/nslab_errors.py (layer 'base') imports nslab_plan2 (layer 'planner')"),
    ({"nslab_new.py": "x = 1\n"}, "module_utils/nslab_new.py is not in the table of layers"),
    ({"nslab_plan2.py": None, "nslab_plan.py": "from ansible_collections.nslab.lab.plugins.module_utils.nslab_parse import x\n"},
     "lists module_utils/nslab_plan2.py, which does not exist"),
    ({"nslab_plan.py": "from ansible_collections.nslab.lab.plugins.module_utils.nslab_gone import x\n"},
     "module_utils/nslab_plan.py imports nslab_gone, which is not a module_utils file"),
    ({"nslab_plan2.py": "from ansible.module_utils.basic import AnsibleModule\n"},
     "module_utils/nslab_plan2.py imports ansible.module_utils.basic"),
    ({"nslab_plan2.py": "from ansible_collections.nslab.lab.plugins.module_utils.nslab_plan import z\n"},
     "module_utils files import each other in a cycle: nslab_plan, nslab_plan2"),
], ids=["upward", "upward-in-a-function", "upward-plain-import", "file-missing-from-table",
        "row-without-file", "import-of-no-file", "ansiblemodule", "cycle"])
def test_a_broken_layer_is_reported(tmp_path, changed, expected):
    problems = layer_problems(fake_tree(tmp_path, **changed))
    assert len(problems) == 1 and expected in problems[0], problems


def test_a_layer_allowed_to_import_a_higher_one_is_reported(tmp_path):
    doc = FAKE_DOC.replace("| model | parsers | base |", "| model | parsers | base, planner |")
    problems = layer_problems(fake_tree(tmp_path, doc=doc))
    assert problems == ["layer 'model' may import 'planner', a higher layer"]


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: %s --write   (redraws %s and %s)" % (sys.argv[0], DOT, SVG))
    write()

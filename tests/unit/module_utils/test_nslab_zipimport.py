"""nslab_zipimport: imported from a payload zip (as Ansible runs a module), the rest of
nslab's module_utils come from the same zip compiled once each, with the ``__file__`` and
source (``inspect.getsource``, which nslab_exec and the launcher use) zipimport gives.
Each case runs in a fresh interpreter: the finder and the audit hook that counts compiles
stay in the process that installs them."""

import ast
import json
import pathlib
import subprocess
import sys
import zipfile

from ansible_collections.nslab.lab.plugins.module_utils import nslab_zipimport

PACKAGE = "ansible_collections/nslab/lab/plugins/module_utils"

PROBE = r"""
import inspect, json, sys
compiles = []
sys.addaudithook(lambda event, args: compiles.append(str(args[1])) if event == "compile"
                 and str(args[1]).endswith("nslab_probe.py") else None)
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "finder":
    from ansible_collections.nslab.lab.plugins.module_utils import nslab_zipimport
from ansible_collections.nslab.lab.plugins.module_utils import nslab_probe_user
from ansible_collections.nslab.lab.plugins.module_utils import nslab_probe
print(json.dumps({"compiles": len(compiles), "file": nslab_probe.__file__,
                  "value": nslab_probe_user.VALUE, "source": inspect.getsource(nslab_probe),
                  "loader": type(nslab_probe.__loader__).__name__,
                  "finders": sum(type(f).__name__ == "PayloadFinder" for f in sys.meta_path)}))
"""


def payload(tmp_path):
    """A zip laid out as Ansible's payload: empty package inits, nslab_zipimport and two
    module_utils files, one importing the other."""
    path = tmp_path / "ansible_nslab_probe_payload.zip"
    with zipfile.ZipFile(str(path), "w") as archive:
        parts = PACKAGE.split("/")
        for depth in range(1, len(parts) + 1):
            archive.writestr("/".join(parts[:depth]) + "/__init__.py", "")
        with open(nslab_zipimport.__file__) as handle:
            archive.writestr(PACKAGE + "/nslab_zipimport.py", handle.read())
        archive.writestr(PACKAGE + "/nslab_probe.py", '"""probe"""\nVALUE = 42\n')
        archive.writestr(PACKAGE + "/nslab_probe_user.py",
                         "from ansible_collections.nslab.lab.plugins.module_utils."
                         "nslab_probe import VALUE\n")
    return path


def run_probe(path, mode):
    proc = subprocess.run([sys.executable, "-c", PROBE, str(path), mode],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_from_a_payload_each_file_is_compiled_once_and_looks_as_zipimport_makes_it(tmp_path):
    path = payload(tmp_path)
    plain = run_probe(path, "zipimport")
    fast = run_probe(path, "finder")
    # zipimport compiles twice (the reason for nslab_zipimport: when this fails, Python no
    # longer does, and the module can go)
    assert plain["compiles"] == 2, plain
    assert fast["compiles"] == 1, fast
    assert fast["loader"] == "PayloadLoader" and plain["loader"] == "zipimporter"
    assert fast["finders"] == 1
    for key in ("file", "value", "source"):
        assert fast[key] == plain[key], key
    assert fast["file"] == "%s/%s/nslab_probe.py" % (path, PACKAGE)
    assert fast["source"] == '"""probe"""\nVALUE = 42\n'


def test_imported_from_files_it_installs_nothing():
    assert nslab_zipimport.install(nslab_zipimport.__loader__) is None
    assert not any(isinstance(f, nslab_zipimport.PayloadFinder) for f in sys.meta_path)


def test_every_module_imports_it_before_the_rest_of_nslabs_module_utils():
    """Only what a module imports after nslab_zipimport is compiled once: it comes first."""
    modules = sorted((pathlib.Path(__file__).parents[3] / "plugins" / "modules").glob("*.py"))
    assert modules
    prefix = PACKAGE.replace("/", ".")
    for path in modules:
        first = next(node for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.ImportFrom) and node.module
                     and node.module.startswith(prefix))
        assert (first.module, [a.name for a in first.names]) == (prefix, ["nslab_zipimport"]), \
            "%s: its first import of nslab's module_utils must be nslab_zipimport" % path.name

"""The test tree's own rules: unit tests mirror the source, helpers are imported as a
package (never from a conftest or another test file), and every test that needs root
carries the ``integration`` marker."""

import ast
import re
import subprocess
import sys

from helpers.paths import ROOT

TESTS = ROOT / "tests"
# tests/unit/<dir>/test_<stem>[_<aspect>].py -> the source files it may test
SOURCES = {
    "module_utils": lambda: [p.stem for p in (ROOT / "module_utils").glob("nslab_*.py")],
    "library": lambda: [p.stem + "_module" for p in (ROOT / "library").glob("nslab_*.py")],
    "cli": lambda: [p.stem for p in (ROOT / "cli").glob("*.py")],
    "plugins": lambda: ["%s_%s" % (p.parent.name, p.stem)
                        for p in (ROOT / "plugins").glob("*/*.py")],
}


def imported_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_no_test_imports_a_conftest_or_another_test_file():
    offenders = ["%s imports %s" % (path.relative_to(ROOT), name)
                 for path in sorted(TESTS.rglob("*.py"))
                 for name in imported_modules(path)
                 if name == "conftest" or re.match(r"test_", name.split(".")[-1])]
    assert offenders == [], "use a fixture or tests/helpers instead: %s" % offenders


def test_every_unit_test_file_is_named_after_the_source_it_tests():
    misplaced = []
    for path in sorted((TESTS / "unit").rglob("test_*.py")):
        where = path.relative_to(TESTS / "unit").parts
        stems = SOURCES[where[0]]() if len(where) == 2 and where[0] in SOURCES else []
        name = path.stem[len("test_"):]
        if not any(name == s or name.startswith(s + "_") for s in stems):
            misplaced.append(str(path.relative_to(ROOT)))
    assert misplaced == [], ("expected tests/unit/module_utils/test_nslab_X[_aspect].py, "
                             "tests/unit/library/test_nslab_Y_module.py, tests/unit/cli/test_Z.py "
                             "or tests/unit/plugins/test_<kind>_W.py: %s" % misplaced)


def test_not_integration_selects_nothing_under_integration_or_vm():
    # The marker is added by path (tests/conftest.py); a plain pytestmark in a conftest is
    # ignored, and then this selection collected every root-only test.
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "-m", "not integration",
                           "tests/integration", "tests/vm"],
                          capture_output=True, text=True, cwd=ROOT)
    collected = [line for line in proc.stdout.splitlines() if "::" in line]
    assert collected == [], collected[:10]
    assert re.search(r"\b[1-9]\d* deselected", proc.stdout), proc.stdout[-2000:]

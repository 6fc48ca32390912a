"""Shared pytest set-up: make nslab's module_utils importable as Ansible does, and mark
every test that needs root and the real kernel.

Ansible ships module_utils under ``ansible.module_utils.*``; the project's own live in
``module_utils/`` and are added to that package's search path, exactly the names the
modules import at run time.

A ``pytestmark`` in a conftest.py is ignored by pytest, so the ``integration`` marker is
added here by path: everything under tests/integration and tests/vm has it, and
``pytest -m "not integration"`` runs only what needs neither root nor a kernel to change.
"""

import pathlib

import ansible.module_utils
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

INTEGRATION_DIRS = (ROOT / "tests" / "integration", ROOT / "tests" / "vm")


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = pathlib.Path(str(item.fspath)).resolve()
        if any(top in path.parents for top in INTEGRATION_DIRS):
            item.add_marker(pytest.mark.integration)

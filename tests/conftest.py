"""Shared pytest set-up: make the collection nslab.lab importable as Ansible does, and mark
every test that needs root and the real kernel.

This checkout is the collection nslab.lab (``collections/ansible_collections/nslab/lab``
links back to it). Ansible's collection loader is installed over that path before anything
imports nslab, so tests import exactly the names the modules import at run time
(``ansible_collections.nslab.lab.plugins.module_utils.*``) and the plugin loader still finds
``nslab.lab.*`` afterwards (a plain import first would leave it without the collection's
metadata).

A ``pytestmark`` in a conftest.py is ignored by pytest, so the ``integration`` marker is
added here by path: everything under tests/integration and tests/vm has it, and
``pytest -m "not integration"`` runs only what needs neither root nor a kernel to change.
"""

import pathlib

import pytest
from ansible.plugins.loader import init_plugin_loader

ROOT = pathlib.Path(__file__).resolve().parent.parent
init_plugin_loader([str(ROOT / "collections")])

INTEGRATION_DIRS = (ROOT / "tests" / "integration", ROOT / "tests" / "vm")


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = pathlib.Path(str(item.fspath)).resolve()
        if any(top in path.parents for top in INTEGRATION_DIRS):
            item.add_marker(pytest.mark.integration)

"""Load a module of library/ as Ansible runs it: its file, with nslab's module_utils on
``ansible.module_utils``'s path (tests/conftest.py puts them there)."""

import importlib.util

from helpers.paths import ROOT


def load_library_module(name):
    """library/<name>.py as a Python module, named ``<name>_module`` so that it never
    shadows module_utils/<name>.py (nslab_vxlan exists in both)."""
    spec = importlib.util.spec_from_file_location(name + "_module",
                                                  ROOT / "library" / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

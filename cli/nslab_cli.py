"""What nslab's command-line tools share: nslab's module_utils, importable on the controller.

The tools run on the lab host with the venv's Python. This checkout is the collection
nslab.lab (``collections/ansible_collections/nslab/lab`` links back to it), so with
``collections/`` on ``sys.path`` the tools import the very code the modules run
(``ansible_collections.nslab.lab.plugins.module_utils.nslab_*``), not a copy.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def use_module_utils():
    path = str(ROOT / "collections")
    if path not in sys.path:
        sys.path.insert(0, path)


def local_runner():
    """A Runner over subprocess (``LC_ALL=C``), as modules have one over run_command."""
    use_module_utils()
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import (
        Runner, subprocess_run)
    return Runner(subprocess_run, netlink=True)


def read_labs(lab=None):
    """{lab: view} for one lab or every lab on this host: nslab_info's ``labs``."""
    use_module_utils()
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_labview import read_labs as read
    return read(local_runner(), lab)[0]

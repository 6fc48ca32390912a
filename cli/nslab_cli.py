"""What nslab's command-line tools share: nslab's module_utils, importable on the controller.

The tools run on the lab host with the venv's Python, where ``ansible.module_utils`` is
ansible-core's package; nslab's own files are added to that package's path, so the tools
import the very code the modules run (``ansible.module_utils.nslab_*``), not a copy.
"""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def use_module_utils():
    import ansible.module_utils
    path = str(ROOT / "module_utils")
    if path not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(path)


def local_runner():
    """A Runner over subprocess (``LC_ALL=C``), as modules have one over run_command."""
    use_module_utils()
    from ansible.module_utils.nslab_runner import Runner, subprocess_run
    return Runner(subprocess_run)


def read_labs(lab=None):
    """{lab: view} for one lab or every lab on this host: nslab_info's ``labs``."""
    use_module_utils()
    from ansible.module_utils.nslab_labview import read_labs as read
    return read(local_runner(), lab)[0]

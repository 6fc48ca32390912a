"""Shared pytest set-up: make nslab's module_utils importable as Ansible does.

Ansible ships module_utils under ``ansible.module_utils.*``; the project's own live in
``module_utils/`` and are added to that package's search path, exactly the names the
modules import at run time.
"""

import pathlib

import ansible.module_utils

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

"""Run ansible-lint with nslab's module_utils importable, so its ``args`` rule can load
nslab's modules and check their arguments (otherwise it skips them silently)."""

import pathlib
import sys

import ansible.module_utils

ROOT = pathlib.Path(__file__).resolve().parents[2]
ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

from ansiblelint.__main__ import _run_cli_entrypoint  # noqa: E402  (after the path fix)

if __name__ == "__main__":
    sys.argv[0] = "ansible-lint"
    sys.exit(_run_cli_entrypoint())

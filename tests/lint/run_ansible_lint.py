"""Run ansible-lint the way the tests need it (kept as the one entry point the quality test
calls; nslab.lab resolves through ansible.cfg's collections_path)."""

import sys

from ansiblelint.__main__ import _run_cli_entrypoint

if __name__ == "__main__":
    sys.argv[0] = "ansible-lint"
    sys.exit(_run_cli_entrypoint())

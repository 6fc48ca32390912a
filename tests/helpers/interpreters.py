"""Python interpreters on this machine other than the controller's."""

import glob
import shutil
import subprocess


def python39():
    """A working python3.9 (a pyenv shim on PATH may exist and still not run)."""
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.9*/bin/python3.9"))
    candidates += ["/usr/bin/python3.9", shutil.which("python3.9")]
    for path in filter(None, candidates):
        try:
            if subprocess.run([path, "-c", "import sys; assert sys.version_info[:2] == (3, 9)"],
                              capture_output=True).returncode == 0:
                return path
        except OSError:         # absent, or not ours to run (a user other than root)
            continue
    return None

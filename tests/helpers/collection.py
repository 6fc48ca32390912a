"""The collection nslab.lab as a user gets it: the tarball ``ansible-galaxy collection build``
makes from this checkout, installed into a collections path of the test's choosing."""

import subprocess

from helpers.paths import BIN, ROOT


def build_collection(dest):
    """Build the tarball into ``dest`` (a directory) and return its path."""
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force",
                           "--output-path", str(dest)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarballs = sorted(dest.glob("nslab-lab-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    return tarballs[0]


def install_collection(tarball, collections_path, galaxy=BIN / "ansible-galaxy"):
    """Install the tarball offline into ``collections_path`` (its ansible_collections/ goes
    inside); ``galaxy`` is the ansible-galaxy to use (another virtualenv's, say)."""
    proc = subprocess.run([str(galaxy), "collection", "install", "--offline", "--force",
                           "-p", str(collections_path), str(tarball)],
                          capture_output=True, text=True, cwd=collections_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return collections_path / "ansible_collections" / "nslab" / "lab"

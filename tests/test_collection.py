"""The collection nslab.lab as it ships: the tarball ``ansible-galaxy collection build`` makes
from this checkout holds the collection and nothing else, and ``ansible-test sanity`` (the
collection world's quality gate) passes on that tarball once installed.

Sanity runs on the installed tarball, not on the checkout, the way containers.podman's CI does
it: ansible-test must run inside ``ansible_collections/<namespace>/<name>``, and the checkout
holds directory symlinks (library, module_utils, the collections/ self-link) that its
``symlinks`` test rejects and that the build leaves out.
"""

import pathlib
import re
import subprocess
import tarfile
import types

import pytest
import yaml

from helpers.collection import build_collection, install_collection
from helpers.paths import BIN, ROOT

pytestmark = pytest.mark.quality

TOP_LEVEL = {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.md", "COPYING",
             "changelogs", "docs", "meta", "plugins", "playbooks", "roles", "tests"}
# The collection's playbooks are the Molecule create/destroy pair; the README's walk-through
# playbooks (playbooks/0*.yml, impair.yml) belong to the checkout only.
COLLECTION_PLAYBOOK = re.compile(r"playbooks/molecule_[a-z0-9_]+\.yml")

# ansible-test bootstraps pip into each of its virtualenvs with a get-pip script downloaded
# from ci-files.testing.ansible.com, unreachable here; it uses a cached copy if there is one.
# This stand-in does the same job from the package index. ensurepip runs in a child process:
# in-process it sets PIP_CONFIG_FILE=/dev/null, and pip would lose /etc/pip.conf (the index
# and its CA bundle).
GET_PIP_PIN = {"pip": "24.2"}
GET_PIP_STANDIN = '''\
# Stand-in for ansible-test's pip bootstrap (get-pip), whose download host is unreachable:
# ensurepip in a child process, then pip installs the pinned pip from the index.
# Written by nslab's tests/test_collection.py.
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
'''


def version_key(version):
    return tuple(int(part) for part in version.split("."))


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    """Built once for both tests (a build takes 5-10 s)."""
    return build_collection(tmp_path_factory.mktemp("dist"))


def test_the_tarball_holds_the_collection_and_nothing_else(tarball):
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
        manifest = yaml.safe_load(tar.extractfile("MANIFEST.json"))
    names = {m.name.rstrip("/") for m in members}
    files = {m.name for m in members if m.isfile()}

    top = {name.split("/")[0] for name in names}
    # playbooks/ is there once the Molecule playbooks are; until then the build may drop it.
    assert top - {"playbooks"} == TOP_LEVEL - {"playbooks"}, sorted(top)
    assert [m.name for m in members if m.issym() or m.islnk()] == []
    assert [n for n in names if "__pycache__" in n.split("/") or n.endswith(".pyc")] == []
    assert {n for n in files if n.startswith("tests/")} - {"tests/config.yml"} == {
        n for n in files if n.startswith("tests/sanity/")}
    assert [n for n in files if n.startswith("playbooks/")
            and not COLLECTION_PLAYBOOK.fullmatch(n)] == []

    for directory in ("plugins/modules", "plugins/module_utils"):
        shipped = {n for n in files if n.rsplit("/", 1)[0] == directory}
        checkout = {"%s/%s" % (directory, p.name) for p in (ROOT / directory).glob("*.py")}
        assert shipped == checkout, directory

    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    changelog = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text())
    latest_release = max(changelog["releases"], key=version_key)
    assert manifest["collection_info"]["version"] == galaxy["version"] == latest_release
    assert tarball.name == "nslab-lab-%s.tar.gz" % galaxy["version"]


def ansible_test_pip_pin():
    """The infrastructure packages ansible-test bootstraps into its venvs on Python 3.11."""
    from ansible_test._internal.python_requirements import get_venv_packages
    return get_venv_packages(types.SimpleNamespace(version="3.11"))


def provide_get_pip(home):
    pin = ansible_test_pip_pin()
    # The stand-in was written for this pin; a core bump that changes it must be looked at.
    assert pin == GET_PIP_PIN, pin
    cache = home / ".ansible" / "test" / "cache" / ("get_pip_%s.py"
                                                     % pin["pip"].replace(".", "_"))
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(GET_PIP_STANDIN)
    return cache


def test_ansible_test_sanity_passes_on_the_installed_tarball(tarball, tmp_path):
    collection = install_collection(tarball, tmp_path)
    provide_get_pip(pathlib.Path.home())
    proc = subprocess.run([str(BIN / "ansible-test"), "sanity", "--python", "3.11",
                           "--color", "no"], cwd=collection, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    # What ran and what did not (a test skipped for want of a tool or an interpreter), for
    # the record of a run with -s. Only Python 3.11 runs compile and import: the pyenv shims
    # for the other versions exit 127, which ansible-test takes for a failure.
    for line in output.splitlines():
        if line.startswith("Running sanity test") or "Skipping" in line:
            print(line)
    assert proc.returncode == 0, output[-20000:]

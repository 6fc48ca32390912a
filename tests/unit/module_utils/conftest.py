"""Fixtures for the unit tests of module_utils.

cgroup trees: ``cgroup_v1`` is a v1 tree captured on this machine (fixtures/cgroup_v1, with its
real mountinfo), ``cgroup_v2`` a v2 tree built after Documentation/admin-guide/cgroup-v2.rst
(fixtures/cgroup_v2); each is copied to tmp_path and comes back as (layout, root), its mount
points moved there. ``cgroup_record`` makes an ownership record of lab ``demo`` that names
the given cgroups.
"""

import pathlib
import shutil

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import detect_layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import parse_mountinfo

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"


def _cgroup_tree(tmp_path, name):
    root = tmp_path / name
    shutil.copytree(str(FIXTURES / name), str(root))
    text = (root / "mountinfo.txt").read_text().replace("/sys/fs/cgroup", str(root))
    return detect_layout(parse_mountinfo(text)), root


@pytest.fixture
def cgroup_v1(tmp_path):
    return _cgroup_tree(tmp_path, "cgroup_v1")


@pytest.fixture
def cgroup_v2(tmp_path):
    return _cgroup_tree(tmp_path, "cgroup_v2")


@pytest.fixture
def cgroup_record():
    def owned(*names):
        return {"lab": "demo", "cgroups": dict((n, {"settled": {}}) for n in names)}
    return owned

"""Modules run on a target's python3 >= 3.9, not only on the controller's 3.11."""

import glob
import shutil
import subprocess

import pytest

from conftest import ip_links


def python39():
    """A working python3.9 (a pyenv shim on PATH may exist and still not run)."""
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.9*/bin/python3.9"))
    candidates += ["/usr/bin/python3.9", shutil.which("python3.9")]
    for path in filter(None, candidates):
        if subprocess.run([path, "-c", "import sys; assert sys.version_info[:2] == (3, 9)"],
                          capture_output=True).returncode == 0:
            return path
    return None


@pytest.mark.skipif(python39() is None, reason="no python3.9 interpreter on this machine "
                    "(vermin checks 3.9 compatibility statically in test_quality.py)")
def test_modules_converge_under_python39(lab, module):
    interpreter = python39()
    ns = module("nslab_namespace", dict(lab=lab.name, name=lab.n("a"), types=["net", "uts"]),
                interpreter=interpreter)
    assert ns["_status"] == "ok" and ns["changed"] is True
    br = module("nslab_bridge", dict(lab=lab.name, name=lab.n("br")), interpreter=interpreter)
    assert br["changed"] is True
    veth = module("nslab_veth", dict(lab=lab.name, name=lab.n("v"), bridge=lab.n("br"),
                                     peer=dict(name="eth0", netns=lab.n("a"))),
                  interpreter=interpreter)
    assert veth["changed"] is True and ip_links()[lab.n("v")]["master"] == lab.n("br")
    again = module("nslab_veth", dict(lab=lab.name, name=lab.n("v"), bridge=lab.n("br"),
                                      peer=dict(name="eth0", netns=lab.n("a"))),
                   interpreter=interpreter)
    assert again["changed"] is False
    gone = module("nslab_namespace", dict(lab=lab.name, name=lab.n("a"), state="absent"),
                  interpreter=interpreter)
    assert gone["changed"] is True

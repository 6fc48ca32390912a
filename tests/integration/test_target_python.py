"""Modules run on a target's python3 >= 3.9, not only on the controller's 3.11."""

import pytest

from helpers.interpreters import python39
from helpers.kernel import ip_links


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

"""nslab_info: what a lab consists of, and what no longer makes a whole."""

import os

from helpers.kernel import sh
from helpers.lab import BUSYBOX_SKIP

pytestmark = BUSYBOX_SKIP


def test_info_reports_a_lab_and_its_leftovers(lab, module, rootfs):
    ns = lab.n("a")
    module("nslab_namespace", dict(lab=lab.name, name=ns))
    module("nslab_bridge", dict(lab=lab.name, name=lab.n("br"), addresses=["10.251.40.1/24"]))
    module("nslab_veth", dict(lab=lab.name, name=lab.n("v"), bridge=lab.n("br"),
                              peer=dict(name="eth0", netns=ns, addresses=["10.251.40.2/24"])))
    started = module("nslab_container", dict(lab=lab.name, name="box", rootfs=str(rootfs),
                                             netns=ns))
    info = module("nslab_info", dict(lab=lab.name), check=True)
    assert info["changed"] is False
    mine = info["labs"][lab.name]
    assert mine["netns_addresses"] == {ns: ["10.251.40.2/24"]}
    assert mine["bridges"][0]["ports"] == [lab.n("v")]
    assert mine["containers"][0]["pid"] == started["containers"][0]["pid"]
    assert mine["containers"][0]["addresses"] == ["10.251.40.2/24"]
    assert [(v["name"], v["netns"]) for v in mine["veths"]] == [(lab.n("v"), None), ("eth0", ns)]
    assert mine["leftovers"] == []
    everything = module("nslab_info", {})
    assert everything["_status"] == "ok", everything.get("msg")
    assert lab.name in everything["labs"]

    os.kill(started["containers"][0]["pid"], 9)
    sh("ip", "netns", "del", ns)
    leftovers = module("nslab_info", dict(lab=lab.name))["labs"][lab.name]["leftovers"]
    assert "namespace '%s': net no longer mounted" % ns in leftovers
    assert "container 'box': its init died" in leftovers

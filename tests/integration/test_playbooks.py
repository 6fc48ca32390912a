"""The concept playbooks, through ansible-playbook: each shows what it promises, reruns
change nothing, and state=absent leaves nothing behind."""

import re

import pytest

from helpers.ansible_runs import run_playbook
from helpers.lab import BUSYBOX_SKIP

pytestmark = BUSYBOX_SKIP


def recap(proc):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                      proc.stdout)
    assert match, proc.stdout + proc.stderr
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


@pytest.mark.parametrize("playbook,extra,proof", [
    ("playbooks/01_chroot_jail.yml", {}, [r"/ is: bin dev etc", r"processes seen through"]),
    ("playbooks/02_cgroup_limits.yml", {},
     [r"can''t fork: Resource temporarily unavailable", r"ended with status 137",
      r"oom_kills'+: [1-9]"]),
    ("playbooks/03_namespaces.yml", {},
     [r"1 \{nslab-init\}", r"- inside", r"- ' lo '", r"8:pids:/\n"]),
    ("playbooks/04_bridge_network.yml", {"demo_net": "10.251.64"},
     [r"1 packets transmitted, 1 packets received", r"root:x:0:0"]),
])
def test_concept_playbook(lab, playbook, extra, proof):
    extra = dict(extra, demo_lab=lab.name)
    built = run_playbook(playbook, extra)
    assert recap(built)["failed"] == 0, built.stdout + built.stderr
    for pattern in proof:
        assert re.search(pattern, built.stdout), (pattern, built.stdout)
    if "01_chroot" not in playbook:         # its chroot command runs (and is shown) each time
        assert recap(run_playbook(playbook, extra))["changed"] == 0
    gone = run_playbook(playbook, dict(extra, state="absent"))
    assert recap(gone)["failed"] == 0, gone.stdout
    assert lab.leftovers() == []

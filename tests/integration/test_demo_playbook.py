"""The README's demo, through ansible-playbook: build, ping, rerun unchanged, destroy."""

import re

from conftest import ip_links, run_playbook


def recap(proc):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                      proc.stdout)
    assert match, proc.stdout + proc.stderr
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def test_demo_builds_pings_converges_and_is_destroyed(lab):
    # Its own addresses, so the test passes beside a demo lab someone has built.
    extra = {"demo_lab": lab.name, "demo_net": "10.251.61"}
    check = run_playbook("playbooks/demo.yml", extra, check=True)
    assert recap(check)["failed"] == 0 and lab.leftovers() == []

    built = run_playbook("playbooks/demo.yml", extra)
    assert recap(built)["failed"] == 0, built.stdout
    assert recap(built)["changed"] == 3
    assert built.stdout.count("1 packets transmitted, 1 received") == 2
    assert ip_links()["nslab-%s0" % lab.name]["linkinfo"]["info_kind"] == "bridge"

    rerun = run_playbook("playbooks/demo.yml", extra)
    assert recap(rerun) == {"ok": 5, "changed": 0, "unreachable": 0, "failed": 0}

    destroyed = run_playbook("playbooks/demo.yml", dict(extra, state="absent"))
    assert recap(destroyed)["failed"] == 0 and recap(destroyed)["changed"] == 2
    assert lab.leftovers() == []

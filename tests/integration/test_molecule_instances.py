"""The example role's Molecule scenario, whose instances are nslab containers, run whole
(`molecule test`: destroy, syntax, create, converge, idempotence, verify, destroy) under
this test's lab name; afterwards nothing of that lab may remain on the host."""

import hashlib
import os
import re
import subprocess

from helpers.paths import BIN, ROOT

EXAMPLE = ROOT / "examples" / "roles" / "static_site"
STEPS = ["destroy", "syntax", "create", "converge", "idempotence", "verify"]


def test_molecule_test_passes_on_nslab_instances_and_destroy_leaves_nothing(lab, tmp_path):
    third_octet = 100 + int(hashlib.sha1(lab.name.encode()).hexdigest(), 16) % 100
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ["PATH"]),
               NSLAB_MOLECULE_LAB=lab.name,
               NSLAB_MOLECULE_SUBNET="10.214.%d.0/24" % third_octet,
               MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "molecule"),
               ANSIBLE_NOCOLOR="1", NO_COLOR="1", PY_COLORS="0")
    env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.run([str(BIN / "molecule"), "test"], cwd=EXAMPLE, env=env,
                          capture_output=True, text=True, timeout=1200)
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, output[-6000:]
    for step in STEPS:
        assert "%s: Executed: Successful" % step in output, step
    assert re.search(r"\b8 passed\b", output), "the testinfra checks did not all run"
    assert lab.leftovers() == []          # before the fixture's own cleanup runs

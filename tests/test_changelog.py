"""The changelog fragments are what antsibull-changelog accepts.

``ansible-test sanity``'s changelog test runs the same linter, but only on the built and
installed collection, minutes into a run; this one runs in a second.
"""
import shutil
import subprocess

from helpers.paths import BIN, ROOT


def lint(project):
    return subprocess.run([str(BIN / "antsibull-changelog"), "lint"], cwd=project,
                          capture_output=True, text=True)


def test_the_fragments_pass_antsibull_changelog_lint():
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_item_yaml_reads_as_a_mapping_is_reported(tmp_path):
    # "a: b" in an unquoted item is a mapping, not a string: the mistake this test exists for.
    shutil.copytree(ROOT / "changelogs", tmp_path / "changelogs",
                    ignore=shutil.ignore_patterns("fragments"))
    shutil.copy(ROOT / "galaxy.yml", tmp_path)
    (tmp_path / "changelogs" / "fragments").mkdir()
    (tmp_path / "changelogs" / "fragments" / "x.yml").write_text(
        "minor_changes:\n  - nslab_x - does one thing: and another.\n")
    proc = lint(tmp_path)
    assert proc.returncode != 0
    assert "list items must be type str not dict" in proc.stdout + proc.stderr

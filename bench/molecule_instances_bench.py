"""What Molecule on nslab instances costs: the example role's whole `molecule test`
(examples/roles/static_site, two instances, run as a user runs it: from a git repository of
its own with the built collection installed there) with the debootstrap tarball cached, and the
instances' shared base (bookworm minbase + python3) built by debootstrap from the mirror
(a private, empty cache directory) against extracted from the cached tarball.

Run by hand as root from the repository: .venv/bin/python bench/molecule_instances_bench.py
[--repeats 3]. Prints medians; the machine's other load moves absolute times, so quote
the medians with the spread. It never removes a tarball it did not make."""

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The tests' build and offline install of the collection, not a second copy of them.
sys.path.insert(0, str(ROOT / "tests"))
from helpers.collection import build_collection, install_collection  # noqa: E402

JAIL = {"source": "debootstrap", "suite": "bookworm", "include": ["python3"]}


def timed(argv, **kwargs):
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s%s" % (argv, proc.stdout[-3000:], proc.stderr[-3000:]))
    return time.monotonic() - start


def user_repository(where):
    """The example role in a git repository of its own, nslab.lab built from this checkout
    and installed beside it (as tests/integration/test_molecule_instances.py does); returns
    (role directory, collections path)."""
    tarball = build_collection(where)
    collections = where / "installed"
    collections.mkdir()
    install_collection(tarball, collections)
    role = where / "repository" / "static_site"
    shutil.copytree(ROOT / "examples" / "roles" / "static_site", role,
                    ignore=shutil.ignore_patterns("__pycache__", ".cache"))
    subprocess.run(["git", "init", "-q", str(role)], check=True)
    return role, collections


def molecule_test(role, collections):
    lab = "b" + secrets.token_hex(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH="%s:%s" % (BIN, os.environ["PATH"]), NSLAB_MOLECULE_LAB=lab,
               ANSIBLE_COLLECTIONS_PATH=str(collections))
    with tempfile.TemporaryDirectory() as ephemeral:
        env["MOLECULE_EPHEMERAL_DIRECTORY"] = ephemeral
        return timed([str(BIN / "molecule"), "test"], cwd=role, env=env)


def jail_module(args):
    return timed([str(BIN / "ansible"), "localhost", "-m", "nslab_jail", "-a", json.dumps(args)],
                 cwd=ROOT)


def jail_build(cache_dir=None):
    lab = "b" + secrets.token_hex(3)
    args = dict(JAIL, lab=lab, name="j", **({"cache_dir": cache_dir} if cache_dir else {}))
    try:
        return jail_module(args)
    finally:
        jail_module({"lab": lab, "name": "j", "state": "absent"})


def jail_uncached():
    with tempfile.TemporaryDirectory(prefix="nslab-bench-cache-") as cache_dir:
        return jail_build(cache_dir)


def summary(name, times):
    return "| %s | %.1f s | %s |" % (name, statistics.median(times),
                                     ", ".join("%.1f" % t for t in times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    jail_build()                       # makes sure the cached tarball exists
    rows = [summary("base from the cached tarball", [jail_build() for _ in range(repeats)]),
            summary("base by debootstrap (uncached)", [jail_uncached() for _ in range(repeats)])]
    with tempfile.TemporaryDirectory(prefix="nslab-bench-user-") as where:
        role, collections = user_repository(Path(where))
        rows.append(summary("`molecule test` of the example, cached",
                            [molecule_test(role, collections) for _ in range(repeats)]))
    print("| what | median | runs |\n|---|---|---|\n" + "\n".join(rows))


if __name__ == "__main__":
    main()

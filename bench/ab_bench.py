#!/usr/bin/env python3
"""lab.yml of an earlier revision against this checkout's, on the same machine, interleaved.

    .venv/bin/python bench/ab_bench.py --before REV [--sizes 100,500] [--repeats 3]

For a machine whose speed drifts within the hour, where two `./nslab bench` runs an hour
apart cannot be compared: REV is checked out in a temporary git worktree (using this
checkout's .venv), and the two `lab.yml`s build, rerun (which must say `changed=0`) and
destroy the bench's topology (bench/lab_bench.py's, lab `bench`) in the order
before, after, after, before, ... so that both see the same drift. Prints each run and
the medians, wall seconds and CPU seconds (the playbook and everything it waited for),
and after/before ratios. Nothing of the lab may be left between runs (lab_bench's check).
A script to run by hand, as root, not a test.
"""

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import lab_bench  # noqa: E402

PHASES = ("build", "rerun", "destroy")
ORDER = ("before", "after", "after", "before")


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def playbook(tree, topology, extra):
    """(wall, cpu, changed) of one lab.yml run in ``tree``."""
    cpu, start = children_cpu(), time.monotonic()
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "lab.yml",
                           "-e", "lab=" + topology] + extra, cwd=tree, universal_newlines=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    recap = re.search(r"^\S+\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout, re.M)
    if proc.returncode != 0 or not recap:
        raise lab_bench.BenchError("lab.yml in %s failed:\n%s" % (tree, proc.stdout[-3000:]))
    return wall, children_cpu() - cpu, int(recap.group(1))


def cycle(tree, topology):
    """{phase: (wall, cpu)} of build, no-change rerun, destroy."""
    runs = {}
    for phase, extra in zip(PHASES, ([], [], ["-e", "state=absent"])):
        wall, cpu, changed = playbook(tree, topology, extra)
        if phase == "rerun" and changed:
            raise lab_bench.BenchError("the rerun in %s changed %d things" % (tree, changed))
        runs[phase] = (wall, cpu)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="the earlier revision (git rev)")
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = tempfile.mkdtemp(prefix="nslab-ab-")
    before = os.path.join(work, "before")
    subprocess.run(["git", "worktree", "add", "--detach", before, args.before], cwd=REPO,
                   check=True, stdout=subprocess.DEVNULL)
    trees = {"before": before, "after": REPO}
    results = {}
    try:
        lab_bench.assert_clean("before the A/B")
        for n in sizes:
            topology = os.path.join(work, "bench-%d.yml" % n)
            lab_bench.topology(n, topology)
            for index in range(2 * args.repeats):
                side = ORDER[index % len(ORDER)]
                runs = cycle(trees[side], topology)
                lab_bench.assert_clean("after %s N=%d" % (side, n))
                results.setdefault((n, side), []).append(runs)
                lab_bench.log("N=%d %-6s %s" % (n, side, ", ".join(
                    "%s %.2f s (cpu %.2f)" % (p, runs[p][0], runs[p][1]) for p in PHASES)))
    except lab_bench.BenchError as err:
        sys.exit("ab_bench.py: %s\nstopped" % err)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", before], cwd=REPO, check=False)
        shutil.rmtree(work, ignore_errors=True)
    print("| N | | %s |" % " | ".join(PHASES))
    print("|---:|---|%s" % ("---:|" * len(PHASES)))
    for n in sizes:
        medians = dict((side, dict((p, [statistics.median(r[p][k] for r in results[(n, side)])
                                        for k in (0, 1)]) for p in PHASES))
                       for side in ("before", "after"))
        for side in ("before", "after"):
            cells = []
            for p in PHASES:
                wall, cpu = medians[side][p]
                ratio = "" if side == "before" else " (×%.2f)" % (wall / medians["before"][p][0])
                cells.append("%.2f s%s, cpu %.2f s" % (wall, ratio, cpu))
            print("| %d | %s | %s |" % (n, side, " | ".join(cells)))


if __name__ == "__main__":
    main()

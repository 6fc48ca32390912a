#!/usr/bin/env python3
"""The fleet's costs: build (from the cached debootstrap tarball), no-change rerun, an
Ansible ping of every host over SSH, teardown. Medians of --repeats runs; a script to run
by hand as root, not a test.

    .venv/bin/python bench/fleet_bench.py [--repeats 3] [--hosts 3]

It builds the lab 'fleetbench' on 10.213.254.0/24 (a range nothing else uses) and refuses
to start while anything of that lab exists. The first build ever also runs debootstrap
(cached in /var/cache/nslab afterwards); that run is reported apart, as 'first build'.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# nslab_paths is standalone: its roots without Ansible on the path.
sys.path.insert(0, os.path.join(ROOT, "module_utils"))
from nslab_paths import DATA_ROOT, STATE_ROOT  # noqa: E402
BIN = os.path.dirname(sys.executable)
LAB = "fleetbench"
SUBNET = "10.213.254"


def run(argv):
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit("failed: %s\n%s\n%s" % (" ".join(argv), proc.stdout[-3000:], proc.stderr))
    return time.monotonic() - start, proc.stdout


def playbook(hosts, state):
    extra = {"nslab_fleet_lab": LAB, "state": state,
             "nslab_fleet_bridge_address": SUBNET + ".1/24",
             "nslab_fleet_hosts": [{"name": "b%d" % i, "address": "%s.%d" % (SUBNET, 10 + i)}
                                   for i in range(1, hosts + 1)]}
    return run([os.path.join(BIN, "ansible-playbook"), "fleet.yml", "-e", json.dumps(extra)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=3)
    args = parser.parse_args()
    if any(os.path.exists(os.path.join(root, LAB)) for root in (DATA_ROOT, STATE_ROOT)):
        sys.exit("lab %s exists; remove it first: ansible-playbook fleet.yml -e "
                 "nslab_fleet_lab=%s -e state=absent" % (LAB, LAB))
    inventory = os.path.join(DATA_ROOT, LAB, "ssh", "inventory.yml")
    times = {"build": [], "rerun": [], "ssh ping": [], "teardown": []}
    for index in range(args.repeats):
        seconds, out = playbook(args.hosts, "present")
        times["build"].append(seconds)
        times["rerun"].append(playbook(args.hosts, "present")[0])
        seconds, out = run([os.path.join(BIN, "ansible"), "-i", inventory, LAB, "-m", "ping"])
        assert out.count("pong") == args.hosts, out
        times["ssh ping"].append(seconds)
        times["teardown"].append(playbook(args.hosts, "absent")[0])
        print("run %d: %s" % (index + 1, ", ".join("%s %.1f s" % (k, v[-1])
                                                   for k, v in times.items())),
              file=sys.stderr)
    print("| %d hosts | median of %d | min | max |" % (args.hosts, args.repeats))
    print("|---|---:|---:|---:|")
    for key, values in times.items():
        print("| %s | %.1f s | %.1f s | %.1f s |" % (key, statistics.median(values),
                                                     min(values), max(values)))


if __name__ == "__main__":
    main()

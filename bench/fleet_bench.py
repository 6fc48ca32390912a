#!/usr/bin/env python3
"""The fleet's costs: build (from the cached debootstrap tarball), no-change rerun, an
Ansible ping of every host over SSH, teardown. Medians of --repeats runs; a script to run
by hand as root, not a test.

    .venv/bin/python bench/fleet_bench.py [--repeats 3] [--hosts 3]
    .venv/bin/python bench/fleet_bench.py --hosts 6 --lab-nodes 2 [--repeats 3]

It builds the lab 'fleetbench' on 10.213.254.0/24 (a range nothing else uses) and refuses
to start while anything of that lab exists. With --lab-nodes K it builds the fleet once and
times, instead, a lab of K busybox nodes per host on one network stretched over every host
(lab 'fbwide', 10.213.252.0/24): lab.yml's build, no-change rerun and destroy over the
fleet's inventory, with the seconds of its tasks that read every host (issue #12: how the
controller's side grows with the number of hosts). The first build ever also runs debootstrap
(cached in /var/cache/nslab afterwards); that run is reported apart, as 'first build'.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# nslab_paths is standalone: its roots without Ansible on the path.
sys.path.insert(0, os.path.join(ROOT, "module_utils"))
from nslab_paths import DATA_ROOT, STATE_ROOT  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab_bench import junit_tasks  # noqa: E402
BIN = os.path.dirname(sys.executable)
LAB = "fleetbench"
SUBNET = "10.213.254"
WIDE_LAB = "fbwide"
WIDE_SUBNET = "10.213.252"


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


def lab_topology(hosts, per_host, path):
    lines = ["lab: %s" % WIDE_LAB, "defaults:", "  jail: {source: busybox}",
             "  limits: {memory: 64M, pids: 64}", "networks:",
             "  lan: {subnet: %s.0/24}" % WIDE_SUBNET, "nodes:"]
    lines += ["  w%d: {networks: [lan]}" % i for i in range(1, hosts * per_host + 1)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def lab_playbook(inventory, topology, state, junit_dir):
    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.junit",
               JUNIT_OUTPUT_DIR=junit_dir, JUNIT_TASK_CLASS="true")
    start = time.monotonic()
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", inventory, "lab.yml",
                           "-e", "lab=" + topology, "-e", "state=" + state],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("lab.yml %s failed:\n%s" % (state, proc.stdout[-3000:]))
    tasks = junit_tasks(junit_dir, merge=max)       # the hosts run a task in parallel
    shutil.rmtree(junit_dir, ignore_errors=True)
    return seconds, dict((k, v) for k, v in tasks.items() if " Read " in k or "One view" in k)


def bench_lab(args, inventory):
    """lab.yml over the fleet: build, rerun, destroy; medians, and the read tasks' times."""
    tmp = tempfile.mkdtemp()
    topology = os.path.join(tmp, "wide.yml")
    lab_topology(args.hosts, args.lab_nodes, topology)
    times, reads = {"lab build": [], "lab rerun": [], "lab destroy": []}, {}
    for index in range(args.repeats):
        for key, state in (("lab build", "present"), ("lab rerun", "present"),
                           ("lab destroy", "absent")):
            seconds, tasks = lab_playbook(inventory, topology, state, os.path.join(tmp, "j"))
            times[key].append(seconds)
            for task, value in tasks.items():
                reads.setdefault((key, task), []).append(value)
        print("run %d: %s" % (index + 1, ", ".join("%s %.1f s" % (k, v[-1])
                                                   for k, v in times.items())),
              file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    return times, reads


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--lab-nodes", type=int, default=0,
                        help="time a lab of this many nodes per host over the fleet instead")
    args = parser.parse_args()
    if any(os.path.exists(os.path.join(root, LAB)) for root in (DATA_ROOT, STATE_ROOT)):
        sys.exit("lab %s exists; remove it first: ansible-playbook fleet.yml -e "
                 "nslab_fleet_lab=%s -e state=absent" % (LAB, LAB))
    inventory = os.path.join(DATA_ROOT, LAB, "ssh", "inventory.yml")
    if args.lab_nodes:
        playbook(args.hosts, "present")
        try:
            times, reads = bench_lab(args, inventory)
        finally:
            playbook(args.hosts, "absent")
        print("| %d hosts, %d nodes | median of %d | min | max |" % (
            args.hosts, args.hosts * args.lab_nodes, args.repeats))
        print("|---|---:|---:|---:|")
        for key, values in list(times.items()) + [
                ("%s: %s" % k, v) for k, v in sorted(reads.items())]:
            print("| %s | %.2f s | %.2f s | %.2f s |" % (
                key, statistics.median(values), min(values), max(values)))
        return
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

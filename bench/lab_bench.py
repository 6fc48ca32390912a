#!/usr/bin/env python3
"""Build the same lab three ways and compare: one bridge and N busybox nodes.

    .venv/bin/python bench/lab_bench.py [--sizes 100,500] [--repeats 3] [--skip-mininet]

For each N and each repeat, in an order that rotates with the repeat:
  floor    bench/floor.py run N             (the kernel work in a plain script)
  nslab    ansible-playbook lab.yml -e lab=<N-node topology>: build, no-change rerun
           (its PLAY RECAP must say changed=0), then -e state=absent
  mininet  /usr/bin/python3 bench/mininet_run.py N   (LinuxBridge, no controller)

Prints a Markdown table of medians and of ratios to the floor's median measured in the same
run, and writes it to bench/results/latest.md (raw numbers: bench/results/latest.json).
Nothing of the bench may be left between phases: the run stops with the list of what is.
This is a benchmark to run by hand, not a test; figures from a busy machine are noisy,
which is why only medians and same-run ratios are reported.
"""

import argparse
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# nslab_paths is standalone: its roots without Ansible on the path.
sys.path.insert(0, os.path.join(REPO, "module_utils"))
from nslab_paths import CGROUP_ROOT, CGROUP_SUBTREE, DATA_ROOT, STATE_ROOT  # noqa: E402
PLAYBOOK = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
MININET_PYTHON = "/usr/bin/python3"
LAB = "bench"
TOOLS = ("floor", "nslab", "mininet")
PHASES = ("build", "rerun", "destroy")

LINK_PATTERNS = [re.compile(p) for p in (r"^nsbf", r"^bench-", r"^s1$", r"^s1-eth\d+$",
                                         r"^h\d+-eth\d+$")]


class BenchError(Exception):
    pass


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# --- leftovers ----------------------------------------------------------------------------
def leftovers():
    """Everything any of the three builders makes that still exists."""
    found = []
    out = subprocess.run(["ip", "-br", "link"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    for line in out.splitlines():
        name = line.split()[0].split("@")[0] if line.split() else ""
        if any(p.match(name) for p in LINK_PATTERNS):
            found.append("link " + name)
    out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith("nsbf-") or name.startswith(LAB + "-"):
            found.append("netns " + name)
    for path in (os.path.join(STATE_ROOT, LAB), os.path.join(DATA_ROOT, LAB),
                 "/var/lib/nslab-bench/floor"):
        if os.path.lexists(path):
            found.append("path " + path)
    for path in glob.glob(os.path.join(CGROUP_ROOT, "*", CGROUP_SUBTREE, LAB + "*")) + \
            glob.glob(os.path.join(CGROUP_ROOT, CGROUP_SUBTREE, LAB + "*")):
        if os.path.isdir(path):
            found.append("cgroup " + path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4]
            if target.startswith((os.path.join(DATA_ROOT, LAB, ""),
                                  os.path.join(STATE_ROOT, LAB, ""),
                                  "/var/lib/nslab-bench/floor")):
                found.append("mount " + target)
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(b"mininet:") for a in args):
            found.append("process %s (Mininet shell)" % cmdline.split("/")[2])
    return found


def assert_clean(where):
    found = leftovers()
    if found:
        raise BenchError("leftovers %s (%d): %s%s" % (
            where, len(found), ", ".join(found[:15]), " ..." if len(found) > 15 else ""))


# --- the three builders -------------------------------------------------------------------
def run_json(argv, timeout):
    t0 = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise BenchError("%s exited %d:\n%s%s" % (" ".join(argv), proc.returncode,
                                                  proc.stdout[-2000:], proc.stderr[-3000:]))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def bench_floor(n):
    r = run_json([sys.executable, os.path.join(HERE, "floor.py"), "run", str(n)], 1800)
    return {"build": r["build"], "destroy": r["destroy"], "phases": r.get("phases", {}),
            "wall": r["wall"]}


def bench_mininet(n):
    r = run_json([MININET_PYTHON, os.path.join(HERE, "mininet_run.py"), str(n)], 1800)
    if r.get("sysctls_changed"):
        raise BenchError("Mininet changed host sysctls: %s" % r["sysctls_changed"])
    return {"build": r["build"], "destroy": r["destroy"], "stp_state": r.get("stp_state"),
            "wall": r["wall"]}


PER_BRIDGE = 1000


def network_of(i):
    """Node i's network: lan (nodes 1-1000, bridge bench-lan), then lan2, lan3, ..."""
    s = (i - 1) // PER_BRIDGE
    return "lan" if s == 0 else "lan%d" % (s + 1)


def topology(n, path):
    lines = ["# nslab benchmark topology, written by bench/lab_bench.py",
             "lab: %s" % LAB,
             "defaults:",
             "  jail: {source: busybox}",
             "  limits: {memory: 64M, cpus: 0.5, pids: 64}",
             "networks:"]
    # A Linux bridge takes at most 1,024 ports: one network per 1,000 nodes.
    lines += ["  %s: {subnet: 10.253.%d.0/20}" % (network_of(s * PER_BRIDGE + 1), 16 * s)
              for s in range((n - 1) // PER_BRIDGE + 1)]
    lines += ["nodes:"]
    lines += ["  n%d: {networks: [%s]}" % (i, network_of(i)) for i in range(1, n + 1)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def junit_tasks(directory, merge=lambda a, b: a + b):
    """Task name -> seconds, from the ansible.builtin.junit callback's report. A task that
    ran on several hosts is one entry per host there: ``merge`` adds them up by default
    (one host: its runs of an included task), ``max`` gives the longest (hosts in parallel)."""
    tasks = {}
    for path in glob.glob(os.path.join(directory, "*.xml")):
        for case in ET.parse(path).iter("testcase"):
            name = case.get("name", "")
            name = re.sub(r"^\[[^]]*\] [^:]*: ", "", name)     # "[localhost] Play: "
            name = name.split(" _raw_params=")[0]
            name = re.split(r" [a-z_]+=", name, maxsplit=1)[0]   # drop the args
            if re.match(r"(nslab\.lab\.)?nslab_(lab|network|jail|node) : Validating", name):
                name = name.split(" - ")[0]
            seconds = float(case.get("time", 0))
            tasks[name] = merge(tasks[name], seconds) if name in tasks else seconds
            # nslab_nodes runs several parts in one task: each part's own time too.
            for part, took in node_parts(case).items():
                key = "%s / %s" % (name, part)
                tasks[key] = merge(tasks[key], took) if key in tasks else took
    return tasks


def node_parts(case):
    """{part: seconds} of an nslab_nodes result in a junit test case's output, else {}."""
    out = case.findtext("system-out") or ""
    if '"parts"' not in out:
        return {}
    try:
        parts = json.loads(out).get("parts")
    except ValueError:
        return {}
    if not isinstance(parts, dict):
        return {}
    return dict((p, v["seconds"]) for p, v in parts.items()
                if isinstance(v, dict) and "seconds" in v)


def playbook(topo, extra, tmp, tag):
    jdir = os.path.join(tmp, "junit-" + tag)
    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.junit",
               JUNIT_OUTPUT_DIR=jdir, JUNIT_TASK_CLASS="true", ANSIBLE_NOCOLOR="1")
    argv = [PLAYBOOK, "lab.yml", "-e", "lab=" + topo] + extra
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=3600)
    wall = time.monotonic() - t0
    recap = re.search(r"^\S+\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                      proc.stdout, re.M)
    if proc.returncode != 0 or not recap:
        raise BenchError("%s failed (%d):\n%s" % (" ".join(argv), proc.returncode,
                                                  proc.stdout[-4000:]))
    tasks = junit_tasks(jdir)
    shutil.rmtree(jdir, ignore_errors=True)
    return wall, int(recap.group(2)), tasks


def pss_kib(pid):
    """Proportional set size of ``pid`` in KiB (its shared pages divided among the processes
    that map them), from /proc/<pid>/smaps_rollup; None if it is gone."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


def nslab_memory(lab=LAB, state_root=STATE_ROOT):
    """PSS of what nslab keeps running per container of ``lab``: the recorded init of each
    container, plus any other process labelled ``nslab:<lab>:<name>`` in its command line
    (the container's own command is neither). A process labelled for the lab but for no
    container of it (``nslab:<lab>:``, a shared helper) is spread evenly over them all.
    Returns {"per_container_kib": {name: KiB}, "shared_kib": KiB, "processes": count}."""
    records = {}
    for path in glob.glob(os.path.join(state_root, lab, "containers", "*.json")):
        with open(path) as f:
            record = json.load(f)
        if record.get("running"):
            records[record["name"]] = record["pid"]
    counted = set(records.values())
    per = {name: pss_kib(pid) or 0 for name, pid in records.items()}
    shared, prefix = 0, ("nslab:%s:" % lab).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in counted:
            continue
        labels = [a for a in cmdline(int(entry)) if a.startswith(prefix)]
        if not labels:
            continue
        name = labels[0][len(prefix):].decode("utf-8", "replace").rstrip()
        kib = pss_kib(int(entry)) or 0
        counted.add(int(entry))
        if name in per:
            per[name] += kib
        else:
            shared += kib
    if per and shared:
        for name in per:
            per[name] += shared / len(per)
    return {"per_container_kib": per, "shared_kib": shared, "processes": len(counted)}


WAVE = 500


def unreached(n):
    """The nodes (of n1..nN) whose net namespace does not reach their bridge's address
    (10.253.(16 s).1 for network s): one ping each from inside, 16 at a time (not timed).

    In waves of WAVE nodes, after each of which the lab's bridges forget their neighbours:
    the host's neighbour table holds 1,024 entries by default (net.ipv4.neigh.default.
    gc_thresh3), and the host does not answer an ARP request it cannot make an entry for,
    so 2,000 nodes cannot all talk to it within the same half minute. The benchmark does
    not raise the host's limits (Mininet's fixLimits would); a failed node gets one more
    try after the waves."""
    bridges = ["%s-%s" % (LAB, network_of(s * PER_BRIDGE + 1))
               for s in range((n - 1) // PER_BRIDGE + 1)]

    def forget():
        for bridge in bridges:
            subprocess.run(["ip", "neigh", "flush", "dev", bridge], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def reaches(i):
        gateway = "10.253.%d.1" % (16 * ((i - 1) // PER_BRIDGE))
        proc = subprocess.run(["nsenter", "--net=/run/netns/%s-n%d" % (LAB, i), "ping", "-c", "1",
                               "-W", "2", gateway], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        return proc.returncode == 0
    failed = []
    with ThreadPoolExecutor(max_workers=16) as pool:
        for start in range(1, n + 1, WAVE):
            wave = list(range(start, min(start + WAVE, n + 1)))
            failed += [i for i, good in zip(wave, pool.map(reaches, wave)) if not good]
            forget()
        failed = [i for i, good in zip(failed, pool.map(reaches, failed)) if not good]
    return ["n%d" % i for i in failed]


def bench_nslab(n, tmp):
    topo = os.path.join(tmp, "bench-%d.yml" % n)
    topology(n, topo)
    out = {"tasks": {}}
    built = True                               # until state=absent has run: a failed
    try:                                       # build may leave some of the lab behind
        out["build"], changed, out["tasks"]["build"] = playbook(topo, [], tmp, "build")
        if changed == 0:
            raise BenchError("nslab build reported changed=0")
        memory = nslab_memory()
        per = list(memory["per_container_kib"].values())
        if len(per) != n:
            raise BenchError("nslab build: %d running containers recorded, expected %d"
                             % (len(per), n))
        out["memory"] = {"pss_median_kib": med(per), "pss_max_kib": max(per),
                         "pss_total_kib": sum(per), "shared_kib": memory["shared_kib"],
                         "processes": memory["processes"]}
        missing = unreached(n)
        if missing:
            raise BenchError("nslab build: %d of %d nodes do not reach the bridge: %s" % (
                len(missing), n, ", ".join(missing[:10])))
        out["reached"] = n
        out["rerun"], changed, out["tasks"]["rerun"] = playbook(topo, [], tmp, "rerun")
        out["rerun_changed"] = changed
        if changed != 0:
            raise BenchError("nslab no-change rerun reported changed=%d, expected 0" % changed)
        out["destroy"], _, out["tasks"]["destroy"] = playbook(
            topo, ["-e", "state=absent"], tmp, "destroy")
        built = False
    finally:
        if built:                              # a failure on the way: take the lab down
            log("nslab: removing the half-measured lab")
            subprocess.run([PLAYBOOK, "lab.yml", "-e", "lab=" + topo, "-e", "state=absent"],
                           cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


# --- report -------------------------------------------------------------------------------
def med(values):
    return statistics.median(values) if values else None


def fmt_time(seconds, n):
    if seconds is None:
        return "—"
    return "%.2f s (%.1f ms/node)" % (seconds, 1000.0 * seconds / n)


def fmt_ratio(value, base):
    if value is None or not base:
        return "—"
    return "×%.1f" % (value / base)


def summarize(runs, sizes, tools):
    summary = {}
    for n in sizes:
        for tool in tools:
            rows = [r for r in runs if r["n"] == n and r["tool"] == tool]
            summary["%s/%d" % (tool, n)] = {
                phase: med([r[phase] for r in rows if phase in r]) for phase in PHASES}
            summary["%s/%d" % (tool, n)]["repeats"] = len(rows)
    return summary


def markdown(runs, summary, sizes, tools, meta):
    lines = ["## nslab benchmark: one bridge, N busybox nodes (%s)" % meta["date"], "",
             "Medians of %s repeat(s) per tool and size, run interleaved on one machine "
             "(%s cores, load %s at start, %s at end). "
             "\"× floor\" is the tool's median over the raw floor's median from the same run; "
             "the rerun is compared with the floor's build (the floor has no rerun)." % (
                 meta["repeats"], meta["cores"], meta["load_start"], meta["load_end"]), "",
             "| N | tool | build | × floor | no-change rerun | × floor build | destroy | × floor |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        floor = summary["floor/%d" % n]
        for tool in tools:
            s = summary["%s/%d" % (tool, n)]
            lines.append("| %d | %s | %s | %s | %s | %s | %s | %s |" % (
                n, tool, fmt_time(s["build"], n), fmt_ratio(s["build"], floor["build"]),
                fmt_time(s["rerun"], n), fmt_ratio(s["rerun"], floor["build"]),
                fmt_time(s["destroy"], n), fmt_ratio(s["destroy"], floor["destroy"])))
    # where nslab's time goes (junit callback task durations, medians)
    for n in sizes:
        nruns = [r for r in runs if r["n"] == n and r["tool"] == "nslab"]
        if not nruns:
            continue
        lines += ["", "nslab, N=%d: median seconds per task (tasks over 0.3 s in any phase)"
                  % n, "", "| task | build | rerun | destroy |", "|---|---:|---:|---:|"]
        names = []
        for phase in PHASES:
            for r in nruns:
                for name in r["tasks"].get(phase, {}):
                    if name not in names:
                        names.append(name)
        for name in names:
            cells = [med([r["tasks"][p][name] for r in nruns if name in r["tasks"].get(p, {})])
                     for p in PHASES]
            if max(c or 0 for c in cells) < 0.3:
                continue
            lines.append("| %s | %s |" % (name.replace("|", "/"), " | ".join(
                "—" if c is None else "%.2f" % c for c in cells)))
    memory_runs = [r for r in runs if r.get("memory")]
    if memory_runs:
        lines += ["", "nslab: idle memory per container after the build (PSS, from "
                  "/proc/<pid>/smaps_rollup, of every process nslab keeps running for the "
                  "containers: their inits; not the containers' own commands). Medians over "
                  "repeats.", "",
                  "| N | PSS per container, median | max | total | processes | reached the bridge |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for n in sizes:
            mr = [r["memory"] for r in memory_runs if r["n"] == n]
            if mr:
                reached = [r.get("reached") for r in memory_runs if r["n"] == n]
                lines.append("| %d | %.2f MiB | %.2f MiB | %.1f MiB | %d | %s |" % (
                    n, med([m["pss_median_kib"] for m in mr]) / 1024.0,
                    med([m["pss_max_kib"] for m in mr]) / 1024.0,
                    med([m["pss_total_kib"] for m in mr]) / 1024.0,
                    med([m["processes"] for m in mr]),
                    "%d of %d, every run" % (n, n) if all(x == n for x in reached) else "—"))
    floor_runs = [r for r in runs if r["tool"] == "floor"]
    if floor_runs:
        lines += ["", "floor: median seconds per build step", "",
                  "| N | " + " | ".join(floor_runs[0]["phases"]) + " |",
                  "|---:|" + "---:|" * len(floor_runs[0]["phases"])]
        for n in sizes:
            fr = [r for r in floor_runs if r["n"] == n]
            lines.append("| %d | %s |" % (n, " | ".join(
                "%.2f" % med([r["phases"][k] for r in fr]) for k in floor_runs[0]["phases"])))
    lines += ["", "Versions: %s." % meta["versions"]]
    return "\n".join(lines) + "\n"


def versions():
    def first_line(argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True).stdout.splitlines()[0].strip()
        except (OSError, IndexError):
            return "?"

    def deb(pkg):
        return first_line(["dpkg-query", "-W", "-f=${Version}", pkg])
    return "kernel %s, ansible-core %s, %s, mininet %s, busybox-static %s" % (
        platform.release(),
        first_line([PLAYBOOK, "--version"]).split("core ")[-1].rstrip("]"),
        first_line(["ip", "-V"]), deb("mininet"), deb("busybox-static"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,500",
                        help="comma-separated numbers of nodes (default 100,500)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per size (default 3)")
    parser.add_argument("--skip-mininet", action="store_true", help="floor and nslab only")
    parser.add_argument("--results", default=os.path.join(HERE, "results"),
                        help="directory for latest.md and latest.json (default bench/results)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    if os.geteuid() != 0:
        sys.exit("lab_bench.py: run as root (the builders make namespaces, links, cgroups)")
    if not os.access(PLAYBOOK, os.X_OK):
        sys.exit("lab_bench.py: %s missing: run ./nslab setup" % PLAYBOOK)
    tools = [t for t in TOOLS if not (t == "mininet" and args.skip_mininet)]
    if "mininet" in tools and subprocess.run(
            [MININET_PYTHON, "-c", "import mininet.net"], stderr=subprocess.DEVNULL).returncode:
        sys.exit("lab_bench.py: Mininet is not importable by %s: apt-get install mininet "
                 "(or --skip-mininet)" % MININET_PYTHON)

    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(),
            "repeats": args.repeats, "sizes": sizes, "tools": tools,
            "load_start": "%.1f" % os.getloadavg()[0], "versions": versions()}
    runs = []
    try:
        assert_clean("before the benchmark (from an earlier, interrupted run?)")
        with tempfile.TemporaryDirectory(prefix="nslab-bench-") as tmp:
            for n in sizes:
                for rep in range(args.repeats):
                    order = tools[rep % len(tools):] + tools[:rep % len(tools)]
                    for tool in order:
                        log("N=%d repeat %d/%d: %s" % (n, rep + 1, args.repeats, tool))
                        if tool == "floor":
                            r = bench_floor(n)
                        elif tool == "nslab":
                            r = bench_nslab(n, tmp)
                        else:
                            r = bench_mininet(n)
                        r.update({"tool": tool, "n": n, "repeat": rep + 1,
                                  "load": os.getloadavg()[0]})
                        runs.append(r)
                        log("  " + ", ".join("%s %.2f s" % (p, r[p]) for p in PHASES if p in r)
                            + ("; PSS per container %.2f MiB (median)"
                               % (r["memory"]["pss_median_kib"] / 1024.0)
                               if r.get("memory") else ""))
                        assert_clean("after %s N=%d repeat %d" % (tool, n, rep + 1))
    except BenchError as e:
        sys.exit("lab_bench.py: %s\nstopped; nothing else was touched" % e)
    meta["load_end"] = "%.1f" % os.getloadavg()[0]
    summary = summarize(runs, sizes, tools)
    table = markdown(runs, summary, sizes, tools, meta)
    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, "latest.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.results, "latest.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary, "runs": runs}, f, indent=1)
    print(table)


if __name__ == "__main__":
    main()

"""A node's content and privileges from the topology file (issue #11), on busybox nodes:
a templated file with the node's own address inside it, a changed template restarting
that node only, sysctls in the node's own net namespace, exec output in the run's result
once per start, a user namespace, and bad values refused with nothing changed."""

import json
import os
import subprocess
import sys

import yaml

from helpers.ansible_runs import changed as changed_tasks, run_playbook
from helpers.kernel import sh
from helpers.lab import BUSYBOX_SKIP
from helpers.paths import ROOT

pytestmark = BUSYBOX_SKIP
# What ./nslab exec runs, without ./nslab's own setup of a .venv beside it.
NSLAB_EXEC = [sys.executable, str(ROOT / "cli" / "nslab_exec.py")]
TEMPLATE = ("# {{ node.name }} of {{ node.lab }}\n"
            "me {{ node.addresses.lan }}\n"
            "{% for n in node.neighbours %}neighbour {{ n.name }} {{ n.address }} via "
            "{{ n.interface }}\n{% endfor %}")


def topology(lab):
    return {
        "lab": lab.name,
        "defaults": {"jail": {"source": "busybox"}, "limits": {"memory": "64M", "pids": 64}},
        "networks": {"lan": {"subnet": "10.213.180.0/24"}},
        "nodes": {
            "r1": {"networks": {"lan": "10.213.180.12"},
                   "files": [{"path": "/etc/node.conf", "template": "templates/node.conf.j2",
                              "mode": "0640"},
                             {"path": "/etc/motd", "content": "hello\n"}],
                   "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4.ip_default_ttl": 33,
                               "net.ipv4.conf.eth1.rp_filter": 2},
                   "exec": ["cat /etc/node.conf", "echo to-stderr >&2"]},
            "r2": {"networks": {"lan": "10.213.180.13"}},
            "h1": {"networks": ["lan"], "userns": True},
        },
        "links": [{"endpoints": ["r1:eth1", "r2:eth1"], "subnet": "10.213.181.0/30"}],
    }


def write(tmp_path, spec, template=TEMPLATE):
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "node.conf.j2").write_text(template)
    path = tmp_path / "lab.yml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def build(path, state="present", check=False):
    return run_playbook("lab.yml", {"lab": path, "state": state}, check=check,
                        json_results=True)


def changed(results):
    return changed_tasks(results, whole=True)


def failed(results):
    return [r for r in results if r["_status"] == "failed"]


def pids(lab):
    found = {}
    for name in ("r1", "r2", "h1"):
        with open("/run/nslab/%s/containers/%s.json" % (lab.name, name)) as handle:
            found[name] = json.load(handle)["pid"]
    return found


def door(lab, node, command):
    """``./nslab exec``: through nslab's door, with the node's own privileges."""
    return subprocess.run(NSLAB_EXEC + [lab.name, node, "--", "sh", "-c", command],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def sysctl(lab, node, name):
    return sh("nsenter", "--net=/run/netns/%s-%s" % (lab.name, node), "cat",
              "/proc/sys/" + name.replace(".", "/")).stdout.strip()


def test_files_sysctls_exec_and_userns_converge_and_a_template_change_restarts_one_node(
        lab, tmp_path):
    path = write(tmp_path, topology(lab))
    host_ttl = open("/proc/sys/net/ipv4/ip_default_ttl").read()
    # Check mode first: templates render, sysctls and exec are reported, nothing is made.
    dry = build(path, check=True)
    assert not failed(dry), failed(dry)
    assert changed(dry)["The nodes' exec commands, once per start, through nslab's door"][
        "actions"] == ["run 'cat /etc/node.conf' in container 'r1'",
                       "run 'echo to-stderr >&2' in container 'r1'"]
    assert "sysctls" in changed(dry)
    assert not os.path.exists("/run/netns/%s-r1" % lab.name)
    assert not os.path.exists("/run/nslab/%s/containers" % lab.name)
    first = build(path)
    assert not failed(first), failed(first)
    done = changed(first)
    assert "sysctls" in done
    exec_result = done["The nodes' exec commands, once per start, through nslab's door"]
    runs = exec_result["results"]
    assert [(r["container"], r["command"], r["rc"]) for r in runs] == [
        ("r1", "cat /etc/node.conf", 0), ("r1", "echo to-stderr >&2", 0)]
    assert "me 10.213.180.12\n" in runs[0]["stdout"]
    assert runs[1]["stderr"] == "to-stderr\n"

    # The rendered file inside r1, through the door: its own address, its neighbours.
    inside = door(lab, "r1", "cat /etc/node.conf; stat -c %a /etc/node.conf; cat /etc/motd")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.startswith("# r1 of %s\nme 10.213.180.12\n" % lab.name)
    assert "neighbour r2 10.213.180.13 via eth0\n" in inside.stdout
    assert "neighbour r2 10.213.181.2 via eth1\n" in inside.stdout
    assert inside.stdout.endswith("640\nhello\n"), inside.stdout
    # /etc/hosts is still nslab's, with every node.
    assert "10.213.180.13\tr2" in door(lab, "r1", "cat /etc/hosts").stdout

    # Sysctls in r1's net namespace only; the host and r2 keep theirs.
    assert sysctl(lab, "r1", "net.ipv4.ip_forward") == "1"
    assert sysctl(lab, "r1", "net.ipv4.conf.eth1.rp_filter") == "2"
    assert sysctl(lab, "r1", "net.ipv4.ip_default_ttl") == "33"
    assert sysctl(lab, "r2", "net.ipv4.ip_default_ttl") == "64"
    assert open("/proc/sys/net/ipv4/ip_default_ttl").read() == host_ttl

    # h1 has a user namespace of its own; r1 shares the host's.
    before = pids(lab)
    host_userns = os.stat("/proc/self/ns/user").st_ino
    assert os.stat("/proc/%d/ns/user" % before["h1"]).st_ino != host_userns
    assert os.stat("/proc/%d/ns/user" % before["r1"]).st_ino == host_userns

    # A rerun changes nothing: no sysctl written, no exec run, no restart.
    again = build(path)
    assert not failed(again) and changed(again) == {}, changed(again)
    assert pids(lab) == before

    # A changed template restarts r1 alone, and its exec runs again for the new start.
    write(tmp_path, topology(lab), TEMPLATE + "extra line\n")
    dry = build(path, check=True)
    assert not failed(dry) and "restart container 'r1' (file_digests changed)" in changed(
        dry)["containers"]["actions"], changed(dry)
    assert pids(lab) == before
    third = build(path)
    assert not failed(third), failed(third)
    done = changed(third)
    assert "restart container 'r1' (file_digests changed)" in done["containers"]["actions"]
    after = pids(lab)
    assert after["r1"] != before["r1"]
    assert (after["r2"], after["h1"]) == (before["r2"], before["h1"])
    runs = done["The nodes' exec commands, once per start, through nslab's door"]["results"]
    assert runs[0]["stdout"].endswith("extra line\n")
    assert door(lab, "r1", "tail -n 1 /etc/node.conf").stdout == "extra line\n"

    gone = build(path, "absent")
    assert not failed(gone), failed(gone)
    assert not os.path.exists("/run/nslab/%s/containers" % lab.name)


def test_bad_values_are_all_refused_and_nothing_changes(lab, tmp_path):
    spec = topology(lab)
    spec["nodes"]["r1"]["files"] = [
        {"path": "etc/x", "content": "a"},
        {"path": "/etc/y", "content": "a", "template": "templates/node.conf.j2"},
        {"path": "/etc/../../z", "content": "a", "mode": "999"}]
    spec["nodes"]["r1"]["sysctls"] = {"kernel.panic": 1}
    spec["nodes"]["r2"]["binds"] = [{"path": "/data", "source": "/srv/../../etc"}]
    results = build(write(tmp_path, spec))
    failure = failed(results)
    assert len(failure) == 1 and "Validate" in failure[0]["_task"], failure
    problems = failure[0]["problems"]
    assert sorted(p.split(": ")[0] for p in problems) == sorted([
        "nodes.r1.files[0].path", "nodes.r1.files[1]", "nodes.r1.files[2].path",
        "nodes.r1.files[2].mode", "nodes.r1.sysctls.kernel.panic",
        "nodes.r2.binds[0].source"]), problems
    assert not any(r.get("changed") for r in results)
    assert not os.path.exists("/run/netns/%s-r1" % lab.name)


def test_a_missing_template_is_refused_before_anything_changes(lab, tmp_path):
    spec = topology(lab)
    spec["nodes"]["r1"]["files"][0]["template"] = "templates/missing.j2"
    spec["nodes"]["r2"]["files"] = [{"path": "/etc/a", "template": "broken.j2"}]
    path = write(tmp_path, spec)
    (tmp_path / "broken.j2").write_text("{{ node.no_such_key.deeper }}")
    results = build(path)
    failure = failed(results)
    assert len(failure) == 1, failure
    message = failure[0]["msg"]
    assert "nodes.r1.files (path /etc/node.conf).template: 'templates/missing.j2' is not a " \
           "file" in message, message
    assert "nodes.r2.files (path /etc/a).template: 'broken.j2' does not render" in message
    assert not any(r.get("changed") for r in results)
    assert not os.path.exists("/run/netns/%s-r1" % lab.name)

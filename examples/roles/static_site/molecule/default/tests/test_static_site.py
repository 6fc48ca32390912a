"""What the role left inside each instance (an nslab container), checked from inside
through the nslab connection and from the lab host through the kernel."""

import json
import os

PAGE = "/srv/static-site/index.html"


def init_pid(host):
    """The container's init, from nslab's record (the verifier runs on the lab host)."""
    lab, name = host.ansible.get_variables()["ansible_host"].split("/")
    with open("/run/nslab/%s/containers/%s.json" % (lab, name)) as handle:
        return json.load(handle)["pid"]


def test_the_instance_is_its_own_host(host):
    name = host.ansible.get_variables()["inventory_hostname"]
    assert host.check_output("hostname") == name
    assert host.check_output("cat /proc/1/comm") == "nslab-init"     # its own pid namespace


def test_the_page_is_in_the_containers_root_only(host):
    name = host.ansible.get_variables()["inventory_hostname"]
    page = host.file(PAGE)
    assert page.user == "root" and page.mode == 0o644
    assert "<h1>It works</h1>" in page.content_string
    assert "Served by %s." % name in page.content_string
    with open("/proc/%d/root%s" % (init_pid(host), PAGE)) as handle:   # the kernel's view
        assert handle.read().rstrip("\n") == page.content_string.rstrip("\n")
    assert not os.path.exists(PAGE)                                      # not the host's


def test_the_server_runs_as_its_user_inside_the_containers_cgroup(host):
    assert host.user("static-site").shell == "/usr/sbin/nologin"
    pid = host.check_output("cat /run/static-site.pid")
    status = host.check_output("cat /proc/%s/status" % pid)
    uid = str(host.user("static-site").uid)
    assert "\nUid:\t%s\t%s\t" % (uid, uid) in status
    # (its /proc/<pid>/exe is out of reach: the container's root has no CAP_SYS_PTRACE)
    assert host.check_output("tr '\\0' ' ' < /proc/%s/cmdline" % pid).startswith(
        "/usr/bin/python3 -m http.server 8080")
    with open("/proc/%d/cgroup" % init_pid(host)) as handle:
        init_cgroups = sorted(handle.read().splitlines())
    host_pid = [p for p in children_of(init_pid(host)) if is_python_server(p)]
    assert host_pid, "no http.server under the container's init"
    with open("/proc/%d/cgroup" % host_pid[0]) as handle:
        assert sorted(handle.read().splitlines()) == init_cgroups


def children_of(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
        return [int(p) for p in handle.read().split()]


def is_python_server(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        return b"http.server" in handle.read()


def test_each_instance_serves_the_other_over_the_lab_network(host):
    name = host.ansible.get_variables()["inventory_hostname"]
    other = {"site-a": "site-b", "site-b": "site-a"}[name]
    page = host.check_output(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen("
        "'http://%s:8080/', timeout=5).read().decode())\"" % other)
    assert "Served by %s." % other in page

"""What the scenarios' testinfra tests share: the lab as nslab_info reads it from the
kernel, and commands run inside a container (through all of its init's namespaces and
its root, as its own processes see the system)."""

import json


def lab_view(host, lab):
    """The lab's objects on the instance; fails when the lab is not there at all."""
    view = host.ansible("nslab_info", "lab=%s" % lab, check=False)["labs"][lab]
    assert view["namespaces"] or view["jails"] or view["bridges"], "no lab %r here" % lab
    return view


def containers(view):
    return {c["name"]: c for c in view["containers"]}


def in_container(host, container, command):
    """Run a shell command inside a running container and return testinfra's result."""
    assert container["state"] == "running", container
    return host.run("nsenter --target %d --all --root --wd -- /bin/sh -c %s"
                    % (container["pid"], _quote(command)))


def host_namespaces(host):
    """The namespaces of the verifier's own commands on the instance."""
    return {ns: host.check_output("readlink /proc/self/ns/%s" % ns)
            for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup")}


def process_namespaces(host, pid):
    return {ns: host.check_output("readlink /proc/%d/ns/%s" % (pid, ns))
            for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup")}


def cgroup_value(host, pid, controller, v1_file, v2_file):
    """A cgroupfs file of the cgroup ``pid`` is in: ``v1_file`` in the controller's own
    hierarchy, or ``v2_file`` in the unified one when the host is pure cgroup v2."""
    for line in host.file("/proc/%d/cgroup" % pid).content_string.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return host.file("/sys/fs/cgroup/%s%s/%s" % (controller, path, v1_file)
                             ).content_string.strip()
        if controllers == "" and host.file("/sys/fs/cgroup/cgroup.controllers").exists:
            return host.file("/sys/fs/cgroup%s/%s" % (path, v2_file)).content_string.strip()
    raise AssertionError("pid %d is in no %s cgroup" % (pid, controller))


def memory_limit(host, pid):
    return int(cgroup_value(host, pid, "memory", "memory.limit_in_bytes", "memory.max"))


def pids_limit(host, pid):
    return int(cgroup_value(host, pid, "pids", "pids.max", "pids.max"))


def addresses_in(host, netns):
    links = json.loads(host.check_output("ip -j -n %s address show" % netns))
    return {link["ifname"]: ["%s/%s" % (a["local"], a["prefixlen"])
                             for a in link.get("addr_info", []) if a.get("scope") == "global"]
            for link in links}


def _quote(text):
    return "'" + text.replace("'", "'\\''") + "'"

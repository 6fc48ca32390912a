"""What the scenarios' testinfra tests share: the lab as nslab_info reads it from the
kernel, and commands run inside a container (through nslab's door, as its own processes
run: its namespaces, root, cgroups, capabilities and seccomp filter)."""

import importlib.util
import json
import pathlib

_CLI = pathlib.Path(__file__).resolve().parents[2] / "cli" / "nslab_exec.py"
_SPEC = importlib.util.spec_from_file_location("nslab_exec", _CLI)
nslab_exec = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(nslab_exec)


def lab_view(host, lab):
    """The lab's objects on the instance; fails when the lab is not there at all."""
    view = host.ansible("nslab.lab.nslab_info", "lab=%s" % lab, check=False)["labs"][lab]
    assert view["namespaces"] or view["jails"] or view["bridges"], "no lab %r here" % lab
    return view


def containers(view):
    return {c["name"]: c for c in view["containers"]}


def in_container(host, container, command):
    """Run a shell command inside a running container and return testinfra's result.

    It goes through nslab's door (cli/nslab_exec.py's script, fed to the instance's
    python3): the command runs as the container's own processes do, with its capabilities,
    cgroups and seccomp filter, on whichever host testinfra reaches."""
    assert container["state"] == "running", container
    lab = container["log"].split("/")[3]          # /run/nslab/<lab>/containers/<name>.log
    script = nslab_exec.door_script(lab, container["name"], ["/bin/sh", "-c", command])
    return host.run("python3 -I -S - <<'NSLAB_DOOR'\n%s\nNSLAB_DOOR" % script)


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

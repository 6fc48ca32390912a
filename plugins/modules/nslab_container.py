#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_container
short_description: Running, isolated container processes of an nslab lab
description:
  - Starts, stops, restarts and removes containers. A container is an init process that
    outlives the module, in new C(pid), C(mnt), C(uts), C(ipc) and C(cgroup) namespaces,
    joined to a persistent net namespace made by nslab_namespace (so its veths can be wired
    before or after it starts), moved into its cgroups (nslab_cgroup) before anything runs,
    with a jail (nslab_jail) as its root.
  - The root is switched with C(pivot_root) inside the new mount namespace and the old root
    is detached, so no path leads back to the host's files (a plain chroot can be escaped
    by a root process). C(/proc) is mounted for its pid namespace with C(/proc/sys)
    read-only, C(/sys) is read-only, C(/dev) is a small tmpfs with null, zero, full, random,
    urandom, tty, a private devpts and shm, and device nodes on the root do not work.
  - Security by default; the bounding, effective and permitted capability sets are cut to a
    small list (Docker's default set without C(MKNOD); see O(cap_add), O(cap_drop)), and
    no_new_privs is set, so no setuid binary gives any back. Without C(SYS_ADMIN) a
    container cannot mount anything, so its cgroup limits stay out of reach.
  - PID 1 inside is nslab's init, a small Python process; it reaps every zombie, forwards
    SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to O(command), and exits with the
    command's status when it ends, which ends the container. Without a command the init
    idles until stopped. Stopping sends SIGTERM, then SIGKILL after O(stop_timeout).
  - The init reports the container started only once O(command) has been executed. A
    command that cannot run (missing, not executable, a O(workdir) that does not exist) fails
    the task with the container's name and the reason; what was started for it is removed,
    and a rerun fails the same way.
  - The init's pid, start time and pid namespace are recorded in
    C(/run/nslab/<lab>/containers/<name>.json); a recorded pid is trusted only while all three
    match. A container whose init died is started again by the next run (a change). A
    running container whose configuration differs from the request is restarted, and so is
    one whose init is cut off from its lab - its net namespace is not the one at the
    O(netns)'s path (deleted and made again), it is no longer in its O(cgroup) (moved out,
    the cgroup removed and made again) or its root is not the jail's root (unmounted and
    mounted again) - with the reason in RV(actions).
  - Without its record (C(/run/nslab/<lab>) lost while the lab runs), an init of the container
    is found by the label C(nslab:<lab>:<name>) in its command line, and taken only if it is
    pid 1 of a pid namespace right below the host's, in O(netns) and in the cgroup
    C(nslab/<lab>/<cgroup>) of every hierarchy that has it (what only root can arrange). It is
    stopped (a change); a started container is then started again. Any other process with
    that label is left alone.
  - O(state=absent) stops the container and removes its record, logs and files. Its namespaces,
    jail, cgroup and veths belong to their own modules (the nslab_node role removes them
    all, in order).
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  name:
    description: Container name. Mutually exclusive with O(containers).
    type: str
  jail:
    description:
      - Jail (made and mounted by nslab_jail for this lab) whose root becomes the
        container's C(/). Mutually exclusive with O(rootfs); one of them is needed to start
        a container.
    type: str
  rootfs:
    description:
      - Directory that becomes the container's C(/), for a root made some other way. Never
        the host's C(/).
    type: path
  netns:
    description: Net namespace (made by nslab_namespace for this lab) the container joins.
      Without it the container gets a new, empty one.
    type: str
  hostname:
    description: Hostname inside. Defaults to the container name.
    type: str
  command:
    description: Command run by the init, as an argv list resolved with the container's
      C(PATH). Without it the init idles.
    type: list
    elements: str
    default: []
  env:
    description:
      - Environment of the command, added to C(PATH), C(HOME), C(HOSTNAME). Names are
        letters, digits and C(_), not starting with a digit; values have no NUL byte.
    type: dict
    default: {}
  workdir:
    description: Working directory of the command.
    type: str
    default: /
  cap_add:
    description: Capabilities to keep besides the default set (names like C(NET_ADMIN)).
    type: list
    elements: str
    default: []
  cap_drop:
    description: Capabilities to drop from the default set.
    type: list
    elements: str
    default: []
  cgroup:
    description: Cgroup (made by nslab_cgroup, C(nslab/<lab>/<cgroup>)) the init is moved
      into before the command runs, in every hierarchy where it exists.
    type: str
  files:
    description:
      - Files put into the container, as absolute path to content (at most 1 MiB each), for
        example C(/etc/hosts). As Docker does for C(/etc/hosts), nslab keeps each file on
        the host, in C(/run/nslab/<lab>/containers/<name>.files/) (a 0700 directory), and
        the init binds it read-only onto its path before the command runs; a target that is
        missing or not a regular file is replaced, inside the root, without following any
        link. A content change rewrites nslab's copy in place - the container sees it at once,
        without a restart; a change of which paths are listed restarts the container. The
        container's own root is never read or written by the module, so nothing a container
        does to its files can redirect, block or bloat the host's work.
      - A value is the content (mode 0644), or C({content, mode, restart}) - C(mode) the
        permission bits as an octal string (default C("0644"); with O(userns) the container's
        root is not the file's owner), C(restart=true) a change of its content or mode
        restarts the container, for a daemon that reads its configuration at start (the
        topology's C(files)).
      - With O(containers), the top-level O(files) go to every container of the list,
        under its own (a path a container lists itself keeps its own content), so a file
        they all get, like C(/etc/hosts), is in the task's arguments once, not once per
        container.
    type: dict
    default: {}
  stop_timeout:
    description: Seconds between SIGTERM and SIGKILL when stopping.
    type: int
    default: 10
  log_max_size:
    description:
      - Size at which the container's log C(/run/nslab/<lab>/containers/<name>.log) (its
        command's stdout and stderr; mode 0600, on a tmpfs, so host RAM) is rotated into
        C(<name>.log.1), replacing the previous one - at most twice this size per container.
        Bytes, or a number with K, M, G (powers of 1024); at least 4096. PID 1 relays the
        output from a pipe (no extra process). A change restarts the container.
    type: raw
    default: 1M
  seccomp:
    description:
      - V(default) filters the system calls of every process of the container (its init,
        its command, whatever enters through the nslab connection plugin) with nslab's
        default seccomp filter (module_utils C(nslab_seccomp), modelled on Docker's default
        profile) - among others no new namespaces and no mounts without C(SYS_ADMIN) (a
        user namespace would give every capability back inside), no kernel keyrings, no
        kexec or module loading, no C(bpf)/C(perf_event_open) without their capabilities.
      - V(unconfined) runs it without a filter. A O(privileged) container never has one.
        A change restarts the container.
    type: str
    choices: [default, unconfined]
    default: default
  userns:
    description:
      - Run the container in its own user namespace, as an unprivileged container. Its ids
        0-65535 are the host's O(userns_base) and up, so its root is an ordinary user of
        the host, and its capabilities hold only inside its own namespaces.
      - The jail's files stay owned by the host's root, which the container sees as
        C(nobody) - they are read-only to it, except world-writable directories like
        C(/tmp). Its C(/dev) nodes are bind-mounted from the host and its C(/sys) is an
        empty read-only tmpfs, since a user namespace may neither mknod nor mount sysfs
        for a net namespace it does not own.
    type: bool
    default: false
  userns_base:
    description: First host id that the container's id 0 maps to, with O(userns=true).
    type: int
    default: 100000
  privileged:
    description:
      - A system container, for a fleet host or a lab inside a lab. It is B(not a security
        boundary) - it keeps every capability (less O(cap_drop)), no_new_privs is not set,
        and its root can reach the host (load modules, open raw devices, mount anything);
        give it only to what you would give the host's root.
      - Its cgroup hierarchies are mounted read-write at the host's mount points under
        C(/sys/fs/cgroup) (a read-only tmpfs holds them on v1 and hybrid hosts) inside its
        cgroup namespace, so its own cgroup is their root - an nslab inside sees its own
        subtree, and what it makes there is below C(nslab/<lab>/<cgroup>) on the host.
        Those cgroups are removed (once empty) when the container stops. C(/proc/sys/net),
        its own net namespace's settings, is writable; the rest of C(/proc/sys) and C(/sys)
        stay read-only.
      - Nested namespaces, veths, bridges, overlay mounts and cgroups then work inside; an
        overlay jail root cannot hold another overlay's upper layer, so give such a
        container a bind for C(/var/lib/nslab) (O(binds)).
    type: bool
    default: false
  binds:
    description:
      - Host directories bind-mounted into the container's root (not recursively; device
        nodes on them do not work), made before its command runs. A change restarts the
        container.
      - Without O(binds[].source), nslab owns the directory
        C(/var/lib/nslab/<lab>/binds/<name>/<path>) - made at start, kept while the
        container exists (stopped or restarted), deleted with it at O(state=absent).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path inside the container; made if missing (never through a
          symlink). Not C(/), nor under C(/proc), C(/sys) or C(/dev), which the init mounts.
        type: str
        required: true
      source:
        description: An existing host directory to bind instead of nslab's own; never the
          host's C(/), nor under C(/proc), C(/sys), C(/dev) or nslab's state C(/run/nslab).
          It must exist only to start the container; in check mode a missing one is a
          warning, as an earlier task may make it.
        type: path
      readonly:
        description: Mount it read-only inside.
        type: bool
        default: false
  state:
    description: V(started), V(stopped), V(restarted) (always restarts) or V(absent). The
      default for items of O(containers).
    type: str
    choices: [started, stopped, restarted, absent]
    default: started
  containers:
    description: Several containers converged at once. Each item takes the options above.
    type: list
    elements: dict
    suboptions:
      name:
        description: Container name.
        type: str
        required: true
      jail:
        description: Jail whose root becomes the container's root.
        type: str
      rootfs:
        description: Root directory.
        type: path
      netns:
        description: Net namespace to join.
        type: str
      hostname:
        description: Hostname inside.
        type: str
      command:
        description: Command run by the init.
        type: list
        elements: str
        default: []
      env:
        description: Environment of the command.
        type: dict
        default: {}
      workdir:
        description: Working directory of the command.
        type: str
        default: /
      cap_add:
        description: Capabilities to keep besides the default set.
        type: list
        elements: str
        default: []
      cap_drop:
        description: Capabilities to drop from the default set.
        type: list
        elements: str
        default: []
      cgroup:
        description: Cgroup to move the init into.
        type: str
      files:
        description: Files bound read-only into the container (path to content, or to
          C({content, mode, restart}); see O(files)).
        type: dict
        default: {}
      stop_timeout:
        description: Seconds between SIGTERM and SIGKILL.
        type: int
        default: 10
      log_max_size:
        description: Size at which its log rotates (see O(log_max_size)).
        type: raw
        default: 1M
      seccomp:
        description: Its syscall filter (see O(seccomp)).
        type: str
        choices: [default, unconfined]
        default: default
      userns:
        description: Run it in its own user namespace (unprivileged).
        type: bool
        default: false
      userns_base:
        description: First host id its id 0 maps to.
        type: int
        default: 100000
      privileged:
        description: A system container (not a security boundary; see O(privileged)).
        type: bool
        default: false
      binds:
        description: Host directories bind-mounted into its root (see O(binds)).
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Absolute path inside the container.
            type: str
            required: true
          source:
            description: Host directory; nslab's own when omitted.
            type: path
          readonly:
            description: Mount it read-only.
            type: bool
            default: false
      state:
        description: State; defaults to the top-level O(state).
        type: str
        choices: [started, stopped, restarted, absent]
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - Linux with namespaces, root; python3 >= 3.9 and util-linux on the target
seealso:
  - module: nslab.lab.nslab_namespace
  - module: nslab.lab.nslab_veth
"""

EXAMPLES = r"""
- name: A web server in a jail, on the lab network
  nslab_container:
    lab: demo
    name: apt103
    jail: apt103
    netns: demo-apt103
    cgroup: apt103
    command: [httpd, -f, -p, "80"]
  register: web

- name: Where its init runs and logs, from the registered result
  ansible.builtin.debug:
    msg: "apt103: pid {{ web.containers[0].pid }}, log {{ web.containers[0].log }}"

- name: Every container of a lab at once; a router keeps NET_ADMIN
  nslab_container:
    lab: demo
    containers:
      - {name: apt101, jail: apt101, netns: demo-apt101}
      - {name: r1, jail: r1, netns: demo-r1, cap_add: [NET_ADMIN]}

- name: A fleet host - a system container running sshd, with a real /var/lib/nslab
  nslab_container:
    lab: fleet
    name: fleet1
    jail: fleet1
    netns: fleet-fleet1
    cgroup: fleet1
    privileged: true
    binds:
      - {path: /var/lib/nslab}
    command: [/usr/sbin/sshd, -D, -e]

# Run a command inside a running container through nslab's door, the nslab connection
# plugin (with the container's cgroups, capabilities, no_new_privs and seccomp filter):
#   ansible all -i 'demo/apt103,' -c nslab.lab.nslab -m raw -a 'hostname'
# or a play with "hosts: demo/apt103" and "connection: nslab.lab.nslab". Not "nsenter --target PID
# --all": that runs the container's own binaries with every capability of the host's root
# and no filter - a root-only admin bypass, never the routine way in.
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence per change.
  returned: always
  type: list
  elements: str
  sample: ["start container 'apt101'", "restart container 'apt103' (command changed)"]
containers:
  description: Each requested container after the run.
  returned: always
  type: list
  elements: dict
  sample:
    - name: apt101
      state: running
      pid: 4242
      started_at: 1764442800.5
      hostname: apt101
      command: []
      rootfs: /var/lib/nslab/demo/jails/apt101/root
      netns: demo-apt101
      cgroup: apt101
      capabilities: [AUDIT_WRITE, CHOWN, DAC_OVERRIDE]
      privileged: false
      binds: [{path: /var/lib/nslab, source: /var/lib/nslab/demo/binds/apt101/var/lib/nslab,
               readonly: false}]
      namespaces: {pid: 4026532301, mnt: 4026532300, net: 4026532213}
      log: /run/nslab/demo/containers/apt101.log
diff:
  description: Before and after, keyed by container name.
  returned: when diff mode is on
  type: dict
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils.nslab_adopt import (
    find_unrecorded, stop_unrecorded, unrecorded_summaries)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, items_from_params, list_argument_spec, main_of)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import detect_layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import MAX, parse_size
from ansible_collections.nslab.lab.plugins.module_utils.nslab_containers import (
    DEFAULT_CAPABILITIES, FILE_MAX, ContainerManager, ContainerSpec, ContainerStore, cgroup_dirs,
    files_to_write, health_problem, owned_bind_dir, plan_containers)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    NslabError, ValidationError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import CAPABILITIES
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jails import JailStore, jail_view
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import read_mountinfo
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NamespaceStore, check_lab_netns)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import STATE_ROOT
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
    hostname_problem, nsname_problem)

ITEM_KEYS = ["name", "jail", "rootfs", "netns", "hostname", "command", "env", "workdir", "cap_add",
             "cap_drop", "cgroup", "files", "stop_timeout", "userns", "userns_base", "privileged",
             "binds", "log_max_size", "seccomp", "state"]
# A log smaller than a page would rotate on nearly every line.
LOG_MIN_SIZE = 4096
# What execve takes as an environment variable's name (Docker's check is the same).
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Filled by the init (or the kernel's) own mounts: a bind there would hide or be hidden.
INIT_MOUNTS = ("/proc", "/sys", "/dev")


def held_capabilities():
    """Every capability this process's bounding set holds: all the host's root has (a
    sandbox may withhold some), which is what a privileged container keeps."""
    with open("/proc/self/status") as handle:
        bounding = [int(line.split()[1], 16) for line in handle if line.startswith("CapBnd:")]
    return [name for number, name in enumerate(CAPABILITIES) if bounding[0] >> number & 1]


def under(path, directories):
    return any(path == d or path.startswith(d + "/") for d in directories)


def bind_specs(where, lab, name, binds, starting, check_mode, problems, warnings):
    """binds items -> [{path, source, readonly}] with nslab's own source filled in. A
    source must exist only to start with it (stopping or removing never mounts it); in
    check mode a missing one is a warning, as an earlier task may make it."""
    result, paths = [], set()
    for index, bind in enumerate(binds or []):   # items checked by the argument spec
        at = "%sbinds[%d]" % (where, index)
        path, source = bind["path"], bind.get("source")
        if not path.startswith("/") or os.path.normpath(path) != path or path == "/" or \
                under(path, INIT_MOUNTS):
            problems.append("%s.path: '%s' is not allowed; expected an absolute, normal path "
                            "other than /, outside /proc, /sys and /dev" % (at, path))
        elif path in paths:
            problems.append("%s.path: '%s' is bound twice" % (at, path))
        paths.add(path)
        if source is None:
            source = owned_bind_dir(lab, name) + path
        elif not os.path.isabs(source) or os.path.normpath(source) != source:
            problems.append("%s.source: '%s' is not an absolute, normal path; expected a host "
                            "directory" % (at, source))
        else:
            real = os.path.realpath(source)
            if real == "/" or under(real, INIT_MOUNTS + (STATE_ROOT,)):
                problems.append("%s.source: '%s' is not allowed; expected a host directory "
                                "other than /, outside /proc, /sys, /dev and %s" % (
                                    at, source, STATE_ROOT))
            elif starting and not os.path.isdir(real):
                message = "%s.source: '%s' is not a directory; expected an existing host " \
                          "directory" % (at, source)
                (warnings if check_mode else problems).append(message)
            source = real
        result.append({"path": path, "source": source,
                       "readonly": bool(bind.get("readonly", False))})
    return result


def env_problems(where, env):
    """Environment entries the command could not be given (a name with '=', a NUL...)."""
    problems = []
    for key, value in (env or {}).items():
        if not ENV_KEY_RE.fullmatch(str(key)):
            problems.append("%senv: name %r is not allowed; expected letters, digits and '_', "
                            "not starting with a digit" % (where, str(key)))
        elif "\0" in str(value):
            problems.append("%senv.%s: the value contains a NUL byte; expected text without "
                            "one" % (where, key))
    return problems


def capability_names(where, names, problems):
    result = []
    for name in names or []:
        key = name.upper()
        key = key[4:] if key.startswith("CAP_") else key
        if key not in CAPABILITIES:
            problems.append("%s: unknown capability '%s'; expected one of %s" % (
                where, name, ", ".join(CAPABILITIES)))
        else:
            result.append(key)
    return result


class JailRoots:
    """Roots of the lab's jails, read once for the whole task."""

    def __init__(self, lab, names):
        self.lab, self.store = lab, JailStore(lab)
        try:
            self.state, self.error = self.store.read(sorted(set(names))), None
        except NslabError as err:
            self.state, self.error = None, err

    def root(self, where, name, check_mode, problems, warnings):
        """The root of jail ``name`` if it exists and is mounted (else a problem)."""
        if self.error is not None:
            problems.append("%sjail: %s" % (where, self.error))
            return ""
        view = jail_view(self.store, name, self.state)
        if view["state"] != "present":
            message = "%sjail: '%s' is %s; expected a jail made and mounted by nslab_jail " \
                      "for lab '%s'" % (where, name, "not mounted" if view["state"] ==
                                        "unmounted" else "absent", self.lab)
            (warnings if check_mode else problems).append(message)
        return self.store.jail_path(name, "root")


def build_specs(items, lab, check_mode, warnings, layout):
    problems, specs, names = [], [], set()
    netns_store = NamespaceStore(lab)
    jails = JailRoots(lab, [i["jail"] for i in items if i.get("jail")])
    for item in items:
        where = item["_where"]
        name = item["name"]
        problems.append(nsname_problem(where + "name", name))
        if name in names:
            problems.append("%sname: container '%s' is listed twice" % (where, name))
        names.add(name)
        hostname = item.get("hostname") or name
        problems.append(hostname_problem(where + "hostname", hostname))
        add = capability_names(where + "cap_add", item.get("cap_add"), problems)
        drop = capability_names(where + "cap_drop", item.get("cap_drop"), problems)
        base_set = held_capabilities() if item.get("privileged") else DEFAULT_CAPABILITIES
        capabilities = sorted((set(base_set) | set(add)) - set(drop))
        if item.get("privileged") and item.get("userns"):
            problems.append("%sprivileged: a privileged container cannot have its own user "
                            "namespace (userns); expected one of them" % where)
        starting = item["state"] in ("started", "restarted")
        binds = bind_specs(where, lab, name, item.get("binds"), starting, check_mode, problems,
                           warnings)
        rootfs = item.get("rootfs") or ""
        if item.get("jail") and rootfs:
            problems.append("%sjail: give a jail or a rootfs, not both" % where)
        elif item.get("jail") and starting:
            rootfs = jails.root(where, item["jail"], check_mode, problems, warnings)
        elif starting:
            if not rootfs:
                problems.append("%srootfs: missing; expected a jail (or a rootfs) to start "
                                "container '%s' in" % (where, name))
            elif not os.path.isabs(rootfs) or os.path.realpath(rootfs) == "/":
                problems.append("%srootfs: '%s' is not allowed; expected an absolute path "
                                "to a jail directory, never the host's /" % (where, rootfs))
            elif not os.path.isdir(rootfs):
                problems.append("%srootfs: '%s' is not a directory; expected a root "
                                "filesystem" % (where, rootfs))
        if starting:
            if item.get("netns") and not check_lab_netns(netns_store, item["netns"]):
                message = "%snetns: '%s' does not exist; expected a net namespace of lab '%s'" % (
                    where, item["netns"], lab)
                (warnings if check_mode else problems).append(message)
            if item.get("cgroup") and not cgroup_dirs(layout, lab, item["cgroup"]):
                message = "%scgroup: 'nslab/%s/%s' does not exist in any hierarchy; expected " \
                          "a cgroup made by nslab_cgroup" % (where, lab, item["cgroup"])
                (warnings if check_mode else problems).append(message)
        problems.extend(env_problems(where, item.get("env")))
        log_max_size, problem = parse_size(where + "log_max_size", item.get("log_max_size", "1M"),
                                           minimum=LOG_MIN_SIZE)
        if log_max_size == MAX:
            log_max_size, problem = None, "%slog_max_size: 'max' is not allowed; expected a " \
                                          "size like 1M" % where
        problems.append(problem)
        files, file_modes, restart_files = file_specs(where, item.get("files"), problems)
        base = item.get("userns_base")
        if item.get("userns") and (base is None or not 1 <= base <= 2 ** 32 - 65537):
            problems.append("%suserns_base: %s is out of range; expected 1 to %d" % (
                where, base, 2 ** 32 - 65537))
        if item.get("stop_timeout") is not None and item["stop_timeout"] < 0:
            problems.append("%sstop_timeout: %s is negative; expected seconds >= 0" % (
                where, item["stop_timeout"]))
        specs.append(ContainerSpec(
            name=name, rootfs=os.path.realpath(rootfs) if rootfs else "",
            netns=item.get("netns"), hostname=hostname, command=list(item.get("command") or []),
            env=dict((str(k), str(v)) for k, v in (item.get("env") or {}).items()),
            workdir=item.get("workdir") or "/", capabilities=capabilities,
            cgroup=item.get("cgroup"), stop_timeout=item.get("stop_timeout", 10),
            files=files, file_modes=file_modes, restart_files=restart_files,
            userns_base=base if item.get("userns") else None,
            privileged=bool(item.get("privileged")), binds=binds,
            log_max_size=log_max_size or 0, seccomp=item.get("seccomp") or "default",
            state=item["state"]))
    problems = [p for p in problems if p]
    if problems:
        raise ValidationError(problems)
    return specs


FILE_OPTIONS = ("content", "mode", "restart")
FILE_MODE_RE = re.compile(r"0?[0-7]{3}")


def file_specs(where, files, problems):
    """O(files) -> ({path: content}, {path: mode}, [paths whose change restarts])."""
    contents, modes, restart = {}, {}, []
    for path, value in (files or {}).items():
        at = "%sfiles.%s" % (where, path)
        if not path.startswith("/") or os.path.normpath(path) != path or path == "/" or \
                under(path, INIT_MOUNTS):
            problems.append("%sfiles: '%s' is not allowed; expected an absolute, normal "
                            "path of a file like /etc/hosts, outside /proc, /sys and /dev"
                            % (where, path))
            continue
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(FILE_OPTIONS))
            if unknown or not isinstance(value.get("content"), str):
                problems.append("%s: %r is not a file; expected a string (its content) or "
                                "{content: TEXT, mode: \"0640\", restart: true}" % (at, value))
                continue
            mode = value.get("mode", "0644")
            if not isinstance(mode, str) or not FILE_MODE_RE.fullmatch(mode):
                problems.append("%s.mode: %r is not allowed; expected permission bits as an "
                                "octal string from \"0000\" to \"0777\", like \"0640\"" % (
                                    at, mode))
                continue
            if not isinstance(value.get("restart", False), bool):
                problems.append("%s.restart: %r is not a boolean; expected true or false" % (
                    at, value["restart"]))
                continue
            content = value["content"]
            modes[path] = int(mode, 8)
            if value.get("restart"):
                restart.append(path)
        else:
            content = str(value)
        if len(content.encode("utf-8")) > FILE_MAX:
            problems.append("%s: %d bytes is too big; expected at most %d" % (
                at, len(content.encode("utf-8")), FILE_MAX))
            continue
        contents[path] = content
    return contents, modes, sorted(restart)


def predicted_view(spec, current):
    if spec.state == "absent":
        return {"state": "absent"}
    if spec.state == "stopped":
        return dict(current, state="stopped") if current["state"] != "absent" else current
    view = dict(spec.config(), state="running")
    view.pop("env")
    view.pop("workdir")
    view.pop("file_digests")
    return view


def diff_view(view):
    keys = ("state", "hostname", "command", "rootfs", "netns", "cgroup", "capabilities",
            "userns_base", "privileged", "binds")
    return dict((k, view[k]) for k in keys if k in view)


def converge(module):
    params = module.params
    check_lab(params)
    lab = params["lab"]
    warnings = []
    items = items_from_params(params, "containers", ITEM_KEYS)
    if params.get("containers") is not None and params.get("files"):
        for item in items:
            item["files"] = dict(params["files"], **(item.get("files") or {}))
    # Only containers with a cgroup need the host's cgroup layout.
    mounts = read_mountinfo()
    layout = detect_layout(mounts) if any(i.get("cgroup") for i in items) else None
    specs = build_specs(items, lab, module.check_mode, warnings, layout)
    for warning in warnings:
        module.warn(warning)
    store = ContainerStore(lab)

    states = dict((s.name, store.read(s.name)) for s in specs)
    stale = dict((s.name, files_to_write(s, store.files_dir(s.name))) for s in specs
                 if s.files and s.state != "absent")
    bind_dirs = dict((s.name, owned_bind_dir(lab, s.name)) for s in specs
                     if os.path.isdir(owned_bind_dir(lab, s.name)))
    broken = dict((s.name, health_problem(states[s.name].record, s, layout, lab))
                  for s in specs if s.state == "started" and states[s.name].running)
    actions = plan_containers(specs, states, stale, bind_dirs, broken)
    # Recovery (nslab_adopt): verified inits of containers whose record was lost go first.
    unrecorded = find_unrecorded(lab, specs, states, layout)
    after = states
    if (actions or unrecorded) and not module.check_mode:
        stop_unrecorded(lab, unrecorded, specs, layout)
        ContainerManager(store, layout, mounts=mounts).apply(actions)
        after = dict((s.name, store.read(s.name)) for s in specs)

    result = {
        "changed": bool(actions or unrecorded),
        "actions": unrecorded_summaries(unrecorded) + [a.summary for a in actions],
        "containers": [dict(name=s.name, **after[s.name].view()) for s in specs],
    }
    if module._diff:
        result["diff"] = {
            "before": dict((s.name, diff_view(states[s.name].view())) for s in specs),
            "after": dict((s.name, diff_view(
                predicted_view(s, states[s.name].view()) if module.check_mode
                else after[s.name].view())) for s in specs),
        }
    return result


def container_options(item=False):
    return dict(
        name=dict(type="str", required=item),
        jail=dict(type="str"),
        rootfs=dict(type="path"),
        netns=dict(type="str"),
        hostname=dict(type="str"),
        command=dict(type="list", elements="str", default=[]),
        env=dict(type="dict", default={}),
        workdir=dict(type="str", default="/"),
        cap_add=dict(type="list", elements="str", default=[]),
        cap_drop=dict(type="list", elements="str", default=[]),
        cgroup=dict(type="str"),
        files=dict(type="dict", default={}),
        stop_timeout=dict(type="int", default=10),
        log_max_size=dict(type="raw", default="1M"),
        seccomp=dict(type="str", default="default", choices=["default", "unconfined"]),
        userns=dict(type="bool", default=False),
        userns_base=dict(type="int", default=100000),
        privileged=dict(type="bool", default=False),
        binds=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="str", required=True),
            source=dict(type="path"),
            readonly=dict(type="bool", default=False))),
        state=dict(type="str", choices=["started", "stopped", "restarted", "absent"]),
    )


def get_argument_spec():
    return list_argument_spec(container_options, "containers", "started")


def main():
    main_of(AnsibleModule, get_argument_spec(), "containers", "containers", converge)


if __name__ == "__main__":
    main()

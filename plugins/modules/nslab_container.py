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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import main_of
from ansible_collections.nslab.lab.plugins.module_utils.nslab_converge_container import (
    converge, get_argument_spec)


def main():
    main_of(AnsibleModule, get_argument_spec(), "containers", "containers", converge)


if __name__ == "__main__":
    main()

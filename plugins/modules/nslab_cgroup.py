#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_cgroup
short_description: cgroups (resource limits) owned by an nslab lab, on cgroup v1 and v2
description:
  - Creates, updates and deletes the control groups that limit what an nslab container may
    use (memory, CPU, processes, block I/O), attaches processes to them and reports what they
    consume.
  - A cgroup O(name) of lab O(lab) is the directory C(nslab/<lab>/<name>) in every cgroup
    hierarchy that holds one of nslab's controllers (memory, cpu, cpuacct, cpuset, pids,
    blkio/io, and devices on cgroup v1). The module never creates, changes or deletes a cgroup
    anywhere else.
  - The cgroup's C(devices) directory (cgroup v1) has no option in this module. It starts with
    its parent's rules, and nslab_container sets a container's device rules when it starts it
    (on cgroup v2 as an eBPF program on the cgroup).
  - The layout is detected from C(/proc/self/mountinfo) and the v2 root's
    C(cgroup.controllers) - cgroup v2 (unified), cgroup v1, or hybrid (v1 controllers beside a
    cgroup2 mount) - and returned as RV(layout). The same options work on every layout; each
    is written to that host's files (for example O(memory) to C(memory.max) on v2 and
    C(memory.limit_in_bytes) on v1).
  - A limit the host cannot enforce (O(memory_high) or O(io_weight) on cgroup v1, a controller
    that is not mounted, O(swap) without swap accounting) fails the task with the option, its
    value and the reason; it is never skipped silently.
  - An option that is omitted is left as it is; set it to V(max) to remove a limit.
  - The kernel rounds some values (memory to pages). After writing, the module reads the
    value back; the value the kernel reports is what the cgroup returns, and a rerun that asks
    for the same value again reports no change.
  - On cgroup v2 a controller only works in a cgroup whose parent enables it for its
    children, so the module writes C(+controller) to C(cgroup.subtree_control) of every
    directory above the cgroup, the hierarchy's root included, for the nslab controllers the
    root offers (and nothing else outside C(nslab/)). On cgroup v1 a new C(cpuset) cgroup gets
    its parent's CPUs and memory nodes, without which no process could join it.
  - Ownership is recorded in C(/run/nslab/<lab>/cgroups.json) with the inode of each cgroup
    directory. A directory under C(nslab/<lab>/) that nslab did not make (no record, or another
    inode) is never changed or deleted; the module fails and names it. When the record file
    itself is missing (the lab's state was lost), the directories under C(nslab/<lab>/) that the
    task names are the lab's own; their entry is rebuilt from the kernel, reported as a change.
  - With O(state=absent) the limit options are ignored, so the same list of cgroups can
    build a lab and remove it.
  - O(state=absent) on a cgroup that still has processes fails and lists them, unless
    O(kill=true), which SIGKILLs them first. A cgroup with child cgroups is not deleted unless
    they are deleted in the same task (children go first). Parents nslab made on the way
    (C(nslab/<lab>/web) for C(web/apt101)) are removed once empty.
  - If applying fails half way, every step already done is undone, newest first. Processes
    already moved are not moved back (that would write into a cgroup nslab does not own).
  - Converges one cgroup (O(name)) or a list (O(cgroups)) in one invocation, by writing the
    cgroup files directly (no cgroup-tools).
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  name:
    description:
      - Path of the cgroup below C(nslab/<lab>/), like V(apt101) or V(web/apt101), made of 1-8
        segments of letters, digits, C(-) and C(_). Mutually exclusive with O(cgroups).
    type: str
  memory:
    description:
      - Hard memory limit; the kernel OOM-kills inside the cgroup beyond it. Bytes as an
        integer, or a number with C(K), C(M), C(G) or C(T) (powers of 1024) like V(256M) or
        V(1.5G), or V(max).
      - v2 C(memory.max), v1 C(memory.limit_in_bytes).
    type: raw
  memory_high:
    description:
      - Memory use above which the cgroup is throttled and reclaimed hard (same units).
      - v2 C(memory.high); cgroup v1 cannot enforce it.
    type: raw
  swap:
    description:
      - Swap the cgroup may use (same units, V(0) for none).
      - v2 C(memory.swap.max); v1 C(memory.memsw.limit_in_bytes) = O(memory) + O(swap), so
        on v1 O(memory) must be set too and swap accounting must be on.
    type: raw
  cpus:
    description:
      - CPU time as a number of CPUs per period of 100 ms, like V(0.5) or V(1.5), at least
        V(0.01); or V(max).
      - v2 C(cpu.max), v1 C(cpu.cfs_quota_us) and C(cpu.cfs_period_us).
    type: raw
  cpu_weight:
    description:
      - Share of CPU time under contention, 1-10000 (the default of a cgroup is 100).
      - v2 C(cpu.weight); v1 C(cpu.shares) = weight * 1024 / 100.
    type: int
  cpuset:
    description:
      - CPUs the cgroup may run on, like V(0-1) or V(0,2).
      - C(cpuset.cpus) on both.
    type: str
  cpuset_mems:
    description:
      - Memory nodes the cgroup may allocate from, like V(0).
      - C(cpuset.mems) on both.
    type: str
  pids:
    description:
      - Most processes and threads the cgroup may hold (forks beyond fail), or V(max).
      - C(pids.max) on both.
    type: raw
  io:
    description:
      - Block I/O limits per disk. The cgroup ends up with exactly these devices limited;
        a limit left out of an item is removed.
      - v2 C(io.max), v1 C(blkio.throttle.*_device).
    type: list
    elements: dict
    suboptions:
      device:
        description: A whole disk as C(MAJOR:MINOR) (see C(lsblk)) like V(8:0), or its
          C(/dev) path.
        type: str
        required: true
      read_bps:
        description: Bytes read per second (size units like V(10M)), or V(max).
        type: raw
      write_bps:
        description: Bytes written per second, or V(max).
        type: raw
      read_iops:
        description: Read operations per second, or V(max).
        type: raw
      write_iops:
        description: Write operations per second, or V(max).
        type: raw
  io_weight:
    description:
      - Share of block I/O under contention, 1-10000 (default 100).
      - v2 C(io.weight) (needs a kernel with the io cost model); cgroup v1 cannot enforce it.
    type: int
  procs:
    description:
      - Process ids (as the host sees them) to move into the cgroup, all of their threads
        with them. Processes already in it are left alone; other members are not removed.
    type: list
    elements: int
  kill:
    description:
      - With V(true), O(state=absent) SIGKILLs the processes still in a cgroup before
        deleting it. With V(false) such a cgroup is not deleted and the task fails listing
        their pids. Applies to every cgroup of the task.
    type: bool
    default: false
  state:
    description:
      - V(present) creates or updates, V(absent) deletes. The default for items of
        O(cgroups) that do not set their own.
    type: str
    choices: [present, absent]
    default: present
  cgroups:
    description: Several cgroups converged at once. Each item takes the options above.
    type: list
    elements: dict
    suboptions:
      name:
        description: Path of the cgroup below C(nslab/<lab>/).
        type: str
        required: true
      memory:
        description: Hard memory limit.
        type: raw
      memory_high:
        description: Memory throttling threshold (cgroup v2).
        type: raw
      swap:
        description: Swap allowance.
        type: raw
      cpus:
        description: CPU time as a number of CPUs.
        type: raw
      cpu_weight:
        description: CPU weight, 1-10000.
        type: int
      cpuset:
        description: CPUs the cgroup may run on.
        type: str
      cpuset_mems:
        description: Memory nodes the cgroup may use.
        type: str
      pids:
        description: Most processes and threads.
        type: raw
      io:
        description: Block I/O limits per disk.
        type: list
        elements: dict
        suboptions:
          device:
            description: A whole disk, C(MAJOR:MINOR) or C(/dev) path.
            type: str
            required: true
          read_bps:
            description: Bytes read per second.
            type: raw
          write_bps:
            description: Bytes written per second.
            type: raw
          read_iops:
            description: Read operations per second.
            type: raw
          write_iops:
            description: Write operations per second.
            type: raw
      io_weight:
        description: Block I/O weight, 1-10000 (cgroup v2).
        type: int
      procs:
        description: Process ids to move into the cgroup.
        type: list
        elements: int
      state:
        description: V(present) or V(absent); defaults to the top-level O(state).
        type: str
        choices: [present, absent]
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - Linux with cgroup v1 or v2 mounted (as on any systemd host); root
notes:
  - Test environments sharing a host with other work should give each lab its own name; the
    module only ever touches C(nslab/<lab>/) (and, on cgroup v2, the C(+controller) lines of
    C(cgroup.subtree_control) above it).
  - Process ids are those of the host's pid namespace, where the module runs.
seealso:
  - module: nslab.lab.nslab_namespace
"""

EXAMPLES = r"""
- name: Limit a container to 256 MiB, one and a half CPUs and 128 processes
  nslab_cgroup:
    lab: demo
    name: apt101
    memory: 256M
    cpus: 1.5
    pids: 128

- name: Every container of a lab in one task, with disk limits and a process to attach
  nslab_cgroup:
    lab: demo
    cgroups:
      - name: web/apt101
        memory: 512M
        cpuset: "0-1"
        io:
          - {device: "8:0", read_bps: 10M, write_iops: 200}
        procs: ["{{ init_pid | int }}"]
      - {name: web/apt102, memory: 512M, cpus: 0.5}
  register: limits

- name: Show what a container consumes
  ansible.builtin.debug:
    msg: "{{ limits.cgroups[0].usage }}"

- name: Remove a container's cgroup, killing what still runs in it
  nslab_cgroup:
    lab: demo
    name: web/apt102
    state: absent
    kill: true
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence per change.
  returned: always
  type: list
  elements: str
  sample: ["create cgroup 'nslab/demo/apt101' (memory, pids, cpu)",
           "set memory of cgroup 'nslab/demo/apt101' to 268435456"]
layout:
  description: The host's cgroup layout - C(kind) (v1, v2 or hybrid) and, per nslab
    controller that is mounted, its cgroup version and mount point.
  returned: always
  type: dict
  sample:
    kind: v2
    controllers:
      memory: {version: 2, mount: /sys/fs/cgroup}
      cpu: {version: 2, mount: /sys/fs/cgroup}
cgroups:
  description:
    - Each requested cgroup as the kernel reports it after the run (before it, in check
      mode).
    - C(limits) holds every option this host can read, in the options' own terms (memory in
      bytes, C(max) for no limit, C(io) as a list).
    - C(usage) holds what the cgroup consumes; a counter the host does not offer is null.
      C(memory_bytes) and C(memory_peak_bytes) (v2 C(memory.current)/C(memory.peak), v1
      C(memory.usage_in_bytes)/C(memory.max_usage_in_bytes)), C(oom_kills) (processes the
      OOM killer killed in it), C(pids), C(cpu_usec) (CPU time used), C(cpu_periods),
      C(cpu_throttled_periods) and C(cpu_throttled_usec) (time held back by O(cpus)).
  returned: always
  type: list
  elements: dict
  sample:
    - name: apt101
      state: present
      path: nslab/demo/apt101
      paths: {memory: /sys/fs/cgroup/memory/nslab/demo/apt101,
              pids: /sys/fs/cgroup/pids/nslab/demo/apt101}
      limits: {memory: 268435456, cpus: 1.5, pids: 128, cpu_weight: 100, swap: max,
               cpuset: "0-1", cpuset_mems: "0", io: []}
      procs: [4242]
      usage: {memory_bytes: 9502720, memory_peak_bytes: 11046912, oom_kills: 0, pids: 3,
              cpu_usec: 81234, cpu_periods: 12, cpu_throttled_periods: 0,
              cpu_throttled_usec: 0}
diff:
  description: Before and after, keyed by cgroup name, over the options that were set.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import main_of
from ansible_collections.nslab.lab.plugins.module_utils.nslab_converge_cgroup import (
    converge, get_argument_spec)


def main():
    main_of(AnsibleModule, get_argument_spec(), "cgroups", "cgroups", converge)


if __name__ == "__main__":
    main()

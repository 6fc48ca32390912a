#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_jail
short_description: Root filesystems (jails) for nslab containers and plain chroots
description:
  - Builds a base root filesystem from a source, once per lab and source, and gives each
    jail its own root over it. nslab_container pivot_roots into a jail's RV(jails[].root)
    inside new mount and pid namespaces; this module can also run a command in a jail with
    a plain C(chroot) (O(command)).
  - A plain chroot is B(not a security boundary). A root process inside can leave it (for
    example by chrooting again from an open directory outside), and it shares the host's
    processes, network and mounts. The boundary is built by nslab_container with a mount
    namespace, pivot_root and the other namespaces.
  - "Sources: V(busybox), a static busybox with a symlink per applet; V(host), named host
    binaries copied with every library the dynamic loader maps for them and the loader
    itself (the jailkit approach; works offline on any Linux host); V(debootstrap), a
    Debian or Ubuntu suite from the host's configured mirror, cached as a tarball under
    O(cache_dir) so the next base from it is an extraction, not a download; V(tarball), an
    existing root filesystem archive; V(directory), a copy of an existing tree (the tree
    itself is never written to; a changed tree resolves to a new base)."
  - A V(tarball) or V(directory) base is stripped of device nodes (a jail's C(/dev) is a
    tmpfs nslab makes) and of setuid/setgid bits (unless O(keep_setuid)); the counts are
    returned in RV(stripped). A V(debootstrap) base loses the device nodes debootstrap
    made in its C(/dev) and keeps Debian's own setuid programs.
  - A V(directory) source and a V(tarball) path are resolved (symlinks followed) before they
    are checked. A directory that resolves to C(/), to a host system directory (C(/etc),
    C(/usr), C(/var), C(/home)...), into C(/proc), C(/sys), C(/dev), C(/boot), C(/etc) or
    C(/run), or into or above nslab's own trees (C(/var/lib/nslab), C(/run/nslab), the
    cache) is refused; a tarball must resolve to a regular file.
  - Busybox and host bases get a minimal C(/etc) (passwd, group, hosts, and the host's
    resolv.conf). Every base gets empty C(/proc), C(/sys), C(/dev) and C(/tmp).
  - "Host side: no other host user can use what a container writes. C(/var/lib/nslab),
    the lab, its C(jails) directory and each jail directory are 0711 (traversable, not
    listable: a user-namespace container's init, an unprivileged host uid, must reach its
    root); C(bases) and each jail's C(layer) (its overlay C(upper) and C(work), or its
    C(copy)) are 0700, as is the debootstrap cache. A jail's root is mounted C(nosuid,nodev)
    on the host: a setuid file or device node a container makes is inert there. Inside, a
    non-userns container's init clears C(nosuid) (setuid works as before); in a
    user-namespace container the kernel keeps the host mount's C(nosuid)."
  - Jails made by an older nslab (layers directly in the jail directory) are migrated in
    place on the next run (renames; the writable layer is kept) and remounted
    C(nosuid,nodev); directories with wider modes are restricted. Both are reported as
    changes. Removal uses coreutils C(rm -rf --one-file-system) (fts - no recursion limit,
    never follows a link) after everything below is unmounted.
  - Bases live in C(/var/lib/nslab/<lab>/bases/<source>-<hash>), content-addressed by the
    source options and a fingerprint of what they are built from (sha256 of the busybox,
    of each host binary and library, of the archive). A rerun with the same source does
    nothing; a changed source builds a new base and rebuilds the jails on it, discarding
    their writable layers (like a container recreated from a new image). A debootstrap
    base is rebuilt only when its options change; remove its cached tarball to refresh it.
    A base is removed when no jail of the lab uses it.
  - With O(overlay=true) a jail's root is an overlayfs (lower layer the base, its own
    upper and work directories), mounted with mount(2) - a hundred jails from one base cost
    a few directories and mounts. With O(overlay=false) the root is a private copy of the
    base (C(cp -a)) bind-mounted at C(root), for file systems that cannot hold an overlay
    upper layer.
  - A mounted jail (V(present)) has its overlay and a small tmpfs C(/dev) with only
    null, zero, full, random, urandom and tty (made with mknod), ptmx on a new devpts
    instance, shm, and the fd/stdin/stdout/stderr links; device nodes never sit on disk and
    no other host device is reachable. C(/proc) and C(/sys) are left empty - a host
    C(/proc) inside a chroot is a way out through C(/proc/1/root); nslab_container mounts
    its own.
  - Ownership - everything lives under C(/var/lib/nslab/<lab>) with a record
    (C(jail.json), C(base.json)); a directory there without one is never changed or
    deleted. Only mounts below a jail's directory are ever unmounted, newest first.
  - Builds go to a temporary directory renamed into place; if a step fails, what this
    run built, created or mounted is undone, newest first, and nothing half-built is left.
    Builds run before anything is removed.
  - Converges one jail (O(name)) or a list (O(jails)) in one invocation.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  name:
    description: Jail name. Mutually exclusive with O(jails).
    type: str
  source:
    description:
      - Where the base root filesystem comes from. The default for O(jails) items.
      - When no source option is set, an existing jail keeps its base and a new one is
        built from V(busybox).
    type: str
    choices: [busybox, host, debootstrap, tarball, directory]
  path:
    description:
      - For O(source=busybox), the static busybox to use (default - C(busybox) on PATH).
      - For O(source=tarball), the archive (tar, optionally compressed as GNU tar reads it).
      - For O(source=directory), the tree to use as the lower layer.
      - An absolute path in normal form (no C(..)).
    type: str
  binaries:
    description:
      - For O(source=host), the binaries to copy, as names on PATH or absolute paths. Each
        is copied at its own path with the libraries the dynamic loader maps for it.
        Scripts need their interpreter listed too.
    type: list
    elements: str
  suite:
    description: For O(source=debootstrap), the suite, for example C(bookworm).
    type: str
  mirror:
    description:
      - For O(source=debootstrap), the mirror URL. Defaults to the host's apt source that
        serves O(suite) (else its first main archive source).
    type: str
  variant:
    description: For O(source=debootstrap), the debootstrap variant; V(minbase) when unset.
    type: str
    choices: [minbase, buildd, default]
  include:
    description: For O(source=debootstrap), extra packages to install.
    type: list
    elements: str
  keep_setuid:
    description:
      - For O(source=tarball) and O(source=directory), keep the setuid and setgid bits of
        the source's files in the base (they are cleared when unset or V(false)). Device
        nodes are dropped either way. Part of the base's identity - changing it builds a
        new base.
    type: bool
  overlay:
    description:
      - V(true), the jail's root is an overlay over the shared base; V(false), a copy of it.
      - When unset, an existing jail keeps its layout and a new one is an overlay.
    type: bool
  disk:
    description:
      - Limit what the jail's writable layer (its overlay upper layer, or its copy) may hold,
        for example V(512M) or V(2G) (powers of 1024; at least 16M). The layer is then a
        sparse ext4 image file (C(layer.img) in the jail's directory, made with C(mkfs.ext4)
        from e2fsprogs) loop-mounted C(nosuid,nodev); a write beyond it fails with ENOSPC
        inside the container instead of filling the host's file system.
      - V(0) means no limit. When unset, an existing jail keeps its limit and a new one has
        none. A changed value rebuilds the jail - its writable layer is discarded.
    type: str
  state:
    description:
      - V(present), the jail exists and is mounted, ready to chroot or pivot_root into.
        V(unmounted), it exists (its writable layer is kept) but nothing is mounted.
        V(absent), it is unmounted and deleted, and its base too if no other jail uses it.
      - The default for O(jails) items.
    type: str
    choices: [present, unmounted, absent]
    default: present
  command:
    description:
      - A command (argv, no shell) run once with C(chroot) in the jail after it converged,
        as root, with a clean environment (PATH, HOME=/root, LC_ALL=C), stdin from
        C(/dev/null). Returned in RV(jails[].command_result). Needs O(state=present).
      - It counts as a change only if it changed the jail's files (its writable layer is
        compared before and after). It is not run in check mode. A non-zero exit fails the
        task.
      - B(It runs as the host's root with every capability, in the host's namespaces) - a
        plain chroot, not a container. It can mount in the host's mount namespace, see and
        signal every host process, use the host's network, and leave the chroot. It is a
        tool for the host's administrator on a jail they trust, never for a jail's content
        or a topology someone else wrote (lab topologies refuse it); use nslab_container to
        run a jail's programs.
    type: list
    elements: str
  cache_dir:
    description: Where debootstrap bases are cached as tarballs, shared by every lab.
    type: str
    default: /var/cache/nslab
  jails:
    description:
      - Several jails converged at once. Each item takes the options above; an option an
        item leaves unset takes the top-level value.
    type: list
    elements: dict
    suboptions:
      name:
        description: Jail name.
        type: str
        required: true
      source:
        description: Source of the base.
        type: str
        choices: [busybox, host, debootstrap, tarball, directory]
      path:
        description: Busybox binary, archive or directory of the source.
        type: str
      binaries:
        description: Host binaries to copy.
        type: list
        elements: str
      suite:
        description: Debootstrap suite.
        type: str
      mirror:
        description: Debootstrap mirror.
        type: str
      variant:
        description: Debootstrap variant.
        type: str
        choices: [minbase, buildd, default]
      include:
        description: Extra debootstrap packages.
        type: list
        elements: str
      keep_setuid:
        description: Keep setuid/setgid bits of a tarball or directory source.
        type: bool
      overlay:
        description: Overlay (V(true)) or copy (V(false)) of the base.
        type: bool
      disk:
        description: Size limit of the writable layer (see O(disk)).
        type: str
      state:
        description: V(present), V(unmounted) or V(absent).
        type: str
        choices: [present, unmounted, absent]
      command:
        description: Command to run with chroot in this jail, as host root (see O(command)).
        type: list
        elements: str
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
attributes:
  check_mode:
    support: full
    details: O(command) is not run in check mode.
requirements:
  - Linux with overlayfs; root (CAP_SYS_ADMIN, CAP_MKNOD)
  - python3 and util-linux on the target; a static busybox for V(busybox) (Debian package
    busybox-static); GNU tar for V(tarball) and V(debootstrap); debootstrap for
    V(debootstrap) until its tarball is cached
seealso:
  - module: nslab.lab.nslab_namespace
"""

EXAMPLES = r"""
- name: A busybox jail, mounted, and a command run in it with chroot
  nslab_jail:
    lab: demo
    name: web1
    command: [ls, /]

- name: Several jails over one busybox base, in one invocation (a hundred cost ~0.1 s)
  nslab_jail:
    lab: demo
    jails:
      - {name: web1}
      - {name: web2}
      - {name: db1, overlay: false}

- name: A jail of host binaries with their libraries, works offline
  nslab_jail:
    lab: demo
    name: tools
    source: host
    binaries: [sh, ls, cat, ip]

- name: Debian bookworm from the host's mirror; later bases come from the cached tarball
  nslab_jail:
    lab: demo
    name: deb1
    source: debootstrap
    suite: bookworm
    include: [iproute2]

- name: A jail whose writable layer may hold at most 512 MiB (an ext4 image file)
  nslab_jail:
    lab: demo
    name: capped
    disk: 512M

- name: Keep a jail's files but unmount it
  nslab_jail:
    lab: demo
    name: web1
    state: unmounted

- name: Remove it (and its base, when no other jail uses it)
  nslab_jail:
    lab: demo
    name: web1
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence per change.
  returned: always
  type: list
  elements: str
  sample: ["build base busybox-0c1d2e3f4a5b from busybox /usr/bin/busybox",
           "create jail 'web1' as an overlay of base busybox-0c1d2e3f4a5b and mount it"]
jails:
  description: Each requested jail as disk and kernel show it after the run (before it, in
    check mode, with the predicted values in RV(diff)).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Jail name.
      type: str
    state:
      description: V(present) (mounted), V(unmounted) or V(absent).
      type: str
    root:
      description: The jail's root, to chroot or pivot_root into.
      type: str
      sample: /var/lib/nslab/demo/jails/web1/root
    base:
      description: The base root filesystem (the overlay's lower layer).
      type: str
      sample: /var/lib/nslab/demo/bases/busybox-0c1d2e3f4a5b/rootfs
    base_id:
      description: The base's content address, C(<source>-<hash>).
      type: str
    source:
      description: The base's source.
      type: str
    overlay:
      description: Whether the root is an overlay (else a copy).
      type: bool
    disk:
      description: The writable layer's size limit in bytes, or null when it has none.
      type: int
    mounted:
      description: Whether the overlay, C(/dev) and C(/dev/pts) are all mounted.
      type: bool
    stamp:
      description: What the base was built from - source, options, fingerprint, build time.
      type: dict
    command_result:
      description: The command's outcome; C(skipped) in check mode.
      returned: when O(command) is set
      type: dict
      sample: {cmd: [ls, /], rc: 0, stdout: "bin\ndev\netc\n", stderr: "", changed: false}
stripped:
  description: For each base built in this run from a tarball, directory or debootstrap,
    what was removed from it - device nodes, and files whose setuid/setgid bits were cleared
    (never for debootstrap).
  returned: always
  type: list
  elements: dict
  sample: [{base_id: tarball-0c1d2e3f4a5b, device_nodes: 2, setuid_setgid: 1}]
diff:
  description: Before and after, keyed by jail name.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import main_of
from ansible_collections.nslab.lab.plugins.module_utils.nslab_converge_jail import (
    converge, get_argument_spec)


def main():
    main_of(AnsibleModule, get_argument_spec(), "jails", "jails", converge)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where nslab keeps things on a host, and the names it owns there: each declared once.

Every module_utils file, module and plugin that can import this does. Three copies cannot
and must agree (tests/unit/module_utils/test_nslab_paths.py checks each):

- ``nslab_init`` is standalone (its source is fed to a bare ``python3 -I -S -``), so its
  ``JAIL_PATH`` and ``CGROUP_ROOT`` repeat these;
- the connection plugin runs on the controller before nslab's module_utils are importable,
  so its ``STATE_ROOT`` repeats this one;
- roles' YAML defaults (``nslab_fleet_dir``) spell out the roots they lie under.

Standard library only: this runs on the target.
"""

# Runtime state: records of what nslab made (namespaces, cgroups, containers, plan).
# A tmpfs on most hosts: lost at reboot, with the kernel objects it describes.
STATE_ROOT = "/run/nslab"
# Persistent data: jails (bases, overlays), binds' host directories, fleet keys.
DATA_ROOT = "/var/lib/nslab"
# Downloads worth keeping between labs: debootstrap tarballs.
CACHE_ROOT = "/var/cache/nslab"
# Where net namespaces are bind-mounted, as ``ip netns`` expects them.
NETNS_DIR = "/run/netns"

# The cgroup filesystem's mount point, and the directory nslab owns in each hierarchy
# (<hierarchy>/nslab/<lab>/<name>); nothing outside it is ever written.
CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_SUBTREE = "nslab"

# PATH of what runs inside a jail or container (commands, the init's child).
JAIL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# PATH of the host-side container launcher: the host's environment stays out of PID 1.
LAUNCHER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# nftables tables nslab owns (ip nat, inet input/ports, bridge anti-spoofing).
NFT_TABLE = "nslab"

# Filled by a container's init (or the kernel's) own mounts: a file or bind there would
# hide them or be hidden.
INIT_MOUNTS = ("/proc", "/sys", "/dev")


def netns_name(lab, node):
    """A node's net namespace (``/run/netns/<lab>-<node>``)."""
    return "%s-%s" % (lab, node)


def inside(path, directory):
    """Whether ``path`` is ``directory`` or below it (as strings: no link is resolved)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def under(path, directories):
    """Whether ``path`` is one of ``directories`` or below one."""
    return any(inside(path, d) for d in directories)

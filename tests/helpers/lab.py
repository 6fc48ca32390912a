"""A test lab: its random name, the kernel objects named after it, their removal straight
through the kernel and the check that nothing is left; the busybox every jail test uses;
the addresses of the shared ``running_lab``.

Every lab a test makes is marked as owned by the pytest process (a file in OWNERS_DIR
naming its pid and start time) until its cleanup leaves nothing. A run that was killed
(CI's time limit, a ^C twice, a session that ended) cannot clean up; the next session's
``sweep_stale_labs`` removes what such a run left, so the fixed subnets of the fleet and
the Molecule scenarios are free again. A lab whose owner still runs is never touched:
two sessions may run at once."""

import fcntl
import os
import secrets
import shutil
import signal
import time

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import proc_start_time
from ansible_collections.nslab.lab.plugins.module_utils.nslab_lock import unless_a_run_is_going
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import DATA_ROOT, STATE_ROOT
from ansible_collections.nslab.lab.plugins.module_utils.nslab_shared import NFT_FAMILIES, tidy
from helpers.kernel import (ip_links, lab_cgroup_dirs, mounts_under, nft_rules, nsfs_mounts,
                            rule_chains, sh)


def remove_cgroup_tree(top):
    """SIGKILL the processes in ``top`` and below (the tests' own children), rmdir deepest
    first."""
    for directory, _dirs, _files in os.walk(top, topdown=False):
        deadline = time.monotonic() + 5
        while True:
            with open(os.path.join(directory, "cgroup.procs")) as handle:
                pids = [int(p) for p in handle.read().split()]
            if not pids or time.monotonic() > deadline:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        os.rmdir(directory)


OWNERS_DIR = "/run/nslab-tests"


def sweep_stale_labs():
    """Remove the labs of test runs that are no longer running; their names. Two sessions
    starting at once (``./nslab test`` starts two) sweep one after the other."""
    os.makedirs(OWNERS_DIR, exist_ok=True)
    fd = os.open(os.path.join(OWNERS_DIR, ".sweep.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _sweep()
    finally:
        os.close(fd)


def _sweep():
    swept = []
    for name in sorted(n for n in os.listdir(OWNERS_DIR) if not n.startswith(".")):
        try:
            with open(os.path.join(OWNERS_DIR, name)) as handle:
                pid, start = handle.read().split()
        except (OSError, ValueError):
            continue
        # A pid and its start time name one process, even once pids are reused.
        if proc_start_time(int(pid)) != int(start):
            Lab(name, owned=False).cleanup()
            swept.append(name)
    return swept


class Lab:
    """A test lab: a unique name, its objects' names, cleanup and leftover checks."""

    def __init__(self, name=None, owned=True):
        self.name = name or "t" + secrets.token_hex(3)          # 7 characters
        self.owner_file = os.path.join(OWNERS_DIR, self.name)
        if owned and os.geteuid() == 0:
            os.makedirs(OWNERS_DIR, exist_ok=True)
            with open(self.owner_file, "w") as handle:
                handle.write("%d %d\n" % (os.getpid(), proc_start_time(os.getpid())))

    def n(self, suffix):
        """A kernel object name of this lab (at most 15 bytes for suffixes up to 7)."""
        return "%s-%s" % (self.name, suffix)

    def owns(self, name, alias=None):
        return name.startswith(self.name + "-") or (alias or "").startswith(
            "nslab:%s:" % self.name)

    def init_pids(self):
        """Container inits of this lab, found by the label in their command line."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as handle:
                        argv = handle.read().split(b"\0")
                except OSError:
                    continue
                if any(a.startswith(b"nslab:%s:" % self.name.encode()) for a in argv):
                    pids.append(int(entry))
        return pids

    def leftovers(self):
        found = ["container init %d" % pid for pid in self.init_pids()]
        found += ["link %s" % n for n, l in ip_links().items() if self.owns(n, l.get("ifalias"))]
        if os.path.isdir("/run/netns"):
            found += ["netns %s" % n for n in os.listdir("/run/netns") if self.owns(n)]
        found += ["mount %s" % m for m in nsfs_mounts()
                  if self.name in m and (m.startswith(STATE_ROOT) or m.startswith("/run/netns"))]
        if os.path.exists(os.path.join(STATE_ROOT, self.name)):
            found.append("state dir %s/%s" % (STATE_ROOT, self.name))
        found += ["cgroup %s" % d for d in lab_cgroup_dirs(self.name)]
        found += ["nft rule %s" % c for f in NFT_FAMILIES for c, _h in nft_rules(f)
                  if c.startswith("nslab:%s:" % self.name)]
        found += ["mount %s" % m for m in mounts_under(self.data_dir)]
        if os.path.lexists(self.data_dir):
            found.append("data dir %s" % self.data_dir)
        return found

    @property
    def data_dir(self):
        """The lab's jails and bases (nslab_jail)."""
        return os.path.join(DATA_ROOT, self.name)

    def cleanup(self):
        """Remove what is left of the lab; what still is after that (leftovers())."""
        for pid in self.init_pids():
            try:
                os.kill(pid, 9)           # the kernel then ends its whole pid namespace
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2
        while self.init_pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        for name, link in ip_links().items():
            if self.owns(name, link.get("ifalias")):
                sh("ip", "link", "del", "dev", name, check=False)
        remove_lab_rules(self.name)
        for mount in sorted(nsfs_mounts(), reverse=True):
            if self.name in mount and (mount.startswith(STATE_ROOT)
                                       or mount.startswith("/run/netns")):
                sh("umount", "-l", mount, check=False)
        if os.path.isdir("/run/netns"):
            for name in os.listdir("/run/netns"):
                if self.owns(name):
                    os.unlink(os.path.join("/run/netns", name))
        for directory in lab_cgroup_dirs(self.name):
            remove_cgroup_tree(directory)
        remove_tree(os.path.join(STATE_ROOT, self.name))
        for mount in reversed(mounts_under(self.data_dir)):      # deepest, newest first
            sh("umount", "-l", mount, check=False)
        if not mounts_under(self.data_dir):
            remove_tree(self.data_dir)
        tidy_shared_roots()
        left = self.leftovers()
        if not left:
            try:
                os.unlink(self.owner_file)
            except FileNotFoundError:
                pass
        return left


def remove_lab_rules(lab_name):
    """Delete the lab's rules (named ``nslab:<lab>:...``) from nslab's tables in the host
    (an emptied table goes in tidy_shared_roots)."""
    for family in NFT_FAMILIES:
        rules = nft_rules(family)
        mine = [(c, h) for c, h in rules if c.startswith("nslab:%s:" % lab_name)]
        chains = rule_chains(family) if mine else {}
        for _comment, handle in mine:
            # inet nslab holds port publishing's chains beside nslab_bridge's input.
            sh("nft", "delete", "rule", family, "nslab", chains.get(handle, "input"),
               "handle", str(handle), check=False)


def remove_tree(path):
    """rm -rf without a recursion limit (tests make 1,100-deep trees in jails), never
    crossing into a mount."""
    sh("rm", "-rf", "--one-file-system", path, check=False)


def tidy_shared_roots():
    """nslab's roots that no lab uses any more go (its cgroup, /run/nslab, /var/lib/nslab,
    empty nft tables), as at the end of a module run: only while no nslab run holds the
    shared lock (nslab_lock), so a lab being built beside this test keeps them."""
    unless_a_run_is_going(lambda: tidy(_run, shutil.which("nft")))


def _run(argv):
    done = sh(*argv, check=False)
    return done.returncode, done.stdout, done.stderr


BUSYBOX = shutil.which("busybox") or "/bin/busybox"
BUSYBOX_APPLETS = ["sh", "ls", "cat", "sleep", "mount", "mkdir", "echo", "ps", "hostname",
                   "chroot", "ping", "ip", "id", "true", "head"]
BUSYBOX_SKIP = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox (Debian "
                                  "package busybox-static) is not installed")


# No other test uses 10.213.128.0/19. A random /24 of it (lan in its first half, the link's
# /30 at its end) lets two sessions run at once, as engineers do while they work.
_RUNNING_LAB_THIRD = 128 + secrets.randbelow(32)
RUNNING_LAB_SUBNET = "10.213.%d.0/25" % _RUNNING_LAB_THIRD
RUNNING_LAB_LINK = "10.213.%d.252/30" % _RUNNING_LAB_THIRD

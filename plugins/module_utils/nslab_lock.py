# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One lab, one writer at a time: a per-lab lock held by every module run that changes it.

Two ``lab.yml`` runs on the same lab used to interleave: both read "no container yet" and
both started one, leaving two inits per node. Every changing module now takes an exclusive
``flock(2)`` on ``/run/lock/nslab/<lab>.lock`` around its whole read -> plan -> apply, so a
second run's module waits for the first one's to finish and then reads what it built.

The lock file is removed by its holder on release, so locks of removed labs do not pile
up. A waiter that wakes up on a file already unlinked (or replaced) retries on the current
one: the lock is the inode at the path, checked after ``flock`` returns. The kernel drops a
flock when its holder dies, so a killed run never leaves the lab locked.

What all labs share - nslab's cgroup in each hierarchy, ``/run/nslab``, ``/var/lib/nslab``,
nslab's nftables tables - is guarded by one more lock, ``.shared`` (never a lab's name: a
lab name starts with a letter or digit). Every run holds it shared beside its lab's lock,
so runs on different labs still run at once; a run that removed its lab's last object
could otherwise remove an emptied root while another lab's run was creating in it (its
mkdir under ``nslab/`` failing, its new nft rule deleted with the table). So no run removes
a shared root while it works; on release, a run that can take ``.shared`` exclusively -
no other run is going - calls its ``on_release`` (nslab_shared's tidy), which removes the
roots left empty. When another run still holds it, the last one out tidies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import LabLockedError

LOCK_ROOT = "/run/lock/nslab"
# Waiting longer than a whole lab build takes means something is stuck: say so.
DEFAULT_TIMEOUT = 600.0


SHARED_LOCK = ".shared.lock"


def lock_path(lab, root=LOCK_ROOT):
    return os.path.join(root, lab + ".lock")


def _open_lock(path):
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _flock_within(fd, mode, timeout, poll):
    """flock ``fd`` with ``mode``, retrying until ``timeout``; False if it is still held."""
    start = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() - start > timeout:
            return False
        time.sleep(poll)


@contextlib.contextmanager
def exclusively(name, root=LOCK_ROOT):
    """A short host-wide critical section on lock file ``name`` (kept, never unlinked)."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    fd = _open_lock(os.path.join(root, name))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def unless_a_run_is_going(work, root=LOCK_ROOT):
    """``work()`` holding the shared lock exclusively, if no run holds it; its result, or
    None (skipped: the last run out does it). For a cleanup outside a module run."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    fd = _open_lock(os.path.join(root, SHARED_LOCK))
    try:
        return work() if _flock_within(fd, fcntl.LOCK_EX, 0, 0) else None
    finally:
        os.close(fd)


def _holder(fd):
    """The pid the holder wrote into the lock file, for the message (best effort)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return " (held by pid %s)" % text if text.isdigit() else ""


class LabLock:
    """``with LabLock(lab):`` holds the lab's lock; waits up to ``timeout`` seconds."""

    def __init__(self, lab, root=LOCK_ROOT, timeout=DEFAULT_TIMEOUT, poll=0.05):
        self.lab, self.root, self.timeout, self.poll = lab, root, timeout, poll
        self.path = lock_path(lab, root)
        self.fd = self.shared_fd = None
        self.waited = 0.0
        # Called on release when no other run holds the shared lock; its result is kept.
        self.on_release, self.released = None, None

    def acquire(self):
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        start = time.monotonic()
        shared_fd = _open_lock(os.path.join(self.root, SHARED_LOCK))
        # Held exclusively only while a run removes empty shared roots: a moment.
        if not _flock_within(shared_fd, fcntl.LOCK_SH, self.timeout, self.poll):
            os.close(shared_fd)
            raise LabLockedError(
                "nslab's shared directories are locked by another nslab run for more than "
                "%.0f s (lock %s); wait for it to finish, or stop it" % (
                    self.timeout, os.path.join(self.root, SHARED_LOCK)))
        self.shared_fd = shared_fd
        try:
            self._acquire_lab(start)
        except BaseException:
            os.close(self.shared_fd)
            self.shared_fd = None
            raise
        return self

    def _acquire_lab(self, start):
        while True:
            fd = _open_lock(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() - start > self.timeout:
                    holder = _holder(fd)
                    os.close(fd)
                    raise LabLockedError(
                        "lab '%s' is locked by another nslab run%s for more than %.0f s "
                        "(lock %s); wait for it to finish, or stop it" % (
                            self.lab, holder, self.timeout, self.path))
                os.close(fd)
                time.sleep(self.poll)
                continue
            if self._is_current(fd):
                break
            os.close(fd)          # unlinked by its previous holder: lock the current file
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd, self.waited = fd, time.monotonic() - start

    def _is_current(self, fd):
        try:
            current = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino)

    def release(self):
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)     # closing drops the flock
            self.fd = None
        if self.shared_fd is None:
            return
        try:
            # Linux drops the shared hold when this conversion fails: the fd closes next.
            if self.on_release is not None and _flock_within(
                    self.shared_fd, fcntl.LOCK_EX, 0, self.poll):
                self.released = self.on_release()
        finally:
            os.close(self.shared_fd)
            self.shared_fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False

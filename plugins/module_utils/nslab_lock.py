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
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import LabLockedError

LOCK_ROOT = "/run/lock/nslab"
# Waiting longer than a whole lab build takes means something is stuck: say so.
DEFAULT_TIMEOUT = 600.0


def lock_path(lab, root=LOCK_ROOT):
    return os.path.join(root, lab + ".lock")


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
        self.fd = None
        self.waited = 0.0

    def acquire(self):
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        start = time.monotonic()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
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
        return self

    def _is_current(self, fd):
        try:
            current = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino)

    def release(self):
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)     # closing drops the flock
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin ctypes wrappers for the syscalls nslab uses directly.

mount(2) from Python costs ~0.5 ms where the mount binary costs ~14 ms and re-reads the
whole mount table on every call, so namespaces and overlays are made with these.
Each wrapper raises OSError with the errno and the path, like the os module does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000

MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

_libc = None


def libc():
    global _libc
    if _libc is None:
        # The process's own libc first: find_library runs ldconfig, a process per module run.
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.setns
        except (OSError, AttributeError):
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _check(result, what, path=None):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)), path)


def _b(value):
    return value.encode() if isinstance(value, str) else value


def mount(source, target, fstype=None, flags=0, data=None):
    _check(libc().mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
           "mount", target)


def umount2(target, flags=0):
    _check(libc().umount2(_b(target), flags), "umount2", target)


def unshare(flags):
    _check(libc().unshare(flags), "unshare")


def setns(fd, nstype=0):
    _check(libc().setns(fd, nstype), "setns")

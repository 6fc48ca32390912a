# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parser for /proc/<pid>/mountinfo (pure; unit-tested on captured tables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List


@dataclass
class MountEntry:
    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    options: str
    propagation: List[str]     # e.g. ["shared:1"], ["master:3"], [] for private
    fstype: str
    source: str
    super_options: str = ""    # e.g. "rw,memory" (cgroup v1 controllers), overlay's lowerdir=...


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field          # almost every field: a lab's thousands of mounts parse fast
    out, index = [], 0
    while index < len(field):
        if field[index] == "\\" and field[index + 1:index + 4].isdigit():
            out.append(chr(int(field[index + 1:index + 4], 8)))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return "".join(out)


def parse_mountinfo(text):
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        left, _sep, right = line.partition(" - ")
        fields = left.split()
        tail = right.split()
        entries.append(MountEntry(
            mount_id=int(fields[0]), parent_id=int(fields[1]), root=_unescape(fields[3]),
            mount_point=_unescape(fields[4]), options=fields[5], propagation=fields[6:],
            fstype=tail[0] if tail else "", source=_unescape(tail[1]) if len(tail) > 1 else "",
            super_options=tail[2] if len(tail) > 2 else ""))
    return entries


def escape(path):
    """``path`` as mountinfo writes it (space, tab, newline and backslash as \\ooo)."""
    return "".join("\\%03o" % ord(c) if c in " \t\n\\" else c for c in path)


def read_mountinfo(pid="self", containing=None):
    """The mount table; with ``containing`` (a path), only the lines that name it - enough
    for ``mounts_below(..., containing)``, and cheap where a lab has thousands of mounts."""
    with open("/proc/%s/mountinfo" % pid) as handle:
        text = handle.read()
    if containing is not None:
        needle = escape(containing.rstrip("/"))
        text = "\n".join(line for line in text.splitlines() if needle in line)
    return parse_mountinfo(text)


def mount_points(entries, fstype=None):
    return set(e.mount_point for e in entries if fstype is None or e.fstype == fstype)


def mounts_below(entries, path):
    """Mounts at ``path`` or below it, in mount order (oldest first)."""
    path = path.rstrip("/")
    return [e for e in entries if e.mount_point == path or e.mount_point.startswith(path + "/")]

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parsers for building root filesystems (unit-tested on captured output).

- ``elf_interpreter``: the dynamic loader an ELF binary names (PT_INTERP), or None for a
  static one. Needed before asking the loader anything: ``ld.so --list`` of a static
  binary runs it (and crashes: a static busybox segfaults).
- ``parse_loader_list``: the output of ``<loader> --list BINARY`` (the same as ``ldd``).
- ``parse_busybox_list``: ``busybox --list-full``, one applet path per line.
- ``parse_apt_sources`` / ``default_mirror``: the host's configured Debian mirror from
  one-line ``sources.list`` and deb822 ``.sources`` files.
"""

from __future__ import annotations

import posixpath
import struct
from dataclasses import dataclass, field
from typing import List

PT_INTERP = 3


def elf_interpreter(head):
    """The PT_INTERP path in ``head`` (the first bytes of a file, 64 KiB is plenty), or
    None for a static binary. Raises ValueError for anything that is not ELF."""
    if head[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    if head[4] not in (1, 2) or head[5] not in (1, 2):
        raise ValueError("unknown ELF class or byte order")
    wide = head[4] == 2
    order = "<" if head[5] == 1 else ">"
    try:
        if wide:
            (phoff,) = struct.unpack_from(order + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
        else:
            (phoff,) = struct.unpack_from(order + "I", head, 28)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
        for index in range(phnum):
            entry = phoff + index * phentsize
            (p_type,) = struct.unpack_from(order + "I", head, entry)
            if p_type != PT_INTERP:
                continue
            if wide:
                (offset,) = struct.unpack_from(order + "Q", head, entry + 8)
                (size,) = struct.unpack_from(order + "Q", head, entry + 32)
            else:
                (offset,) = struct.unpack_from(order + "I", head, entry + 4)
                (size,) = struct.unpack_from(order + "I", head, entry + 16)
            if offset + size > len(head):
                raise ValueError("truncated ELF file")
            return head[offset:offset + size].rstrip(b"\0").decode("utf-8", "replace")
    except struct.error:
        raise ValueError("truncated ELF file")
    return None


@dataclass
class LoaderList:
    paths: List[str] = field(default_factory=list)     # every file the loader maps
    missing: List[str] = field(default_factory=list)   # sonames it could not find


def parse_loader_list(text):
    """``ld.so --list`` output: ``soname => /path (0x...)``, ``soname => not found``,
    the loader as ``/path (0x...)`` and the vDSO as ``linux-vdso.so.1 (0x...)`` (no file)."""
    result = LoaderList()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("statically linked"):
            continue
        if "=>" in line:
            soname, _sep, rest = line.partition("=>")
            rest = rest.strip()
            if rest.startswith("not found"):
                result.missing.append(soname.strip())
                continue
            path = rest.split(" (", 1)[0].strip()
        else:
            path = line.split(" (", 1)[0].strip()
        if path.startswith("/") and path not in result.paths:
            result.paths.append(path)
    return result


def parse_busybox_list(text):
    """Applet paths relative to / (``usr/bin/awk``). Raises ValueError on a path that
    would leave the root."""
    paths = []
    for line in text.splitlines():
        path = line.strip()
        if not path:
            continue
        normal = posixpath.normpath(path)
        if path.startswith("/") or normal != path or normal.split("/")[0] == "..":
            raise ValueError("applet path %r is not a plain relative path" % path)
        paths.append(path)
    return paths


@dataclass
class AptSource:
    uri: str
    suites: List[str]
    components: List[str]


def _one_line_sources(text):
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            yield AptSource(words[0], [words[1]], words[2:])


def _deb822_sources(text):
    for stanza in text.replace("\r", "").split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _sep, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield AptSource(uri, fields.get("suites", "").split(),
                            fields.get("components", "").split())


def parse_apt_sources(text, deb822):
    return list(_deb822_sources(text) if deb822 else _one_line_sources(text))


def default_mirror(sources, suite):
    """The URI of the first source that lists ``suite``, else of the first main-archive
    source (one with a suite that is not -updates, -security, ...): the same mirror
    serves the other releases of its distribution."""
    for source in sources:
        if suite in source.suites:
            return source.uri
    for source in sources:
        if any("-" not in s for s in source.suites):
            return source.uri
    return None

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vocabulary of a jail's source: which kinds a base may be built from, the options
each takes and the forms of their values. nslab_sources builds bases from it and
nslab_compile checks a topology's jails against it without importing the builders.

Standard library only.
"""

import re

SOURCES = ["busybox", "host", "debootstrap", "tarball", "directory"]
SOURCE_OPTIONS = {
    "busybox": ["path"],
    "host": ["binaries"],
    "debootstrap": ["suite", "mirror", "variant", "include"],
    "tarball": ["path", "keep_setuid"],
    "directory": ["path", "keep_setuid"],
}
VARIANTS = ["minbase", "buildd", "default"]
SUITE_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
MIRROR_RE = re.compile(r"^(https?|file)://\S+$")

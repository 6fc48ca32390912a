# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation shared by nslab's modules that change things: the lab option and the
attributes they all support (full check and diff mode, on Linux)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  lab:
    description: Lab that owns the objects (1-24 characters of a-z, 0-9, C(-), C(_)).
    type: str
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: linux
"""

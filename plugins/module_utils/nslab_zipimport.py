# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nslab's module_utils compiled once each when a module runs from its Ansible payload.

Ansible runs a module from a zip of the module and every module_utils file it imports
(the AnsiballZ payload), through Python's zipimport. zipimport (3.9 to 3.13) compiles a
module's source twice: once when the import system asks it for the module's file name
(``get_filename`` compiles to find it), once to run it. nslab's modules import 200-600 KB
of module_utils, so that second compile is a fixed cost of every nslab task: about a
quarter of a second per module run on a small host (issue #12).

Each nslab module imports this file first. Imported from a payload zip, it puts a finder
in front of ``sys.meta_path`` that serves the rest of nslab's module_utils from the same
zip, each source compiled once; ansible-core's own module_utils are left to zipimport.
Imported any other way (a checkout, a controller plugin, a unit test) it does nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import zipimport
import zipfile

PACKAGE = __name__.rpartition(".")[0]       # ansible_collections.nslab.lab.plugins.module_utils


class PayloadLoader(importlib.abc.InspectLoader):
    """One module_utils file of the payload: its source read from the zip, compiled once."""

    def __init__(self, archive, member, path):
        self.archive, self.member, self.path = archive, member, path

    def get_source(self, fullname):
        return self.archive.read(self.member).decode("utf-8")

    def get_code(self, fullname):
        return compile(self.archive.read(self.member), self.path, "exec", dont_inherit=True)

    def is_package(self, fullname):
        return False


class PayloadFinder(importlib.abc.MetaPathFinder):
    """Finds ``PACKAGE.<name>`` in the payload zip at ``path``; anything else it leaves to
    the finders after it."""

    def __init__(self, path):
        self.path = path
        self.archive = zipfile.ZipFile(path)
        self.members = frozenset(self.archive.namelist())

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(PACKAGE + "."):
            return None
        member = fullname.replace(".", "/") + ".py"
        if member not in self.members:
            return None
        location = "%s/%s" % (self.path, member)      # the __file__ zipimport gives
        return importlib.util.spec_from_file_location(
            fullname, location, loader=PayloadLoader(self.archive, member, location))


def install(loader):
    """Put a PayloadFinder for ``loader``'s zip first, if this module came from a zip and
    none is there yet. Returns the finder in use, or None."""
    if not isinstance(loader, zipimport.zipimporter):
        return None
    for finder in sys.meta_path:
        if isinstance(finder, PayloadFinder) and finder.path == loader.archive:
            return finder
    finder = PayloadFinder(loader.archive)
    sys.meta_path.insert(0, finder)
    return finder


install(globals().get("__loader__"))

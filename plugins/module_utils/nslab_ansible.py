# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between AnsibleModule and nslab's core: the runner, list-or-single arguments,
and the one place where nslab's typed errors become ``fail_json``.

It takes a module object but never imports AnsibleModule, so the rest of module_utils
stays importable (and testable) without Ansible's module machinery.
"""

from __future__ import annotations

import os
import re
import subprocess
import traceback

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    NslabError, ValidationError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_lock import DEFAULT_TIMEOUT, LabLock
from ansible_collections.nslab.lab.plugins.module_utils.nslab_runner import (
    Runner, subprocess_run)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_shared import tidy
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import lab_problem


def runner_for(module):
    return Runner(subprocess_run,
                  ip=module.get_bin_path("ip", required=True),
                  nsenter=module.get_bin_path("nsenter", required=True),
                  bridge=module.get_bin_path("bridge") or "bridge", netlink=True)


def tidy_for(module):
    """nslab_shared's tidy as a lock's ``on_release``: the shared roots no lab uses any
    more go. It runs after the module's work, so a failure there is a warning."""
    def release():
        try:
            return tidy(subprocess_run, module.get_bin_path("nft"))
        except OSError as err:
            module.warn("could not remove nslab's empty shared roots: %s" % err)
            return []
    return release


def installed_packages(module, names):
    """{name: installed?} from one dpkg-query (rc 1 when it does not know one of them);
    all false on a host without dpkg."""
    installed = dict((name, False) for name in names)
    dpkg_query = module.get_bin_path("dpkg-query")
    if dpkg_query is not None:
        _rc, out, _err = module.run_command(
            [dpkg_query, "--show", "--showformat=${Package} ${db:Status-Status}\\n"] + names,
            environ_update={"LC_ALL": "C"})
        for line in out.splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] in installed:
                installed[fields[0]] = fields[1] == "installed"
    return installed


def items_from_params(params, list_key, item_keys, inherited=("state",)):
    """The objects a module converges: ``params[list_key]``, or one built from the
    top-level options. An item option in ``inherited`` that the item leaves unset takes
    the top-level value (``state`` by default).

    Each item gets ``_where``, the prefix that names its options in error messages
    (``bridges[2].`` for list items, empty for the top-level form)."""
    if params.get(list_key) is not None:
        items = [dict(item, _where="%s[%d]." % (list_key, index))
                 for index, item in enumerate(params[list_key])]
    else:
        items = [dict(((k, params.get(k)) for k in item_keys), _where="")]
    for item in items:
        for key in inherited:
            if item.get(key) is None:
                item[key] = params.get(key)
    return items


def check_lab(params):
    problem = lab_problem("lab", params["lab"])
    if problem:
        raise ValidationError(problem)


def lock_timeout():
    """Seconds a module waits for another run's hold on the lab (NSLAB_LOCK_TIMEOUT)."""
    try:
        return float(os.environ.get("NSLAB_LOCK_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


# The call on the failing line, as a verb a user reads (the innermost frame of an OSError).
OS_OPERATIONS = (
    ("makedirs", "create directory"), ("mkdir", "create directory"),
    ("rmdir", "remove directory"), ("unlink", "remove"), ("remove", "remove"),
    ("rename", "rename"), ("replace", "replace"), ("listdir", "list directory"),
    ("scandir", "list directory"), ("umount2", "unmount"), ("umount", "unmount"),
    ("mount", "mount"), ("chmod", "change the mode of"), ("chown", "change the owner of"),
    ("symlink", "create symlink"), ("readlink", "read link"), ("lstat", "inspect"),
    ("stat", "inspect"),
    ("kill", "signal"), ("setns", "enter namespace"), ("unshare", "unshare"),
    ("Popen", "run"), ("fork", "fork"), ("flock", "lock"), ("lockf", "lock"),
    ("write", "write"), ("read", "read"), ("open", "open"),
)


def os_error_details(err, tb):
    """What a user needs of an OSError: the operation (from the call on the innermost
    failing line), the path(s), the kernel's reason and where in nslab it happened."""
    frames = traceback.extract_tb(tb)
    frame = frames[-1] if frames else None
    # The raising line, or its caller's when it is a wrapper's own ``raise OSError(...)``.
    lines = [f.line or "" for f in reversed(frames[-2:])]
    operation = next((verb for line in lines for call, verb in OS_OPERATIONS
                      if re.search(r"\b%s\(" % call, line)), "operate on")
    return {"operation": operation,
            "path": err.filename, "path2": err.filename2,
            "errno": err.errno, "reason": err.strerror or str(err),
            "where": "%s:%s %s" % (os.path.basename(frame.filename), frame.lineno, frame.name)
                     if frame else None}


def os_error_message(details):
    """``cannot remove directory '/x': Device or resource busy``."""
    paths = " to ".join("'%s'" % p for p in (details["path"], details["path2"]) if p)
    return "cannot %s%s: %s" % (details["operation"], " " + paths if paths else "",
                                details["reason"])


def run_module(module, what, core, lock=False, progress=None):
    """Run ``core(module) -> result`` and exit. The error boundary: every failure a user
    or the host can cause becomes fail_json with one clear message — nslab's typed errors,
    an OSError (the operation and path named), a command that hung. A bug (KeyError,
    TypeError...) is left to raise, so it reads as the bug it is. With ``lock``, the run
    holds the lab's lock (nslab_lock) from its first read to its last write, so two runs
    on one lab never interleave, and (outside check mode) removes the shared roots no lab
    uses any more when it lets go, if no other run is going (nslab_shared).

    ``what`` names the work in the message ("converge cgroups of lab 'demo'"); a module
    that runs several parts passes a callable, asked at failure time, to name the part
    that failed, and ``progress``, a dict its core fills as it goes (what the parts before
    changed), which a failure's result carries."""
    try:
        if lock:
            check_lab(module.params)
            with LabLock(module.params["lab"], timeout=lock_timeout()) as held:
                if not module.check_mode:
                    held.on_release = tidy_for(module)
                result = core(module)
        else:
            result = core(module)
    except NslabError as err:
        module.fail_json(msg="Failed to %s: %s" % (_doing(what), err),
                         **dict(progress or {}, **err.details()))
    except OSError as err:
        details = os_error_details(err, err.__traceback__)
        module.fail_json(msg="Failed to %s: %s" % (_doing(what), os_error_message(details)),
                         os_error=details, **(progress or {}))
    except subprocess.TimeoutExpired as err:
        module.fail_json(msg="Failed to %s: command %s did not finish within %s s" % (
            _doing(what), " ".join(str(a) for a in err.cmd)
            if isinstance(err.cmd, (list, tuple)) else err.cmd, err.timeout),
            cmd=err.cmd, **(progress or {}))
    module.exit_json(**result)


def _doing(what):
    return what() if callable(what) else what


class PartModule:
    """One part's view of a module that runs several in one process (nslab_nodes): the
    part's own validated ``params``; everything else - check and diff mode, commands,
    binaries, warnings - is the real module's. ``views``: whether the caller uses the
    part's views of its objects (a module of its own always returns them); a part may
    leave out of its result, and not read, what only those views show."""

    def __init__(self, module, params, views=True):
        self._module = module
        self.params = params
        self.views = views

    def __getattr__(self, name):
        return getattr(self._module, name)


def list_argument_spec(item_options, list_key, default_state, **extra):
    """The argument_spec of a module that converges one object (its options at the top
    level) or a list of them (``list_key``), for a ``lab``. ``item_options(item)`` gives the
    object's options; as list items their name is required and their state is inherited."""
    spec = item_options(item=False)
    spec["state"]["default"] = default_state
    spec.update(
        lab=dict(type="str", required=True),
        **{list_key: dict(type="list", elements="dict", options=item_options(item=True))})
    spec.update(extra)
    return spec


def main_of(module_class, argument_spec, list_key, kind, core):
    """The ``main()`` of such a module: ``name`` or ``list_key``, check mode, and
    nslab's errors as fail_json. ``module_class`` is AnsibleModule (passed in so that
    module_utils never import it)."""
    module = module_class(
        argument_spec=argument_spec,
        mutually_exclusive=[("name", list_key)],
        required_one_of=[("name", list_key)],
        supports_check_mode=True,
    )
    run_module(module, "converge %s of lab '%s'" % (kind, module.params["lab"]), core,
               lock=True)

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

from ansible.module_utils.nslab_errors import NslabError, ValidationError
from ansible.module_utils.nslab_lock import DEFAULT_TIMEOUT, LabLock
from ansible.module_utils.nslab_runner import Runner
from ansible.module_utils.nslab_validate import lab_problem


def runner_for(module):
    def run(argv, data=None):
        return module.run_command(argv, data=data,
                                  environ_update={"LC_ALL": "C", "LANG": "C"})
    return Runner(run,
                  ip=module.get_bin_path("ip", required=True),
                  nsenter=module.get_bin_path("nsenter", required=True),
                  bridge=module.get_bin_path("bridge") or "bridge")


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


def run_module(module, what, core, lock=False):
    """Run ``core(module) -> result`` and exit; nslab errors become fail_json. With
    ``lock``, the run holds the lab's lock (nslab_lock) from its first read to its last
    write, so two runs on one lab never interleave."""
    try:
        if lock:
            check_lab(module.params)
            with LabLock(module.params["lab"], timeout=lock_timeout()):
                result = core(module)
        else:
            result = core(module)
    except NslabError as err:
        module.fail_json(msg="Failed to %s: %s" % (what, err), **err.details())
    module.exit_json(**result)


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

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the module nslab_namespace does, for any module object: its argument spec and
``converge(module) -> result`` (read the kernel, plan, apply unless in check mode, re-read).
The module runs it alone; nslab_nodes runs it with the node's other parts in one process."""

from __future__ import annotations

from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, items_from_params, list_argument_spec, runner_for)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import (
    mount_points, read_mountinfo)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NS_TYPES, NamespaceApplier, NamespaceSpec, NamespaceStore, plan_namespaces)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
    hostname_problem, nsname_problem)


def build_specs(items):
    problems, specs, names = [], [], set()
    for item in items:
        where = item["_where"]
        problems.append(nsname_problem(where + "name", item["name"]))
        if item["name"] in names:
            problems.append("%sname: namespace '%s' is listed twice" % (where, item["name"]))
        names.add(item["name"])
        types = list(dict.fromkeys(item.get("types") or ["net"]))
        hostname = item.get("hostname")
        if hostname and "uts" not in types:
            problems.append("%shostname: '%s' needs 'uts' in types (got %s)" % (
                where, hostname, ", ".join(types)))
        if "uts" in types and not hostname:
            hostname = item["name"]
        if hostname:
            problems.append(hostname_problem(where + "hostname", hostname))
        specs.append(NamespaceSpec(item["name"], types, hostname, item["state"]))
    problems = [p for p in problems if p]
    if problems:
        raise ValidationError(problems)
    return specs


def read_states(store, specs):
    nsfs = mount_points(read_mountinfo(), "nsfs")
    return dict((s.name, store.read(s.name, nsfs, with_hostname="uts" in s.types))
                for s in specs)


def predicted_view(spec, store):
    if spec.state == "absent":
        return {"state": "absent"}
    return {"state": "present", "types": sorted(spec.types),
            "hostname": spec.hostname if "uts" in spec.types else None,
            "paths": dict((t, store.path(store.lab, spec.name, t)) for t in sorted(spec.types))}


def converge(module):
    params = module.params
    check_lab(params)
    items = items_from_params(params, "namespaces", ["name", "types", "hostname", "state"])
    specs = build_specs(items)
    store = NamespaceStore(params["lab"])

    states = read_states(store, specs)
    actions = plan_namespaces(specs, states, params["lab"])
    after = states
    if actions and not module.check_mode:
        NamespaceApplier(store, runner_for(module)).apply(actions)
        after = read_states(store, specs)

    result = {
        "changed": bool(actions),
        "actions": [a.summary for a in actions],
        "namespaces": [dict(name=s.name, **after[s.name].view(store)) for s in specs],
    }
    if module._diff:
        result["diff"] = {
            "before": dict((s.name, states[s.name].view(store)) for s in specs),
            "after": dict((s.name, predicted_view(s, store) if module.check_mode
                           else after[s.name].view(store)) for s in specs),
        }
    return result


def namespace_options(item=False):
    return dict(
        name=dict(type="str", required=item),
        types=dict(type="list", elements="str", choices=NS_TYPES, default=["net"]),
        hostname=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"]),
    )


def get_argument_spec():
    return list_argument_spec(namespace_options, "namespaces", "present")

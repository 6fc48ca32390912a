# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the module nslab_route does, for any module object: its argument spec and
``converge(module) -> result`` (read the kernel, plan, apply unless in check mode, re-read).
The module runs it alone; nslab_nodes runs it with the node's other parts in one process."""

from __future__ import annotations

import functools
import ipaddress

from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import runner_for
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    BatchError, ValidationError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NamespaceStore, check_lab_netns)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_routes import (
    desired_routes, canonical_to, parse_routes, plan_routes, read_namespace_text, routes_view,
    up_subnets)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_undo import UndoLog
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import nsname_problem


def route_problems(where, route):
    """Problems of one {to, via}, each naming its option."""
    try:
        via = ipaddress.ip_address(route["via"])
    except ValueError:
        return ["%svia: '%s' is not an IP address; expected a gateway like 10.213.1.1" % (
            where, route["via"])]
    try:
        family, _to = canonical_to(route["to"], via.version)
    except ValueError:
        return ["%sto: '%s' is not a network; expected 'default' or a CIDR with its host "
                "bits zero, like 10.9.0.0/16" % (where, route["to"])]
    if family != via.version:
        return ["%svia: %s is IPv%d but to %s is IPv%d; expected one family" % (
            where, via, via.version, route["to"], family)]
    return []


def check_nodes(nodes):
    problems, seen = [], set()
    for index, node in enumerate(nodes):
        where = "nodes[%d]." % index
        problem = nsname_problem(where + "netns", node["netns"])
        if problem:
            problems.append(problem)
        if node["netns"] in seen:
            problems.append("%snetns: '%s' is listed twice; expected each once" % (
                where, node["netns"]))
        seen.add(node["netns"])
        keys = {}
        for position, route in enumerate(node["routes"]):
            at = "%sroutes[%d]." % (where, position)
            found = route_problems(at, route)
            problems.extend(found)
            if found:
                continue
            key = desired_routes([route])[0].key
            if key in keys:
                problems.append("%sto: %s (IPv%d) is already routed by %s; expected each "
                                "destination once" % (at, route["to"], key[0], keys[key]))
            keys[key] = at.rstrip(".")
    if problems:
        raise ValidationError(problems)


def read_namespace(runner, netns):
    """(routes, up subnets) of a namespace, in one ``ip`` process."""
    out = read_namespace_text(runner, netns)
    return parse_routes(out), up_subnets(out)


def apply(runner, plans):
    """Run each namespace's actions in one batch; on a failure undo what was done (this
    namespace's finished lines, then the earlier namespaces'), newest first."""
    log = UndoLog()
    for netns, actions in plans:
        try:
            runner.ip_batch([a.command for a in actions], netns=netns)
        except BatchError as err:
            record_routes(runner, log, netns, actions[:max(err.failed_index, 0)])
            raise log.fail(err)
        record_routes(runner, log, netns, actions)


def record_routes(runner, log, netns, actions):
    for action in actions:
        undo = None if action.undo is None else functools.partial(
            runner.ip_batch, [action.undo], netns=netns)
        log.record(action.summary, undo)


def predicted(desired, pending, current):
    """nslab's routes of a namespace once the plan is applied (check mode): the desired
    ones, except those waiting for their interface, which keep what they have."""
    waiting_keys = set(r.key for r in pending)
    return routes_view([r for r in desired if r.key not in waiting_keys]
                       + [r for r in current if r.key in waiting_keys])


def converge(module):
    params = module.params
    check_nodes(params["nodes"])
    runner = runner_for(module)
    store = NamespaceStore(params["lab"])
    warnings, problems, plans = [], [], []
    before, waiting = {}, {}
    present = [n["netns"] for n in params["nodes"] if check_lab_netns(store, n["netns"])]
    reads = dict(zip(present, runner.each(lambda netns: read_namespace(runner, netns), present)))
    for index, node in enumerate(params["nodes"]):
        netns = node["netns"]
        desired = desired_routes(node["routes"])
        if netns in reads:
            current, subnets = reads[netns]
        elif module.check_mode:
            warnings.append("netns '%s' does not exist yet; assuming its routes' interfaces "
                            "will be up" % netns)
            current, subnets = [], [ipaddress.ip_network(r.via) for r in desired]
        else:
            problems.append("nodes[%d].netns: '%s' does not exist; expected a net namespace "
                            "made by nslab_namespace for lab '%s'"
                            % (index, netns, params["lab"]))
            continue
        actions, pending, conflicts = plan_routes(netns, desired, current, subnets)
        for route, other in conflicts:
            problems.append(
                "nodes[%d].routes: %s in netns '%s' is already routed by %s (proto %s); "
                "nslab only changes routes it added (proto 213): expected another "
                "destination, or that route removed by hand" % (
                    index, route.to, netns, "via %s" % other.via if other.via else
                    "device %s" % other.dev, other.proto))
        before[netns] = routes_view(current)
        waiting[netns] = [r.view() for r in pending]
        plans.append((netns, actions, desired, pending, current))
    if problems:
        raise ValidationError(problems)

    summaries = [a.summary for _n, actions, _d, _p, _c in plans for a in actions]
    if summaries and not module.check_mode:
        apply(runner, [(n, actions) for n, actions, _d, _p, _c in plans if actions])
        after = dict((n, routes_view(read_namespace(runner, n)[0]))
                     for n, _a, _d, _p, _c in plans)
    else:
        after = dict((n, predicted(desired, pending, current))
                     for n, _a, desired, pending, current in plans)
    result = {"changed": bool(summaries), "actions": summaries, "routes": after,
              "waiting": dict((n, w) for n, w in waiting.items() if w)}
    if warnings:
        result["warnings"] = warnings
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    return result


def get_argument_spec():
    return dict(
        lab=dict(type="str", required=True),
        nodes=dict(type="list", elements="dict", required=True, options=dict(
            netns=dict(type="str", required=True),
            routes=dict(type="list", elements="dict", default=[], options=dict(
                to=dict(type="str", required=True),
                via=dict(type="str", required=True),
            )),
        )),
    )

# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the module nslab_container does, for any module object: its argument spec and
``converge(module) -> result`` (read the kernel, plan, apply unless in check mode, re-read).
The module runs it alone; nslab_nodes runs it with the node's other parts in one process."""

from __future__ import annotations

import os
import re

from ansible_collections.nslab.lab.plugins.module_utils.nslab_adopt import (
    find_unrecorded, stop_unrecorded, unrecorded_summaries)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import (
    check_lab, items_from_params, list_argument_spec)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_layout import detect_layout
from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_values import MAX, parse_size
from ansible_collections.nslab.lab.plugins.module_utils.nslab_container_store import (
    ContainerStore, cgroup_dirs)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_containers import (
    DEFAULT_CAPABILITIES, FILE_MAX, ContainerManager, ContainerSpec, files_to_write,
    health_problem, owned_bind_dir, plan_containers)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    NslabError, ValidationError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import CAPABILITIES
from ansible_collections.nslab.lab.plugins.module_utils.nslab_jail_read import JailStore, jail_view
from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import read_mountinfo
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import (
    NamespaceStore, check_lab_netns)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_paths import (
    INIT_MOUNTS, STATE_ROOT, under)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import (
    hostname_problem, nsname_problem)

ITEM_KEYS = ["name", "jail", "rootfs", "netns", "hostname", "command", "env", "workdir", "cap_add",
             "cap_drop", "cgroup", "files", "stop_timeout", "userns", "userns_base", "privileged",
             "binds", "log_max_size", "seccomp", "state"]
# A log smaller than a page would rotate on nearly every line.
LOG_MIN_SIZE = 4096
# What execve takes as an environment variable's name (Docker's check is the same).
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def held_capabilities():
    """Every capability this process's bounding set holds: all the host's root has (a
    sandbox may withhold some), which is what a privileged container keeps."""
    with open("/proc/self/status") as handle:
        bounding = [int(line.split()[1], 16) for line in handle if line.startswith("CapBnd:")]
    return [name for number, name in enumerate(CAPABILITIES) if bounding[0] >> number & 1]


def bind_specs(where, lab, name, binds, starting, check_mode, problems, warnings):
    """binds items -> [{path, source, readonly}] with nslab's own source filled in. A
    source must exist only to start with it (stopping or removing never mounts it); in
    check mode a missing one is a warning, as an earlier task may make it."""
    result, paths = [], set()
    for index, bind in enumerate(binds or []):   # items checked by the argument spec
        at = "%sbinds[%d]" % (where, index)
        path, source = bind["path"], bind.get("source")
        if not path.startswith("/") or os.path.normpath(path) != path or path == "/" or \
                under(path, INIT_MOUNTS):
            problems.append("%s.path: '%s' is not allowed; expected an absolute, normal path "
                            "other than /, outside /proc, /sys and /dev" % (at, path))
        elif path in paths:
            problems.append("%s.path: '%s' is bound twice" % (at, path))
        paths.add(path)
        if source is None:
            source = owned_bind_dir(lab, name) + path
        elif not os.path.isabs(source) or os.path.normpath(source) != source:
            problems.append("%s.source: '%s' is not an absolute, normal path; expected a host "
                            "directory" % (at, source))
        else:
            real = os.path.realpath(source)
            if real == "/" or under(real, INIT_MOUNTS + (STATE_ROOT,)):
                problems.append("%s.source: '%s' is not allowed; expected a host directory "
                                "other than /, outside /proc, /sys, /dev and %s" % (
                                    at, source, STATE_ROOT))
            elif starting and not os.path.isdir(real):
                message = "%s.source: '%s' is not a directory; expected an existing host " \
                          "directory" % (at, source)
                (warnings if check_mode else problems).append(message)
            source = real
        result.append({"path": path, "source": source,
                       "readonly": bool(bind.get("readonly", False))})
    return result


def env_problems(where, env):
    """Environment entries the command could not be given (a name with '=', a NUL...)."""
    problems = []
    for key, value in (env or {}).items():
        if not ENV_KEY_RE.fullmatch(str(key)):
            problems.append("%senv: name %r is not allowed; expected letters, digits and '_', "
                            "not starting with a digit" % (where, str(key)))
        elif "\0" in str(value):
            problems.append("%senv.%s: the value contains a NUL byte; expected text without "
                            "one" % (where, key))
    return problems


def capability_names(where, names, problems):
    result = []
    for name in names or []:
        key = name.upper()
        key = key[4:] if key.startswith("CAP_") else key
        if key not in CAPABILITIES:
            problems.append("%s: unknown capability '%s'; expected one of %s" % (
                where, name, ", ".join(CAPABILITIES)))
        else:
            result.append(key)
    return result


class JailRoots:
    """Roots of the lab's jails, read once for the whole task."""

    def __init__(self, lab, names):
        self.lab, self.store = lab, JailStore(lab)
        try:
            self.state, self.error = self.store.read(sorted(set(names))), None
        except NslabError as err:
            self.state, self.error = None, err

    def root(self, where, name, check_mode, problems, warnings):
        """The root of jail ``name`` if it exists and is mounted (else a problem)."""
        if self.error is not None:
            problems.append("%sjail: %s" % (where, self.error))
            return ""
        view = jail_view(self.store, name, self.state)
        if view["state"] != "present":
            message = "%sjail: '%s' is %s; expected a jail made and mounted by nslab_jail " \
                      "for lab '%s'" % (where, name, "not mounted" if view["state"] ==
                                        "unmounted" else "absent", self.lab)
            (warnings if check_mode else problems).append(message)
        return self.store.jail_path(name, "root")


def build_specs(items, lab, check_mode, warnings, layout):
    problems, specs, names = [], [], set()
    netns_store = NamespaceStore(lab)
    jails = JailRoots(lab, [i["jail"] for i in items if i.get("jail")])
    for item in items:
        where = item["_where"]
        name = item["name"]
        problems.append(nsname_problem(where + "name", name))
        if name in names:
            problems.append("%sname: container '%s' is listed twice" % (where, name))
        names.add(name)
        hostname = item.get("hostname") or name
        problems.append(hostname_problem(where + "hostname", hostname))
        add = capability_names(where + "cap_add", item.get("cap_add"), problems)
        drop = capability_names(where + "cap_drop", item.get("cap_drop"), problems)
        base_set = held_capabilities() if item.get("privileged") else DEFAULT_CAPABILITIES
        capabilities = sorted((set(base_set) | set(add)) - set(drop))
        if item.get("privileged") and item.get("userns"):
            problems.append("%sprivileged: a privileged container cannot have its own user "
                            "namespace (userns); expected one of them" % where)
        starting = item["state"] in ("started", "restarted")
        binds = bind_specs(where, lab, name, item.get("binds"), starting, check_mode, problems,
                           warnings)
        rootfs = item.get("rootfs") or ""
        if item.get("jail") and rootfs:
            problems.append("%sjail: give a jail or a rootfs, not both" % where)
        elif item.get("jail") and starting:
            rootfs = jails.root(where, item["jail"], check_mode, problems, warnings)
        elif starting:
            if not rootfs:
                problems.append("%srootfs: missing; expected a jail (or a rootfs) to start "
                                "container '%s' in" % (where, name))
            elif not os.path.isabs(rootfs) or os.path.realpath(rootfs) == "/":
                problems.append("%srootfs: '%s' is not allowed; expected an absolute path "
                                "to a jail directory, never the host's /" % (where, rootfs))
            elif not os.path.isdir(rootfs):
                problems.append("%srootfs: '%s' is not a directory; expected a root "
                                "filesystem" % (where, rootfs))
        if starting:
            if item.get("netns") and not check_lab_netns(netns_store, item["netns"]):
                message = "%snetns: '%s' does not exist; expected a net namespace of lab '%s'" % (
                    where, item["netns"], lab)
                (warnings if check_mode else problems).append(message)
            if item.get("cgroup") and not cgroup_dirs(layout, lab, item["cgroup"]):
                message = "%scgroup: 'nslab/%s/%s' does not exist in any hierarchy; expected " \
                          "a cgroup made by nslab_cgroup" % (where, lab, item["cgroup"])
                (warnings if check_mode else problems).append(message)
        problems.extend(env_problems(where, item.get("env")))
        log_max_size, problem = parse_size(where + "log_max_size", item.get("log_max_size", "1M"),
                                           minimum=LOG_MIN_SIZE)
        if log_max_size == MAX:
            log_max_size, problem = None, "%slog_max_size: 'max' is not allowed; expected a " \
                                          "size like 1M" % where
        problems.append(problem)
        files, file_modes, restart_files = file_specs(where, item.get("files"), problems)
        base = item.get("userns_base")
        if item.get("userns") and (base is None or not 1 <= base <= 2 ** 32 - 65537):
            problems.append("%suserns_base: %s is out of range; expected 1 to %d" % (
                where, base, 2 ** 32 - 65537))
        if item.get("stop_timeout") is not None and item["stop_timeout"] < 0:
            problems.append("%sstop_timeout: %s is negative; expected seconds >= 0" % (
                where, item["stop_timeout"]))
        specs.append(ContainerSpec(
            name=name, rootfs=os.path.realpath(rootfs) if rootfs else "",
            netns=item.get("netns"), hostname=hostname, command=list(item.get("command") or []),
            env=dict((str(k), str(v)) for k, v in (item.get("env") or {}).items()),
            workdir=item.get("workdir") or "/", capabilities=capabilities,
            cgroup=item.get("cgroup"), stop_timeout=item.get("stop_timeout", 10),
            files=files, file_modes=file_modes, restart_files=restart_files,
            userns_base=base if item.get("userns") else None,
            privileged=bool(item.get("privileged")), binds=binds,
            log_max_size=log_max_size or 0, seccomp=item.get("seccomp") or "default",
            state=item["state"]))
    problems = [p for p in problems if p]
    if problems:
        raise ValidationError(problems)
    return specs


FILE_OPTIONS = ("content", "mode", "restart")
FILE_MODE_RE = re.compile(r"0?[0-7]{3}")


def file_specs(where, files, problems):
    """O(files) -> ({path: content}, {path: mode}, [paths whose change restarts])."""
    contents, modes, restart = {}, {}, []
    for path, value in (files or {}).items():
        at = "%sfiles.%s" % (where, path)
        if not path.startswith("/") or os.path.normpath(path) != path or path == "/" or \
                under(path, INIT_MOUNTS):
            problems.append("%sfiles: '%s' is not allowed; expected an absolute, normal "
                            "path of a file like /etc/hosts, outside /proc, /sys and /dev"
                            % (where, path))
            continue
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(FILE_OPTIONS))
            if unknown or not isinstance(value.get("content"), str):
                problems.append("%s: %r is not a file; expected a string (its content) or "
                                "{content: TEXT, mode: \"0640\", restart: true}" % (at, value))
                continue
            mode = value.get("mode", "0644")
            if not isinstance(mode, str) or not FILE_MODE_RE.fullmatch(mode):
                problems.append("%s.mode: %r is not allowed; expected permission bits as an "
                                "octal string from \"0000\" to \"0777\", like \"0640\"" % (
                                    at, mode))
                continue
            if not isinstance(value.get("restart", False), bool):
                problems.append("%s.restart: %r is not a boolean; expected true or false" % (
                    at, value["restart"]))
                continue
            content = value["content"]
            modes[path] = int(mode, 8)
            if value.get("restart"):
                restart.append(path)
        else:
            content = str(value)
        if len(content.encode("utf-8")) > FILE_MAX:
            problems.append("%s: %d bytes is too big; expected at most %d" % (
                at, len(content.encode("utf-8")), FILE_MAX))
            continue
        contents[path] = content
    return contents, modes, sorted(restart)


def predicted_view(spec, current):
    if spec.state == "absent":
        return {"state": "absent"}
    if spec.state == "stopped":
        return dict(current, state="stopped") if current["state"] != "absent" else current
    view = dict(spec.config(), state="running")
    view.pop("env")
    view.pop("workdir")
    view.pop("file_digests")
    return view


def diff_view(view):
    keys = ("state", "hostname", "command", "rootfs", "netns", "cgroup", "capabilities",
            "userns_base", "privileged", "binds")
    return dict((k, view[k]) for k in keys if k in view)


def converge(module):
    params = module.params
    check_lab(params)
    lab = params["lab"]
    warnings = []
    items = items_from_params(params, "containers", ITEM_KEYS)
    if params.get("containers") is not None and params.get("files"):
        for item in items:
            item["files"] = dict(params["files"], **(item.get("files") or {}))
    # Only containers with a cgroup need the host's cgroup layout.
    mounts = read_mountinfo()
    layout = detect_layout(mounts) if any(i.get("cgroup") for i in items) else None
    specs = build_specs(items, lab, module.check_mode, warnings, layout)
    for warning in warnings:
        module.warn(warning)
    store = ContainerStore(lab)

    states = dict((s.name, store.read(s.name)) for s in specs)
    stale = dict((s.name, files_to_write(s, store.files_dir(s.name))) for s in specs
                 if s.files and s.state != "absent")
    bind_dirs = dict((s.name, owned_bind_dir(lab, s.name)) for s in specs
                     if os.path.isdir(owned_bind_dir(lab, s.name)))
    broken = dict((s.name, health_problem(states[s.name].record, s, layout, lab))
                  for s in specs if s.state == "started" and states[s.name].running)
    actions = plan_containers(specs, states, stale, bind_dirs, broken)
    # Recovery (nslab_adopt): verified inits of containers whose record was lost go first.
    unrecorded = find_unrecorded(lab, specs, states, layout)
    after = states
    if (actions or unrecorded) and not module.check_mode:
        stop_unrecorded(lab, unrecorded, specs, layout)
        ContainerManager(store, layout, mounts=mounts).apply(actions)
        after = dict((s.name, store.read(s.name)) for s in specs)

    result = {
        "changed": bool(actions or unrecorded),
        "actions": unrecorded_summaries(unrecorded) + [a.summary for a in actions],
        "containers": [dict(name=s.name, **after[s.name].view()) for s in specs],
    }
    if module._diff:
        result["diff"] = {
            "before": dict((s.name, diff_view(states[s.name].view())) for s in specs),
            "after": dict((s.name, diff_view(
                predicted_view(s, states[s.name].view()) if module.check_mode
                else after[s.name].view())) for s in specs),
        }
    return result


def container_options(item=False):
    return dict(
        name=dict(type="str", required=item),
        jail=dict(type="str"),
        rootfs=dict(type="path"),
        netns=dict(type="str"),
        hostname=dict(type="str"),
        command=dict(type="list", elements="str", default=[]),
        env=dict(type="dict", default={}),
        workdir=dict(type="str", default="/"),
        cap_add=dict(type="list", elements="str", default=[]),
        cap_drop=dict(type="list", elements="str", default=[]),
        cgroup=dict(type="str"),
        files=dict(type="dict", default={}),
        stop_timeout=dict(type="int", default=10),
        log_max_size=dict(type="raw", default="1M"),
        seccomp=dict(type="str", default="default", choices=["default", "unconfined"]),
        userns=dict(type="bool", default=False),
        userns_base=dict(type="int", default=100000),
        privileged=dict(type="bool", default=False),
        binds=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="str", required=True),
            source=dict(type="path"),
            readonly=dict(type="bool", default=False))),
        state=dict(type="str", choices=["started", "stopped", "restarted", "absent"]),
    )


def get_argument_spec():
    return list_argument_spec(container_options, "containers", "started")

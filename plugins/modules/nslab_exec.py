#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nslab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nslab_exec
short_description: Commands run inside running nslab containers, once per start
description:
  - Runs shell commands (C(/bin/sh -c COMMAND)) inside running containers of a lab through
    nslab's door - the one the C(nslab) connection plugin and C(./nslab exec) use
    (C(enter) of module_utils C(nslab_init)) - so each runs as the container's root with the
    container's capabilities, cgroups, namespaces, seccomp filter and no_new_privs, never
    more. Their stdout, stderr and exit status are returned.
  - With O(trigger=start) (the default) a container's commands run once per start of the
    container, like containerlab's C(exec) after deploy - the first run after it was
    started or restarted runs them; a rerun that restarted nothing runs nothing and reports
    no change. Which start they ran for (the init's pid and start time) and the commands
    themselves are kept in C(/run/nslab/<lab>/containers/<name>.exec), so a changed list
    also runs (the new list) once. O(trigger=always) runs them on every run (always a
    change).
  - Commands run in order; the first that exits non-zero fails the task with the
    container, the command, its status and output (the others are not run), and nothing
    is kept, so the next run runs the whole list again.
  - In check mode nothing runs; the commands that would run are reported.
version_added: "0.1.0"
author: nslab contributors (@nslab-lab)
options:
  containers:
    description: The containers and their commands.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: A running container of the lab (nslab_container).
        type: str
        required: true
      commands:
        description: Shell commands, each run with C(/bin/sh -c) inside.
        type: list
        elements: str
        required: true
  trigger:
    description: V(start) runs each container's commands once per start of it; V(always) on
      every run.
    type: str
    choices: [start, always]
    default: start
  timeout:
    description: Seconds one command may take; it is then killed and the task fails.
    type: int
    default: 60
extends_documentation_fragment:
  - action_common_attributes
  - nslab.lab.nslab
requirements:
  - Linux, root; python3 >= 3.9 on the target
seealso:
  - module: nslab.lab.nslab_container
"""

EXAMPLES = r"""
- name: Show FRR's version inside r1 once it has started
  nslab_exec:
    lab: routers
    containers:
      - name: r1
        commands: ["vtysh -c 'show version'"]
"""

RETURN = r"""
actions:
  description: What ran (or would, in check mode), one sentence per command.
  returned: always
  type: list
  elements: str
  sample: ["run 'ip route' in container 'r1'"]
results:
  description: Each command that ran, in order.
  returned: always
  type: list
  elements: dict
  sample: [{container: r1, command: ip route, rc: 0, stdout: "10.213.1.0/24 dev eth0 ...",
            stderr: ""}]
"""

import hashlib
import inspect
import json
import subprocess
import sys

from ansible_collections.nslab.lab.plugins.module_utils import (  # pylint: disable=unused-import
    nslab_zipimport)  # first: the rest of nslab's module_utils compiled once each
from ansible_collections.nslab.lab.plugins.module_utils import nslab_init, nslab_seccomp
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nslab.lab.plugins.module_utils.nslab_ansible import run_module
from ansible_collections.nslab.lab.plugins.module_utils.nslab_container_store import ContainerStore
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import (
    ExecError, ValidationError)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import (
    read_json, write_json_atomic)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_validate import object_name_problem

# The door's exit status when it could not get in (the connection plugin's).
ENTER_FAILED = 125


def door_source():
    """nslab_seccomp's source (the filter the door installs) followed by nslab_init's."""
    return inspect.getsource(nslab_seccomp) + "\n" + inspect.getsource(nslab_init)


def door_argv(source, store, name, command):
    """A fresh, isolated Python (no site packages, no user environment) running
    nslab_init's ``enter`` with ``/bin/sh -c command`` - the connection plugin's door."""
    config = {"record": store.record_path(name), "lab": store.lab, "name": name,
              "argv": ["/bin/sh", "-c", command]}
    return [sys.executable, "-I", "-S", "-c", "%s\nenter(%s)\n" % (source, json.dumps(config))]


def marker(record, commands):
    """Which start of the container, and which commands, a run of them was for."""
    return {"pid": record["pid"], "start_time": record["start_time"],
            "commands": hashlib.sha256(json.dumps(commands).encode()).hexdigest()}


def converge(module):
    params = module.params
    store = ContainerStore(params["lab"])
    problems, todo = [], []
    for index, item in enumerate(params["containers"]):
        where = "containers[%d]" % index
        problem = object_name_problem(where + ".name", item["name"], "container")
        if problem:
            problems.append(problem)
            continue
        if not item["commands"] or not all(c.strip() for c in item["commands"]):
            problems.append("%s.commands: %r; expected one or more non-empty shell commands"
                            % (where, item["commands"]))
            continue
        state = store.read(item["name"])
        if not state.running:
            message = "%s.name: container '%s' of lab '%s' is not running; expected a " \
                      "started container" % (where, item["name"], params["lab"])
            if module.check_mode:
                # An earlier task of the same check run would start it.
                module.warn(message)
                todo.append((item, None))
                continue
            problems.append(message)
            continue
        done = read_json(store.exec_path(item["name"]))
        wanted = marker(state.record, item["commands"])
        if params["trigger"] == "always" or done != wanted:
            todo.append((item, wanted))
    if problems:
        raise ValidationError(problems)
    actions = ["run '%s' in container '%s'" % (command, item["name"])
               for item, _wanted in todo for command in item["commands"]]
    results = []
    if not module.check_mode:
        source = door_source()
        for item, wanted in todo:
            for command in item["commands"]:
                try:
                    proc = subprocess.run(door_argv(source, store, item["name"], command),
                                          stdin=subprocess.DEVNULL, capture_output=True,
                                          timeout=params["timeout"], check=False)
                except subprocess.TimeoutExpired:
                    raise ExecError("'%s' in container '%s' took more than %d s; expected "
                                    "it to end (timeout)" % (command, item["name"],
                                                             params["timeout"]), results)
                result = {"container": item["name"], "command": command,
                          "rc": proc.returncode,
                          "stdout": proc.stdout.decode("utf-8", "replace"),
                          "stderr": proc.stderr.decode("utf-8", "replace")}
                results.append(result)
                if proc.returncode != 0:
                    how = "could not enter it" if proc.returncode == ENTER_FAILED and \
                        result["stderr"].startswith("nslab enter: ") else \
                        "exited %d" % proc.returncode
                    raise ExecError("'%s' in container '%s' %s: %s" % (
                        command, item["name"], how,
                        (result["stderr"] or result["stdout"]).strip()[-500:]), results)
            write_json_atomic(store.exec_path(item["name"]), wanted)
    return {"changed": bool(todo), "actions": actions, "results": results}


def get_argument_spec():
    return dict(
        lab=dict(type="str", required=True),
        containers=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            commands=dict(type="list", elements="str", required=True))),
        trigger=dict(type="str", choices=["start", "always"], default="start"),
        timeout=dict(type="int", default=60),
    )


def main():
    module = AnsibleModule(argument_spec=get_argument_spec(), supports_check_mode=True)
    run_module(module, "run commands in containers of lab '%s'" % module.params["lab"],
               converge, lock=True)


if __name__ == "__main__":
    main()

"""Run nslab on the VM of the VM tier (tests/vm, vm/up) over SSH, as a user points it at a
real machine: ``ansible``/``ansible-playbook`` from the repository with an inventory naming
the VM, and plain ``ssh`` to read what its kernel reports."""

import json
import shlex
import subprocess

from helpers.ansible_runs import ansible_env as local_ansible_env
from helpers.paths import BIN, ROOT

CGROUP = "/sys/fs/cgroup"


def write_inventory(vm, path):
    """An Ansible inventory naming the VM at ``path``: the same file would name any real
    machine."""
    path.write_text(
        "[vm]\n"
        "nslab-vm ansible_host={host} ansible_port={port} ansible_user=root "
        "ansible_ssh_private_key_file={key} "
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' "
        "ansible_python_interpreter=/usr/bin/python3\n".format(**vm))
    return str(path)


def ansible_env():
    return dict(local_ansible_env(), ANSIBLE_HOST_KEY_CHECKING="False")


def run_module(inventory, module, args):
    """Run one module on the VM with ``ansible`` and return its result dict."""
    argv = [str(BIN / "ansible"), "all", "-i", inventory, "-m", module, "-a", json.dumps(args)]
    proc = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("{") and '"_status"' in line:
            return json.loads(line)
    raise AssertionError("no result from %s (rc %s):\n%s\n%s" % (
        module, proc.returncode, proc.stdout, proc.stderr))


def run_playbook(inventory, playbook, extra_vars):
    """Run a playbook on the VM; return its task results (one dict each)."""
    argv = [str(BIN / "ansible-playbook"), "-i", inventory, str(ROOT / playbook),
            "-e", json.dumps(extra_vars)]
    proc = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True)
    results = [json.loads(line) for line in proc.stdout.splitlines()
               if line.startswith("{") and '"_status"' in line]
    assert results, "no results from %s:\n%s\n%s" % (playbook, proc.stdout, proc.stderr)
    return results


def ssh(vm, script, check=True, timeout=120):
    """Run a shell script on the VM as root; return the completed process."""
    argv = ["ssh", "-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-i", vm["key"], "-p", vm["port"], "root@%s" % vm["host"], script]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("on the VM: %s\nrc %d\n%s\n%s" % (
            script, proc.returncode, proc.stdout, proc.stderr))
    return proc


def read(vm, path):
    return ssh(vm, "cat %s" % shlex.quote(path)).stdout.strip()


def exists(vm, path):
    return ssh(vm, "test -e %s" % shlex.quote(path), check=False).returncode == 0


def failed(results):
    return [r for r in results if r["_status"] in ("failed", "unreachable")]


def remove_lab(vm, name):
    """Remove whatever is left of lab ``name`` on the VM straight through the kernel (not
    through nslab, which may be what failed)."""
    ssh(vm, """
        for pid in $(pgrep -f 'nslab[:]{lab}:'); do kill -9 $pid; done
        for f in $(find {cg}/nslab/{lab} -name cgroup.procs 2>/dev/null); do
            for pid in $(cat $f); do kill -9 $pid; done
        done
        sleep 0.5
        for d in $(find {cg}/nslab/{lab} -depth -type d 2>/dev/null); do rmdir $d; done
        rmdir {cg}/nslab 2>/dev/null
        for ns in $(ls /run/netns 2>/dev/null | grep '^{lab}-'); do ip netns del $ns; done
        for link in $(ip -br link | awk '{{print $1}}' | grep '^{lab}-'); do
            ip link del "${{link%@*}}"
        done
        grep -o ' /[^ ]*{lab}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
        rm -rf /run/nslab/{lab} /var/lib/nslab/{lab}
        true
        """.format(lab=name, cg=CGROUP), check=False)


def lab_leftovers(vm, name):
    """What the VM's kernel and filesystems still hold of lab ``name`` (empty: nothing)."""
    return ssh(vm, "ls -d {cg}/nslab/{lab} /var/lib/nslab/{lab} /run/nslab/{lab} 2>/dev/null; "
                   "ls /run/netns 2>/dev/null | grep '^{lab}'; "
                   "ip -br link | grep '{lab}'; pgrep -f 'nslab[:]{lab}:'; "
                   "grep '{lab}' /proc/self/mountinfo".format(cg=CGROUP, lab=name),
               check=False).stdout

"""nslab_paths declares each root once; the copies that cannot import it must agree with it,
and no other Python file may declare a root of its own."""

import ast
import pathlib

import yaml

from ansible_collections.nslab.lab.plugins.module_utils import nslab_init, nslab_paths

ROOT = pathlib.Path(__file__).resolve().parents[3]
CONNECTION = ROOT / "plugins" / "connection" / "nslab.py"
ROOTS = {name: getattr(nslab_paths, name) for name in
         ("STATE_ROOT", "DATA_ROOT", "CACHE_ROOT", "NETNS_DIR", "CGROUP_ROOT", "JAIL_PATH",
          "LAUNCHER_PATH")}


def module_constants(path):
    """{NAME: value} of the module-level string assignments of a Python file."""
    tree = ast.parse(path.read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def test_standalone_init_repeats_jail_path_and_cgroup_root():
    assert nslab_init.JAIL_PATH == nslab_paths.JAIL_PATH
    assert nslab_init.CGROUP_ROOT == nslab_paths.CGROUP_ROOT


def test_connection_plugin_repeats_state_root():
    assert module_constants(CONNECTION)["STATE_ROOT"] == nslab_paths.STATE_ROOT


def test_no_other_python_file_declares_a_root():
    allowed = {ROOT / "plugins" / "module_utils" / "nslab_paths.py": set(ROOTS),
               ROOT / "plugins" / "module_utils" / "nslab_init.py": {"JAIL_PATH", "CGROUP_ROOT"},
               CONNECTION: {"STATE_ROOT"},
               # the floor is the baseline nslab is measured against: it shares none of its code
               ROOT / "bench" / "floor.py": {"CGROUP_FS"}}
    values = set(ROOTS.values())
    offenders = []
    for folder in ("plugins", "cli", "bench"):  # plugins/ holds modules and module_utils
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name, value in module_constants(path).items():
                if value in values and name not in allowed.get(path, ()):
                    offenders.append("%s: %s = %r" % (path.relative_to(ROOT), name, value))
    assert offenders == []


def test_role_defaults_fleet_dir_is_under_data_root():
    defaults = yaml.safe_load((ROOT / "roles" / "nslab_fleet" / "defaults" / "main.yml")
                              .read_text())
    assert defaults["nslab_fleet_dir"].startswith(nslab_paths.DATA_ROOT + "/")

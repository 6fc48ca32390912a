"""What one role's data promises about another's.

nslab_lab skips the node and jail roles' package tasks when every package of
nslab_lab_packages is installed; that holds only while the list names every package those
roles can install.
"""
import yaml

from helpers.paths import ROOT


def role_yaml(role, kind):
    return yaml.safe_load((ROOT / "roles" / role / kind / "main.yml").read_text()) or {}


def installable_packages():
    """Every Debian package the jail and node roles may install, from their defaults."""
    jail = role_yaml("nslab_jail", "defaults")
    node = role_yaml("nslab_node", "defaults")
    return (set(jail["nslab_jail_source_packages"].values())
            | {jail["nslab_jail_disk_package"], node["nslab_node_nft_package"]})


def test_nslab_lab_packages_names_every_package_the_roles_can_install():
    listed = set(role_yaml("nslab_lab", "vars")["nslab_lab_packages"])
    assert installable_packages() - listed == set()


def apt_names(role):
    """The ``name`` of every apt task in the role's task files."""
    names = []
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            if "ansible.builtin.apt" in task:
                names.append(task["ansible.builtin.apt"]["name"])
    return names


def test_the_roles_install_only_the_packages_their_defaults_name():
    # The check above reads the defaults; an apt task installing anything else escapes it.
    assert apt_names("nslab_jail") == ["{{ nslab_jail_packages }}"]
    assert apt_names("nslab_node") == ["{{ nslab_node_nft_package }}"]
    packages = role_yaml("nslab_jail", "vars")["nslab_jail_packages"]
    assert "nslab_jail_source_packages" in packages and "nslab_jail_disk_package" in packages

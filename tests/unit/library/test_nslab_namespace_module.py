"""nslab_namespace's pure parts (module_utils/nslab_converge_namespace.py): items ->
NamespaceSpecs (build_specs) and the view diff mode predicts in check mode."""

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import NamespaceStore

from ansible_collections.nslab.lab.plugins.module_utils import (
    nslab_converge_namespace as namespace)


def specs(*namespaces, **top):
    params = dict({"lab": "demo", "state": "present"}, namespaces=list(namespaces), **top)
    return namespace.build_specs(namespace.items_from_params(
        params, "namespaces", ["name", "types", "hostname", "state"]))


def test_a_namespace_is_a_net_namespace_unless_told_and_uts_takes_the_name():
    net, uts = specs({"name": "demo-a"}, {"name": "demo-b", "types": ["net", "uts", "net"]})
    assert (net.types, net.hostname, net.state) == (["net"], None, "present")
    assert (uts.types, uts.hostname) == (["net", "uts"], "demo-b")       # duplicates dropped


def test_every_problem_is_listed_at_once():
    with pytest.raises(ValidationError) as err:
        specs({"name": "demo-a", "hostname": "web"}, {"name": "demo-a"},
              {"name": "bad name", "types": ["uts"], "hostname": "-x"})
    text = str(err.value)
    for expected in ("namespaces[0].hostname: 'web' needs 'uts' in types (got net)",
                     "namespaces[1].name: namespace 'demo-a' is listed twice",
                     "namespaces[2].name:", "namespaces[2].hostname: hostname '-x'"):
        assert expected in text, (expected, text)


def test_check_mode_predicts_the_paths_the_namespaces_will_have(tmp_path):
    store = NamespaceStore("demo", root=str(tmp_path / "state"), netns_dir=str(tmp_path / "netns"))
    present, absent = specs({"name": "demo-a", "types": ["uts", "net"], "hostname": "a"},
                            {"name": "demo-b", "state": "absent"})
    assert namespace.predicted_view(present, store) == {
        "state": "present", "types": ["net", "uts"], "hostname": "a",
        "paths": {"net": str(tmp_path / "netns" / "demo-a"),
                  "uts": store.path("demo", "demo-a", "uts")}}
    assert namespace.predicted_view(absent, store) == {"state": "absent"}

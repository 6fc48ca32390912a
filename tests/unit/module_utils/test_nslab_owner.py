"""Reading nslab's state records: a missing file is "no record"; a corrupt or foreign
one is a StateError naming the file, never "no record"."""

import json

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_container_store import ContainerStore
from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import NslabError, StateError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_namespaces import NamespaceStore
from ansible_collections.nslab.lab.plugins.module_utils.nslab_owner import read_json, read_record


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def test_a_missing_file_is_no_record(tmp_path):
    assert read_json(str(tmp_path / "none.json")) is None
    assert read_record(str(tmp_path / "none.json"), "container", "demo", "a") is None


def test_a_record_of_the_lab_and_name_is_returned(tmp_path):
    path = write(tmp_path / "a.json", json.dumps({"lab": "demo", "name": "a", "pid": 7}))
    assert read_record(path, "container", "demo", "a") == {"lab": "demo", "name": "a",
                                                           "pid": 7}


@pytest.mark.parametrize("text, problem", [
    ('{"lab": "demo", "name": ', "is not valid JSON (Expecting value: line 1 column 25"),
    ("", "is not valid JSON (Expecting value: line 1 column 1"),
    (b'{"lab": "\xff"}', "is not valid JSON ('utf-8' codec can't decode byte 0xff"),
    ("null", "holds JSON null; expected an object"),
])
def test_a_file_that_is_not_json_is_an_error_naming_it(tmp_path, text, problem):
    path = write(tmp_path / "a.json", text)
    with pytest.raises(StateError) as err:
        read_json(path)
    assert str(err.value).startswith("state record %s %s" % (path, problem))
    assert "repair the file or remove it by hand and rerun" in str(err.value)
    assert err.value.details() == {"state_record": path}
    assert isinstance(err.value, NslabError)        # so run_module reports it


@pytest.mark.parametrize("record, problem", [
    ([1, 2], "holds a JSON array, not an object; expected a container record of lab 'demo' "
             "for 'a'"),
    ("a", "holds a JSON string, not an object"),
    ({"lab": "other", "name": "a"}, "is not nslab's container (it names lab 'other', name "
                                    "'a'); expected a container record of lab 'demo' for 'a'"),
    ({"lab": "demo", "name": "b"}, "is not nslab's container (it names lab 'demo', name 'b')"),
    ({"pid": 1}, "is not nslab's container (it names lab null, name null)"),
])
def test_a_record_that_is_not_nslabs_is_an_error_naming_it(tmp_path, record, problem):
    path = write(tmp_path / "a.json", json.dumps(record))
    with pytest.raises(StateError) as err:
        read_record(path, "container", "demo", "a")
    assert str(err.value).startswith("state record %s %s" % (path, problem))


def test_a_container_whose_record_is_corrupt_is_not_absent(tmp_path):
    store = ContainerStore("demo", root=str(tmp_path))
    path = write(tmp_path / "demo" / "containers" / "a.json", "{")
    with pytest.raises(StateError, match="state record %s is not valid JSON" % path):
        store.read("a")
    assert store.read("b").record is None


def test_a_namespace_record_of_another_lab_is_not_this_labs(tmp_path):
    store = NamespaceStore("demo", root=str(tmp_path), netns_dir=str(tmp_path / "netns"))
    write(tmp_path / "demo" / "ns" / "demo-a.json",
          json.dumps({"lab": "demo", "name": "demo-a", "types": {}}))
    assert [r["name"] for r in store.lab_records()] == ["demo-a"]
    path = write(tmp_path / "demo" / "ns" / "demo-b.json",
                 json.dumps({"lab": "other", "name": "demo-b", "types": {}}))
    with pytest.raises(StateError, match="state record %s is not nslab's namespace" % path):
        store.lab_records()
    with pytest.raises(StateError):
        store.find_record("demo-b")

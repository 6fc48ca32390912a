"""nslab_cgroup_store: the ownership record of a lab's cgroups."""

from ansible_collections.nslab.lab.plugins.module_utils.nslab_cgroup_store import CgroupStore


def test_store_removes_its_file_and_dirs_when_empty(tmp_path):
    store = CgroupStore("demo", root=str(tmp_path / "state"))
    record = store.load()
    record["cgroups"]["x"] = {"settled": {}}
    store.save(record)
    assert store.load()["cgroups"] == {"x": {"settled": {}}}
    record["cgroups"].clear()
    store.save(record)
    # The lab's directory goes; the root all labs share stays (nslab_shared removes it).
    assert list((tmp_path / "state").iterdir()) == []

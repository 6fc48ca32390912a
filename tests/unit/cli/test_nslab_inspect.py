"""``./nslab inspect``'s rows from a lab view (pure): a lab over several hosts shows this
host's nodes from the kernel and the others from the plan record, as ``elsewhere``."""

import sys

from helpers.paths import ROOT

sys.path.insert(0, str(ROOT / "cli"))
import nslab_inspect  # noqa: E402

RECORD = {"generation": 2, "hosts": {"h1": {}, "h2": {}},
          "nodes": {"a": {"host": "h1", "addresses": {"lan": "10.0.0.2/24"}},
                    "b": {"host": "h2", "addresses": {"lan": "10.0.0.3/24"}}}}
USAGE = {"memory_bytes": 5 * 2**20, "pids": 1, "cpu_usec": 2500000}
VIEW = {"record": RECORD,
        "containers": [{"name": "a", "state": "running", "pid": 42, "netns": "w-a",
                        "cgroup": "a", "addresses": ["10.0.0.2/24"], "usage": USAGE,
                        "started_at": 1000.0}],
        "cgroups": [{"name": "a", "limits": {"memory": 64 * 2**20, "pids": 64, "cpus": 0.5,
                                             "cpuset": "0-1"}}],
        "bridges": [{"name": "w-lan"}], "leftovers": []}


def test_a_multi_host_lab_shows_the_other_hosts_nodes_from_its_record():
    document = nslab_inspect.inspect({"w": VIEW}, now=1100.0, this_host="me")
    a, b = document["labs"]["w"]["nodes"]
    assert (a["name"], a["host"], a["here"], a["state"], a["pid"]) == ("a", "h1", True,
                                                                      "running", 42)
    assert a["limits"] == {"memory": 64 * 2**20, "pids": 64, "cpus": 0.5}
    assert a["uptime_seconds"] == 100.0
    assert (b["name"], b["host"], b["here"], b["state"], b["pid"], b["usage"]) == (
        "b", "h2", False, "elsewhere", None, None)
    assert b["addresses"] == ["10.0.0.3/24"]
    table = nslab_inspect.render_table(document)
    assert table.splitlines()[1].split() == ["w", "a", "h1", "running", "42", "10.0.0.2/24",
                                             "5M/64M", "1/64", "2.50s/0.5cpu", "1m40s"]
    assert table.splitlines()[2].split() == ["w", "b", "h2", "elsewhere", "-", "10.0.0.3/24",
                                             "-", "-", "-", "-"]
    assert "run on other hosts" in table


def test_a_single_host_lab_is_on_this_host():
    view = dict(VIEW, record=None)
    (a,) = nslab_inspect.inspect({"w": view}, now=1000.5, this_host="me")["labs"]["w"]["nodes"]
    assert a["host"] == "me" and a["here"]


def test_a_lab_with_nothing_on_this_host_does_not_exist():
    assert not nslab_inspect.lab_exists({"containers": [], "record": None, "leftovers": []})
    assert nslab_inspect.lab_exists({"record": RECORD})


def test_a_node_the_record_places_here_but_missing_is_absent():
    record = dict(RECORD, nodes=dict(RECORD["nodes"], c={"host": "h1", "addresses": {}}))
    document = nslab_inspect.inspect({"w": dict(VIEW, record=record)}, now=1100.0)
    c = document["labs"]["w"]["nodes"][2]
    assert (c["name"], c["host"], c["here"], c["state"]) == ("c", "h1", True, "absent")
    row = nslab_inspect.render_table(document).splitlines()[3].split()
    assert row == ["w", "c", "h1", "absent", "-", "-", "-", "-", "-", "-"]

"""What all labs share (nslab_shared): tidy removes the roots no lab uses and keeps every
one that still holds something, and reads nftables from captured ``nft -j`` output."""

from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import parse_mountinfo
from ansible_collections.nslab.lab.plugins.module_utils.nslab_shared import (
    cgroup_mounts, holds_rules, nslab_tables, tidy)
from helpers.paths import UNIT_FIXTURES as FIXTURES

TABLES = (FIXTURES / "nft_tables.json").read_text()
ONE_RULE = (FIXTURES / "nft_ip_nslab_one_rule.json").read_text()
NO_RULE = (FIXTURES / "nft_inet_nslab_empty.json").read_text()


def test_every_cgroup_hierarchy_is_looked_at_the_hybrid_cgroup2_mount_too():
    entries = parse_mountinfo((FIXTURES / "cgroup_v1" / "mountinfo.txt").read_text())
    assert cgroup_mounts(entries) == ["/sys/fs/cgroup/" + name for name in (
        "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids",
        "systemd", "unified")]


def test_nftables_output_is_read():
    assert nslab_tables(TABLES) == ["ip", "inet"]
    assert nslab_tables('{"nftables": [{"table": {"family": "ip", "name": "filter"}}]}') == []
    assert holds_rules(ONE_RULE) and not holds_rules(NO_RULE)


class FakeNft:
    """``nft`` as captured: ip nslab holds a rule, inet nslab only its chain."""

    def __init__(self):
        self.deleted = []

    def __call__(self, argv):
        assert argv[0] == "/usr/sbin/nft"
        if argv[1:] == ["-j", "list", "tables"]:
            return 0, TABLES, ""
        if argv[1:4] == ["-j", "list", "table"]:
            return 0, ONE_RULE if argv[4] == "ip" else NO_RULE, ""
        assert argv[1:3] == ["delete", "table"]
        self.deleted.append(argv[3])
        return 0, "", ""


def test_tidy_removes_what_is_empty_and_keeps_what_is_used(tmp_path):
    v1_memory, v2 = tmp_path / "memory", tmp_path / "unified"
    (v1_memory / "nslab").mkdir(parents=True)                  # empty: goes
    (v2 / "nslab" / "demo").mkdir(parents=True)                # a lab in it: stays
    state, data = tmp_path / "run-nslab", tmp_path / "lib-nslab"
    state.mkdir()
    (data / "demo").mkdir(parents=True)
    nft = FakeNft()

    removed = tidy(nft, "/usr/sbin/nft", [str(v1_memory), str(v2)], str(state), str(data))

    assert removed == [
        "remove nslab's empty cgroup %s/nslab" % v1_memory,
        "remove nslab's empty state directory %s" % state,
        "remove nslab's empty nftables table inet nslab"]
    assert not (v1_memory / "nslab").exists() and not state.exists()
    assert (v2 / "nslab" / "demo").is_dir() and (data / "demo").is_dir()
    assert nft.deleted == ["inet"]


def test_tidy_without_nft_or_roots_does_nothing(tmp_path):
    assert tidy(None, None, [str(tmp_path)], str(tmp_path / "a"), str(tmp_path / "b")) == []
    assert tidy(FakeNft(), None, [], str(tmp_path / "a"), str(tmp_path / "b")) == []

"""library/nslab_ports.py apply: localnet off, rules, localnet on; undone newest first.

route_localnet writes and nft are faked: the rollback logic only (test_ports runs it on a
kernel).
"""

import errno

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ApplyError, CommandError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_publish import PortsPlan

from helpers.library import load_library_module


@pytest.fixture
def ports(monkeypatch):
    """The module with route_localnet in a dict and nft scripts as strings."""
    module = load_library_module("nslab_ports")
    module.localnet = {"br0": 1, "br1": 0, "br2": 0}
    module.fail_localnet = set()

    def write_localnet(bridge, value):
        if (bridge, value) in module.fail_localnet:
            raise OSError(errno.EACCES, "Permission denied", "/proc/sys/net/ipv4/conf/"
                          + bridge + "/route_localnet")
        module.localnet[bridge] = value
    monkeypatch.setattr(module, "write_localnet", write_localnet)
    monkeypatch.setattr(module, "script", lambda plan: [{"add": "rules"}])
    monkeypatch.setattr(module, "undo_script", lambda plan, table: [{"delete": "rules"}])
    monkeypatch.setattr(module, "read_table", lambda runner, nft: None)
    return module


class FakeNft:
    def __init__(self, fail=False):
        self.fail, self.scripts = fail, []

    def run(self, argv, data=None):
        self.scripts.append(data)
        if self.fail and "add" in data:
            raise CommandError(argv, 1, "Error: Could not process rule")
        return ""


def plan():
    return PortsPlan(localnet_off=["br0"], localnet_on=["br1", "br2"])


def test_a_failed_localnet_write_undoes_every_earlier_step_newest_first(ports):
    ports.fail_localnet = {("br2", 1)}
    nft = FakeNft()
    with pytest.raises(ApplyError) as caught:
        ports.apply(nft, "nft", plan())
    assert ports.localnet == {"br0": 1, "br1": 0, "br2": 0}      # as before the run
    assert nft.scripts == ['{"nftables": [{"add": "rules"}]}',
                           '{"nftables": [{"delete": "rules"}]}']
    assert caught.value.done == ["clear route_localnet of br0", "apply nslab's port rules",
                                 "set route_localnet of br1"]
    assert caught.value.rolled_back == list(reversed(caught.value.done))
    assert "Permission denied" in str(caught.value)


def test_a_failed_rule_script_undoes_only_the_localnet_write_before_it(ports):
    nft = FakeNft(fail=True)
    with pytest.raises(ApplyError) as caught:
        ports.apply(nft, "nft", plan())
    assert ports.localnet == {"br0": 1, "br1": 0, "br2": 0}
    assert len(nft.scripts) == 1                       # nft -f is atomic: nothing to undo
    assert caught.value.rolled_back == ["clear route_localnet of br0"]


def test_an_undo_that_fails_is_named(ports):
    ports.fail_localnet = {("br2", 1), ("br1", 0)}
    with pytest.raises(ApplyError) as caught:
        ports.apply(FakeNft(), "nft", plan())
    assert caught.value.rollback_errors == [
        "set route_localnet of br1: Permission denied: "
        "/proc/sys/net/ipv4/conf/br1/route_localnet"]
    assert ports.localnet["br1"] == 1                  # left behind, and reported

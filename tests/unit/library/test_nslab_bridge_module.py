"""nslab_bridge's pure parts (module_utils/nslab_converge_bridge.py): items -> BridgeSpecs
(build_specs) and the keys its diff views compare."""

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import ValidationError

from ansible_collections.nslab.lab.plugins.module_utils import (
    nslab_converge_bridge as bridge)

ITEM_KEYS = ["name", "addresses", "mtu", "mac", "stp", "ipv6", "nat", "isolate_host", "state"]


def specs(*bridges, **top):
    params = dict({"lab": "demo", "state": "present"}, bridges=list(bridges), **top)
    return bridge.build_specs(bridge.items_from_params(params, "bridges", ITEM_KEYS))


def test_a_bridge_spec_carries_its_options_with_the_mac_in_lower_case():
    [spec] = specs({"name": "demo-lan", "mtu": 1400, "mac": "02:AA:BB:CC:DD:EE", "nat": True,
                    "addresses": ["10.213.176.1/24"]})
    assert spec.iface.name == "demo-lan" and spec.iface.mtu == 1400
    assert spec.iface.mac == "02:aa:bb:cc:dd:ee"
    assert (spec.nat, spec.stp, spec.isolate_host, spec.state) == (True, False, False, "present")


def test_every_problem_is_listed_at_once_with_the_item_it_is_in():
    with pytest.raises(ValidationError) as err:
        specs({"name": "demo-lan"}, {"name": "demo-lan"},
              {"name": "a-name-longer-than-15", "mtu": 10, "mac": "zz"})
    text = str(err.value)
    for expected in ("bridges[1].name: bridge 'demo-lan' is listed twice",
                     "bridges[2].name:", "bridges[2].mtu:", "bridges[2].mac:"):
        assert expected in text, (expected, text)


def test_the_diff_compares_state_alone_for_absent_and_only_the_options_given():
    assert bridge.diff_keys({"state": "absent", "mtu": 1400}) == ["state"]
    assert bridge.diff_keys({"state": "present"}) == [
        "state", "addresses", "stp", "ipv6", "nat", "isolate_host"]
    assert bridge.diff_keys({"state": "present", "mtu": 1400, "mac": "02:00:00:00:00:01"})[-2:] \
        == ["mtu", "mac"]

"""nslab_bridge against the real kernel."""

from helpers.kernel import ip_links, sh


def bridge_args(lab, **kw):
    args = dict(lab=lab.name, name=lab.n("br"), addresses=["10.251.7.1/24"])
    args.update(kw)
    return args


def test_check_mode_creates_nothing_and_predicts_the_change(lab, module):
    result = module("nslab_bridge", bridge_args(lab), check=True, diff=True)
    assert result["_status"] == "ok" and result["changed"] is True
    assert result["actions"][0] == "create bridge '%s'" % lab.n("br")
    assert result["diff"]["before"][lab.n("br")] == {"state": "absent"}
    assert result["diff"]["after"][lab.n("br")]["addresses"] == ["10.251.7.1/24"]
    assert lab.n("br") not in ip_links()


def test_create_rerun_drift_and_delete(lab, module):
    name = lab.n("br")
    result = module("nslab_bridge", bridge_args(lab, mtu=1400, stp=True), diff=True)
    assert result["changed"] is True
    link = ip_links()[name]
    assert link["linkinfo"]["info_kind"] == "bridge"
    assert link["ifalias"] == "nslab:%s:bridge" % lab.name
    assert link["mtu"] == 1400 and "UP" in link["flags"]
    assert link["linkinfo"]["info_data"]["stp_state"] == 1
    assert link["inet6_addr_gen_mode"] == "none"
    addrs = sh("ip", "-j", "addr", "show", "dev", name).stdout
    assert '"local":"10.251.7.1","prefixlen":24' in addrs
    assert "fe80" not in addrs
    assert result["bridges"][0]["addresses"] == ["10.251.7.1/24"]
    assert result["diff"]["after"][name]["state"] == "present"

    again = module("nslab_bridge", bridge_args(lab, mtu=1400, stp=True))
    assert again["changed"] is False and again["actions"] == []

    # Drift made by hand is repaired, and only the drift.
    sh("ip", "addr", "add", "10.251.8.1/24", "dev", name)
    sh("ip", "link", "set", "dev", name, "mtu", "1300")
    repaired = module("nslab_bridge", bridge_args(lab, mtu=1400, stp=True))
    assert repaired["changed"] is True
    assert sorted(repaired["actions"]) == sorted([
        "set MTU of bridge '%s' from 1300 to 1400" % name,
        "remove address 10.251.8.1/24 from bridge '%s'" % name])
    assert ip_links()[name]["mtu"] == 1400

    gone = module("nslab_bridge", dict(lab=lab.name, name=name, state="absent"), diff=True)
    assert gone["changed"] is True and gone["diff"]["after"][name] == {"state": "absent"}
    assert name not in ip_links()
    assert module("nslab_bridge", dict(lab=lab.name, name=name, state="absent"))["changed"] is False
    assert lab.leftovers() == []


def test_list_of_bridges_in_one_invocation(lab, module):
    names = [lab.n("b%d" % i) for i in range(3)]
    args = dict(lab=lab.name, bridges=[dict(name=n) for n in names])
    assert module("nslab_bridge", args)["changed"] is True
    assert set(names) <= set(ip_links())
    args["bridges"][1]["state"] = "absent"
    result = module("nslab_bridge", args)
    assert result["actions"] == ["delete bridge '%s'" % names[1]]
    assert names[1] not in ip_links() and names[0] in ip_links()


def test_bridge_made_by_hand_is_left_alone(lab, module):
    name = lab.n("hand")
    sh("ip", "link", "add", name, "type", "bridge")
    before = ip_links()[name]
    for state in ("present", "absent"):
        result = module("nslab_bridge", bridge_args(lab, name=name, state=state))
        assert result["_status"] == "failed"
        assert "bridge '%s' exists and is not nslab's" % name in result["msg"]
        assert result["conflict"]["name"] == name
    after = ip_links()[name]
    assert after == before


def test_another_labs_bridge_is_refused(lab, module):
    assert module("nslab_bridge", bridge_args(lab))["changed"] is True
    other = module("nslab_bridge", dict(bridge_args(lab), lab="otherlab"))
    assert other["_status"] == "failed"
    assert "owned by nslab lab '%s'" % lab.name in other["msg"]


def test_bad_input_names_every_problem_and_changes_nothing(lab, module):
    result = module("nslab_bridge", dict(lab=lab.name, bridges=[
        dict(name=lab.n("ok")),
        dict(name="x" * 16),
        dict(name=lab.n("b2"), addresses=["10.0.0.300/24", "10.251.9.1"], mtu=20),
    ]))
    assert result["_status"] == "failed"
    problems = result["problems"]
    assert any(p.startswith("bridges[1].name: ") and "16 bytes" in p for p in problems)
    assert any(p.startswith("bridges[2].addresses: ") and "10.0.0.300/24" in p for p in problems)
    assert any("10.251.9.1" in p and "prefix length" in p for p in problems)
    assert any(p.startswith("bridges[2].mtu: ") for p in problems)
    assert lab.n("ok") not in ip_links()


def test_duplicate_address_is_refused(lab, module):
    result = module("nslab_bridge", dict(lab=lab.name, bridges=[
        dict(name=lab.n("b1"), addresses=["10.251.10.1/24"]),
        dict(name=lab.n("b2"), addresses=["10.251.10.1/24"])]))
    assert result["_status"] == "failed"
    assert "10.251.10.1 is requested for both" in result["msg"]
    loopback = module("nslab_bridge", bridge_args(lab, addresses=["127.0.0.1/8"]))
    assert "127.0.0.1 is already on interface 'lo'" in loopback["msg"]
    assert lab.n("b1") not in ip_links() and lab.n("br") not in ip_links()

"""Flows on the owner's own segments, run by the real engine: entry timing, holdout, consent, priority
among the built-in flows, the owner's words, exits, codes, and removal."""
import json

import pytest

from flows import owner_flows, owner_segments
from flows.definitions import PRIORITY, FlowError, load_flows, set_enabled
from flows.engine import holdout_bucket, tick
from flows.owner_segments import SegmentError
from tests.builders import History, at, lapsed_shop, ready_to_send

WORDS = {"subject": "{first_name}, running low?", "intro": "It has been a while since your last big order."}


@pytest.fixture(autouse=True)
def _delivery(smtp):
    """Email delivery is configured (without it the flows only preview)."""


def sent(db, flow=None):
    rows = db.query("SELECT c.external_id AS customer, m.flow, m.step, m.subject, m.body_text, m.status, d.percent"
                    " FROM messages m JOIN customers c ON c.id = m.customer_id"
                    " LEFT JOIN discount_codes d ON d.id = m.discount_code_id ORDER BY c.external_id, m.id")
    return [r for r in rows if flow is None or r["flow"] == flow]


def enrolments(db, flow):
    return {r["external_id"]: r for r in db.query(
        "SELECT c.external_id, e.* FROM enrolments e JOIN customers c ON c.id = e.customer_id WHERE e.flow = ?",
        [flow])}


def vip_shop(db):
    """V0..V7 spent €300 each, last order on day 0 (V7 without marketing consent); L0..L3 bought for €20.
    The built-in flows are off (they would take these one-time buyers first: see the priority tests)."""
    h = History(db)
    for i in range(8):
        h.order(f"V{i}", 0, total="300", consent=i != 7, first_name=f"Vera{i}")
    for i in range(4):
        h.order(f"L{i}", 0, total="20")
    shop = ready_to_send(db, h.write())
    for name in PRIORITY:
        set_enabled(db, shop["id"], name, False)
    return shop


def test_a_flow_on_a_saved_segment_enrols_holds_out_and_sends(app, db, smtp):
    shop = vip_shop(db)
    tick(app, db, shop, at(1))  # the first refresh
    owner_segments.save_segment(db, shop, "VIPs", {"all": [{"field": "clv", "op": ">=", "value": 250}]})
    owner_flows.create_flow(db, shop, "vip_checkin", "VIPs", words=WORDS, days_since_last_order=40, holdout=0.5,
                            offers=[{"percent": 10, "valid_days": 4}])

    assert tick(app, db, shop, at(39))["enrolled"] == 0  # not 40 days yet
    result = tick(app, db, shop, at(40))

    entered = enrolments(db, "vip_checkin")
    # Only the VIPs with consent; half of them (a stable hash) are held out and never emailed.
    assert set(entered) == {f"V{i}" for i in range(7)}
    held = {c for c in entered if holdout_bucket(shop["id"], "vip_checkin", c) < 0.5}
    assert {c for c, e in entered.items() if e["held_out"]} == held and 0 < len(held) < 7
    mails = sent(db, "vip_checkin")
    assert {m["customer"] for m in mails} == set(entered) - held
    assert result["sent"] == len(mails) and result["held_out"] == len(held)
    first = mails[0]
    assert first["subject"] == f"Vera{first['customer'][1]}, running low?"
    assert "It has been a while since your last big order." in first["body_text"]
    assert first["percent"] == 10 and first["status"] == "sent"
    assert len(smtp.messages) == len(mails)

    # The same tick again sends nothing twice; nobody re-enters without a new purchase.
    assert tick(app, db, shop, at(41))["enrolled"] == 0 and len(sent(db, "vip_checkin")) == len(mails)


def test_the_owner_s_flow_comes_after_the_built_in_ones_unless_placed_before(app, db):
    shop = lapsed_shop(db)  # A lapses (win-back) on day 101; R0..R8 bought on day 90
    tick(app, db, shop, at(2))
    owner_segments.save_segment(db, shop, "Buyers", {"all": [{"field": "orders", "op": ">=", "value": 1}]})
    owner_flows.create_flow(db, shop, "thanks", "Buyers", holdout=0)
    assert list(load_flows(db, shop["id"]))[-1] == "thanks"
    tick(app, db, shop, at(101))
    assert "A" in enrolments(db, "winback") and "A" not in enrolments(db, "thanks")  # one flow at a time
    assert set(enrolments(db, "thanks")) == {f"R{i}" for i in range(9)}


def test_a_flow_placed_before_win_back_takes_the_customer_first(app, db):
    shop = lapsed_shop(db)
    tick(app, db, shop, at(2))
    owner_segments.save_segment(db, shop, "Buyers", {"all": [{"field": "orders", "op": ">=", "value": 1}]})
    owner_flows.create_flow(db, shop, "thanks", "Buyers", holdout=0, before="winback")
    order = list(load_flows(db, shop["id"]))
    assert order.index("thanks") == order.index("winback") - 1
    tick(app, db, shop, at(101))
    assert "A" in enrolments(db, "thanks") and "A" not in enrolments(db, "winback")


def test_a_purchase_ends_it_and_a_reminder_reuses_the_code(app, db):
    shop = vip_shop(db)
    tick(app, db, shop, at(1))
    owner_segments.save_segment(db, shop, "VIPs", {"all": [{"field": "clv", "op": ">=", "value": 250}]})
    owner_flows.create_flow(db, shop, "vip_checkin", "VIPs", holdout=0, days_since_last_order=40,
                            offers=[{"percent": 10, "valid_days": 5}, {"reuse": True}], gaps=[3])
    tick(app, db, shop, at(40))
    History(db, shop=shop).order("V0", 41, total="80").write()
    tick(app, db, shop, at(43))
    assert enrolments(db, "vip_checkin")["V0"]["exit_reason"] == "purchased"
    assert [m["step"] for m in sent(db, "vip_checkin") if m["customer"] == "V0"] == [0]
    v1 = [m for m in sent(db, "vip_checkin") if m["customer"] == "V1"]
    assert [m["step"] for m in v1] == [0, 1] and v1[0]["percent"] == v1[1]["percent"] == 10


def test_without_consent_nobody_is_written_to(app, db, smtp):
    h = History(db)
    for i in range(3):
        h.order(f"N{i}", 0, total="300", consent=False)
    shop = ready_to_send(db, h.write(), "winback")
    tick(app, db, shop, at(1))
    owner_segments.save_segment(db, shop, "Big", {"all": [{"field": "clv", "op": ">=", "value": 250}]})
    owner_flows.create_flow(db, shop, "big", "Big", holdout=0)
    tick(app, db, shop, at(2))
    assert enrolments(db, "big") == {} and smtp.messages == []


def test_creating_a_flow_checks_everything_first(app, db):
    shop = vip_shop(db)
    tick(app, db, shop, at(1))
    owner_segments.save_segment(db, shop, "VIPs", {"all": [{"field": "clv", "op": ">=", "value": 250}]})
    refusals = [
        (dict(name="winback", segment="VIPs"), FlowError, "built-in flow"),
        (dict(name="Bad Name", segment="VIPs"), FlowError, "lower-case letters"),
        (dict(name="x", segment="nope"), SegmentError, "no segment named 'nope'"),
        (dict(name="x", segment="VIPs", offers=[{"percent": 95, "valid_days": 3}]), FlowError, "at most 90"),
        (dict(name="x", segment="VIPs", offers=[{"reuse": True}]), FlowError, "no earlier code"),
        (dict(name="x", segment="VIPs", before="nope"), FlowError, "not a built-in flow"),
        (dict(name="x", segment="VIPs", days_since_last_order=-1), FlowError, "whole number of days"),
        (dict(name="x", segment="VIPs", words={"subject": "Hi {nick}"}), ValueError, "not a placeholder"),
    ]
    for kwargs, error, reason in refusals:
        with pytest.raises(error, match=reason):
            owner_flows.create_flow(db, shop, kwargs.pop("name"), kwargs.pop("segment"), **kwargs)
    assert list(owner_flows.owner_flows(db, shop["id"])) == []
    assert db.execute("SELECT COUNT(*) FROM shop_settings WHERE key LIKE 'copy:x.%'").fetchone()[0] == 0


def test_a_segment_in_use_stays_and_removing_the_flow_ends_it(app, db):
    shop = vip_shop(db)
    tick(app, db, shop, at(1))
    owner_segments.save_segment(db, shop, "VIPs", {"all": [{"field": "clv", "op": ">=", "value": 250}]})
    owner_flows.create_flow(db, shop, "vip_checkin", "VIPs", words=WORDS, holdout=0,
                            offers=[None, {"percent": 10, "valid_days": 3}], gaps=[5])
    tick(app, db, shop, at(2))
    with pytest.raises(SegmentError, match="segment of the flow vip_checkin"):
        owner_segments.remove_segment(db, shop, "VIPs")
    set_enabled(db, shop["id"], "vip_checkin", True)  # turning it on and off works like any flow
    owner_flows.remove_flow(db, shop, "vip_checkin")
    assert all(e["status"] == "exited" and e["exit_reason"] == "flow turned off"
               for e in enrolments(db, "vip_checkin").values())
    assert "vip_checkin" not in load_flows(db, shop["id"])
    assert db.execute("SELECT COUNT(*) FROM shop_settings WHERE key LIKE 'copy:vip_checkin.%'").fetchone()[0] == 0
    owner_segments.remove_segment(db, shop, "VIPs")
    with pytest.raises(FlowError, match="a built-in flow can only be turned off"):
        owner_flows.remove_flow(db, shop, "winback")


def test_flow_list_shows_the_owner_s_flows(app, db, runner):
    shop = vip_shop(db)
    tick(app, db, shop, at(1))
    owner_segments.save_segment(db, shop, "VIPs", {"all": [{"field": "clv", "op": ">=", "value": 250}]})
    owner_flows.create_flow(db, shop, "vip_checkin", "VIPs", days_since_last_order=40,
                            offers=[{"percent": 10, "valid_days": 4}])
    doc = json.loads(runner.invoke(args=["flow", "list", "--shop", "s", "--json"]).output)
    mine = doc[-1]
    assert mine["name"] == "vip_checkin" and mine["entry"] == "VIPs" and mine["enabled"] is True
    assert mine["steps"] == [{"delay_days": 0, "template": "vip_checkin.1", "offer": {"percent": 10, "valid_days": 4}}]
    text = runner.invoke(args=["flow", "list", "--shop", "s"]).output
    assert "vip_checkin" in text and "VIPs" in text
    off = runner.invoke(args=["flow", "disable", "--shop", "s", "vip_checkin"])
    assert off.exit_code == 0 and load_flows(db, shop["id"])["vip_checkin"]["enabled"] is False

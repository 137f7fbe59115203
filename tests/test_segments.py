"""Every segment rule at its boundary (a day before, on, a day after), refunds, same-day orders."""
import json

import pytest

from app.settings import save_setting
from app.timeutil import parse_now
from flows.refresh import refresh, segment_members
from tests.builders import History, now_at


def run(db, shop, n):
    """Refresh as of 00:00 of day n; returns {customer id: set of segments} and the snapshot rows."""
    refresh(db, shop, parse_now(now_at(n), shop["timezone"]))
    segs = {}
    for name, ids in segment_members(db, shop["id"]).items():
        for ext in ids:
            segs.setdefault(ext, set()).add(name)
    return segs


def snap(db, customer):
    rows = list(db.query("SELECT s.* FROM customer_snapshots s JOIN customers c ON c.id = s.customer_id"
                         " WHERE c.external_id = ?", [customer]))
    return rows[0]


def test_metrics_paid_orders_only_net_of_refunds(db):
    shop = (History(db).order("A", 0, "100.00").order("A", 10, "40.00", refunded="15.00")
            .order("A", 20, "80.00", status="refunded", refunded="80.00")
            .order("A", 25, "60.00", status="cancelled").order("A", 26, "70.00", status="pending")
            .order("A", 27, "90.00", test=True).order("A", 30, "20.00").write())
    run(db, shop, 31)
    row = snap(db, "A")
    assert row["purchases"] == 3 and row["purchase_days"] == 3
    assert row["clv_minor"] == 10000 + 2500 + 2000
    assert row["aov_minor"] == 14500 // 3
    assert row["avg_gap_days"] == 15.0  # (30 − 0) / (3 − 1)
    assert row["days_since_last"] == 1 and row["first_date"] == "2026-01-01" and row["last_date"] == "2026-01-31"


def test_orders_at_or_after_now_do_not_exist_yet(db):
    shop = History(db).order("A", 0).order("A", 10).write()
    run(db, shop, 10)  # 00:00 of day 10: the day-10 order (noon) is in the future
    assert snap(db, "A")["purchases"] == 1


def test_same_day_orders_are_one_purchase_occasion(db):
    shop = History(db).order("A", 0).order("A", 0, at=__import__("datetime").time(18)).write()
    segs = run(db, shop, 5)
    row = snap(db, "A")
    assert row["purchases"] == 2 and row["purchase_days"] == 1 and row["avg_gap_days"] is None
    assert "one_time" in segs["A"]


def test_calendar_days_are_the_shop_s_time_zone(db):
    # 23:30 and 00:30 UTC are one evening in New York: one purchase day there.
    from datetime import time
    h = History(db, tz="America/New_York")
    h.order("A", 0, at=time(18, 30)).order("A", 0, at=time(19, 30))
    shop = h.write()
    run(db, shop, 3)
    assert snap(db, "A")["purchase_days"] == 1


@pytest.mark.parametrize("days_after,expected", [(59, "active"), (60, "active"), (61, "lapsed")])
def test_repeat_buyer_lapses_after_factor_times_own_gap(db, days_after, expected):
    shop = History(db).repeat("A", [0, 40]).write()  # usual gap 40 → lapses after 60 days
    segs = run(db, shop, 40 + days_after)
    assert expected in segs["A"]
    assert ("lapsed" in segs["A"]) == (expected == "lapsed")


@pytest.mark.parametrize("days_after,expected", [(29, "active"), (30, "lapsed"), (31, "lapsed")])
def test_repeat_buyer_never_lapses_before_30_days(db, days_after, expected):
    shop = History(db).repeat("A", [0, 10]).write()  # 1.5 × 10 = 15, but at least 30
    assert expected in run(db, shop, 10 + days_after)["A"]


@pytest.mark.parametrize("days_after,expected", [(364, "lapsed"), (365, "lapsed"), (366, "lost")])
def test_lost_after_365_days(db, days_after, expected):
    shop = History(db).repeat("A", [0, 40]).write()
    segs = run(db, shop, 40 + days_after)["A"]
    assert expected in segs and len({"lapsed", "lost", "active"} & segs) == 1


@pytest.mark.parametrize("days_after,expected", [(89, "one_time"), (90, "one_time"), (91, "lapsed")])
def test_one_time_buyer_lapses_after_fallback_90_days(db, days_after, expected):
    # fewer than 30 customers came back: one_time_return_days is 90
    shop = History(db).order("A", 0).repeat("B", [0, 5]).write()
    segs = run(db, shop, days_after)
    assert expected in segs["A"]
    assert ("one_time" in segs["A"]) != ("lapsed" in segs["A"])


def test_one_time_return_days_is_80th_percentile_of_first_to_second_gaps(db):
    h = History(db)
    for i in range(40):  # 40 returners with first→second gaps 1..40 days
        h.repeat(f"R{i}", [0, i + 1])
    shop = h.write()
    out = refresh(db, shop, parse_now(now_at(100), "UTC"))
    assert out["one_time_return_days"] == pytest.approx(32.2)  # numpy linear 80th percentile of 1..40
    assert out["retention_days"] == pytest.approx(20.5)  # median of the 40 gaps


def test_owner_can_set_one_time_return_days(db):
    shop = History(db).order("A", 0).write()
    save_setting(db, shop["id"], "one_time_return_days", "20")
    assert "lapsed" in run(db, shop, 21)["A"]
    assert "one_time" in run(db, shop, 20)["A"]


@pytest.mark.parametrize("days_since_first,is_new", [(29, True), (30, True), (31, False)])
def test_new_customers(db, days_since_first, is_new):
    shop = History(db).order("A", 0).write()
    assert ("new" in run(db, shop, days_since_first)["A"]) == is_new


def test_vip_is_top_decile_of_clv_and_vip_at_risk_when_lapsed(db):
    h = History(db)
    for i in range(1, 11):  # clv 10, 20, … 100
        h.repeat(f"C{i}", [0, 10], total=str(i * 5))
    h.repeat("BIG", [0, 10], total="60")  # clv 120
    shop = h.write()
    segs = run(db, shop, 20)
    vips = {c for c, s in segs.items() if "vip" in s}
    assert vips == {"BIG", "C10"}  # the 90th percentile of 10, 20, … 100, 120 is 100
    segs = run(db, shop, 10 + 31)  # everyone lapsed (gap 10 → 30 days)
    assert {c for c, s in segs.items() if "vip_at_risk" in s} == {"BIG", "C10"}
    assert not any("vip" in s for s in segs.values())


def test_vip_by_amount(db):
    shop = History(db).repeat("A", [0, 10], total="30").repeat("B", [0, 10], total="100").write()
    save_setting(db, shop["id"], "vip_min_amount", "60")
    segs = run(db, shop, 15)
    assert "vip" in segs["A"] and "vip" in segs["B"]


def test_brand_loyal_needs_the_brand_in_every_purchase(db):
    a, b = {"product": "P1", "brand": "Acme"}, {"product": "P2", "brand": "Bolt"}
    shop = (History(db).order("L", 0, lines=[a]).order("L", 20, lines=[a, b])
            .order("M", 0, lines=[a]).order("M", 20, lines=[b])
            .order("O", 0, lines=[a]).write())
    segs = run(db, shop, 25)
    assert "brand_loyal:Acme" in segs["L"] and "brand_loyal:Bolt" not in segs["L"]
    assert not any(s.startswith("brand_loyal") for s in segs["M"])
    assert not any(s.startswith("brand_loyal") for s in segs["O"])  # one purchase is not loyalty


@pytest.mark.parametrize("days_since,lapsed", [(29, False), (30, False), (31, True)])
def test_category_lapsed(db, days_since, lapsed):
    tea, mug = {"product": "T", "category": "Tea"}, {"product": "M", "category": "Mugs"}
    shop = (History(db).order("A", 0, lines=[tea]).order("A", 20, lines=[tea])
            .order("A", 20 + days_since - 1, lines=[mug]).write())  # still buying, just not tea
    segs = run(db, shop, 20 + days_since)
    assert ("category_lapsed:Tea" in segs["A"]) == lapsed
    assert not any(s == "category_lapsed:Mugs" for s in segs["A"])  # bought on one day only


@pytest.mark.parametrize("offset,due", [(-6, False), (-5, True), (0, True), (30, True), (31, False)])
def test_replenish_due_window(db, offset, due):
    beans = {"product": "BEANS", "title": "Coffee beans", "qty": 2}
    shop = History(db).order("A", 0, lines=[beans]).write()
    db.execute("UPDATE products SET replenishable = 1, replenish_days = 30 WHERE external_id = 'BEANS'")
    segs = run(db, shop, 60 + offset)  # due = day 0 + 30 × 2
    assert ("replenish_due" in segs.get("A", set())) == due


def test_replenish_needs_the_owner_mark_and_resets_on_a_new_purchase(db):
    beans = {"product": "BEANS", "title": "Coffee beans"}
    shop = History(db).order("A", 0, lines=[beans]).order("B", 0, lines=[beans]).order("B", 28, lines=[beans]).write()
    assert "replenish_due" not in run(db, shop, 30).get("A", set())  # not marked
    db.execute("UPDATE products SET replenishable = 1, replenish_days = 30 WHERE external_id = 'BEANS'")
    segs = run(db, shop, 30)
    assert "replenish_due" in segs["A"]
    assert "replenish_due" not in segs["B"]  # bought again on day 28: due day 58
    detail = json.loads(db.execute("SELECT detail FROM customer_segments WHERE segment = 'replenish_due'").fetchone()[0])
    assert detail[0]["title"] == "Coffee beans" and detail[0]["due_date"] == "2026-01-31"


def test_replenish_cycle_learned_from_repurchases_when_owner_gives_none(db):
    beans = {"product": "BEANS", "title": "Coffee beans"}
    h = History(db)
    for i in range(5):
        h.repeat(f"R{i}", [0, 20, 40], lines=[beans])  # every 20 days
    h.order("A", 50, lines=[beans])
    shop = h.write()
    db.execute("UPDATE products SET replenishable = 1 WHERE external_id = 'BEANS'")
    assert "replenish_due" in run(db, shop, 70)["A"]       # due day 70
    assert "replenish_due" not in run(db, shop, 64).get("A", set())  # 6 days early


def test_rfm_scores_and_stages(db):
    h = History(db)
    for i in range(20):
        h.repeat(f"C{i}", [i * 10 + k * 5 for k in range(1 + i % 5)], total=str(10 + i))
    shop = h.write()
    run(db, shop, 300)
    rows = list(db.query("SELECT r_score, f_score, m_score, stage FROM customer_snapshots"))
    assert all(1 <= r[k] <= 5 for r in rows for k in ("r_score", "f_score", "m_score"))
    assert {r["stage"] for r in rows} <= {"champions", "loyal", "potential", "at_risk", "hibernating", "lost"}
    # the customers with one purchase share one frequency score: the lowest
    ones = {r["f_score"] for r in db.query(
        "SELECT f_score FROM customer_snapshots WHERE purchases = 1")}
    assert ones == {1}


def test_customers_without_purchases_are_in_no_segment(db):
    shop = History(db).order("A", 0, status="cancelled").write()
    segs = run(db, shop, 10)
    assert "A" not in segs


def test_without_a_model_an_expected_next_order_is_for_the_active_only(db, monkeypatch):
    """No purchase model (here: none could be fitted), so a repeat buyer's next order is expected one
    usual gap after the last, for active customers only: not for A, who lapsed on day 101."""
    from flows import shrinkage
    from tests.builders import at, lapsed_shop
    monkeypatch.setattr(shrinkage, "fit", lambda *args, **kwargs: None)
    shop = lapsed_shop(db)
    refresh(db, shop, at(120))
    rows = {ext: (status, next_order) for ext, status, next_order in db.execute(
        "SELECT c.external_id, s.status, s.expected_next_order FROM customer_snapshots s"
        " JOIN customers c ON c.id = s.customer_id WHERE s.purchase_days >= 2")}
    assert rows["A"] == ("lapsed", None)
    assert {status for status, next_order in rows.values() if next_order} == {"active"}

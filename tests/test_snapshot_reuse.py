"""The stored snapshot answers later the same day while nothing it reads has changed, and gives
exactly what a new refresh would; any change (an order, a customer, a setting, a new day) is seen."""
import json

from app.settings import save_setting
from flows.refresh import refresh
from tests.builders import History


def explain(runner, customer, now):
    result = runner.invoke(args=["explain", "--shop", "s", "--customer", customer, "--now", now, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def count_refreshes(monkeypatch):
    import flows.refresh
    calls = []
    real = flows.refresh.refresh
    monkeypatch.setattr(flows.refresh, "refresh", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    return calls


def shop_history(db):
    h = History(db)
    for i in range(12):
        h.repeat(f"R{i}", [0, 30 + i, 70 + 2 * i], total=str(20 + 5 * i))
    h.repeat("A", [0, 40], total="30").order("B", 10)
    return h


def fresh(db, shop, customer, now, runner):
    """What a new refresh for `now` says about `customer` (forced: the stored snapshot is rebuilt)."""
    from app.timeutil import parse_now
    refresh(db, shop, parse_now(now, shop["timezone"]))
    return explain(runner, customer, now)


def test_later_the_same_day_reuses_the_snapshot_and_equals_a_refresh(runner, db, monkeypatch):
    shop = shop_history(db).write()
    refreshes = count_refreshes(monkeypatch)
    first = explain(runner, "A", "2026-05-18T08:00:00Z")
    later = explain(runner, "A", "2026-05-18T17:30:00Z")
    assert len(refreshes) == 1 and later["now"] != first["now"]
    assert later == fresh(db, shop, "A", "2026-05-18T17:30:00Z", runner)
    assert later["days_since_last"] == first["days_since_last"]


def test_an_order_written_since_is_seen(runner, db):
    h = shop_history(db)
    shop = h.write()
    before = explain(runner, "A", "2026-05-18T08:00:00Z")
    h.order("A", 120).write()  # an order on an earlier day, written after the snapshot (a late sync)
    after = explain(runner, "A", "2026-05-18T09:00:00Z")
    assert after["orders"] == before["orders"] + 1
    assert after == fresh(db, shop, "A", "2026-05-18T09:00:00Z", runner)


def test_an_order_between_the_two_moments_is_seen(runner, db):
    from datetime import time
    h = shop_history(db)
    h.order("B", 137, at=time(12))  # 2026-05-18 12:00, already stored before the first explain
    h.write()
    morning = explain(runner, "B", "2026-05-18T08:00:00Z")
    evening = explain(runner, "B", "2026-05-18T20:00:00Z")
    assert evening["orders"] == morning["orders"] + 1


def test_a_changed_setting_and_a_new_day_are_seen(runner, db):
    shop = shop_history(db).write()
    assert "lapsed" in explain(runner, "A", "2026-05-18T08:00:00Z")["segments"]  # 97 days > 1.5 × 40
    save_setting(db, shop["id"], "lapse_factor", 3)
    assert "lapsed" not in explain(runner, "A", "2026-05-18T09:00:00Z")["segments"]  # 97 days < 3 × 40
    today = explain(runner, "A", "2026-05-18T10:00:00Z")
    tomorrow = explain(runner, "A", "2026-05-19T09:00:00Z")
    assert tomorrow["days_since_last"] == today["days_since_last"] + 1
    assert tomorrow == fresh(db, shop, "A", "2026-05-19T09:00:00Z", runner)


def test_a_refund_and_a_new_customer_are_seen(runner, db):
    from connectors.base import CustomerRecord
    from connectors.store import ShopWriter
    h = shop_history(db)
    h.order("A", 100, total="80", oid="A-big")
    shop = h.write()
    before = explain(runner, "A", "2026-05-18T08:00:00Z")
    h.order("A", 100, total="80", oid="A-big", refunded="80", status="refunded").write()  # an update
    after = explain(runner, "A", "2026-05-18T09:00:00Z")
    assert after["orders"] == before["orders"] - 1
    counted = runner.invoke(args=["segments", "--shop", "s", "--now", "2026-05-18T09:30:00Z", "--json"])
    ShopWriter(db, shop).upsert_customers([CustomerRecord("NEW", email="new@example.com")])
    recounted = runner.invoke(args=["segments", "--shop", "s", "--now", "2026-05-18T10:00:00Z", "--json"])
    assert json.loads(recounted.output)["customers"] == json.loads(counted.output)["customers"] + 1

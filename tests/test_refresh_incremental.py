"""Later the same day, a refresh recomputes only the customers whose data changed, and gives exactly
what recomputing every customer gives; the next day, or after a setting, a product or a large change,
it learns the whole shop again."""
import sqlite3
from datetime import time

from app.db import connect
from app.settings import save_setting
from app.shops import get_shop
from flows import owner_segments
from flows.refresh import refresh
from tests.builders import History, at
from tests.test_refresh_equal import PRODUCTS, _results, _shop

MORNING, EVENING = at(400, 12, 0), at(400, 23, 0)  # 8:00 and 19:00 in New York


def _copy(db, path):
    """A second database with the same contents (backup API: WAL and all)."""
    target = sqlite3.connect(path)
    db.conn.backup(target)
    target.close()
    return connect(path)


def _against_nothing_stored(db, tmp_path, handle, now):
    """(this database's results, a copy's with nothing stored) after both refresh for `now`, each
    learning the shop anew."""
    other = _copy(db, tmp_path / "scratch.db")
    try:
        for table in ("shop_snapshots", "customer_snapshots", "customer_segments"):
            other.execute(f"DELETE FROM {table}")
        other.conn.commit()
        for handle_db in (db, other):
            assert refresh(handle_db, get_shop(handle_db, handle), now)["learned"]
        return _results(db, get_shop(db, handle)), _results(other, get_shop(other, handle))
    finally:
        other.close()


def _changes(db, shop):
    """A day's worth of changes to a handful of customers: new orders (one between the morning's
    refresh and the evening), a new customer, a refund, a consent change."""
    h = History(db, shop=shop, tz=shop["timezone"])
    for c in (1, 2, 3, 5, 8):
        h.order(f"C{c}", 400, total="75.50", at=time(9), lines=[{"product": p, "brand": b, "category": cat,
                                                                  "price": "75.50"} for p, b, cat in PRODUCTS[:2]])
    h.order("C13", 399, total="20")  # a late sync: an order of yesterday written today
    h.order("NEW1", 400, total="300", at=time(8))  # a new customer, already a VIP by spend
    h.order("C21", 400, total="40", at=time(15))  # after the morning's `now`
    h.write()
    refunded = db.execute("SELECT o.id, c.external_id FROM orders o JOIN customers c ON c.id = o.customer_id"
                          " WHERE o.shop_id = ? AND o.status = 'paid' AND o.is_test = 0 AND o.total_minor > 0"
                          " AND c.external_id = 'C40'", [shop["id"]]).fetchone()
    db.execute("UPDATE orders SET refunded_minor = total_minor WHERE id = ?", [refunded[0]])
    db.execute("UPDATE customers SET accepts_marketing = 0 WHERE shop_id = ? AND external_id = 'C55'", [shop["id"]])
    db.conn.commit()
    return refunded[1]


def _shop_with_changes(db):
    shop = _shop(db, "big", "America/New_York", 700, seed=1, currency_mix=True)
    owner_segments.save_segment(db, shop, "Big spenders", {"all": [{"field": "clv", "op": ">=", "value": 200}]})
    # What was bought, asked of each changed customer in an incremental refresh, of the shop in a full one.
    for name, field, op, value in (("Acme buyers", "brand", "=", "acme"), ("Never Bolt", "brand", "!=", "Bolt"),
                                   ("Tea or pets", "category", "in", ["tea", "Pet"]),
                                   ("Beans", "product", "in", ["BEANS", "p0"]),
                                   ("Acme only", "brand_every_order", "=", "Acme"),
                                   ("Not all Bolt", "brand_every_order", "!=", "Bolt")):
        owner_segments.save_segment(db, shop, name, {"all": [{"field": field, "op": op, "value": value}]})
    first = refresh(db, shop, MORNING)
    assert first["learned"] and first["recomputed"] == first["customers"]
    return shop, _changes(db, shop)


def test_changed_customers_only_and_exactly_what_a_full_refresh_gives(db, tmp_path):
    shop, refunded = _shop_with_changes(db)
    before = _results(db, shop)
    other = _copy(db, tmp_path / "full.db")
    try:
        part = refresh(db, shop, EVENING)
        full = refresh(other, get_shop(other, "big"), EVENING, full=True)
        assert not part["learned"] and not full["learned"]
        assert part["recomputed"] <= 12 < part["customers"] == full["recomputed"] == full["customers"]
        got, want = _results(db, shop), _results(other, get_shop(other, "big"))
    finally:
        other.close()
    assert got == want  # exactly: every column of every customer, segment and the shop's row
    # And the changes are in it: the new customer, the new orders, the refund, a segment.
    rows = {r["who"]: r for r in got["customer_snapshots"]}
    old = {r["who"]: r for r in before["customer_snapshots"]}
    assert "NEW1" in rows and "NEW1" not in old and rows["NEW1"]["purchases"] == 1
    assert rows["C1"]["purchases"] == old["C1"]["purchases"] + 1 and rows["C1"]["days_since_last"] == 0
    assert rows["C21"]["purchases"] == old["C21"]["purchases"] + 1
    assert rows[refunded]["clv_minor"] < old[refunded]["clv_minor"]
    members = {(r["who"], r["segment"]) for r in got["customer_segments"]}
    assert ("NEW1", "Big spenders") in members and ("NEW1", "new") in members
    assert ("NEW1", "Big spenders") not in {(r["who"], r["segment"]) for r in before["customer_segments"]}


def test_the_next_day_a_setting_or_a_product_learns_the_shop_again(db):
    shop, _ = _shop_with_changes(db)
    assert not refresh(db, shop, EVENING)["learned"]
    assert refresh(db, shop, at(401, 12, 0))["learned"]  # a new day
    assert not refresh(db, shop, at(401, 13, 0))["learned"]
    save_setting(db, shop["id"], "lapse_factor", 2.0)
    assert refresh(db, shop, at(401, 14, 0))["learned"]
    db.execute("UPDATE products SET replenishable = 1 WHERE shop_id = ? AND external_id = 'P3'", [shop["id"]])
    db.conn.commit()
    assert refresh(db, shop, at(401, 15, 0))["learned"]


def test_a_large_change_learns_the_shop_again(db):
    shop, _ = _shop_with_changes(db)
    refresh(db, shop, EVENING)
    h = History(db, shop=shop, tz=shop["timezone"])
    for c in range(60):  # more than 2 % of 700 customers
        h.order(f"C{c}", 400, total="10", at=time(16))
    h.write()
    result = refresh(db, shop, at(401, 1, 0))
    assert result["learned"] and result["recomputed"] == result["customers"]


def test_the_next_days_refresh_equals_one_from_nothing(db, tmp_path):
    """On a new day only the changed customers' metrics are read again from their orders; the result
    is what a refresh with nothing stored gives."""
    _shop_with_changes(db)
    got, want = _against_nothing_stored(db, tmp_path, "big", at(402, 12, 0))
    assert got == want


def test_a_small_shop_too(db, tmp_path):
    """Too little history for the exact model (the shrunk one scores): the one changed customer,
    recomputed, equals a full refresh."""
    shop = _shop(db, "tiny", "UTC", 60, seed=4)
    first = refresh(db, shop, at(400, 8, 0))
    assert first["learned"]
    History(db, shop=shop).order("C1", 400, total="33", at=time(9)).write()
    other = _copy(db, tmp_path / "full.db")
    try:
        part = refresh(db, shop, at(400, 12, 0))
        full = refresh(other, get_shop(other, "tiny"), at(400, 12, 0), full=True)
        assert part["recomputed"] == 1 and not part["learned"] and not full["learned"]
        got, want = _results(db, shop), _results(other, get_shop(other, "tiny"))
    finally:
        other.close()
    assert got == want
    assert {r["who"]: r for r in got["customer_snapshots"]}["C1"]["days_since_last"] == 0


def test_after_a_setting_a_product_and_a_removed_customer_too(db, tmp_path):
    """A mark of the whole shop: learned anew and everyone scored again, the other customers' metrics
    kept; the result is what a refresh with nothing stored gives."""
    shop, _ = _shop_with_changes(db)
    save_setting(db, shop["id"], "vip_percentile", 80)
    db.execute("UPDATE products SET replenishable = 1 WHERE shop_id = ? AND external_id = 'P3'", [shop["id"]])
    db.execute("DELETE FROM customers WHERE shop_id = ? AND external_id = 'C7'", [shop["id"]])
    db.conn.commit()
    got, want = _against_nothing_stored(db, tmp_path, "big", EVENING)
    assert got == want
    assert "C7" not in {r["who"] for r in got["customer_snapshots"]}


def test_a_new_currency_reads_every_customer_again(db, tmp_path):
    """Money in other currencies is not summed: when the shop's currency changes, every customer's
    metrics are read again (as a refresh from nothing reads them)."""
    shop, _ = _shop_with_changes(db)
    refresh(db, shop, EVENING)
    db.execute("UPDATE shops SET currency = 'USD' WHERE id = ?", [shop["id"]])
    db.conn.commit()
    got, want = _against_nothing_stored(db, tmp_path, "big", at(401, 12, 0))
    assert got == want

"""The rules over purchased lines (flows/line_rules.py): texts of any kind, the line's own brand or
category before its product's, orders without lines, and a refresh of some customers only."""
import json

import pytest

from app.settings import get_settings
from app.timeutil import parse_now
from flows import metrics, segments
from flows.refresh import refresh, segment_members
from tests.builders import History, now_at


def members(db, shop, n):
    """Refresh as of 00:00 of day n; {customer id: set of segments}."""
    refresh(db, shop, parse_now(now_at(n), shop["timezone"]))
    out = {}
    for name, ids in segment_members(db, shop["id"]).items():
        for ext in ids:
            out.setdefault(ext, set()).add(name)
    return out


def detail(db, customer, segment):
    return db.execute("SELECT s.detail FROM customer_segments s JOIN customers c ON c.id = s.customer_id"
                      " WHERE c.external_id = ? AND s.segment = ?", [customer, segment]).fetchone()[0]


def test_names_with_quotes_and_emoji_are_kept_in_segments_and_details(db):
    odd = 'Tea "green" \\ \u2615\ttab'
    line = {"product": "T", "title": 'Beans "dark" \u2615', "category": odd, "brand": odd}
    shop = History(db).order("A", 0, lines=[line]).order("A", 10, lines=[line]).write()
    db.execute("UPDATE products SET replenishable = 1, replenish_days = 15 WHERE external_id = 'T'")
    segs = members(db, shop, 30)
    assert {"brand_loyal:" + odd, "category_lapsed:" + odd, "replenish_due"} <= segs["A"]
    # The detail is what SQLite's json_object gives for the same values, byte for byte.
    want = db.execute("SELECT json_object('category', ?, 'days_since', 20, 'usual_gap', round(10.0, 1),"
                      " 'purchase_days', 2)", [odd]).fetchone()[0]
    assert detail(db, "A", "category_lapsed:" + odd) == want
    assert json.loads(want)["category"] == odd
    due = json.loads(detail(db, "A", "replenish_due"))
    assert [(d["title"], d["last_date"], d["due_date"]) for d in due] == [
        ('Beans "dark" \u2615', "2026-01-11", "2026-01-26")]


def test_the_line_s_own_brand_and_category_come_before_the_product_s(db):
    acme = {"product": "P", "brand": "Acme", "category": "Tea"}
    shop = History(db).repeat("A", [0, 10], lines=[acme]).repeat("B", [0, 10], lines=[acme]).write()
    db.execute("UPDATE products SET brand = 'Bolt', category = 'Coffee'")
    # A's lines keep their own brand and category; B's have none, so the product's count.
    db.execute("UPDATE order_lines SET brand = NULL, category = NULL WHERE order_id IN"
               " (SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.external_id = 'B')")
    segs = members(db, shop, 40)
    assert {"brand_loyal:Acme", "category_lapsed:Tea"} <= segs["A"]
    assert not {"brand_loyal:Bolt", "category_lapsed:Coffee"} & segs["A"]
    assert {"brand_loyal:Bolt", "category_lapsed:Coffee"} <= segs["B"]
    # An empty brand on the line is its own (no brand), not the product's.
    db.execute("UPDATE order_lines SET brand = '' WHERE brand = 'Acme'")
    assert not any(s.startswith("brand_loyal") for s in members(db, shop, 41)["A"])


def test_a_paid_order_without_lines_breaks_brand_loyalty(db):
    acme = {"product": "P", "brand": "Acme"}
    shop = (History(db).order("L", 0, lines=[acme]).order("L", 10, lines=[acme])
            .order("N", 0, lines=[acme]).order("N", 5).order("N", 10, lines=[acme]).write())
    segs = members(db, shop, 20)
    assert "brand_loyal:Acme" in segs["L"]
    assert not any(s.startswith("brand_loyal") for s in segs["N"])


def _shop(db):
    tea = {"product": "T", "brand": "Acme", "category": "Tea", "qty": 2}
    coffee = {"product": "C", "brand": "Bolt", "category": "Coffee"}
    h = History(db)
    for i in range(12):
        h.repeat(f"C{i}", [i, 15 + 2 * i, 30 + 3 * i], lines=[tea] if i % 3 else [tea, coffee])
        h.order(f"C{i}", 80 + i, lines=[coffee])
    shop = h.write()
    db.execute("UPDATE products SET replenishable = 1")  # cycles learned from the repurchases
    return shop


@pytest.mark.parametrize("p", ["+", ""])
def test_the_rules_read_only_the_customers_of_the_lines_view(db, p):
    """Either side of the join may drive the lines view (`p`), and an incremental refresh's view of
    some customers (metrics.CHANGED) gives those customers' rows of a full refresh."""
    shop = _shop(db)
    now = parse_now(now_at(120), "UTC")
    settings = get_settings(db, shop["id"])
    metrics.materialise_purchases(db, shop, now)
    full, cycles = segments.line_segments(db, shop, now, settings)
    assert {s.split(":")[0] for _, s, _ in full} == {"brand_loyal", "category_lapsed", "replenish_due"}
    db.execute("DROP VIEW temp.purchase_lines")
    db.execute(metrics.PURCHASE_LINES.format(p=p, only=""))
    assert sorted(segments.line_segments(db, shop, now, settings)[0], key=repr) == sorted(full, key=repr)
    some = [cid for cid, in db.execute("SELECT id FROM customers WHERE external_id IN ('C1', 'C3', 'C4')")]
    db.execute("CREATE TEMP TABLE refresh_customers AS SELECT value AS customer_id FROM json_each(?)",
               [json.dumps(some)])
    metrics.materialise_purchases(db, shop, now, only=metrics.CHANGED)
    part, same_cycles = segments.line_segments(db, shop, now, settings, cycles=cycles)
    assert same_cycles == cycles
    assert sorted(part, key=repr) == sorted([r for r in full if r[0] in some], key=repr)
    assert {r[0] for r in part} == set(some)
    metrics.drop_purchases(db)

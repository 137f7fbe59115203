"""Per-customer metrics and the shop's rhythm, computed in set-based SQL for any `now`.

A purchase is a paid, non-test order created strictly before `now`; its value is net of refunds.
Days are calendar days in the shop's time zone, so orders on one day are one purchase occasion.
Money metrics count orders in the shop's currency (a CSV may mix currencies; those orders still
count as purchases).
"""
from dataclasses import dataclass
from decimal import Decimal

from app.money import to_minor
from app.timeutil import local_date, to_db

# The shop's purchases before :now can be materialised in two temp tables (per connection, dropped
# at the end): one row per customer and purchase day, and one row per purchased line. The line rules
# read the lines instead of re-deriving them; the snapshot's metrics are read from the orders index.
# The WHERE terms match the partial index `orders_purchases`, which covers this scan; the unary
# `+` keeps the planner from preferring the created_at index, whose row lookups cost 5× more.
PURCHASE_DAYS_TABLE = """
CREATE TEMP TABLE purchase_days (
    customer_id INTEGER NOT NULL, order_date TEXT NOT NULL, n INTEGER, net INTEGER,
    first_at TEXT, last_at TEXT, PRIMARY KEY (customer_id, order_date)
) WITHOUT ROWID
"""
PURCHASE_DAYS = """
INSERT INTO temp.purchase_days
SELECT customer_id, order_date, COUNT(*) AS n,
       SUM(CASE WHEN currency = :currency THEN total_minor - refunded_minor ELSE 0 END) AS net,
       MIN(created_at) AS first_at, MAX(created_at) AS last_at
FROM orders
WHERE shop_id = :shop AND status = 'paid' AND is_test = 0 AND customer_id IS NOT NULL
  AND +created_at < :now
GROUP BY customer_id, order_date
"""

PURCHASE_LINES = """
CREATE TEMP TABLE purchase_lines AS
SELECT o.customer_id, o.order_date, l.order_id, l.product_id, l.quantity,
       COALESCE(l.brand, pr.brand) AS brand, COALESCE(l.category, pr.category) AS category
FROM orders o
JOIN order_lines l ON l.order_id = o.id
LEFT JOIN products pr ON pr.id = l.product_id
WHERE o.shop_id = :shop AND o.status = 'paid' AND o.is_test = 0 AND o.customer_id IS NOT NULL
  AND +o.created_at < :now
ORDER BY o.customer_id
"""

# Straight from the covering index `orders_purchases` (customer, then day order): one pass with a
# COUNT(DISTINCT) per customer and an index seek for the second purchase day costs less than half of
# materialising `purchase_days` first and aggregating that.
FILL_SNAPSHOT = """
INSERT INTO customer_snapshots (
    customer_id, shop_id, purchases, purchase_days, clv_minor, aov_minor, first_order_at,
    last_order_at, first_date, second_date, last_date, avg_gap_days, days_since_first, days_since_last)
SELECT customer_id, :shop, purchases, days, clv, clv / purchases, first_at, last_at, first_date,
       second_date, last_date,
       CASE WHEN days >= 2 THEN (julianday(last_date) - julianday(first_date)) / (days - 1) END,
       CAST(julianday(:now_date) - julianday(first_date) AS INTEGER),
       CAST(julianday(:now_date) - julianday(last_date) AS INTEGER)
FROM (
    SELECT a.*, (SELECT MIN(o.order_date) FROM orders o
                 WHERE o.shop_id = :shop AND o.customer_id = a.customer_id AND o.order_date > a.first_date
                   AND o.status = 'paid' AND o.is_test = 0 AND +o.created_at < :now) AS second_date
    FROM (SELECT customer_id, COUNT(*) AS purchases, COUNT(DISTINCT order_date) AS days,
                 SUM(CASE WHEN currency = :currency THEN total_minor - refunded_minor ELSE 0 END) AS clv,
                 MIN(created_at) AS first_at, MAX(created_at) AS last_at,
                 MIN(order_date) AS first_date, MAX(order_date) AS last_date
          FROM orders
          WHERE shop_id = :shop AND status = 'paid' AND is_test = 0 AND customer_id IS NOT NULL
            AND +created_at < :now
          GROUP BY customer_id) AS a
)
"""

# Customers without a purchase before :now get an empty row.
FILL_NON_BUYERS = """
INSERT OR IGNORE INTO customer_snapshots (customer_id, shop_id)
SELECT id, shop_id FROM customers WHERE shop_id = :shop
"""


@dataclass(frozen=True)
class ShopRhythm:
    """The shop-level numbers the rules compare customers with."""
    customers: int
    buyers: int
    repeat_buyers: int
    retention_days: float | None        # median avg_gap_days of repeat buyers
    one_time_return_days: float          # 80th percentile of first→second gaps (or the fallback)
    one_time_return_learned: bool        # False when the fallback or the owner's value is used
    returners: int                       # customers whose second purchase day exists
    vip_threshold_minor: int | None


def query_params(shop, now) -> dict:
    """The named parameters every intelligence query uses."""
    return {"shop": shop["id"], "currency": shop["currency"], "now": to_db(now),
            "now_date": local_date(now, shop["timezone"])}


def materialise_purchases(db, shop, now, days=True, lines=True):
    """Create the temp tables `purchase_days` and/or `purchase_lines` for `now` (see above)."""
    params = query_params(shop, now)
    drop_purchases(db)
    if days:
        db.execute(PURCHASE_DAYS_TABLE)
        db.execute(PURCHASE_DAYS, params)
    if lines:
        db.execute(PURCHASE_LINES, params)


def drop_purchases(db):
    """Drop the refresh's temp tables."""
    db.execute("DROP TABLE IF EXISTS temp.purchase_days")
    db.execute("DROP TABLE IF EXISTS temp.purchase_lines")


def fill_snapshot(db, shop, now):
    """Replace the shop's per-customer metrics with those as of `now`, read from the orders (caller
    holds the transaction)."""
    params = query_params(shop, now)
    db.execute("DELETE FROM customer_snapshots WHERE shop_id = ?", [shop["id"]])
    db.execute(FILL_SNAPSHOT, params)
    db.execute(FILL_NON_BUYERS, params)


def shop_rhythm(db, shop, settings) -> ShopRhythm:
    """Retention days, one-time return days and the VIP threshold from the filled snapshot."""
    import numpy as np
    sid = shop["id"]
    customers, buyers, repeaters = db.execute(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE purchases > 0), COUNT(*) FILTER (WHERE purchase_days >= 2)"
        " FROM customer_snapshots WHERE shop_id = ?", [sid]).fetchone()
    gaps = np.array([r[0] for r in db.execute(
        "SELECT avg_gap_days FROM customer_snapshots WHERE shop_id = ? AND avg_gap_days IS NOT NULL", [sid])],
        dtype=float)
    retention = round(float(np.median(gaps)), 1) if gaps.size else None

    firsts = np.array([r[0] for r in db.execute(
        "SELECT julianday(second_date) - julianday(first_date) FROM customer_snapshots"
        " WHERE shop_id = ? AND second_date IS NOT NULL", [sid])], dtype=float)
    if settings.get("one_time_return_days") is not None:
        otr, learned = float(settings["one_time_return_days"]), False
    elif firsts.size >= settings["one_time_return_min_returners"]:
        otr, learned = round(float(np.percentile(firsts, 80)), 1), True
    else:
        otr, learned = float(settings["one_time_return_fallback_days"]), False

    if settings.get("vip_min_amount") is not None:
        vip = to_minor(Decimal(str(settings["vip_min_amount"])), shop["currency"])
    else:
        clv = np.array([r[0] for r in db.execute(
            "SELECT clv_minor FROM customer_snapshots WHERE shop_id = ? AND purchases > 0", [sid])], dtype=float)
        vip = int(np.ceil(np.percentile(clv, settings["vip_percentile"]))) if clv.size else None
    return ShopRhythm(customers=customers, buyers=buyers, repeat_buyers=repeaters, retention_days=retention,
                      one_time_return_days=otr, one_time_return_learned=learned, returners=int(firsts.size),
                      vip_threshold_minor=vip)

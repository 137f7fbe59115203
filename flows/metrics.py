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

# The shop's purchased lines before :now can be materialised as a temp view (per connection, dropped
# at the end); the line rules read it. The snapshot's metrics are read from the orders index: the
# WHERE terms match the partial index `orders_purchases`, which covers that scan; the unary `+` keeps
# the planner from preferring the created_at index, whose row lookups cost 5× more.
# The lines are a view, not a table: the line rules read them once (flows/line_rules.py), and writing
# a million rows to a temp table cost as much as reading them. A view takes no parameters: the shop and
# `now` are in the one-row temp table purchase_scope; `{only}` narrows it to some customers (CHANGED).
# own_brand/own_category: the line's where it differs from the product's (NULL nearly always), so the
# line rules read few texts.
# {p} is '+' for a shop that holds most of the lines: the unary `+` leaves the planner no index on
# orders but the primary key, so one sequential pass over the lines drives (40% less than looking up
# each order's lines by index), and with `{only}` the changed customers' orders are sought through the
# orders_customer index. For a small shop among large ones, {p} is '' and the shop's orders drive.
PURCHASE_SCOPE = "CREATE TEMP TABLE purchase_scope AS SELECT :shop AS shop_id, :now AS now"
PURCHASE_LINES = """
CREATE TEMP VIEW purchase_lines AS
SELECT o.customer_id, o.order_date, l.order_id, l.product_id, l.quantity,
       COALESCE(l.brand, pr.brand) AS brand, COALESCE(l.category, pr.category) AS category,
       NULLIF(l.brand, pr.brand) AS own_brand, NULLIF(l.category, pr.category) AS own_category
FROM order_lines l
JOIN orders o ON o.id = l.order_id
LEFT JOIN products pr ON pr.id = l.product_id
WHERE l.shop_id = (SELECT shop_id FROM temp.purchase_scope) AND {p}o.shop_id = (SELECT shop_id FROM temp.purchase_scope)
  AND {p}o.status = 'paid' AND {p}o.is_test = 0 AND {p}o.customer_id IS NOT NULL
  AND +o.created_at < (SELECT now FROM temp.purchase_scope) {only}
"""
# The shop's share of the orders, from 64 evenly spaced order ids (a few index seeks).
ORDER_SHARE = """
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 63)
SELECT AVG((SELECT shop_id FROM orders WHERE id >= 1 + i * (SELECT MAX(id) FROM orders) / 64
            ORDER BY id LIMIT 1) = :shop) FROM k
"""

# Straight from the covering index `orders_purchases` (customer, then day order): one pass with a
# COUNT(DISTINCT) per customer and an index seek for the second purchase day (of repeat buyers only:
# a seek per customer costs a third of the fill) costs less than half of materialising `purchase_days`
# first and aggregating that.
# Room for the scores: SQLite packs rows appended in key order into full pages, so a row that grows
# afterwards splits its page, and writing a whole shop's scores into rows without room for them cost
# twice as much (a second more at 200,000 customers). So a buyer's row is first written with values
# at least as long as its scores will be: the longest stage, offer kind and rule, a date, reals and
# eight-byte integers. flows/scores.py overwrites every one of them in the same transaction.
SCORE_ROOM = {"r_score": "5", "f_score": "5", "m_score": "5", "stage": "'hibernating'", "p_alive": "0.5",
              "expected_90d": "0.5", "expected_next_order": "'0000-00-00'", "lapse_after_days": "0.5",
              "p_purchase_30d": "0.5", "p_purchase_next": "0.5", "return_share": "0.5",
              "predicted_clv_12m_minor": str(2 ** 62), "worth_minor": str(2 ** 62), "offer_kind": "'percent'",
              "offer_percent": "0.5", "offer_rule": "'likely_buyer'", "status": "'active'"}
FILL_SNAPSHOT = f"""
INSERT INTO customer_snapshots (
    customer_id, shop_id, purchases, purchase_days, clv_minor, aov_minor, first_order_at,
    last_order_at, first_date, second_date, last_date, avg_gap_days, days_since_first, days_since_last,
    {", ".join(SCORE_ROOM)})
SELECT customer_id, :shop, purchases, days, clv, clv / purchases, first_at, last_at, first_date,
       second_date, last_date,
       CASE WHEN days >= 2 THEN (julianday(last_date) - julianday(first_date)) / (days - 1) END,
       CAST(julianday(:now_date) - julianday(first_date) AS INTEGER),
       CAST(julianday(:now_date) - julianday(last_date) AS INTEGER),
       {", ".join(SCORE_ROOM.values())}
FROM (
    SELECT a.*, CASE WHEN days >= 2 THEN
                (SELECT MIN(o.order_date) FROM orders o
                 WHERE o.shop_id = :shop AND o.customer_id = a.customer_id AND o.order_date > a.first_date
                   AND o.status = 'paid' AND o.is_test = 0 AND +o.created_at < :now) END AS second_date
    FROM (SELECT customer_id, COUNT(*) AS purchases, COUNT(DISTINCT order_date) AS days,
                 SUM(CASE WHEN currency = :currency THEN total_minor - refunded_minor ELSE 0 END) AS clv,
                 MIN(created_at) AS first_at, MAX(created_at) AS last_at,
                 MIN(order_date) AS first_date, MAX(order_date) AS last_date
          FROM orders
          WHERE shop_id = :shop AND status = 'paid' AND is_test = 0 AND customer_id IS NOT NULL
            AND +created_at < :now {{only}}
          GROUP BY customer_id) AS a
)
"""

# Customers without a purchase before :now get an empty row.
# `{only}` in these statements narrows them to some customers (CHANGED): an incremental refresh.
# NOT IN reads the buyers' ids once into a sorted list: the customers come in e-mail order (their shop
# index), and looking each up in the table instead (INSERT OR IGNORE) costs twice as much.
FILL_NON_BUYERS = """
INSERT INTO customer_snapshots (customer_id, shop_id)
SELECT id, shop_id FROM customers WHERE shop_id = :shop {only}
  AND id NOT IN (SELECT customer_id FROM customer_snapshots WHERE shop_id = :shop {only})
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


# The customers an incremental refresh recomputes (flows/refresh.py fills temp.refresh_customers).
CHANGED = "AND customer_id IN (SELECT customer_id FROM temp.refresh_customers)"


def narrowed(sql, only="") -> str:
    """A statement over a shop's snapshot rows with its `{only}` filled in; narrowed to the changed
    customers, their ids pick the rows: the planner would otherwise read all of the shop's rows
    through its shop_id index to keep a thousand of them."""
    sql = sql.format(only=only)
    return sql.replace("shop_id = :shop", "+shop_id = :shop") if only else sql


def materialise_purchases(db, shop, now, only=""):
    """Create the temp view `purchase_lines` for `now` (see above); `only` (CHANGED) keeps the lines
    of the changed customers only."""
    params = query_params(shop, now)
    drop_purchases(db)
    db.execute(PURCHASE_SCOPE, params)
    lines_first = bool(only) or (db.execute(ORDER_SHARE, params).fetchone()[0] or 0) >= 0.4
    db.execute(PURCHASE_LINES.format(p="+" if lines_first else "",
                                     only=only.replace("customer_id", "o.customer_id", 1)))


def drop_purchases(db):
    """Drop the refresh's temp view and its scope."""
    db.execute("DROP VIEW IF EXISTS temp.purchase_lines")
    db.execute("DROP TABLE IF EXISTS temp.purchase_scope")


def fill_snapshot(db, shop, now, only=""):
    """Replace the shop's per-customer metrics (`only`: the changed customers', CHANGED) with those
    as of `now`, read from the orders (caller holds the transaction)."""
    params = query_params(shop, now)
    db.execute(narrowed("DELETE FROM customer_snapshots WHERE shop_id = :shop {only}", only), params)
    db.execute(FILL_SNAPSHOT.format(only=only), params)
    # The first `{only}` is on the customers, whose key is `id`.
    db.execute(narrowed(FILL_NON_BUYERS.replace("{only}", only.replace("customer_id IN", "id IN", 1), 1), only),
               params)


def shop_rhythm(db, shop, settings, gaps, first_gaps, clv, purchase_days) -> ShopRhythm:
    """Retention days, one-time return days and the VIP threshold from the filled snapshot's buyers
    (arrays, flows.scores.rhythm_inputs: the repeat buyers' usual gaps, the returners' first-to-second
    gaps, every buyer's value and purchase days)."""
    import numpy as np
    customers = db.execute("SELECT COUNT(*) FROM customer_snapshots WHERE shop_id = ?", [shop["id"]]).fetchone()[0]
    buyers, repeaters = len(clv), int((purchase_days >= 2).sum())
    retention = round(float(np.median(gaps)), 1) if gaps.size else None
    firsts = first_gaps
    if settings.get("one_time_return_days") is not None:
        otr, learned = float(settings["one_time_return_days"]), False
    elif firsts.size >= settings["one_time_return_min_returners"]:
        otr, learned = round(float(np.percentile(firsts, 80)), 1), True
    else:
        otr, learned = float(settings["one_time_return_fallback_days"]), False

    if settings.get("vip_min_amount") is not None:
        vip = to_minor(Decimal(str(settings["vip_min_amount"])), shop["currency"])
    else:
        vip = int(np.ceil(np.percentile(clv, settings["vip_percentile"]))) if clv.size else None
    return ShopRhythm(customers=customers, buyers=buyers, repeat_buyers=repeaters, retention_days=retention,
                      one_time_return_days=otr, one_time_return_learned=learned, returners=int(firsts.size),
                      vip_threshold_minor=vip)

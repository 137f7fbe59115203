"""Segment rules (SPEC "Business rules and defaults"), each one set-based SQL over the snapshot.

`classify` sets each customer's status (active, lapsed, lost; a refresh stores the same rule, as
LAPSE_AFTER and RULE_STATUS, with the scores in flows.scores); `fill_segments` writes segment
memberships, with a JSON `detail` where a segment is about a brand, category or product.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .metrics import drop_purchases, materialise_purchases, query_params

if TYPE_CHECKING:  # numpy is imported by each function that computes: `segments` reads the stored snapshot
    import numpy as np

BASE_SEGMENTS = ("new", "one_time", "active", "lapsed", "lost", "vip", "vip_at_risk", "replenish_due")

# The rule's lapse day and status of a customer_snapshots row, as SQL expressions over its columns.
LAPSE_AFTER = """CASE WHEN purchase_days >= 2 THEN MAX(:factor * avg_gap_days, :min_days)
                            WHEN purchase_days = 1 THEN :otr END"""
RULE_STATUS = """CASE
        WHEN purchases = 0 THEN NULL
        WHEN days_since_last > :lost THEN 'lost'
        WHEN purchase_days >= 2 AND days_since_last > :factor * avg_gap_days
             AND days_since_last >= :min_days THEN 'lapsed'
        WHEN purchase_days = 1 AND days_since_last > :otr THEN 'lapsed'
        ELSE 'active' END"""

CLASSIFY = f"""
UPDATE customer_snapshots SET
    lapse_after_days = {LAPSE_AFTER},
    status = {RULE_STATUS}
WHERE shop_id = :shop
"""

SIMPLE_RULES = {
    "new": "purchases > 0 AND days_since_first <= :new_days",
    "one_time": "purchase_days = 1 AND status = 'active'",
    "active": "status = 'active'",
    "lapsed": "status = 'lapsed'",
    "lost": "status = 'lost'",
    "vip": "clv_minor > 0 AND clv_minor >= :vip AND status = 'active'",
    "vip_at_risk": "clv_minor > 0 AND clv_minor >= :vip AND status = 'lapsed'",
}

# Rules over purchased lines: each SELECT gives (customer_id, segment, detail) rows. They read only
# committed orders, so a refresh runs them on a second connection while it builds the snapshot.
# A brand is loyal when every paid order has it: its orders are counted per (customer, brand) first,
# and only groups of two or more look up the customer's order count (an index seek each) instead of
# joining every group with a materialised count per customer.
BRAND_LOYAL = """
SELECT b.customer_id, 'brand_loyal:' || b.brand, NULL
FROM (SELECT customer_id, brand, COUNT(DISTINCT order_id) AS n
      FROM temp.purchase_lines WHERE brand IS NOT NULL AND brand <> ''
      GROUP BY customer_id, brand HAVING COUNT(DISTINCT order_id) >= 2) b
WHERE b.n = (SELECT COUNT(*) FROM orders o
             WHERE o.shop_id = :shop AND o.customer_id = b.customer_id AND o.status = 'paid' AND o.is_test = 0
               AND +o.created_at < :now)
"""

CATEGORY_STATS = """
    SELECT customer_id, category, COUNT(DISTINCT order_date) AS days,
           MIN(order_date) AS first_date, MAX(order_date) AS last_date,
           (julianday(MAX(order_date)) - julianday(MIN(order_date))) / (COUNT(DISTINCT order_date) - 1) AS gap,
           CAST(julianday(:now_date) - julianday(MAX(order_date)) AS INTEGER) AS days_since
    FROM temp.purchase_lines
    WHERE category IS NOT NULL AND category <> ''
    GROUP BY customer_id, category
    HAVING COUNT(DISTINCT order_date) >= 2
"""

CATEGORY_LAPSED = f"""
SELECT customer_id, 'category_lapsed:' || category,
       json_object('category', category, 'days_since', days_since, 'usual_gap', round(gap, 1),
                   'purchase_days', days)
FROM ({CATEGORY_STATS})
WHERE days_since > :category_factor * gap
"""

# Per customer and replenishable product: the day it was last bought and how many were bought then.
REPLENISH_LAST = """
    WITH pl AS (
        SELECT customer_id, product_id, order_date, SUM(quantity) AS qty
        FROM temp.purchase_lines
        WHERE product_id IN (SELECT CAST(key AS INTEGER) FROM json_each(:cycles))
        GROUP BY customer_id, product_id, order_date
    )
    SELECT customer_id, product_id, order_date AS last_date, MAX(qty, 1) AS qty,
           json_extract(:cycles, '$."' || product_id || '"') AS cycle
    FROM (SELECT pl.*, ROW_NUMBER() OVER (PARTITION BY customer_id, product_id
                                          ORDER BY order_date DESC) AS latest
          FROM pl)
    WHERE latest = 1
"""

REPLENISH_DUE = f"""
SELECT customer_id, 'replenish_due',
       json_group_array(json_object('product_id', product_id, 'title', title, 'last_date', last_date,
                                    'quantity', qty, 'cycle_days', cycle, 'due_date', due_date))
FROM (
    SELECT r.customer_id, r.product_id, pr.title, r.last_date, r.qty, r.cycle,
           date(r.last_date, '+' || CAST(round(r.cycle * r.qty) AS INTEGER) || ' days') AS due_date
    FROM ({REPLENISH_LAST}) r JOIN products pr ON pr.id = r.product_id
)
WHERE julianday(:now_date) BETWEEN julianday(due_date) - :lead AND julianday(due_date) + cycle
GROUP BY customer_id
"""

def rule_params(shop, now, settings, rhythm) -> dict:
    """Parameters of the segment rules for one shop at `now`."""
    return {**query_params(shop, now),
            "factor": settings["lapse_factor"], "min_days": settings["lapse_min_days"],
            "lost": settings["lost_days"], "otr": rhythm.one_time_return_days,
            "new_days": settings["new_days"],
            "vip": rhythm.vip_threshold_minor if rhythm.vip_threshold_minor is not None else -1,
            "category_factor": settings["category_lapse_factor"],
            "lead": settings["replenish_lead_days"]}


def classify(db, params):
    """Set each customer's status (active / lapsed / lost) and the day they lapse."""
    db.execute(CLASSIFY, params)


def fill_segments(db, params, line_rows):
    """Replace the shop's segment memberships: the snapshot rules, and the rows of `line_segments`
    (caller holds the transaction)."""
    fill_rule_segments(db, params)
    add_line_segments(db, params, line_rows)


def fill_rule_segments(db, params):
    """Replace the shop's segment memberships with those of the snapshot rules; the line rules'
    rows follow with `add_line_segments` (a refresh writes these while the line rules still run)."""
    db.execute("DELETE FROM customer_segments WHERE shop_id = ?", [params["shop"]])
    for name, condition in SIMPLE_RULES.items():
        db.execute(f"INSERT INTO customer_segments (customer_id, shop_id, segment)"
                   f" SELECT customer_id, shop_id, '{name}' FROM customer_snapshots"
                   f" WHERE shop_id = :shop AND {condition}", params)


def add_line_segments(db, params, line_rows):
    """Add the (customer_id, segment, detail) rows of `line_segments` to the shop's memberships."""
    db.conn.executemany("INSERT INTO customer_segments (customer_id, shop_id, segment, detail) VALUES (?, ?, ?, ?)",
                        ((cid, params["shop"], segment, detail) for cid, segment, detail in line_rows))


def line_segments(db, shop, now, settings) -> tuple[list, dict]:
    """The brand, category and replenishment segments, and the replenish cycles, computed on a
    connection that holds `temp.purchase_lines`; returns (rows, cycles)."""
    cycles = replenish_cycles(db, shop, now)
    params = {**query_params(shop, now), "category_factor": settings["category_lapse_factor"],
              "lead": settings["replenish_lead_days"],
              "cycles": json.dumps({str(k): v for k, v in cycles.items()})}
    rows = db.execute(BRAND_LOYAL, params).fetchall() + db.execute(CATEGORY_LAPSED, params).fetchall()
    if cycles:
        rows += db.execute(REPLENISH_DUE, params).fetchall()
    return rows, cycles


def repurchase_gaps(db, shop, now, product_ids=None) -> dict[int, np.ndarray]:
    """Per product: the gaps in days between a customer's consecutive purchases of it, per unit bought.

    Reads the refresh's temp table `purchase_lines` (see flows.metrics.materialise_purchases).
    """
    import numpy as np
    params = query_params(shop, now)
    only = ""
    if product_ids is not None:
        only = "AND product_id IN (SELECT value FROM json_each(:ids))"
        params["ids"] = json.dumps(list(product_ids))
    rows = db.execute(f"""
        WITH pl AS (
            SELECT customer_id, product_id, order_date, SUM(quantity) AS qty
            FROM temp.purchase_lines WHERE product_id IS NOT NULL {only}
            GROUP BY customer_id, product_id, order_date
        )
        SELECT product_id, gap FROM (
            SELECT product_id,
                   (julianday(order_date) - julianday(LAG(order_date) OVER w))
                   / MAX(LAG(qty) OVER w, 1) AS gap
            FROM pl WINDOW w AS (PARTITION BY customer_id, product_id ORDER BY order_date)
        ) WHERE gap IS NOT NULL""", params).fetchall()
    out: dict[int, list] = {}
    for product_id, gap in rows:
        out.setdefault(product_id, []).append(gap)
    return {k: np.array(v, dtype=float) for k, v in out.items()}


def replenish_cycles(db, shop, now) -> dict[int, float]:
    """Cycle in days of every product the owner marked replenishable: theirs, else the learned median."""
    import numpy as np
    marked = db.execute("SELECT id, replenish_days FROM products WHERE shop_id = ? AND replenishable = 1",
                        [shop["id"]]).fetchall()
    learn = [pid for pid, days in marked if not days]
    gaps = repurchase_gaps(db, shop, now, learn) if learn else {}
    cycles = {}
    for pid, days in marked:
        if days:
            cycles[pid] = float(days)
        elif pid in gaps and gaps[pid].size:
            cycles[pid] = round(float(np.median(gaps[pid])), 1)
    return cycles


def replenish_candidates(db, shop, now, min_gaps=20, max_spread=0.5) -> list[dict]:
    """Products worth marking replenishable: ≥ `min_gaps` repurchase gaps with a steady cycle.

    Steady means the interquartile range is at most `max_spread` × the median gap.
    """
    import numpy as np
    materialise_purchases(db, shop, now)
    try:
        gaps = repurchase_gaps(db, shop, now)
    finally:
        drop_purchases(db)
    out = []
    for pid, values in gaps.items():
        if values.size < min_gaps:
            continue
        median = float(np.median(values))
        q1, q3 = np.percentile(values, [25, 75])
        if median > 0 and (q3 - q1) <= max_spread * median:
            out.append({"product_id": pid, "gaps": int(values.size), "median_days": round(median, 1),
                        "iqr_days": round(float(q3 - q1), 1)})
    if out:
        titles = dict(db.execute("SELECT id, title FROM products WHERE id IN (SELECT value FROM json_each(?))",
                                 [json.dumps([c["product_id"] for c in out])]).fetchall())
        for c in out:
            c["title"] = titles.get(c["product_id"])
    return sorted(out, key=lambda c: -c["gaps"])


def replace_members(db, shop_id, segment, condition, params) -> int:
    """Replace one segment's members with the snapshot's customers matching `condition` (SQL over
    `sn`, their customer_snapshots row, and `c`, the customer; bound by `params`, which hold :shop);
    the owner's own segments (flows/owner_segments.py) are written through it. Caller holds the
    transaction; returns the number of members."""
    drop_members(db, shop_id, segment)
    return db.execute("INSERT INTO customer_segments (customer_id, shop_id, segment)"
                      " SELECT sn.customer_id, sn.shop_id, :member_segment FROM customer_snapshots sn"
                      " JOIN customers c ON c.id = sn.customer_id"
                      f" WHERE sn.shop_id = :shop AND {condition}", {**params, "member_segment": segment}).rowcount


def drop_members(db, shop_id, segment):
    """Remove every member of one segment (an owner's segment that was removed)."""
    db.execute("DELETE FROM customer_segments WHERE shop_id = ? AND segment = ?", [shop_id, segment])

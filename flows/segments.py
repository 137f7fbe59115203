"""Segment rules (SPEC "Business rules and defaults"), each one set-based SQL over the snapshot.

A customer's status (active, lapsed, lost) and lapse day are computed by `rule_status`, which
flows.scores stores with the scores; `stage_segments`/`apply_segments` (a whole
shop) and `fill_rule_segments` (changed customers) write segment memberships, with a JSON `detail`
where a segment is about a brand, category or product.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .metrics import narrowed, query_params

if TYPE_CHECKING:  # numpy is imported by each function that computes: `segments` reads the stored snapshot
    import numpy as np

BASE_SEGMENTS = ("new", "one_time", "active", "lapsed", "lost", "vip", "vip_at_risk", "replenish_due")

STATUS_CODES = ("active", "lapsed", "lost")  # a status as the number flows.scores computes with


def rule_status(purchase_days, days_since_last, avg_gap_days, params):
    """The rule's status code (STATUS_CODES) and lapse day of each buyer (arrays; `params`:
    rule_params). A repeat buyer has lapsed once past `lapse_factor` times their usual gap and at least
    `lapse_min_days`; a one-time buyer once past the shop's one-time return days; anyone is lost
    past `lost_days`. (In numpy, on the rows flows.scores reads once for the rhythm and the scores.)"""
    import numpy as np
    repeat = purchase_days >= 2
    with np.errstate(invalid="ignore"):  # one-time buyers have no usual gap (NaN): not their rule
        usual = params["factor"] * avg_gap_days
        lapsed = np.where(repeat, (days_since_last > usual) & (days_since_last >= params["min_days"]),
                          days_since_last > params["otr"])
    code = np.where(days_since_last > params["lost"], 2, np.where(lapsed, 1, 0))
    return code, np.where(repeat, np.maximum(usual, params["min_days"]), params["otr"])


SIMPLE_RULES = {
    "new": "purchases > 0 AND days_since_first <= :new_days",
    "one_time": "purchase_days = 1 AND status = 'active'",
    "active": "status = 'active'",
    "lapsed": "status = 'lapsed'",
    "lost": "status = 'lost'",
    "vip": "clv_minor > 0 AND clv_minor >= :vip AND status = 'active'",
    "vip_at_risk": "clv_minor > 0 AND clv_minor >= :vip AND status = 'lapsed'",
}

# The rules over purchased lines (brand_loyal:*, category_lapsed:*, replenish_due) are in
# flows/line_rules.py. They read only committed orders, so a refresh runs them on a second connection
# while it builds the snapshot.


def rule_params(shop, now, settings, rhythm) -> dict:
    """Parameters of the segment rules for one shop at `now`."""
    return {**query_params(shop, now),
            "factor": settings["lapse_factor"], "min_days": settings["lapse_min_days"],
            "lost": settings["lost_days"], "otr": rhythm.one_time_return_days,
            "new_days": settings["new_days"],
            "vip": rhythm.vip_threshold_minor if rhythm.vip_threshold_minor is not None else -1,
            "category_factor": settings["category_lapse_factor"],
            "lead": settings["replenish_lead_days"]}


def fill_rule_segments(db, params, only=""):
    """Replace the shop's segment memberships (`only`: the changed customers', metrics.CHANGED) with
    those of the snapshot rules; the line rules' rows follow with `add_line_segments` (a refresh
    writes these while the line rules still run), the owner's segments after them."""
    db.execute(narrowed("DELETE FROM customer_segments WHERE shop_id = :shop {only}", only), params)
    for name, condition in SIMPLE_RULES.items():
        db.execute(narrowed(f"INSERT INTO customer_segments (customer_id, shop_id, segment)"
                            f" SELECT customer_id, shop_id, '{name}' FROM customer_snapshots"
                            f" WHERE shop_id = :shop AND {condition} {{only}}", only), params)


def stage_segments(db, params):
    """Compute the snapshot rules' memberships of the whole shop into temp.new_segments; the line
    rules' rows follow, and `apply_segments` writes what changed (a refresh stages these while the
    line rules still run)."""
    db.execute("DROP TABLE IF EXISTS temp.new_segments")
    db.execute("CREATE TEMP TABLE new_segments (customer_id INTEGER NOT NULL, segment TEXT NOT NULL, detail TEXT,"
               " PRIMARY KEY (customer_id, segment)) WITHOUT ROWID")
    for name, condition in SIMPLE_RULES.items():
        db.execute(f"INSERT INTO temp.new_segments (customer_id, segment) SELECT customer_id, '{name}'"
                   f" FROM customer_snapshots WHERE shop_id = :shop AND {condition}", params)


def apply_segments(db, params, line_rows):
    """Bring the shop's built-in memberships to the staged ones and the `line_segments` rows, writing
    only the differences: from one day to the next few customers change segments, and rewriting the
    hundreds of thousands of rows of a large shop would cost seconds. The owner's segments are left
    to flows/owner_segments.py; rows of any other segment (one the owner removed) go."""
    try:
        db.conn.executemany("INSERT INTO temp.new_segments (customer_id, segment, detail) VALUES (?, ?, ?)", line_rows)
        # One pass over the table in key order (the order of temp.new_segments) rather than through the
        # shop index, which would look every row up again for its detail: half the time.
        db.execute("""
            DELETE FROM customer_segments WHERE +shop_id = :shop
              AND segment NOT IN (SELECT name FROM owner_segments WHERE shop_id = :shop)
              AND NOT EXISTS (SELECT 1 FROM temp.new_segments n WHERE n.customer_id = customer_segments.customer_id
                              AND n.segment = customer_segments.segment AND n.detail IS customer_segments.detail)""",
                   params)
        db.execute("""
            INSERT INTO customer_segments (customer_id, shop_id, segment, detail)
            SELECT n.customer_id, :shop, n.segment, n.detail FROM temp.new_segments n
            WHERE NOT EXISTS (SELECT 1 FROM customer_segments s
                              WHERE s.customer_id = n.customer_id AND s.segment = n.segment)""", params)
    finally:
        db.execute("DROP TABLE IF EXISTS temp.new_segments")


def add_line_segments(db, params, line_rows):
    """Add the (customer_id, segment, detail) rows of `line_segments` to the shop's memberships."""
    db.conn.executemany("INSERT INTO customer_segments (customer_id, shop_id, segment, detail) VALUES (?, ?, ?, ?)",
                        ((cid, params["shop"], segment, detail) for cid, segment, detail in line_rows))


def line_segments(db, shop, now, settings, cycles=None) -> tuple[list, dict]:
    """The brand, category and replenishment segments, and the replenish cycles (`cycles` when given,
    else learned), computed on a connection that holds `temp.purchase_lines`, for the customers it
    holds; returns (rows, cycles)."""
    from . import line_rules  # numpy: `segments` and `explain` read the stored snapshot without it
    lines = line_rules.read_lines(db)
    if cycles is None:
        cycles = _cycles(db, shop, lines)
    params = {**query_params(shop, now), "category_factor": settings["category_lapse_factor"],
              "lead": settings["replenish_lead_days"]}
    rows = (line_rules.brand_loyal(db, lines, params) + line_rules.category_lapsed(db, lines, params)
            + line_rules.replenish_due(db, lines, params, cycles))
    return rows, cycles


def repurchase_gaps(db, shop, now, product_ids=None) -> dict[int, np.ndarray]:
    """Per product: the gaps in days between a customer's consecutive purchases of it, per unit bought.

    Reads the refresh's temp view `purchase_lines` (see flows.metrics.materialise_purchases), made for
    `shop` and `now`.
    """
    from . import line_rules
    return line_rules.repurchase_gaps(line_rules.read_lines(db), product_ids)


def replenish_cycles(db, shop, now) -> dict[int, float]:
    """Cycle in days of every product the owner marked replenishable: theirs, else the learned median
    (reads `temp.purchase_lines`, made for `shop` and `now`)."""
    from . import line_rules
    return _cycles(db, shop, line_rules.read_lines(db))


def _cycles(db, shop, lines) -> dict[int, float]:
    import numpy as np

    from . import line_rules
    marked = db.execute("SELECT id, replenish_days FROM products WHERE shop_id = ? AND replenishable = 1",
                        [shop["id"]]).fetchall()
    learn = [pid for pid, days in marked if not days]
    gaps = line_rules.repurchase_gaps(lines, learn) if learn else {}
    cycles = {}
    for pid, days in marked:
        if days:
            cycles[pid] = float(days)
        elif pid in gaps and gaps[pid].size:
            cycles[pid] = round(float(np.median(gaps[pid])), 1)
    return cycles


def add_members(db, shop_id, segment, condition, params) -> None:
    """Add to one segment the snapshot's customers matching `condition` (as `replace_members`) among
    those whose memberships an incremental refresh has just removed (flows/refresh.py)."""
    db.execute("INSERT INTO customer_segments (customer_id, shop_id, segment)"
               " SELECT sn.customer_id, sn.shop_id, :member_segment FROM customer_snapshots sn"
               " JOIN customers c ON c.id = sn.customer_id"
               f" WHERE +sn.shop_id = :shop AND sn.customer_id IN (SELECT customer_id FROM temp.refresh_customers)"
               f" AND {condition}", {**params, "member_segment": segment})


def count_members(db, shop_id, segment) -> int:
    """How many customers one segment holds."""
    return db.execute("SELECT COUNT(*) FROM customer_segments WHERE shop_id = ? AND segment = ?",
                      [shop_id, segment]).fetchone()[0]


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

"""Category win-back: a customer who stopped buying one category (segment `category_lapsed:<category>`,
flows/segments.py) while still buying otherwise gets emails about that category, showing its products.

A customer who lapsed overall (status lapsed or lost) is the main win-back's (winback, vip_winback),
never this flow's: it comes after them in PRIORITY and its entry excludes them. Of several lapsed
categories the one most overdue against the customer's own rhythm in it is chosen, and the enrolment
keeps it (`enrolments.segment`), so every email of the enrolment speaks of the same category.
"""
FLOW = "category_winback"
PREFIX = "category_lapsed:"
TEMPLATES = frozenset({"category_winback_1", "category_winback_2"})

# The segment row `s` that enrols: one of the customer's category_lapsed rows (a range over the
# primary key, not LIKE), the most overdue one (days since / usual gap), then by name.
SEGMENT = """s.segment > 'category_lapsed:' AND s.segment < 'category_lapsed;'
  AND s.segment = (SELECT s2.segment FROM customer_segments s2
                   WHERE s2.customer_id = c.id
                     AND s2.segment > 'category_lapsed:' AND s2.segment < 'category_lapsed;'
                   ORDER BY CAST(json_extract(s2.detail, '$.days_since') AS REAL)
                            / MAX(COALESCE(json_extract(s2.detail, '$.usual_gap'), 1), 1) DESC, s2.segment
                   LIMIT 1)"""
REASON = ("s.segment || ': ' || COALESCE(json_extract(s.detail, '$.days_since'), '?')"
          " || ' days since the last order in it (usually every '"
          " || COALESCE(json_extract(s.detail, '$.usual_gap'), '?') || ' days)'")
# Lapsed overall: the main win-back speaks to them instead.
STILL_BUYING = """
  AND sn.status = 'active'"""


def entry_sql(flow_name) -> dict:
    """The keyword arguments of flows.enrolments.enrol for `flow_name` ({} for the other flows)."""
    if flow_name != FLOW:
        return {}
    return {"segment": SEGMENT, "reason": REASON}


def extra_sql(flow_name) -> str:
    """The entry's extra conditions for `flow_name` ("" for the other flows)."""
    return STILL_BUYING if flow_name == FLOW else ""


def category_of(segment) -> str | None:
    """The category of a `category_lapsed:<category>` segment name, else None."""
    if segment and segment.startswith(PREFIX):
        return segment[len(PREFIX):] or None
    return None


def sample_category(db, shop_id, customer_id=None) -> str | None:
    """A category for a preview: the customer's most overdue lapsed category, else the shop's
    best-selling category, else None."""
    if customer_id is not None:
        row = db.execute(
            "SELECT segment FROM customer_segments WHERE customer_id = ?"
            " AND segment > 'category_lapsed:' AND segment < 'category_lapsed;'"
            " ORDER BY CAST(json_extract(detail, '$.days_since') AS REAL)"
            " / MAX(COALESCE(json_extract(detail, '$.usual_gap'), 1), 1) DESC, segment LIMIT 1",
            [customer_id]).fetchone()
        if row:
            return category_of(row[0])
    row = db.execute(
        "SELECT l.category FROM order_lines l JOIN orders o ON o.id = l.order_id"
        " WHERE o.shop_id = ? AND o.status = 'paid' AND o.is_test = 0 AND l.category IS NOT NULL AND l.category <> ''"
        " GROUP BY l.category ORDER BY SUM(l.quantity) DESC, l.category LIMIT 1", [shop_id]).fetchone()
    return row[0] if row else None

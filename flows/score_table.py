"""Every customer's stored scores and offer decision, one row at a time (`winback scores`).

One pass over the stored snapshot (no refit, nothing recomputed but the words of each offer's reason,
which are cached: customers share a handful of distinct reasons per rule and rounded number).
"""
import csv
import json
from functools import lru_cache

from app.money import exponent
from app.settings import get_settings

from .offer_policy import decision

COLUMNS = ("customer", "status", "segments", "p_alive", "p_purchase_30d", "expected_purchases_90d",
           "expected_next_order", "predicted_clv_12m", "worth", "offer")
CSV_COLUMNS = COLUMNS[:-1] + ("offer_kind", "offer_percent", "offer_reason")

ROWS = """
SELECT c.external_id, s.status, s.p_alive, s.p_purchase_30d, s.expected_90d, s.expected_next_order,
       s.predicted_clv_12m_minor, s.worth_minor, s.offer_kind, s.offer_percent, s.offer_rule,
       (SELECT group_concat(segment, char(31)) FROM (SELECT segment FROM customer_segments g
                                                WHERE g.customer_id = s.customer_id ORDER BY segment))
FROM customer_snapshots s JOIN customers c ON c.id = s.customer_id
WHERE s.shop_id = ? ORDER BY c.external_id
"""


def rows(db, shop):
    """Yield one dict per customer with the keys of COLUMNS (money in the shop's currency units)."""
    settings = get_settings(db, shop["id"])
    digits = exponent(shop["currency"])
    scale = 10.0 ** -digits

    def money(minor):
        return None if minor is None else round(minor * scale, digits)

    @lru_cache(maxsize=65536)
    def offer(kind, percent, rule, p30, units):
        return decision({"offer_kind": kind, "offer_percent": percent, "offer_rule": rule, "p_purchase_30d": p30,
                         "worth_minor": None if units is None else units * 10 ** digits}, shop, settings)

    for (ext, status, alive, p30, e90, nxt, clv12, worth, kind, percent, rule, segs) in db.execute(ROWS, [shop["id"]]):
        # The reason shows the chance in whole percents and the worth in whole units: cache on those.
        made = offer(kind, percent, rule, None if p30 is None or rule != "likely_buyer" else round(100 * p30) / 100,
                     None if worth is None or rule == "likely_buyer" else round(worth * scale))
        yield {"customer": ext, "status": status, "segments": segs.split("\x1f") if segs else [], "p_alive": alive,
               "p_purchase_30d": p30, "expected_purchases_90d": e90, "expected_next_order": nxt,
               "predicted_clv_12m": money(clv12), "worth": money(worth), "offer": made}


def write(out, table, fmt):
    """Stream `table` (rows from `rows`) to the text stream `out` as one JSON list or as CSV (the offer
    flattened into offer_kind, offer_percent, offer_reason; segments joined by ";")."""
    if fmt == "json":
        out.write("[")
        for i, row in enumerate(table):
            out.write(("," if i else "") + "\n" + json.dumps(row, ensure_ascii=False))
        out.write("\n]\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in table:
        offer = row["offer"]
        writer.writerow([row["customer"], row["status"], ";".join(row["segments"]), *(
            row[k] for k in COLUMNS[3:-1]), offer["kind"], offer["percent"], offer["reason"]])

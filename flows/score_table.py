"""Every customer's stored scores and offer decision, one row at a time (`winback scores`).

One pass over the stored snapshot (no refit, nothing recomputed but the words of each offer's reason,
which are cached: customers share a handful of distinct reasons per rule and rounded number).
"""
import csv
from functools import lru_cache

import orjson

from app.money import exponent
from app.settings import get_settings

from .offer_policy import decision

COLUMNS = ("customer", "status", "segments", "p_alive", "p_purchase_30d", "expected_purchases_90d",
           "expected_next_order", "predicted_clv_12m", "worth", "offer")
CSV_COLUMNS = COLUMNS[:-1] + ("offer_kind", "offer_percent", "offer_reason")

# Money in the shop's currency units (:unit = 10 ** its exponent; a division by a power of ten gives the
# shortest decimal), and the cache keys of the offer's words: the worth in whole units, the chance of a
# likely buyer in whole percents (what the words show).
ROWS = """
SELECT c.external_id, s.status, s.p_alive, s.p_purchase_30d, s.expected_90d, s.expected_next_order,
       s.predicted_clv_12m_minor / :unit, s.worth_minor / :unit, s.offer_kind, s.offer_percent, s.offer_rule,
       CAST(round(s.worth_minor / :unit) AS INTEGER),
       CASE WHEN s.offer_rule = 'likely_buyer' THEN CAST(round(100 * s.p_purchase_30d) AS INTEGER) END,
       (SELECT group_concat(segment, char(31)) FROM (SELECT segment FROM customer_segments g
                                                WHERE g.customer_id = s.customer_id ORDER BY segment))
FROM customer_snapshots s JOIN customers c ON c.id = s.customer_id
WHERE s.shop_id = :shop ORDER BY c.external_id
"""


def rows(db, shop):
    """Yield one dict per customer with the keys of COLUMNS (money in the shop's currency units)."""
    settings = get_settings(db, shop["id"])
    digits = exponent(shop["currency"])

    @lru_cache(maxsize=65536)
    def offer(kind, percent, rule, chance, units):
        return decision({"offer_kind": kind, "offer_percent": percent, "offer_rule": rule,
                         "p_purchase_30d": None if chance is None else chance / 100,
                         "worth_minor": None if units is None else units * 10 ** digits}, shop, settings)

    for (ext, status, alive, p30, e90, nxt, clv12, worth, kind, percent, rule, units, chance,
         segs) in db.execute(ROWS, {"shop": shop["id"], "unit": float(10 ** digits)}):
        yield {"customer": ext, "status": status, "segments": segs.split("\x1f") if segs else [], "p_alive": alive,
               "p_purchase_30d": p30, "expected_purchases_90d": e90, "expected_next_order": nxt,
               "predicted_clv_12m": clv12, "worth": worth,
               "offer": offer(kind, percent, rule, chance, None if rule == "likely_buyer" else units)}


def write(out, table, fmt):
    """Stream `table` (rows from `rows`) to the text stream `out` as one JSON list or as CSV (the offer
    flattened into offer_kind, offer_percent, offer_reason; segments joined by ";")."""
    if fmt == "json":
        out.write("[")
        for i, row in enumerate(table):
            out.write(("," if i else "") + "\n" + orjson.dumps(row).decode())
        out.write("\n]\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows((r["customer"], r["status"], ";".join(r["segments"]), r["p_alive"], r["p_purchase_30d"],
                      r["expected_purchases_90d"], r["expected_next_order"], r["predicted_clv_12m"], r["worth"],
                      r["offer"]["kind"], r["offer"]["percent"], r["offer"]["reason"]) for r in table)

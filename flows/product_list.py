"""The products page's list: every product of the shop, searchable, a page at a time, with the cycle
learned from the shop's history (the median gap between a customer's repurchases of it, per unit)
and the cycle the reorder reminder uses for the marked ones (the stored snapshot's, flows.refresh).
"""
import json
import threading

import numpy as np

from app.timeutil import from_db

from .metrics import drop_purchases, materialise_purchases
from .segments import repurchase_gaps

MIN_GAPS, MAX_SPREAD = 20, 0.5  # a suggestion: at least this many repurchases on a steady cycle
# (database file, shop id) -> (the snapshot's computed_at, its learned cycles). Learning reads every
# purchase of the shop (seconds at 200,000 customers), so a page computes it once per refresh, as of
# the snapshot's time, and keeps it in the process until the next refresh.
_LEARNED: dict = {}
_LOCK = threading.Lock()

_SEARCH = ("(p.title LIKE :q ESCAPE '\\' OR p.sku LIKE :q ESCAPE '\\' OR p.external_id LIKE :q ESCAPE '\\'"
           " OR p.brand LIKE :q ESCAPE '\\' OR p.category LIKE :q ESCAPE '\\')")


def _where(shop_id, q):
    sql, params = "p.shop_id = :shop", {"shop": shop_id}
    if q:
        sql += " AND " + _SEARCH
        params["q"] = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return sql, params


def count(db, shop_id, q="") -> int:
    """How many products match `q` (title, SKU, id, brand or category; case-insensitive)."""
    sql, params = _where(shop_id, q)
    return db.execute(f"SELECT COUNT(*) FROM products p WHERE {sql}", params).fetchone()[0]


def page(db, shop_id, q="", limit=50, offset=0) -> list[dict]:
    """One page of matching products: the marked ones first, then by title."""
    sql, params = _where(shop_id, q)
    return list(db.query(f"""
        SELECT p.id, p.external_id, p.title, p.sku, p.brand, p.category, p.replenishable, p.replenish_days
        FROM products p WHERE {sql}
        ORDER BY p.replenishable DESC, p.title COLLATE NOCASE, p.id LIMIT :limit OFFSET :offset""",
                         {**params, "limit": limit, "offset": offset}))


def learned_cycles(db, shop, now) -> dict[int, dict]:
    """{product id: {"gaps", "median_days", "suggested"}} for every product bought again at least
    once before `now`; `suggested`: ≥ MIN_GAPS repurchases on a steady cycle (interquartile range at
    most MAX_SPREAD × the median)."""
    materialise_purchases(db, shop, now)
    try:
        gaps = repurchase_gaps(db, shop, now)
    finally:
        drop_purchases(db)
    out = {}
    for pid, values in gaps.items():
        median = float(np.median(values))
        q1, q3 = np.percentile(values, [25, 75])
        out[pid] = {"gaps": int(values.size), "median_days": round(median, 1),
                    "suggested": bool(values.size >= MIN_GAPS and median > 0 and (q3 - q1) <= MAX_SPREAD * median)}
    return out


def learned_for_snapshot(db, shop, snapshot, now) -> dict[int, dict]:
    """learned_cycles as of the stored snapshot's time, computed once per refresh (`now` before the
    first refresh)."""
    if snapshot is None:
        return learned_cycles(db, shop, now)
    key = (db.execute("PRAGMA database_list").fetchone()[2], shop["id"])
    with _LOCK:
        kept = _LEARNED.get(key)
    if kept and kept[0] == snapshot["computed_at"]:
        return kept[1]
    learned = learned_cycles(db, shop, from_db(snapshot["computed_for"]))
    with _LOCK:
        _LEARNED[key] = (snapshot["computed_at"], learned)
    return learned


def suggestions(db, shop_id, learned) -> list[dict]:
    """The suggested products not marked yet, most repurchased first: [{"product_id", "title", "gaps",
    "median_days"}]."""
    ids = [pid for pid, c in learned.items() if c["suggested"]]
    if not ids:
        return []
    rows = db.execute("SELECT id, title FROM products WHERE shop_id = ? AND replenishable = 0"
                      " AND id IN (SELECT value FROM json_each(?))", [shop_id, json.dumps(ids)]).fetchall()
    return sorted(({"product_id": pid, "title": title, "gaps": learned[pid]["gaps"],
                    "median_days": learned[pid]["median_days"]} for pid, title in rows), key=lambda c: -c["gaps"])


def cycles_in_use(snapshot) -> dict[int, float]:
    """The cycle of each marked product as the last refresh computed it for the reorder reminder."""
    model = (snapshot or {}).get("model") or {}
    return {int(k): v for k, v in (model.get("replenish_cycles") or {}).items()}

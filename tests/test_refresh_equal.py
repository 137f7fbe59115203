"""A refresh gives exactly the results it gave before it was made faster.

The golden file tests/fixtures/refresh_golden.json holds every column of customer_snapshots,
customer_segments and shop_snapshots (but the timing fields) that the refresh of main computed,
before the speed work of issue 18, for varied shops: brands, categories, replenishable products
(owner's cycle and learned cycle), refunds, cancelled and test orders, guests, mixed currencies,
several time zones, an owner's segment, and several `now`s. Regenerate it only for an intended
change of results: WRITE_REFRESH_GOLDEN=1 pytest tests/test_refresh_equal.py.
"""
import json
import math
import os
import random
from datetime import time
from pathlib import Path

from app.settings import save_setting
from flows import owner_segments
from flows.refresh import refresh
from tests.builders import History, at

GOLDEN = Path(__file__).parent / "fixtures" / "refresh_golden.json"
SKIP = {"computed_at", "seconds", "learned"}  # when it ran, how long it took, its working state: not a result
BRANDS = ["Acme", "Bolt", "Crest", None]
CATEGORIES = ["Coffee", "Tea", "Pet", "Skin", None]
PRODUCTS = [  # (external id, brand, category)
    *[(f"P{i}", BRANDS[i % 4], CATEGORIES[i % 5]) for i in range(12)],
    ("BEANS", "Acme", "Coffee"), ("FOOD", "Bolt", "Pet"), ("CREAM", "Crest", "Skin")]


def _shop(db, handle, tz, customers, seed, currency_mix=False):
    rng = random.Random(seed)
    h = History(db, handle, tz=tz)
    for c in range(customers):
        guest = c % 17 == 0
        cid = None if guest else f"C{c}"
        email = f"guest{c}@example.com" if guest else None
        start = rng.randint(0, 500)
        gap = rng.choice([7, 14, 30, 45, 60, 90, 120])
        n = 1 + int(rng.expovariate(0.5))
        for k in range(n):
            d = start + int(k * gap * rng.uniform(0.6, 1.4))
            if d > 620:
                break
            picks = rng.sample(PRODUCTS, rng.randint(1, 3))
            lines = [{"product": p, "title": f"Product {p}", "brand": b, "category": cat, "qty": rng.randint(1, 3),
                      "price": "10"} for p, b, cat in picks]
            status = rng.choices(["paid", "cancelled", "refunded", "pending"], [20, 1, 1, 1])[0]
            total = f"{rng.randint(5, 300)}.{rng.randint(0, 99):02d}"
            refunded = f"{rng.randint(1, 5)}" if rng.random() < 0.1 else "0"
            h.order(cid, d, total=total, lines=lines, status=status, refunded=refunded,
                    test=rng.random() < 0.02, at=time(rng.randint(0, 23), rng.randint(0, 59)),
                    email=email, consent=rng.random() < 0.7)
            if rng.random() < 0.1:  # two orders on one day: one purchase day
                h.order(cid, d, total="12", lines=lines[:1], at=time(23, 59), email=email)
    shop = h.write()
    if currency_mix:
        db.execute("UPDATE orders SET currency = 'USD' WHERE shop_id = ? AND id % 13 = 0", [shop["id"]])
    db.execute("UPDATE products SET replenishable = 1, replenish_days = 30 WHERE external_id = 'BEANS'"
               " AND shop_id = ?", [shop["id"]])
    db.execute("UPDATE products SET replenishable = 1 WHERE external_id IN ('FOOD', 'CREAM') AND shop_id = ?",
               [shop["id"]])
    return shop


def _rows(db, sql, params, key):
    cur = db.execute(sql, params)
    names = [d[0] for d in cur.description]
    out = [dict(zip(names, row)) for row in cur.fetchall()]
    for row in out:
        for name in SKIP | {"customer_id", "shop_id"}:
            row.pop(name, None)
    return sorted(out, key=lambda r: tuple(str(r[k]) for k in key))


def _results(db, shop):
    who = "COALESCE(c.external_id, c.email) AS who"
    return {
        "customer_snapshots": _rows(db, f"SELECT {who}, s.* FROM customer_snapshots s"
                                        " JOIN customers c ON c.id = s.customer_id WHERE s.shop_id = ?",
                                    [shop["id"]], ["who"]),
        "customer_segments": _rows(db, f"SELECT {who}, s.* FROM customer_segments s"
                                       " JOIN customers c ON c.id = s.customer_id WHERE s.shop_id = ?",
                                   [shop["id"]], ["who", "segment"]),
        "shop_snapshots": [{k: (json.loads(v) if k == "model" else v) for k, v in row.items()}
                           for row in _rows(db, "SELECT * FROM shop_snapshots WHERE shop_id = ?", [shop["id"]], [])],
    }


def _compute(db):
    out = {}
    big = _shop(db, "big", "America/New_York", 700, seed=1, currency_mix=True)
    owner_segments.save_segment(db, big, "Big spenders", {"all": [{"field": "clv", "op": ">=", "value": 200}]})
    small = _shop(db, "small", "Asia/Tokyo", 60, seed=2)
    warsaw = _shop(db, "warsaw", "Europe/Warsaw", 250, seed=3)
    save_setting(db, warsaw["id"], "one_time_return_days", 75)
    save_setting(db, warsaw["id"], "vip_min_amount", 300)
    tiny = _shop(db, "tiny", "UTC", 4, seed=4)  # too few buyers for any model: the rule-based next order
    for shop in (big, small, warsaw, tiny):
        for d in (200, 400, 640):
            refresh(db, shop, at(d, 3, 30))
            out[f"{shop['handle']}@{d}"] = _results(db, shop)
    return out


def _same(a, b, where):
    if isinstance(a, float) or isinstance(b, float):
        # Floats to the last digits: a sum in another order may differ in its final bit, no more.
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), where
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: {len(a)} rows != {len(b) if b else b}"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_refresh_gives_the_golden_results(app, db):
    got = json.loads(json.dumps(_compute(db)))
    if os.environ.get("WRITE_REFRESH_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, sort_keys=True, separators=(",", ":")) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert sorted(got) == sorted(want)
    for key in want:
        _same(got[key], want[key], key)
    # The shops are varied enough to exercise every rule.
    segs = {row["segment"].split(":")[0] for doc in want.values() for row in doc["customer_segments"]}
    assert {"brand_loyal", "category_lapsed", "replenish_due", "lapsed", "lost", "vip", "new",
            "Big spenders"} <= segs

"""Benchmark: the category win-back's entry over 200,000 customers with 2 lapsed categories each.

    .venv/bin/python benchmarks/bench_category_enrol.py [--customers 200000]

Fills the stored snapshot directly (every customer active overall, two `category_lapsed:<category>`
rows with their detail, as flows/segments.py writes them) and times the one enrolment statement of
`category_winback` (flows/category_winback.py's segment choice, through flows/enrolments.py), which
picks each customer's most overdue category. Prints one JSON line: customers, enrolled, seconds.
Target: under 10 seconds (a tick runs every 15 minutes; set-based, one statement).
"""
import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_SECONDS = 10


def build(db, customers):
    """A shop of `customers` consenting customers, each active overall with Tea and Mugs lapsed."""
    from app.db import write_transaction
    from app.shops import create_shop
    shop = create_shop(db, "bench", "import", timezone="UTC")
    sid = shop["id"]
    with write_transaction(db):
        db.conn.executemany(
            "INSERT INTO customers (id, shop_id, external_id, email, accepts_marketing) VALUES (?, ?, ?, ?, 1)",
            ((i + 1, sid, f"C{i}", f"c{i}@example.com") for i in range(customers)))
        db.conn.executemany(
            "INSERT INTO customer_snapshots (customer_id, shop_id, purchases, purchase_days, last_order_at,"
            " days_since_last, days_since_first, status) VALUES (?, ?, 4, 4, '2026-03-20T12:00:00Z', 13, 90, 'active')",
            ((i + 1, sid) for i in range(customers)))
        db.conn.executemany(
            "INSERT INTO customer_segments (customer_id, shop_id, segment, detail) VALUES (?, ?, ?, ?)",
            ((i + 1, sid, f"category_lapsed:{cat}",
              json.dumps({"category": cat, "days_since": 40 + (i + k) % 30, "usual_gap": 20 + k * 5, "purchase_days": 2}))
             for i in range(customers) for k, cat in enumerate(("Tea", "Mugs"))))
        db.conn.executemany("INSERT INTO customer_segments (customer_id, shop_id, segment) VALUES (?, ?, 'active')",
                            ((i + 1, sid) for i in range(customers)))
    return shop


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    args = parser.parse_args()
    from app.db import connect, write_transaction
    from app.migrations import init_db
    from app.timeutil import to_db
    from flows import category_winback, enrolments
    from flows.engine import _register_functions
    with tempfile.TemporaryDirectory() as tmp:
        db = connect(f"{tmp}/bench.db")
        init_db(db)
        shop = build(db, args.customers)
        _register_functions(db)
        now = datetime(2026, 4, 2, 10, tzinfo=timezone.utc)
        params = {"shop": shop["id"], "now_db": to_db(now), "flow": category_winback.FLOW,
                  "entry": "category_lapsed", "holdout": 0.1, "discounted": 1, "service": 0}
        started = time.perf_counter()
        with write_transaction(db):
            enrolled = enrolments.enrol(db, category_winback.extra_sql(category_winback.FLOW), params,
                                        **category_winback.entry_sql(category_winback.FLOW))
        seconds = time.perf_counter() - started
        tea = db.execute("SELECT COUNT(*) FROM enrolments WHERE segment = 'category_lapsed:Tea'").fetchone()[0]
        print(json.dumps({"benchmark": "category win-back entry", "customers": args.customers, "enrolled": enrolled,
                          "chose_tea": tea, "seconds": round(seconds, 2), "target_seconds": TARGET_SECONDS}))


if __name__ == "__main__":
    main()

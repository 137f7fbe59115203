"""Benchmark: the line rules of a refresh (brand loyal, category lapsed, replenish due, the learned
replenish cycles) on a large shop, and that they give the rows the SQL they replaced gave.

    .venv/bin/python benchmarks/bench_line_rules.py [--customers 200000] [--orders 1000000] [--now 2026-06-01]
                                                    [--repeat 3] [--no-reference]

Uses (or builds) the refresh benchmark's database (benchmarks/bench_refresh.py; 1.45M order lines at the
default size). Times what a refresh's second connection does (`materialise_purchases(...)`
then `segments.line_segments`) `--repeat` times and keeps the least CPU time (the machine is shared);
then runs the SQL rules of before (REFERENCE below, on a temp table of the lines) once, for their time
and to compare every (customer, segment, detail) row and the cycles. Prints one JSON line.
Target: ≤ 2 s of CPU at 200,000 customers / 1,000,000 orders, with the same rows.
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_CPU = 2.0

# The line rules as they were (flows/segments.py and flows/metrics.py before issue 18): three GROUP BYs
# with COUNT(DISTINCT) over a temp table of the lines.
REFERENCE_LINES = """
CREATE TEMP TABLE reference_lines AS
SELECT o.customer_id, o.order_date, l.order_id, l.product_id, l.quantity,
       COALESCE(l.brand, pr.brand) AS brand, COALESCE(l.category, pr.category) AS category
FROM orders o
JOIN order_lines l ON l.order_id = o.id
LEFT JOIN products pr ON pr.id = l.product_id
WHERE o.shop_id = :shop AND o.status = 'paid' AND o.is_test = 0 AND o.customer_id IS NOT NULL
  AND +o.created_at < :now
ORDER BY o.customer_id
"""
REFERENCE_BRAND_LOYAL = """
SELECT b.customer_id, 'brand_loyal:' || b.brand, NULL
FROM (SELECT customer_id, brand, COUNT(DISTINCT order_id) AS n
      FROM temp.reference_lines WHERE brand IS NOT NULL AND brand <> ''
      GROUP BY customer_id, brand HAVING COUNT(DISTINCT order_id) >= 2) b
WHERE b.n = (SELECT COUNT(*) FROM orders o
             WHERE o.shop_id = :shop AND o.customer_id = b.customer_id AND o.status = 'paid' AND o.is_test = 0
               AND +o.created_at < :now)
"""
REFERENCE_CATEGORY_LAPSED = """
SELECT customer_id, 'category_lapsed:' || category,
       json_object('category', category, 'days_since', days_since, 'usual_gap', round(gap, 1),
                   'purchase_days', days)
FROM (
    SELECT customer_id, category, COUNT(DISTINCT order_date) AS days,
           (julianday(MAX(order_date)) - julianday(MIN(order_date))) / (COUNT(DISTINCT order_date) - 1) AS gap,
           CAST(julianday(:now_date) - julianday(MAX(order_date)) AS INTEGER) AS days_since
    FROM temp.reference_lines
    WHERE category IS NOT NULL AND category <> ''
    GROUP BY customer_id, category
    HAVING COUNT(DISTINCT order_date) >= 2)
WHERE days_since > :category_factor * gap
"""
REFERENCE_REPLENISH_DUE = """
SELECT customer_id, 'replenish_due',
       json_group_array(json_object('product_id', product_id, 'title', title, 'last_date', last_date,
                                    'quantity', qty, 'cycle_days', cycle, 'due_date', due_date))
FROM (
    SELECT r.customer_id, r.product_id, pr.title, r.last_date, r.qty, r.cycle,
           date(r.last_date, '+' || CAST(round(r.cycle * r.qty) AS INTEGER) || ' days') AS due_date
    FROM (
        WITH pl AS (
            SELECT customer_id, product_id, order_date, SUM(quantity) AS qty
            FROM temp.reference_lines
            WHERE product_id IN (SELECT CAST(key AS INTEGER) FROM json_each(:cycles))
            GROUP BY customer_id, product_id, order_date
        )
        SELECT customer_id, product_id, order_date AS last_date, MAX(qty, 1) AS qty,
               json_extract(:cycles, '$."' || product_id || '"') AS cycle
        FROM (SELECT pl.*, ROW_NUMBER() OVER (PARTITION BY customer_id, product_id
                                              ORDER BY order_date DESC) AS latest
              FROM pl)
        WHERE latest = 1
    ) r JOIN products pr ON pr.id = r.product_id
)
WHERE julianday(:now_date) BETWEEN julianday(due_date) - :lead AND julianday(due_date) + cycle
GROUP BY customer_id
"""
REFERENCE_GAPS = """
WITH pl AS (
    SELECT customer_id, product_id, order_date, SUM(quantity) AS qty
    FROM temp.reference_lines WHERE product_id IN (SELECT value FROM json_each(:ids))
    GROUP BY customer_id, product_id, order_date
)
SELECT product_id, gap FROM (
    SELECT product_id,
           (julianday(order_date) - julianday(LAG(order_date) OVER w)) / MAX(LAG(qty) OVER w, 1) AS gap
    FROM pl WINDOW w AS (PARTITION BY customer_id, product_id ORDER BY order_date)
) WHERE gap IS NOT NULL
"""


def reference(db, shop, now, settings):
    """The rows and cycles of the SQL rules of before."""
    import numpy as np

    from flows.metrics import query_params

    params = query_params(shop, now)
    db.execute("DROP TABLE IF EXISTS temp.reference_lines")
    db.execute(REFERENCE_LINES, params)
    marked = db.execute("SELECT id, replenish_days FROM products WHERE shop_id = ? AND replenishable = 1",
                        [shop["id"]]).fetchall()
    gaps = {}
    for pid, gap in db.execute(REFERENCE_GAPS, {"ids": json.dumps([p for p, days in marked if not days])}):
        gaps.setdefault(pid, []).append(gap)
    cycles = {pid: float(days) if days else round(float(np.median(gaps[pid])), 1)
              for pid, days in marked if days or pid in gaps}
    params.update(category_factor=settings["category_lapse_factor"], lead=settings["replenish_lead_days"],
                  cycles=json.dumps({str(k): v for k, v in cycles.items()}))
    rows = (db.execute(REFERENCE_BRAND_LOYAL, params).fetchall()
            + db.execute(REFERENCE_CATEGORY_LAPSED, params).fetchall())
    if cycles:
        rows += db.execute(REFERENCE_REPLENISH_DUE, params).fetchall()
    db.execute("DROP TABLE temp.reference_lines")
    return rows, cycles


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--now", default="2026-06-01")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true", help="skip the SQL rules of before")
    args = parser.parse_args()
    from bench_refresh import shop_database

    from app.db import connect
    from app.settings import get_settings
    from app.shops import get_shop
    from app.timeutil import parse_now
    from flows import metrics, segments

    path = shop_database(args.customers, args.orders)
    db = connect(path)
    shop = get_shop(db, "bench")
    now = parse_now(args.now, "UTC")
    settings = get_settings(db, shop["id"])
    runs = []
    for _ in range(args.repeat):
        started, cpu = time.perf_counter(), time.process_time()
        metrics.materialise_purchases(db, shop, now)
        rows, cycles = segments.line_segments(db, shop, now, settings)
        runs.append((time.process_time() - cpu, time.perf_counter() - started))
        metrics.drop_purchases(db)
    cpu, seconds = min(runs)
    lines = db.execute("SELECT COUNT(*) FROM order_lines WHERE shop_id = ?", [shop["id"]]).fetchone()[0]
    doc = {"benchmark": "line_rules", "customers": args.customers, "order_lines": lines, "now": args.now,
           "rows": len(rows), "cpu_seconds": round(cpu, 2), "seconds": round(seconds, 2),
           "target_cpu_seconds": TARGET_CPU,
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    same = True
    if not args.no_reference:
        started, ref_cpu = time.perf_counter(), time.process_time()
        want_rows, want_cycles = reference(db, shop, now, settings)
        doc.update(reference_cpu_seconds=round(time.process_time() - ref_cpu, 2),
                   reference_seconds=round(time.perf_counter() - started, 2))
        same = sorted(rows, key=repr) == sorted(want_rows, key=repr) and cycles == want_cycles
        doc["same_rows_as_reference"] = same
    doc["met"] = cpu <= TARGET_CPU and same
    print(json.dumps(doc))


if __name__ == "__main__":
    main()

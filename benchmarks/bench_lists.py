"""Benchmark: the customer list of a large shop (sort, search, total) and its CSV download.

    .venv/bin/python benchmarks/bench_lists.py [--customers 200000] [--orders 1000000]

Uses bench_refresh's shop (benchmarks/out/refresh_<customers>_<orders>.db, built when missing) in a
copy, refreshed once. Times one page of 50 for every sort in both directions (first page and page
1000), the total, an ASCII and a non-ASCII search, and the whole CSV of every customer written through
the download's writer. Prints one JSON line; targets: a first page ≤ 0.5 s, page 1000 ≤ 1 s, the
CSV ≤ 15 s (on a shared two-core machine).
"""
import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_refresh  # noqa: E402

PAGE_TARGET, DEEP_PAGE_TARGET, CSV_TARGET = 0.5, 1.0, 15.0


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--pages-only", action="store_true", help="skip the CSV")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    source = bench_refresh.shop_database(args.customers, args.orders)
    path = out / f"lists_{args.customers}_{args.orders}.db"
    from defusedcsv import csv

    from app.db import connect
    from app.shops import get_shop
    from app.timeutil import parse_now
    from flows import customer_list
    from flows.refresh import refresh, stored_snapshot
    if not path.exists():
        shutil.copyfile(source, path)
    db = connect(path)
    shop = get_shop(db, "bench")
    if stored_snapshot(db, shop) is None:
        refresh(db, shop, parse_now(bench_refresh.NOW, "UTC"))
    pages = {}
    for sort in customer_list.SORTS:
        for direction in ("asc", "desc"):
            for offset in (0, 50_000):
                seconds, rows = timed(lambda: customer_list.page(db, shop["id"], sort=sort, direction=direction,
                                                                 limit=50, offset=offset))
                assert len(rows) == 50
                pages[f"{sort}-{direction}-{offset}"] = round(seconds, 3)
    total_s, total = timed(lambda: customer_list.count(db, shop["id"]))
    ascii_s, _rows = timed(lambda: customer_list.page(db, shop["id"], q="C1999", sort="clv", direction="desc"))
    other_s, _rows = timed(lambda: customer_list.page(db, shop["id"], q="zoë", sort="clv", direction="desc"))

    def export():
        sink, n = io.StringIO(), 0
        writer = csv.writer(sink)
        for row in customer_list.export_rows(db, shop, sort="clv", direction="desc"):
            writer.writerow(row)
            n += 1
            if n % 5000 == 0:
                sink.seek(0)
                sink.truncate()
        return n

    csv_s, exported = timed(export) if not args.pages_only else (0, 0)
    first = max(v for k, v in pages.items() if k.endswith("-0"))
    deep = max(v for k, v in pages.items() if not k.endswith("-0"))
    print(json.dumps(pages), file=sys.stderr)
    print(json.dumps({"benchmark": "customer_list", "customers": total, "slowest_first_page_seconds": first,
                      "slowest_page_1000_seconds": deep, "count_seconds": round(total_s, 3),
                      "search_ascii_seconds": round(ascii_s, 3), "search_unicode_seconds": round(other_s, 3),
                      "csv_rows": exported, "csv_seconds": round(csv_s, 2), "first_page_target_seconds": PAGE_TARGET,
                      "page_1000_target_seconds": DEEP_PAGE_TARGET, "csv_target_seconds": CSV_TARGET,
                      "ok": first <= PAGE_TARGET and deep <= DEEP_PAGE_TARGET and csv_s <= CSV_TARGET}))

if __name__ == "__main__":
    main()

"""Benchmark: the owner's segments on a large shop: the editor's live count of a rule, and writing the
members of every segment at a refresh.

    .venv/bin/python benchmarks/bench_segments.py [--customers 200000] [--orders 1000000]

Uses (or builds) the refresh benchmark's database (benchmarks/bench_refresh.py), refreshes it once,
then times each rule's count and sample (`owner_segments.preview`, what the editor asks while the
owner types) and `refresh_members` for all of them alone, and the next day's refresh with them against
the same refresh of a copy without them. Prints one JSON line: the slowest count, the members pass
and the two refreshes, in seconds. Target: a count ≤ 1 s at 200,000 customers.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NOW = "2026-06-01"
NEXT_DAY = "2026-06-02"

RULES = {
    "vips": {"all": [{"field": "clv", "op": ">=", "value": 300}, {"field": "days_since_last", "op": "<=", "value": 60}]},
    "brand_fans": {"all": [{"field": "brand_every_order", "op": "=", "value": "Acme"}]},
    "tea_not_coffee": {"all": [{"field": "category", "op": "=", "value": "Tea"},
                               {"field": "category", "op": "!=", "value": "Coffee"}]},
    "mixed": {"any": [{"field": "segment", "op": "in", "value": ["vip", "vip_at_risk"]},
                      {"all": [{"field": "product", "op": "in", "value": ["P1", "P2"]},
                               {"field": "accepts_marketing", "op": "=", "value": True},
                               {"field": "rfm_stage", "op": "in", "value": ["champions", "loyal"]}]}]},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    args = parser.parse_args()
    from bench_refresh import shop_database

    from app.db import connect, write_transaction
    from app.migrations import init_db
    from app.shops import get_shop
    from app.timeutil import parse_now, to_db
    from flows import owner_segments
    from flows.refresh import refresh

    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    source = shop_database(args.customers, args.orders)
    path = out / f"segments_{args.customers}_{args.orders}.db"
    shutil.copyfile(source, path)  # the refresh benchmark's file stays as it was
    db = connect(path)
    init_db(db)
    shop = get_shop(db, "bench")
    now = parse_now(NOW, "UTC")
    refresh(db, shop, now)
    counts, slowest = {}, 0.0
    for name, rule in RULES.items():
        started = time.perf_counter()
        doc = owner_segments.preview(db, shop, rule)
        slowest = max(slowest, time.perf_counter() - started)
        counts[name] = doc["count"]
        owner_segments.save_segment(db, shop, name, rule)
    started = time.perf_counter()
    with write_transaction(db):
        owner_segments.refresh_members(db, shop, to_db(now))
    members = time.perf_counter() - started
    customers = db.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
    # The next day's refresh with the segments, against the same refresh of a copy without them: a
    # refresh reads what they ask was bought on its second connection while it computes the snapshot.
    bare = out / f"segments_bare_{args.customers}_{args.orders}.db"
    shutil.copyfile(source, bare)
    timed = {}
    for label, file in (("without", bare), ("with", path)):
        other = connect(file) if file == bare else db
        init_db(other)
        started = time.perf_counter()
        refresh(other, get_shop(other, "bench"), parse_now(NEXT_DAY, "UTC"))
        timed[label] = round(time.perf_counter() - started, 2)
        if other is not db:
            other.close()
    db.close()
    for file in (path, bare):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{file}{suffix}").unlink(missing_ok=True)
    print(json.dumps({"benchmark": "segments", "customers": customers, "rules": len(RULES), "counts": counts,
                      "slowest_count_seconds": round(slowest, 3), "members_seconds": round(members, 3),
                      "next_day_refresh_seconds": timed["with"], "next_day_refresh_without_seconds": timed["without"],
                      "target_count_seconds": 1.0, "met": slowest <= 1.0}))


if __name__ == "__main__":
    main()

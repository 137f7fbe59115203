"""Benchmark: one flow tick that enrols ~22,000 lapsed customers and delivers ~20,000 win-back emails.

    .venv/bin/python benchmarks/bench_flows.py [--customers 22300]

Builds a shop whose customers all lapsed (orders 40 days apart, the last 61 days ago), all with
consent, so that after the 10 % holdout about 20,000 receive the first win-back email with a
personal code, each checked, rendered and handed to a local SMTP server at the moment it leaves.
Prints one JSON line: enrolled, messages, seconds (the whole tick: refresh, enrolment, delivery),
messages_per_second. Target: ≥ 200 messages per second (one SMTP connection sets the pace).
"""
import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def build(db, customers, holdout=None):
    """A shop of `customers` lapsed, consenting customers (and the postal address marketing mail needs)."""
    from app.db import write_transaction
    from app.settings import save_setting
    from app.shops import create_shop
    shop = create_shop(db, "bench", "import", timezone="UTC")
    sid = shop["id"]
    with write_transaction(db):
        db.conn.executemany(
            "INSERT INTO customers (id, shop_id, external_id, email, first_name, accepts_marketing) VALUES (?, ?, ?, ?, ?, 1)",
            ((i + 1, sid, f"C{i}", f"c{i}@example.com", f"Name{i}") for i in range(customers)))
        db.conn.executemany(
            "INSERT INTO orders (shop_id, external_id, customer_id, created_at, order_date, currency, total_minor, status)"
            " VALUES (?, ?, ?, ?, ?, 'EUR', 2500, 'paid')",
            ((sid, f"O{i}-{k}", i + 1, f"2026-0{k + 1}-01T12:00:00Z", f"2026-0{k + 1}-01") for i in range(customers)
             for k in (0, 1)))
    save_setting(db, sid, "vip_min_amount", "1000000")
    save_setting(db, sid, "postal_address", "Bench Shop, 1 Loop Street, Localhost")
    if holdout is not None:
        import copy

        from flows.definitions import DEFAULT_FLOWS, save_flow
        flow = copy.deepcopy(DEFAULT_FLOWS["winback"])
        flow["holdout"] = holdout
        save_flow(db, sid, "winback", flow)
    return shop


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=22_300)
    args = parser.parse_args()
    from smtp_sink import SmtpSink

    from app import create_app
    from app.db import connect
    from app.migrations import init_db
    from flows.engine import tick
    with tempfile.TemporaryDirectory() as tmp, SmtpSink() as sink:
        app = create_app({"INSTANCE_PATH": tmp, "DATABASE": f"{tmp}/bench.db", "SMTP_URL": sink.url})
        db = connect(app.config["DATABASE"])
        init_db(db)
        shop = build(db, args.customers)
        now = datetime(2026, 4, 2, 10, tzinfo=timezone.utc)  # 62 days after the last order
        started = time.perf_counter()
        result = tick(app, db, shop, now)
        seconds = time.perf_counter() - started
        print(json.dumps({"benchmark": "flow tick", "customers": args.customers, "enrolled": result["enrolled"],
                          "held_out": result["held_out"], "messages": result["sent"], "seconds": round(seconds, 2),
                          "received": sink.received(), "messages_per_second": round(result["sent"] / seconds),
                          "target_per_second": 200}))


if __name__ == "__main__":
    main()

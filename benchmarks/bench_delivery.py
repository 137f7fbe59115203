"""Benchmark: delivering 10,000 due win-back emails to a local SMTP server (aiosmtpd in its own process).

    .venv/bin/python benchmarks/bench_delivery.py [--messages 10000] [--dkim]

A tick outside the send window enrols the lapsed customers and defers their first email to the
window's opening; the measured run then delivers them all: for each, the check at the moment of
hand-over, its personal code, rendering in HTML and text, and SMTP over one reused connection.
Prints one JSON line: messages, received (by the server), seconds, messages_per_second. Target:
≥ 200 messages per second. With --dkim the shop has a DKIM key and every email is signed (RSA 2048).
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
from bench_flows import build  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--dkim", action="store_true", help="sign every email with a DKIM key")
    args = parser.parse_args()
    from app import create_app
    from app.db import connect
    from app.migrations import init_db
    from flows.engine import deliver_due, tick
    with tempfile.TemporaryDirectory() as tmp, SmtpSink() as sink:
        app = create_app({"INSTANCE_PATH": tmp, "DATABASE": f"{tmp}/bench.db", "SMTP_URL": sink.url})
        db = connect(app.config["DATABASE"])
        init_db(db)
        shop = build(db, args.messages, holdout=0)
        if args.dkim:
            from app.dkim import ensure_key
            from app.shops import get_shop
            ensure_key(app, db, shop, domain="bench.example")
            shop = get_shop(db, shop["handle"])
        deferred = tick(app, db, shop, datetime(2026, 4, 2, 6, tzinfo=timezone.utc))  # before 09:00: deferred
        started = time.perf_counter()
        result = deliver_due(app, db, shop, datetime(2026, 4, 2, 9, tzinfo=timezone.utc), realtime=False)
        seconds = time.perf_counter() - started
        print(json.dumps({"benchmark": "delivery", "messages": result["sent"], "deferred_first": deferred["deferred"],
                          "received": sink.received(), "dkim": args.dkim, "seconds": round(seconds, 2),
                          "messages_per_second": round(result["sent"] / seconds), "target_per_second": 200}))


if __name__ == "__main__":
    main()

"""Benchmark: a campaign with a 15 % code to 10,000 members, sent to a local SMTP server.

    .venv/bin/python benchmarks/bench_campaign.py [--customers 10000]

The flows are off, so only the campaign writes. A tick before the send window takes the members
(set-based, from the stored snapshot, a stable-hash holdout of 10 %) and defers their email to the
window's opening; the measured delivery run then claims, reserves each personal code, checks at
hand-over, renders and sends them all over one SMTP connection. Prints one JSON line: members,
held_out, sent, received, start_seconds (the tick that takes the members, snapshot refresh
included), seconds and messages_per_second of the delivery. Target: ≥ 200 messages per second, as
for the flows.
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
    parser.add_argument("--customers", type=int, default=10_000)
    args = parser.parse_args()
    from app import create_app
    from app.db import connect
    from app.migrations import init_db
    from flows.campaigns import create
    from flows.definitions import PRIORITY, set_enabled
    from flows.engine import deliver_due, tick
    with tempfile.TemporaryDirectory() as tmp, SmtpSink() as sink:
        app = create_app({"INSTANCE_PATH": tmp, "DATABASE": f"{tmp}/bench.db", "SMTP_URL": sink.url})
        db = connect(app.config["DATABASE"])
        init_db(db)
        shop = build(db, args.customers)
        for name in PRIORITY:
            set_enabled(db, shop["id"], name, False)
        early = datetime(2026, 4, 2, 6, tzinfo=timezone.utc)
        create(db, shop, segment="lapsed", template="vip_early_access", offer="percent:15", at=early, now=early)
        started = time.perf_counter()
        first = tick(app, db, shop, early)  # before 09:00: the members are taken, their email deferred
        start_seconds = time.perf_counter() - started
        members, held = db.execute(
            "SELECT COUNT(*), SUM(held_out) FROM enrolments WHERE flow LIKE 'campaign:%'").fetchone()
        started = time.perf_counter()
        result = deliver_due(app, db, shop, datetime(2026, 4, 2, 9, tzinfo=timezone.utc), realtime=False)
        seconds = time.perf_counter() - started
        print(json.dumps({"benchmark": "campaign", "members": members, "held_out": held,
                          "deferred_first": first["deferred"], "sent": result["sent"], "received": sink.received(),
                          "start_seconds": round(start_seconds, 2),
                          "seconds": round(seconds, 2), "messages_per_second": round(result["sent"] / seconds),
                          "target_per_second": 200}))


if __name__ == "__main__":
    main()

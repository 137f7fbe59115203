"""Benchmark: delivering 10,000 outbox messages to a local SMTP server (aiosmtpd in its own process).

    .venv/bin/python benchmarks/bench_delivery.py [--messages 10000]

Prints one JSON line: messages, seconds, messages_per_second, received (by the server). Target:
≥ 200 messages per second.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = """
import asyncio, sys
from aiosmtpd.controller import Controller
class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"
c = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "count":
        print(Count.n, flush=True)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    from app import create_app
    from app.db import connect, init_db, write_transaction
    from app.mailer import deliver
    from app.shops import create_shop
    from app.timeutil import utcnow, to_db
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = create_app({"INSTANCE_PATH": tmp, "DATABASE": f"{tmp}/bench.db",
                              "SMTP_URL": f"smtp://127.0.0.1:{port}"})
            db = connect(app.config["DATABASE"])
            init_db(db)
            shop = create_shop(db, "bench", "import")
            now = to_db(utcnow())
            with write_transaction(db):
                db.conn.executemany("INSERT INTO customers (id, shop_id, external_id, email) VALUES (?, ?, ?, ?)",
                                    ((i + 1, shop["id"], f"C{i}", f"c{i}@example.com") for i in range(args.messages)))
                db.conn.executemany(
                    "INSERT INTO messages (shop_id, customer_id, flow, step, idempotency_key, is_marketing, email,"
                    " subject, body_text, body_html, status, created_at, scheduled_for)"
                    " VALUES (?, ?, 'winback', 0, ?, 1, ?, 'We miss you', ?, ?, 'outbox', ?, ?)",
                    ((shop["id"], i + 1, f"b:{i}", f"c{i}@example.com", "Hello,\n" + "text " * 150,
                      "<p>" + "html " * 300 + "</p>", now, now) for i in range(args.messages)))
            started = time.perf_counter()
            sent = 0
            while True:
                result = deliver(app, db, shop, limit=1000)
                if not result["sent"] and not result["retry"]:
                    break
                sent += result["sent"]
            seconds = time.perf_counter() - started
            server.stdin.write("count\n")
            server.stdin.flush()
            received = int(server.stdout.readline())
            print(json.dumps({"benchmark": "delivery", "messages": sent, "received": received,
                              "seconds": round(seconds, 2), "messages_per_second": round(sent / seconds)}))
    finally:
        server.kill()


if __name__ == "__main__":
    main()

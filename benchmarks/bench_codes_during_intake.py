"""Benchmark: webhook intake while a flow tick creates hundreds of codes on a slow platform.

    .venv/bin/python benchmarks/bench_codes_during_intake.py [--codes 500] [--delay 0.5] [--rate 50]

A WooCommerce shop with `--codes` lapsed, consenting customers is ticked by a real `winback run-flows`
process: every customer gets a win-back email with a personal coupon, created on a fake store on
loopback that takes `--delay` seconds per coupon, and delivered to a local SMTP server. Meanwhile
signed Shopify deliveries are posted at `--rate` per second to a real `winback serve` on the same
database. Prints one JSON line: the tick's duration and codes, and the deliveries' p50/p99/max
latency with the targets (p99 < 100 ms, max < 1 s: intake never waits for the platform, because no
platform call is made while the database's write lock is held). Loopback only; bounded in time.
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import free_port, percentile, wait_healthy  # noqa: E402

SHOPIFY = "bench.myshopify.com"
SECRET = "bench-secret"
ORDER = ROOT / "tests" / "fixtures" / "shopify" / "orders" / "order_18_paid_a.json"
NOW = datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)


def seed(db, store, customers):
    """A WooCommerce shop whose `customers` buyers all lapsed, with a postal address; a Shopify shop."""
    from app.settings import save_setting
    from app.shops import create_shop, get_shop
    from connectors.base import CustomerRecord, OrderRecord
    from connectors.store import ShopWriter
    from connectors.woocommerce.connect import add_store
    from flows.definitions import DEFAULT_FLOWS, save_flow
    app = _app()
    shop = add_store(app, db, store.url, store.key, store.secret, offline=True)
    db.execute("UPDATE shops SET timezone = 'UTC' WHERE id = ?", [shop["id"]])
    shop = get_shop(db, shop["handle"])
    records = []
    for i in range(customers):
        who = CustomerRecord(f"{i + 1}", email=f"c{i}@example.com", accepts_marketing=True,
                             marketing_updated_at=NOW - timedelta(days=400))
        for days in (200, 150):
            records.append(OrderRecord(external_id=f"o{i}-{days}", created_at=NOW - timedelta(days=days),
                                       total=Decimal("20"), currency="USD", status="paid", customer=who))
    ShopWriter(db, shop).write_orders(records)
    save_setting(db, shop["id"], "postal_address", "Bench Shop, 1 Loop Street, Localhost")
    save_setting(db, shop["id"], "vip_min_amount", "100000")
    flow = json.loads(json.dumps(DEFAULT_FLOWS["winback"]))
    flow["holdout"] = 0
    save_flow(db, shop["id"], "winback", flow)
    create_shop(db, SHOPIFY, "shopify", currency="USD")
    return shop


def _app():
    from app import create_app
    return create_app()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--codes", type=int, default=500)
    parser.add_argument("--delay", type=float, default=0.5, help="seconds the store takes per coupon")
    parser.add_argument("--rate", type=float, default=50, help="webhook deliveries per second")
    args = parser.parse_args()
    codes = min(args.codes, 5000)
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake store's request log
    from tests.fake_woo import FakeStore
    from tests.smtp_server import SmtpServer
    order = json.loads(ORDER.read_text())
    with tempfile.TemporaryDirectory() as tmp, SmtpServer() as smtp:
        store = FakeStore().start()
        store.coupon_delay = args.delay
        env = {**os.environ, "WINBACK_INSTANCE_PATH": tmp, "WINBACK_DATABASE": os.path.join(tmp, "bench.db"),
               "WINBACK_SHOPIFY_CLIENT_SECRET": SECRET, "WINBACK_SHOPIFY_CLIENT_ID": "bench",
               "WINBACK_ADMIN_PASSWORD": "bench-password", "WINBACK_SMTP_URL": smtp.url}
        os.environ.update(env)
        from app.db import connect
        from app.migrations import init_db
        db = connect(env["WINBACK_DATABASE"])
        init_db(db)
        shop = seed(db, store, codes)
        port = free_port()
        winback = str(ROOT / ".venv" / "bin" / "winback")
        server = subprocess.Popen([winback, "serve", "--no-scheduler", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        latencies, statuses = [], []
        try:
            wait_healthy(port)
            started = time.perf_counter()
            tick = subprocess.Popen([winback, "run-flows", "--shop", shop["handle"], "--now", NOW.isoformat(),
                                     "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            stop = threading.Event()

            def post():
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                n = 0
                while not stop.is_set() and n < 200_000:
                    body = json.dumps({**order, "id": 7_000_000 + n, "name": f"#C{n}"}).encode()
                    sig = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
                    t = time.perf_counter()
                    conn.request("POST", "/webhooks/shopify", body=body, headers={
                        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                        "X-Shopify-Hmac-Sha256": sig, "X-Shopify-Shop-Domain": SHOPIFY,
                        "X-Shopify-Webhook-Id": f"bench-{n}"})
                    resp = conn.getresponse()
                    resp.read()
                    latencies.append(time.perf_counter() - t)
                    statuses.append(resp.status)
                    n += 1
                    time.sleep(max(0.0, 1 / args.rate - (time.perf_counter() - t)))

            poster = threading.Thread(target=post)
            poster.start()
            out, err = tick.communicate(timeout=3600)
            tick_seconds = time.perf_counter() - started
            stop.set()
            poster.join()
        finally:
            store.stop()
            server.send_signal(signal.SIGINT)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        result = json.loads(out) if tick.returncode == 0 else {"error": err.strip()[-300:]}
        created = db.execute("SELECT COUNT(*) FROM discount_codes WHERE platform_state = 'created'").fetchone()[0]
    p99, worst = percentile(latencies, 0.99) * 1000, max(latencies) * 1000
    print(json.dumps({
        "codes": created, "platform_delay_s": args.delay, "tick_seconds": round(tick_seconds, 1),
        "emails_sent": result.get("sent"), "webhooks": len(latencies),
        "webhooks_ok": sum(1 for s in statuses if s == 200),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1), "p99_ms": round(p99, 1), "max_ms": round(worst, 1),
        "target": "p99 < 100 ms, max < 1000 ms", "met": p99 < 100 and worst < 1000}))


if __name__ == "__main__":
    main()

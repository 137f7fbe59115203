"""Benchmark: the Shopify webhook endpoint under load, served by `winback serve` (waitress, one process).

    .venv/bin/python benchmarks/bench_shopify_webhooks.py [--deliveries 3000] [--concurrency 2] [--no-processor]

Starts `winback serve` on a free loopback port against a fresh database with one Shopify shop, then
sends `--deliveries` signed orders/create deliveries (the fixture order with a new id each, ~6 KB)
from `--concurrency` keep-alive connections, and prints one JSON line: deliveries, seconds,
per_s, p50_ms, p99_ms, stored (rows in the inbox), lost, processed (handled in the background
within 60 s after the run). Targets: ≥ 300 deliveries/s, p99 < 50 ms, none lost.
Loopback only; the number of requests is bounded by --deliveries.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import free_port, percentile, wait_healthy  # noqa: E402

SHOP = "bench.myshopify.com"
SECRET = "bench-secret"
ORDER = ROOT / "tests" / "fixtures" / "shopify" / "orders" / "order_18_paid_a.json"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--no-processor", action="store_true", help="serve with --no-scheduler (inbox only)")
    args = parser.parse_args()
    deliveries = min(args.deliveries, 100_000)
    order = json.loads(ORDER.read_text())

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WINBACK_INSTANCE_PATH": tmp, "WINBACK_DATABASE": os.path.join(tmp, "bench.db"),
               "WINBACK_SHOPIFY_CLIENT_SECRET": SECRET, "WINBACK_SHOPIFY_CLIENT_ID": "bench",
               "WINBACK_ADMIN_PASSWORD": "bench-password"}
        from app.db import connect
        from app.migrations import init_db
        from app.shops import create_shop
        db = connect(env["WINBACK_DATABASE"])
        init_db(db)
        create_shop(db, SHOP, "shopify", currency="USD")
        port = free_port()
        cmd = [str(ROOT / ".venv" / "bin" / "winback"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        if args.no_processor:
            cmd.append("--no-scheduler")
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(port)
            bodies = []
            for n in range(deliveries):
                body = json.dumps({**order, "id": 5_000_000 + n, "name": f"#B{n}"}).encode()
                sig = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
                bodies.append((body, {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                                      "X-Shopify-Hmac-Sha256": sig, "X-Shopify-Shop-Domain": SHOP,
                                      "X-Shopify-Webhook-Id": f"bench-{n}"}))
            latencies, statuses, lock = [], [], threading.Lock()
            cursor = iter(range(deliveries))

            def worker():
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                while True:
                    with lock:
                        n = next(cursor, None)
                    if n is None:
                        return
                    body, headers = bodies[n]
                    t = time.perf_counter()
                    conn.request("POST", "/webhooks/shopify", body=body, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    elapsed = time.perf_counter() - t
                    with lock:
                        latencies.append(elapsed)
                        statuses.append(resp.status)

            started = time.perf_counter()
            threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - started
            stored = db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0]
            processed = 0
            if not args.no_processor:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    processed = db.execute("SELECT COUNT(*) FROM webhook_events WHERE status = 'done'").fetchone()[0]
                    if processed >= stored:
                        break
                    time.sleep(0.2)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    print(json.dumps({
        "deliveries": deliveries, "concurrency": args.concurrency, "seconds": round(seconds, 2),
        "per_s": round(deliveries / seconds), "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "ok": sum(1 for s in statuses if s == 200), "stored": stored, "lost": deliveries - stored,
        "processed": None if args.no_processor else processed}))


if __name__ == "__main__":
    main()

"""Benchmark: webhook intake latency at a steady 300 deliveries/s while flow ticks run.

    .venv/bin/python benchmarks/bench_webhooks_load.py [--rate 300] [--seconds 20] [--customers 3000]

Starts the README's production set-up, gunicorn (2 workers × 4 threads) serving `wsgi:app` beside
`winback worker` (scheduler and webhook processor), or with `--server serve` `winback serve` alone
(waitress, scheduler and processor in one process), on a free loopback port, against a fresh database holding the demo shop, one Shopify shop and one WooCommerce shop whose
store is unreachable (a closed loopback port). While a second process runs `winback run-flows
--shop demo` in a loop, it sends signed deliveries at a fixed rate for a bounded time: Shopify
orders/create (the fixture order, a new id each) and, one in five, a WooCommerce order.created
(the fixture order). Each delivery is sent at its scheduled time from a pool of keep-alive
connections; its latency is from sending to the whole answer. Prints one JSON line: deliveries,
rate, p50_ms, p99_ms, max_ms, ok, stored, processed (handled within 60 s after the run), ticks
(flow runs completed meanwhile), gunicorn's own view of each request's time, and the targets: p99 < 100 ms and max < 1 s (Shopify gives up
after 5 s), every delivery answered 200 and stored. Loopback only; bounded by --seconds.
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

BIN = ROOT / ".venv" / "bin"
SHOP = "bench.myshopify.com"
SECRET = "bench-secret"
WOO_SECRET = "bench-woo-secret"
SHOPIFY_ORDER = ROOT / "tests" / "fixtures" / "shopify" / "orders" / "order_18_paid_a.json"
WOO_ORDER = ROOT / "tests" / "fixtures" / "woocommerce" / "webhook_order_created.body.json"
TARGETS = {"p99_ms": 100, "max_ms": 1000}


def sign(secret, body):
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def deliveries(count, woo_shop_id):
    """(path, body, headers) of each delivery, built before the clock starts."""
    shopify, woo = json.loads(SHOPIFY_ORDER.read_text()), json.loads(WOO_ORDER.read_text())
    out = []
    for n in range(count):
        if n % 5 == 4:
            body = json.dumps({**woo, "id": 7_000_000 + n, "number": str(n)}).encode()
            out.append((f"/webhooks/woocommerce/{woo_shop_id}", body, {
                "Content-Type": "application/json", "X-WC-Webhook-Topic": "order.created",
                "X-WC-Webhook-Signature": sign(WOO_SECRET, body), "X-WC-Webhook-Delivery-ID": f"woo-{n}"}))
        else:
            body = json.dumps({**shopify, "id": 5_000_000 + n, "name": f"#B{n}"}).encode()
            out.append(("/webhooks/shopify", body, {
                "Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                "X-Shopify-Hmac-Sha256": sign(SECRET, body), "X-Shopify-Shop-Domain": SHOP,
                "X-Shopify-Webhook-Id": f"bench-{n}"}))
    return out


def run_flows_loop(env, stop: threading.Event, ticks: list):
    """`winback run-flows --shop demo` again and again until stopped (a tick per process)."""
    while not stop.is_set():
        done = subprocess.run([str(BIN / "winback"), "run-flows", "--shop", "demo", "--json"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        if done.returncode == 0:
            ticks.append(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server", choices=("gunicorn", "serve"), default="gunicorn",
                        help="gunicorn (2 workers × 4 threads) + `winback worker`, or `winback serve` alone")
    parser.add_argument("--no-flows", action="store_true", help="no flow ticks beside (for comparison)")
    args = parser.parse_args()
    seconds = min(args.seconds, 300)
    count = int(args.rate * seconds)

    from smtp_sink import SmtpSink

    # The flow ticks deliver for real (to a counting SMTP server): without a channel they only preview.
    with tempfile.TemporaryDirectory() as tmp, SmtpSink() as sink:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("WINBACK_")},
               "WINBACK_SMTP_URL": sink.url, "WINBACK_INSTANCE_PATH": tmp, "WINBACK_DATABASE": os.path.join(tmp, "bench.db"),
               "WINBACK_SHOPIFY_CLIENT_SECRET": SECRET, "WINBACK_SHOPIFY_CLIENT_ID": "bench",
               "WINBACK_SHOPIFY_ADMIN_URL": "http://127.0.0.1:9/{shop}",
               "WINBACK_ADMIN_PASSWORD": "bench-password", "WINBACK_TICK_SECONDS": "5"}
        winback = str(BIN / "winback")
        for cmd in (["init-db"], ["demo", "--customers", str(args.customers), "--history-days", "0", "--json"],
                    ["shop", "add-woocommerce", f"http://127.0.0.1:{free_port()}", "--key", "ck_bench",
                     "--secret", "cs_bench", "--webhook-secret", WOO_SECRET, "--offline"]):
            subprocess.run([winback, *cmd], env=env, check=True, stdout=subprocess.DEVNULL)
        from app.db import connect
        from app.shops import create_shop
        db = connect(env["WINBACK_DATABASE"])
        create_shop(db, SHOP, "shopify", currency="USD")
        woo_id = db.execute("SELECT id FROM shops WHERE platform = 'woocommerce'").fetchone()[0]
        work = deliveries(count, woo_id)

        port = free_port()
        access_log = os.path.join(tmp, "access.log")  # gunicorn's own time per request (ms)
        if args.server == "serve":
            commands = [[winback, "serve", "--host", "127.0.0.1", "--port", str(port)]]
        else:  # the README's production set-up
            commands = [[str(BIN / "gunicorn"), "--workers", "2", "--threads", "4", "--bind",
                         f"127.0.0.1:{port}", "--access-logfile", access_log, "--access-logformat", "%(M)s %(U)s",
                         "wsgi:app"], [winback, "worker"]]
        servers = [subprocess.Popen(c, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for c in commands]
        stop, ticks = threading.Event(), []
        flows = threading.Thread(target=run_flows_loop, args=(env, stop, ticks))
        latencies, statuses, lock = [], [], threading.Lock()
        try:
            wait_healthy(port)
            if not args.no_flows:
                flows.start()
            time.sleep(1.0)  # let the first tick get going
            start = time.perf_counter() + 0.2

            def sender(first):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                for n in range(first, count, args.connections):
                    delay = start + n / args.rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    path, body, headers = work[n]
                    t = time.perf_counter()
                    try:
                        conn.request("POST", path, body=body, headers=headers)
                        resp = conn.getresponse()
                        resp.read()
                        status = resp.status
                    except OSError:
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                        status = None
                    elapsed = time.perf_counter() - t
                    with lock:
                        latencies.append(elapsed)
                        statuses.append(status)

            threads = [threading.Thread(target=sender, args=(i,)) for i in range(args.connections)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.perf_counter() - start
            ticks_during = len(ticks)
            stop.set()
            deadline, processed, stored = time.monotonic() + 60, 0, 0
            while time.monotonic() < deadline:  # spooled deliveries are moved into the inbox meanwhile
                stored, processed = db.execute(
                    "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'done') FROM webhook_events"
                    " WHERE delivery_id LIKE 'bench-%' OR delivery_id LIKE 'woo-%'").fetchone()
                if processed >= count:
                    break
                time.sleep(0.5)
        finally:
            stop.set()
            for server in servers:
                server.send_signal(signal.SIGINT)
            for server in servers:
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()
            if flows.is_alive():
                flows.join(60)
            db.close()
            emails = sink.received()
        server_ms = []
        if os.path.exists(access_log):
            with open(access_log) as f:
                server_ms = [int(line.split()[0]) for line in f if "/webhooks/" in line]
    p99, worst = percentile(latencies, 0.99) * 1000, max(latencies) * 1000
    ok = sum(1 for s in statuses if s == 200)
    print(json.dumps({
        "benchmark": "webhooks_load", "deliveries": count, "rate": args.rate,
        "achieved_per_s": round(count / took), "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(p99, 1), "max_ms": round(worst, 1), "ok": ok, "stored": stored,
        "processed": processed, "flow_ticks": ticks_during, "emails_sent_by_ticks": emails,
        # as the server saw them (gunicorn only): the gap to the above is time queued or in the client
        "server_p50_ms": percentile(server_ms, 0.5) if server_ms else None,
        "server_p99_ms": percentile(server_ms, 0.99) if server_ms else None,
        "server_max_ms": max(server_ms) if server_ms else None, "targets": TARGETS,
        "met": p99 < TARGETS["p99_ms"] and worst < TARGETS["max_ms"] and ok == count == stored}))


if __name__ == "__main__":
    main()

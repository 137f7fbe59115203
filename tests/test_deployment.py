"""The README's production set-up, end to end: gunicorn serving `wsgi:app` and `winback worker`
beside it, as separate processes on one database. Every delivery gunicorn accepts is processed by
the worker: no process needs to have imported a platform's module for its handlers to exist."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app.db import connect
from fake_shopify import sign_webhook
from fake_woo import FIXTURES as WOO_FIXTURES, FakeStore
from tests.conftest import CHEAP_HASH

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHOPIFY_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "shopify"
SHOP = "deploy-test.myshopify.com"
CLIENT_SECRET = "shpss_deployment_test_secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what, timeout=60.0):
    """Poll `check` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def store():
    fake = FakeStore().seed_fixtures()
    fake.orders.clear()  # the webhook, not the sync, must bring the order in
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def refusing_shopify():
    """A Shopify admin API on loopback that answers 403 to everything: the sync fails at once (an
    unreachable one would cost the worker 15 s of backoff a round)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
        do_GET = do_POST

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/{{shop}}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def deployment(tmp_path, store, refusing_shopify):
    """gunicorn (2 workers × 4 threads) and `winback worker`, sharing one database; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINBACK_")}
    env.update({
        "WINBACK_DATABASE": str(tmp_path / "winback.db"),
        "WINBACK_INSTANCE_PATH": str(tmp_path / "instance"),
        "WINBACK_APP_URL": url,
        "WINBACK_ADMIN_PASSWORD": "deployment test password",
        "WINBACK_PASSWORD_HASH_METHOD": CHEAP_HASH,
        "WINBACK_SHOPIFY_CLIENT_ID": "deployment-client",
        "WINBACK_SHOPIFY_CLIENT_SECRET": CLIENT_SECRET,
        # Shopify's admin API refuses here: the worker's sync of that shop fails (and is recorded)
        # while its webhooks are still processed.
        "WINBACK_SHOPIFY_ADMIN_URL": refusing_shopify,
        "WINBACK_TICK_SECONDS": "2",
        "WINBACK_WEBHOOK_POLL_SECONDS": "0.5",  # the worker is never woken by gunicorn: it polls
        "PYTHONUNBUFFERED": "1",
    })
    winback = str(BIN / "winback")
    request = json.loads((WOO_FIXTURES / "webhook_order_created.request.json").read_text())
    for args in (["init-db"],  # the WooCommerce shop first: the worker's round syncs shops by id
                 ["shop", "add-woocommerce", store.url, "--key", store.key, "--secret", store.secret,
                  "--webhook-secret", request["secret"], "--offline"],
                 ["shop", "add-shopify", SHOP, "--token", "shpat_offline", "--offline"]):
        done = subprocess.run([winback, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("gunicorn", "worker")}
    procs = [
        subprocess.Popen([str(BIN / "gunicorn"), "--workers", "2", "--threads", "4", "--bind",
                          f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, env=env,
                         stdout=logs["gunicorn"], stderr=subprocess.STDOUT),
        subprocess.Popen([winback, "worker"], cwd=ROOT, env=env, stdout=logs["worker"], stderr=subprocess.STDOUT),
    ]
    try:
        def up():
            assert all(p.poll() is None for p in procs), (tmp_path / "gunicorn.log").read_text()
            try:
                return requests.get(f"{url}/healthz", timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # still starting (slow on a busy machine)
                return False
        wait_for(up, "gunicorn to answer")
        yield {"url": url, "db": env["WINBACK_DATABASE"], "woo_request": request, "tmp": tmp_path}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in logs.values():
            f.close()


def post_shopify(url, topic, payload, delivery_id):
    body = json.dumps(payload).encode()
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign_webhook(CLIENT_SECRET, body),
               "X-Shopify-Shop-Domain": SHOP, "X-Shopify-Webhook-Id": delivery_id,
               "X-Shopify-API-Version": "2026-10", "Content-Type": "application/json"}
    return requests.post(f"{url}/webhooks/shopify", data=body, headers=headers, timeout=10)


def test_gunicorn_and_worker_process_every_platforms_webhooks(deployment):
    url, db = deployment["url"], connect(deployment["db"])

    def statuses(*delivery_ids):
        rows = dict(db.execute("SELECT delivery_id, status FROM webhook_events WHERE delivery_id IN"
                               " (SELECT value FROM json_each(?))", [json.dumps(delivery_ids)]).fetchall())
        assert "failed" not in rows.values(), rows
        return len(rows) == len(delivery_ids) and set(rows.values()) == {"done"}

    def errors():
        return db.execute("SELECT delivery_id, topic, status, last_error FROM webhook_events"
                          " WHERE last_error IS NOT NULL").fetchall()

    order = json.loads((SHOPIFY_FIXTURES / "orders" / "order_18_paid_a.json").read_text())
    customer = order["customer"]
    assert post_shopify(url, "orders/create", order, "d-order").status_code == 200
    assert post_shopify(url, "customers/data_request", {
        "shop_domain": SHOP, "customer": {"id": customer["id"], "email": customer["email"]},
        "orders_requested": [order["id"]], "data_request": {"id": 4242}}, "d-export").status_code == 200

    woo = deployment["woo_request"]
    shop_id = db.execute("SELECT id FROM shops WHERE platform = 'woocommerce'").fetchone()[0]
    resp = requests.post(f"{url}/webhooks/woocommerce/{shop_id}", headers=woo["headers"], timeout=10,
                         data=(WOO_FIXTURES / "webhook_order_created.body.json").read_bytes())
    assert resp.status_code == 200
    wait_for(lambda: statuses("d-order", "d-export", woo["headers"]["X-WC-Webhook-Delivery-ID"]),
             f"the worker to process the deliveries ({errors()})")

    shopify_order = db.execute("SELECT o.status, o.total_minor, c.email FROM orders o JOIN customers c"
                               " ON c.id = o.customer_id WHERE o.external_id = ?", [str(order["id"])]).fetchone()
    assert shopify_order == ("paid", 19900, customer["email"])
    export = db.execute("SELECT file FROM privacy_requests WHERE topic = 'customers/data_request'").fetchone()[0]
    assert json.loads(Path(export).read_text())["records"][0]["customer"]["email"] == customer["email"]
    woo_order = db.execute("SELECT status, total_minor FROM orders WHERE shop_id = ? AND external_id = '727'",
                           [shop_id]).fetchone()
    assert woo_order is not None and woo_order[0] == "paid"
    # brand and category of its lines: known from the worker's sync, or filled in by a later round
    wait_for(lambda: db.execute(
        "SELECT brand, category FROM order_lines l JOIN orders o ON o.id = l.order_id"
        " WHERE o.shop_id = ? AND o.external_id = '727' AND l.product_id IS NOT NULL"
        " AND (SELECT external_id FROM products WHERE id = l.product_id) = '93'", [shop_id]).fetchone()
        == ("Woo", "Music"), "the WooCommerce product details")

    assert post_shopify(url, "customers/redact", {
        "shop_domain": SHOP, "customer": {"id": customer["id"], "email": customer["email"]},
        "orders_to_redact": [order["id"]]}, "d-redact").status_code == 200
    wait_for(lambda: statuses("d-redact"), f"the redaction ({errors()})")
    assert db.execute("SELECT COUNT(*) FROM customers WHERE email = ?", [customer["email"]]).fetchone()[0] == 0
    assert db.execute("SELECT customer_id FROM orders WHERE external_id = ?", [str(order["id"])]).fetchone() == (None,)

    assert post_shopify(url, "app/uninstalled", {"id": 1, "domain": SHOP}, "d-uninstall").status_code == 200
    wait_for(lambda: statuses("d-uninstall"), f"the uninstall ({errors()})")
    shop = db.execute("SELECT s.credentials, i.uninstalled_at FROM shops s JOIN shopify_installs i"
                      " ON i.shop_id = s.id WHERE s.handle = ?", [SHOP]).fetchone()
    assert shop[0] is None and shop[1] is not None
    # from now on the shop's ordinary deliveries are refused; its privacy requests still count
    assert post_shopify(url, "orders/create", {**order, "id": 1}, "d-late").status_code == 410
    assert db.execute("SELECT COUNT(*) FROM webhook_events WHERE delivery_id = 'd-late'").fetchone()[0] == 0
    assert post_shopify(url, "shop/redact", {"shop_domain": SHOP}, "d-shop-redact").status_code == 200
    wait_for(lambda: statuses("d-shop-redact"), f"the shop redaction ({errors()})")
    db.close()

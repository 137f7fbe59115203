"""Webhook intake under bad luck and attack: a slow or dead WooCommerce store, oversized bodies,
hostile JSON and paging parameters, deliveries for an uninstalled shop, and payload retention."""
import copy
import json
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from fake_shopify import webhook_headers
from fake_woo import FakeStore, fixture, php_json

from app import create_app, webhooks as inbox
from app.db import connect, write_transaction
from app.migrations import init_db
from app.shops import create_shop, get_shop
from app.timeutil import to_db, utcnow
from connectors.registry import connector_for
from connectors.shopify.subscriptions import mark_uninstalled
from connectors.sync import poll_shop
from connectors.woocommerce.connect import add_store

SHOPIFY_SECRET = "shpss_safety_secret"
SHOP = "safety.myshopify.com"
WOO_SECRET = "woo-safety-secret"

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def woo_headers(secret, body: bytes, topic, delivery_id) -> dict:
    """Headers of a delivery signed as WooCommerce signs (base64 HMAC-SHA256 of the raw body)."""
    import base64
    import hashlib
    import hmac
    return {"Content-Type": "application/json", "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Delivery-ID": delivery_id,
            "X-WC-Webhook-Signature": base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()}


def wait_for(check, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def app(app):
    app.config.update(SHOPIFY_CLIENT_SECRET=SHOPIFY_SECRET, WOOCOMMERCE_BACKOFF=0, WOOCOMMERCE_TIMEOUT=2)
    return app


@pytest.fixture
def store():
    fake = FakeStore().seed_fixtures().start()
    yield fake
    fake.delay = 0
    fake.stop()


@pytest.fixture
def processor(app):
    proc = inbox.start_processor(app)
    yield proc
    proc.stop()


@pytest.fixture
def shopify_shop(db):
    return create_shop(db, SHOP, "shopify")


@pytest.fixture
def woo(app, db, store):
    shop = add_store(app, db, store.url, store.key, store.secret, webhook_secret=WOO_SECRET, offline=True)
    return get_shop(db, shop["handle"])


def shopify_post(post, topic, payload, delivery_id=None, body=None):
    body = body if body is not None else json.dumps(payload).encode()
    headers = webhook_headers(SHOPIFY_SECRET, body, topic, SHOP, delivery_id or f"d-{time.monotonic_ns()}")
    return post("/webhooks/shopify", body, headers)


def woo_post(post, shop, topic, body: bytes, delivery_id=None):
    headers = woo_headers(WOO_SECRET, body, topic, delivery_id or f"w-{time.monotonic_ns()}")
    return post(f"/webhooks/woocommerce/{shop['id']}", body, headers)


def client_post(client):
    return lambda path, body, headers: client.post(path, data=body, headers=headers)


def http_post(base):
    return lambda path, body, headers: requests.post(base + path, data=body, headers=headers, timeout=5)


def new_order(oid, product_id):
    order = copy.deepcopy(fixture("order.json"))
    order.update(id=oid, number=str(oid), status="processing")
    order["line_items"] = [{**order["line_items"][0], "id": oid * 10, "product_id": product_id}]
    return order


# ---- 3. no network I/O inside the write lock ------------------------------------------------------
def poll(app, db, shop):
    """The scheduler round's periodic poll of the shop (prepare, then an incremental sync)."""
    shop = get_shop(db, shop["handle"])
    return poll_shop(app, db, shop, connector_for(app, shop))


def test_a_slow_store_blocks_neither_intake_nor_order_recording(app, db, store, live, processor,
                                                                 shopify_shop, woo):
    """The store takes 30 s per answer. While the inbox waits for it (creating the shop's webhooks),
    deliveries of both platforms are answered and written; the WooCommerce order is recorded from
    its payload, and the product details it lacks are filled in by the next round."""
    store.delay = 30.0
    app.config["WOOCOMMERCE_TIMEOUT"] = 8  # longer than the deliveries' 5 s timeout below
    inbox.record(db, woo["id"], "woocommerce", "winback.setup", "setup-slow", {})
    inbox.wake(app)
    wait_for(store.slow_request.is_set, "the inbox to be waiting for the store")

    # the database's write lock is free while the inbox waits for the store
    other = connect(app.config["DATABASE"])
    other.conn.execute("PRAGMA busy_timeout = 3000")
    with write_transaction(other):
        other.execute("UPDATE shops SET name = 'written while the store is slow' WHERE id = ?", [woo["id"]])
    other.close()

    post = http_post(live)  # a 5 s timeout on each
    order = new_order(9001, product_id=93)
    assert woo_post(post, woo, "order.created", php_json(order)).status_code == 200
    shopify_order = json.loads(open(FIXTURES / "shopify" / "orders" / "order_20_paid_b.json").read())
    for n in range(5):
        assert shopify_post(post, "orders/create", {**shopify_order, "id": 500 + n}).status_code == 200
    assert requests.get(live + "/healthz", timeout=5).status_code == 200

    def recorded():
        return db.execute("SELECT COUNT(*) FROM orders WHERE external_id IN ('9001', '500', '504')").fetchone()[0] == 3
    wait_for(recorded, "the orders to be recorded while the store is slow", timeout=20)
    line = db.execute("SELECT l.brand, l.category, p.details_pending FROM order_lines l"
                      " JOIN orders o ON o.id = l.order_id JOIN products p ON p.id = l.product_id"
                      " WHERE o.shop_id = ? AND o.external_id = '9001'", [woo["id"]]).fetchone()
    assert line == (None, None, 1)  # recorded without asking the store; marked for later
    assert not [r for r in store.requests if r[1].endswith("/products")]

    # the store answers again: the next round fills the product in, on the order line too
    store.delay = 0
    poll(app, db, woo)
    line = db.execute("SELECT l.brand, l.category, p.details_pending FROM order_lines l"
                      " JOIN orders o ON o.id = l.order_id JOIN products p ON p.id = l.product_id"
                      " WHERE o.shop_id = ? AND o.external_id = '9001'", [woo["id"]]).fetchone()
    assert line == ("Woo", "Music", 0)


def test_a_dead_store_leaves_the_order_recorded_and_marked(app, db, store, woo):
    store.stop()
    client = app.test_client()
    order = new_order(9002, product_id=22)
    assert woo_post(client_post(client), woo, "order.created", php_json(order)).status_code == 200
    assert inbox.process_due(app, db) == {"done": 1, "retry": 0, "failed": 0}
    row = db.execute("SELECT o.status, p.details_pending FROM orders o JOIN order_lines l ON l.order_id = o.id"
                     " JOIN products p ON p.id = l.product_id WHERE o.external_id = '9002'").fetchone()
    assert row == ("paid", 1)
    # a store that is down keeps the mark for the round after; nothing is lost or failed
    with pytest.raises(Exception):
        poll(app, db, woo)
    assert db.execute("SELECT details_pending FROM products WHERE shop_id = ? AND external_id = '22'",
                      [woo["id"]]).fetchone() == (1,)


def test_a_known_product_gives_its_details_at_once(app, db, store, woo):
    poll(app, db, woo)  # the first sync brings the catalog
    client = app.test_client()
    assert woo_post(client_post(client), woo, "order.created", php_json(new_order(9003, 22))).status_code == 200
    inbox.process_due(app, db)
    line = db.execute("SELECT l.brand, l.category FROM order_lines l JOIN orders o ON o.id = l.order_id"
                      " WHERE o.external_id = '9003'").fetchone()
    assert line == ("Idea Co", "Clothing")


def test_intake_does_not_wait_for_a_busy_database(app, db, shopify_shop):
    """A tick holding the write lock for long: deliveries are answered and spooled, then moved into
    the inbox and processed once the lock is free; a duplicate delivery stays one event."""
    client = app.test_client()
    post = client_post(client)
    order = json.loads(open(FIXTURES / "shopify" / "orders" / "order_18_paid_a.json").read())
    holder = connect(app.config["DATABASE"])
    holder.conn.execute("BEGIN IMMEDIATE")
    try:
        for _ in range(2):
            assert shopify_post(post, "orders/create", order, delivery_id="while-locked").status_code == 200
        assert len(os.listdir(inbox.spool_folder(app))) == 2
    finally:
        holder.conn.execute("ROLLBACK")
        holder.close()
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0
    assert inbox.process_due(app, db) == {"done": 1, "retry": 0, "failed": 0}
    assert os.listdir(inbox.spool_folder(app)) == []
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 1
    assert db.execute("SELECT status FROM orders WHERE external_id = ?", [str(order["id"])]).fetchone() == ("paid",)


def test_an_unreadable_spool_file_is_set_aside_without_stopping_the_others(app, db, shopify_shop):
    folder = inbox.spool_folder(app)
    os.makedirs(folder)
    with open(os.path.join(folder, "00000000000000000001-broken.json"), "w") as f:
        f.write('{"shop_id": 1, "payl')
    with open(os.path.join(folder, "00000000000000000002-good.json"), "w") as f:
        json.dump({"shop_id": shopify_shop["id"], "platform": "shopify", "topic": "customers/update",
                   "delivery_id": None, "received_at": to_db(utcnow()),
                   "payload": json.dumps({"id": 77, "email": "spooled@example.com"})}, f)
    assert inbox.process_due(app, db) == {"done": 1, "retry": 0, "failed": 0}
    assert sorted(os.listdir(folder)) == ["00000000000000000001-broken.json.bad"]
    assert db.execute("SELECT email FROM customers WHERE external_id = '77'").fetchone() == ("spooled@example.com",)


# ---- 6. bounded input --------------------------------------------------------------------------
def raw_post(base, path, declared_length, sent=b"", content_type="application/json"):
    """Send headers declaring `declared_length` bytes but only `sent`; return the status line."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
                      f"Content-Length: {declared_length}\r\nConnection: close\r\n\r\n").encode() + sent)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.split(b"\r\n", 1)[0].decode()


@pytest.mark.parametrize("path", ["/webhooks/shopify", "/webhooks/woocommerce/1", "/login",
                                  "/woocommerce/callback", "/nowhere"])
def test_a_100_mb_body_is_refused_before_it_is_read(app, live, path):
    # Only the headers are sent: the answer comes without waiting for the 100 MB.
    assert " 413 " in raw_post(live, path, 100 * 1024 * 1024, b"{")


def test_route_limits_webhooks_a_few_mb_forms_64_kb(app, client, db, shopify_shop):
    big = {"id": 1, "note": "x" * (1024 * 1024)}  # a large but plausible delivery is taken
    assert shopify_post(client_post(client), "orders/create", big).status_code == 200
    huge = {"id": 2, "note": "x" * (6 * 1024 * 1024)}
    assert shopify_post(client_post(client), "orders/create", huge).status_code == 413
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 1
    assert client.post("/login", data={"username": "admin", "password": "p" * (70 * 1024)}).status_code == 413


HOSTILE = {
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "deeply nested object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "UTF-16": '{"id": 1}'.encode("utf-16"),
    "UTF-32": '{"id": 1}'.encode("utf-32"),
    "invalid": b'{"id": 1,',
    "not an object": b"[1, 2]",
    "huge number": b'{"id": ' + b"9" * 100_000 + b"}",
    "empty": b"",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_json_gets_400_and_is_not_stored(app, client, db, shopify_shop, woo, name):
    body = HOSTILE[name]
    post = client_post(client)
    assert shopify_post(post, "orders/create", None, body=body).status_code == 400
    assert woo_post(post, woo, "order.created", body).status_code == 400
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0


@pytest.mark.parametrize("page", ["9223372036854775807", "99999999999999999999999", "-1", "0", "abc", ""])
def test_paging_parameters_never_give_500(app, client, login, db, page):
    shop = create_shop(db, "pages.example", "import")
    db.execute("INSERT INTO customers (shop_id, external_id, email) VALUES (?, 'c1', 'c1@example.com')", [shop["id"]])
    login()
    resp = client.get(f"/shops/pages.example/customers?page={page}")
    assert resp.status_code == 200
    if page in ("-1", "0", "abc", ""):  # clamped to the first page
        assert "c1@example.com" in resp.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/shops/pages.example/flows/winback/99999999999999999999/preview",
                                  "/shops/pages.example/flows/winback/9223372036854775808/preview"])
def test_out_of_range_ids_in_urls_are_404(app, client, login, db, path):
    create_shop(db, "pages.example", "import")
    login()
    assert client.get(path).status_code == 404
    body = b'{"id": 1}'
    assert client.post("/webhooks/woocommerce/99999999999999999999999", data=body,
                       headers=woo_headers(WOO_SECRET, body, "order.created", "x")).status_code == 404


def test_an_uninstalled_shop_gets_only_its_privacy_topics_stored(app, client, db, shopify_shop):
    mark_uninstalled(app, db, shopify_shop)
    post = client_post(client)
    for topic in ("orders/create", "customers/update", "products/update", "app/uninstalled"):
        resp = shopify_post(post, topic, {"id": 1})
        assert resp.status_code == 410 and "uninstalled" in resp.get_json()["message"]
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0
    for topic in ("customers/data_request", "customers/redact", "shop/redact"):
        assert shopify_post(post, topic, {"shop_domain": SHOP, "customer": {"id": 5}}).status_code == 200
    assert sorted(r[0] for r in db.execute("SELECT topic FROM webhook_events")) == [
        "customers/data_request", "customers/redact", "shop/redact"]


# ---- 4. payload retention ----------------------------------------------------------------------
def test_processed_payloads_are_pruned_after_the_retention_period(app, db, shopify_shop, processor):
    client = app.test_client()
    post = client_post(client)
    order = json.loads(open(FIXTURES / "shopify" / "orders" / "order_18_paid_a.json").read())
    assert shopify_post(post, "orders/create", order, delivery_id="old").status_code == 200
    wait_for(lambda: db.execute("SELECT status FROM webhook_events WHERE delivery_id = 'old'").fetchone() == ("done",),
             "the delivery to be processed")
    old = to_db(utcnow() - timedelta(days=8))
    db.execute("UPDATE webhook_events SET received_at = ?, processed_at = ? WHERE delivery_id = 'old'", [old, old])
    # a recent one, and one still waiting (a topic nobody handles) from long ago
    assert shopify_post(post, "orders/updated", order, delivery_id="recent").status_code == 200
    inbox.record(db, shopify_shop["id"], "shopify", "unknown/topic", "waiting", {"email": "keep@example.com"})
    db.execute("UPDATE webhook_events SET received_at = ? WHERE delivery_id = 'waiting'", [old])
    wait_for(lambda: db.execute("SELECT status FROM webhook_events WHERE delivery_id = 'recent'").fetchone() == ("done",),
             "the second delivery to be processed")

    processor.pruned_at = None  # the processor prunes once an hour; make this round one
    inbox.wake(app)
    wait_for(lambda: db.execute("SELECT payload FROM webhook_events WHERE delivery_id = 'old'").fetchone() == ("",),
             "the processor to prune the old payload")
    payloads = dict(db.execute("SELECT delivery_id, payload FROM webhook_events").fetchall())
    assert order["email"] not in payloads["old"]
    assert order["email"] in payloads["recent"] and "keep@example.com" in payloads["waiting"]
    # the row stays, so a late resend of the same delivery is still recognised as a duplicate
    assert shopify_post(post, "orders/create", order, delivery_id="old").get_json()["message"] == "duplicate"


def test_retention_is_a_setting(tmp_path, monkeypatch):
    config = {"INSTANCE_PATH": str(tmp_path / "i"), "DATABASE": str(tmp_path / "w.db")}
    default = create_app(config)
    db = connect(default.config["DATABASE"])
    init_db(db)
    shop = create_shop(db, "r.example", "import")
    inbox.record(db, shop["id"], "test", "t", "three-days", {"email": "a@example.com"})
    db.execute("UPDATE webhook_events SET status = 'done', processed_at = ?", [to_db(utcnow() - timedelta(days=3))])
    assert inbox.prune(default, db) == 0  # 7 days by default
    monkeypatch.setenv("WINBACK_WEBHOOK_RETENTION_DAYS", "2")
    two_days = create_app(config)
    assert two_days.config["WEBHOOK_RETENTION_DAYS"] == 2
    assert inbox.prune(two_days, db) == 1
    assert db.execute("SELECT payload FROM webhook_events").fetchone() == ("",)
    db.close()


def test_winback_serve_refuses_a_100_mb_body_before_reading_it(tmp_path):
    """waitress buffers whole bodies before the app runs: `winback serve` caps them at the largest
    route limit, so a huge body is refused without being stored in memory or on disk."""
    import subprocess
    import sys
    from pathlib import Path
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINBACK_")}
    env.update(WINBACK_INSTANCE_PATH=str(tmp_path / "instance"), WINBACK_ADMIN_PASSWORD="serve test")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "winback"), "serve", "--no-scheduler", "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return requests.get(base + "/healthz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False
        wait_for(up, "winback serve to answer")
        for path in ("/login", "/webhooks/shopify"):
            assert " 413 " in raw_post(base, path, 100 * 1024 * 1024, b"{")
        assert " 413 " in raw_post(base, "/login", 1024 * 1024, b"x" * (1024 * 1024))  # over 64 KB, sent whole
    finally:
        proc.terminate()
        proc.wait(10)

"""WooCommerce end to end against a fake store on loopback: connect, sync, webhooks, coupons,
reconcile, and every rejection. The code talking to the store is the real code."""
import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fake_woo import FIXTURES, FakeStore

from app import webhooks as inbox
from app.settings import save_setting
from app.shops import create_shop, get_shop, load_credentials, store_credentials
from connectors.registry import connector_for
from connectors.sync import poll_shop, sync_shop
from connectors.woocommerce import WooError
from connectors.woocommerce.connect import add_store, start_connection

UTC = timezone.utc


@pytest.fixture
def app(app):
    app.config["WOOCOMMERCE_BACKOFF"] = 0  # retries without waiting
    app.config["WOOCOMMERCE_TIMEOUT"] = 10
    return app


@pytest.fixture
def store():
    fake = FakeStore().seed_fixtures()
    # registered customer 25 also ordered as a guest (order 727, fixture) and while logged in
    fake.make_order(801, email="John.Doe@Example.com ", customer_id=25, total="40.00",
                    created_gmt="2026-01-05T09:00:00", coupons=["wb-abc123"], product_id=22)
    fake.make_order(802, email="guest@example.org", total="30.00", created_gmt="2026-01-06T23:30:00",
                    refunds=["-10.00"], meta=[("mailchimp_woocommerce_is_subscribed", "1")])
    fake.make_order(803, email="guest@example.org", status="pending", created_gmt="2026-01-07T10:00:00")
    fake.make_order(804, email="guest@example.org", status="cancelled", created_gmt="2026-01-08T10:00:00")
    fake.make_order(805, email="deleted@site.invalid", created_gmt="2026-01-09T10:00:00")
    fake.make_order(806, email="gone@example.org", status="refunded", total="25.00",
                    created_gmt="2026-01-09T11:00:00", meta=[("mailchimp_woocommerce_is_subscribed", "no")])
    for n in range(120):  # more than one page
        fake.make_order(2000 + n, email=f"bulk{n}@example.net", created_gmt="2025-06-01T10:00:00")
    fake.start()
    yield fake
    fake.stop()


def woo_shop(app, db, store, **creds):
    shop = add_store(app, db, store.url, store.key, store.secret, offline=True)
    if creds:
        store_credentials(app, db, shop["id"], {**load_credentials(app, shop), **creds})
    return get_shop(db, shop["handle"])


def orders_by_id(db, shop):
    return {r["external_id"]: r for r in db.query(
        "SELECT o.*, c.external_id AS customer FROM orders o LEFT JOIN customers c ON c.id = o.customer_id"
        " WHERE o.shop_id = ?", [shop["id"]])}


# ---- connect → sync → webhook → coupon → reconcile --------------------------------------------
def test_connect_sync_webhook_coupon_reconcile(app, client, login, db, store, live):
    login()
    confirm = client.get(f"/woocommerce/connect?store_url={store.url}")
    assert confirm.status_code == 200 and 'data-test="woo-confirm"' in confirm.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm.get_data(as_text=True)).group(1)
    resp = client.post("/woocommerce/connect", data={"csrf_token": token, "store_url": store.url})
    assert resp.status_code == 302
    target = urlsplit(resp.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert target.path == "/wc-auth/v1/authorize" and query["scope"] == "read_write"
    assert query["callback_url"] == f"{live}/woocommerce/callback"
    assert query["return_url"] == f"{live}/woocommerce/return"

    # the merchant grants: the store POSTs the keys to our callback, then sends the browser back
    granted = requests.get(resp.headers["Location"], allow_redirects=False, timeout=10)
    assert store.last_callback.status_code == 200 and len(store.last_callback.content) < 20
    assert granted.status_code == 302
    back = urlsplit(granted.headers["Location"])
    assert parse_qs(back.query)["success"] == ["1"]

    shop = get_shop(db, "127.0.0.1")
    assert shop["platform"] == "woocommerce" and shop["base_url"] == store.url
    creds = load_credentials(app, shop)
    assert creds["consumer_key"] in store.keys and creds["consumer_key"] not in shop["credentials"]

    # the webhooks are created from the inbox, and their pings answered 200
    assert inbox.process_due(app, db)["done"] == 1
    assert sorted(h["topic"] for h in store.webhooks.values()) == [
        "customer.created", "customer.updated", "order.created", "order.updated", "product.updated"]
    assert {h["delivery_url"] for h in store.webhooks.values()} == {f"{live}/webhooks/woocommerce/{shop['id']}"}
    assert [status for _, status in store.pings] == [200] * 5
    assert db.execute("SELECT COUNT(*) FROM webhook_events WHERE topic <> 'winback.setup'").fetchone()[0] == 0

    learned = get_shop(db, "127.0.0.1")
    assert (learned["currency"], learned["timezone"]) == ("USD", "America/Los_Angeles")

    page = client.get(f"{back.path}?{back.query}")
    assert page.status_code == 302 and page.headers["Location"].endswith("/shops/127.0.0.1")

    shop = get_shop(db, "127.0.0.1")
    stats = sync_shop(app, db, shop)
    assert stats["full"] and stats["orders_new"] == 126
    orders = orders_by_id(db, shop)
    assert orders["727"]["customer"] == "25" and orders["801"]["customer"] == "25"  # guest merged

    # a new order arrives by webhook
    new = store.make_order(900, email="new@example.com", total="12.50", created_gmt="2026-02-01T08:00:00")
    [delivered] = store.deliver("order.created", new)
    assert delivered.status_code == 200
    assert inbox.process_due(app, db)["done"] == 1
    row = orders_by_id(db, shop)["900"]
    assert row["status"] == "paid" and row["total_minor"] == 1250 and row["customer"] == "new@example.com"

    # a personal coupon for that customer
    connector = connector_for(app, shop)
    expires = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    code = connector.create_discount(code=None, customer={"email": "New@Example.com"},
                                     percent=Decimal("15"), free_shipping=True, expires_at=expires)
    [coupon] = store.coupons.values()
    assert code == coupon["code"] == code.lower() and re.fullmatch(r"wb-[a-hj-np-z2-9]{4}-[a-hj-np-z2-9]{4}-[a-hj-np-z2-9]{2}", code)
    assert coupon["discount_type"] == "percent" and coupon["amount"] == "15"
    assert coupon["usage_limit"] == 1 and coupon["usage_limit_per_user"] == 1 and coupon["individual_use"]
    assert coupon["email_restrictions"] == ["new@example.com"] and coupon["free_shipping"] is True
    assert coupon["date_expires"] == "2026-03-01T12:00:00+00:00"

    # the customer uses it, but the webhook is lost: the periodic reconcile finds the change
    store.touch(900, "2099-01-01T00:00:00", coupon_lines=[{"id": 1, "code": code, "discount": "1.88"}],
                status="completed")
    shop = get_shop(db, "127.0.0.1")
    result = poll_shop(app, db, shop, connector_for(app, shop))  # as the scheduler round does
    assert result["full"] is False and result["orders_updated"] == 1
    assert json.loads(orders_by_id(db, shop)["900"]["discount_codes"]) == [code]
    last = [args for method, path, args in store.requests if path.endswith("/orders")][-1]
    assert last["dates_are_gmt"] == "true" and last["orderby"] == "modified" and last["order"] == "asc"
    assert last["per_page"] == "100" and "T" in last["modified_after"]


def test_sync_maps_statuses_refunds_guests_erasure_and_catalog(app, db, store):
    shop = woo_shop(app, db, store)
    sync_shop(app, db, shop)
    orders = orders_by_id(db, shop)
    assert "805" not in orders  # privacy-erased
    assert orders["727"]["created_at"] == "2017-03-22T19:28:02Z"  # from date_created_gmt
    assert orders["802"]["status"] == "paid" and orders["802"]["refunded_minor"] == 1000
    assert orders["803"]["status"] == "pending" and orders["804"]["status"] == "cancelled"
    assert orders["806"]["status"] == "refunded"
    assert orders["802"]["customer"] == "guest@example.org"
    assert json.loads(orders["801"]["discount_codes"]) == ["wb-abc123"]
    assert db.execute("SELECT COUNT(*) FROM customers WHERE shop_id = ? AND email = 'john.doe@example.com'",
                      [shop["id"]]).fetchone()[0] == 1
    line = db.execute("SELECT brand, category FROM order_lines l JOIN orders o ON o.id = l.order_id"
                      " WHERE o.external_id = '801'").fetchone()
    assert line == ("Idea Co", "Clothing")  # from the product, looked up by the line's product_id
    line = db.execute("SELECT brand, category, title, sku FROM order_lines WHERE line_key = '316'").fetchone()
    assert line == ("Idea Co", "Clothing", "Ship Your Idea – Color: Black, Size: M Test", "Bar3")
    product = db.execute("SELECT title, category FROM products WHERE shop_id = ? AND external_id = '794'",
                         [shop["id"]]).fetchone()
    assert product == ("Premium Quality", "Clothing")
    # default consent source "none": nobody may receive promotions
    assert db.execute("SELECT COUNT(*) FROM customers WHERE shop_id = ? AND accepts_marketing IS NOT 0",
                      [shop["id"]]).fetchone()[0] == 0
    # the second sync is incremental and asks only for what changed
    again = sync_shop(app, db, shop)
    assert again["full"] is False and again.get("orders_new", 0) == 0


@pytest.mark.parametrize("source, expected", [
    ("meta:mailchimp_woocommerce_is_subscribed", {"guest@example.org": 1, "gone@example.org": 0, "25": None}),
    ("soft_opt_in", {"guest@example.org": 1, "gone@example.org": None, "25": 1}),
])
def test_consent_source(app, db, store, source, expected):
    shop = woo_shop(app, db, store)
    save_setting(db, shop["id"], "woo_consent_source", source)
    sync_shop(app, db, shop)
    got = dict(db.execute("SELECT external_id, accepts_marketing FROM customers WHERE shop_id = ?",
                          [shop["id"]]).fetchall())
    assert {k: got[k] for k in expected} == expected


def test_consent_setting_is_validated(db):
    shop = create_shop(db, "s.example", "woocommerce")
    with pytest.raises(ValueError):
        save_setting(db, shop["id"], "woo_consent_source", "meta:")
    assert save_setting(db, shop["id"], "woo_consent_source", " meta:_wc_other/x/optin") == "meta:_wc_other/x/optin"


# ---- webhook rejections ----------------------------------------------------------------------
def fixture_delivery():
    request = json.loads((FIXTURES / "webhook_order_created.request.json").read_text())
    return request, (FIXTURES / "webhook_order_created.body.json").read_bytes()


def test_fixture_delivery_is_accepted_once(app, client, db, store):
    request, body = fixture_delivery()
    shop = woo_shop(app, db, store, webhook_secret=request["secret"])
    url = f"/webhooks/woocommerce/{shop['id']}"
    for _ in range(2):  # a duplicate delivery id is harmless
        assert client.post(url, data=body, headers=request["headers"]).status_code == 200
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 1
    assert inbox.process_due(app, db) == {"done": 1, "retry": 0, "failed": 0}
    assert inbox.process_due(app, db)["done"] == 0
    assert orders_by_id(db, shop)["727"]["customer"] == "john.doe@example.com"


def test_bad_signature_unknown_shop_and_ping(app, client, db, store):
    request, body = fixture_delivery()
    shop = woo_shop(app, db, store, webhook_secret="another-secret")
    url = f"/webhooks/woocommerce/{shop['id']}"
    assert client.post(url, data=body, headers=request["headers"]).status_code == 401
    unsigned = {k: v for k, v in request["headers"].items() if k != "X-WC-Webhook-Signature"}
    assert client.post(url, data=body, headers=unsigned).status_code == 401
    assert client.post(f"/webhooks/woocommerce/{shop['id'] + 99}", data=body,
                       headers=request["headers"]).status_code == 404
    ping = json.loads((FIXTURES / "webhook_ping.request.json").read_text())
    resp = client.post(url, data=ping["body"], headers=ping["headers"])
    assert resp.status_code == 200
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0


# ---- callback rejections ---------------------------------------------------------------------
def keys_body(user_id, **extra):
    return json.dumps({"key_id": 1, "user_id": user_id, "consumer_key": "ck_x", "consumer_secret": "cs_y",
                       "key_permissions": "read_write", **extra})


def test_callback_refuses_unknown_expired_reused_and_malformed(app, client, db):
    assert client.post("/woocommerce/callback", data=keys_body("nope"),
                       content_type="application/json").status_code == 404
    assert client.post("/woocommerce/callback", data=b"{not json",
                       content_type="application/json").status_code == 400
    admin = db.execute("SELECT id FROM users WHERE username = 'admin'").fetchone()[0]
    state = start_connection(db, "https://shop.example", admin)
    db.execute("UPDATE oauth_states SET expires_at = '2000-01-01T00:00:00Z' WHERE state = ?",
               [state.partition(".")[0]])
    assert client.post("/woocommerce/callback", data=keys_body(state)).status_code == 400
    state = start_connection(db, "https://shop.example", admin)
    assert client.post("/woocommerce/callback", data=keys_body(state, key_permissions="read")).status_code == 400
    assert db.execute("SELECT COUNT(*) FROM shops").fetchone()[0] == 0
    resp = client.post("/woocommerce/callback", data=keys_body(state))
    assert resp.status_code == 200 and get_shop(db, "shop.example")["platform"] == "woocommerce"
    assert client.post("/woocommerce/callback", data=keys_body(state)).status_code == 400  # used once


def test_connect_needs_login_and_renders_the_page(client, login):
    assert client.get("/woocommerce/connect").status_code == 302
    login()
    page = client.get("/woocommerce/connect").get_data(as_text=True)
    assert "Connect a WooCommerce store" in page and 'name="consumer_key"' in page


# ---- the client: limits, retries, errors -----------------------------------------------------
def test_per_page_is_capped_by_the_store(app, db, store):
    client = connector_for(app, woo_shop(app, db, store)).client
    with pytest.raises(WooError) as err:
        client.get("orders", per_page=101)
    assert err.value.status == 400
    assert len(client.get("orders", per_page=100)) == 100


def test_429_and_5xx_are_retried(app, db, store):
    shop = woo_shop(app, db, store)
    store.fail_queue += [("/orders", 429), ("/orders", 503)]
    assert sync_shop(app, db, shop)["orders_new"] == 126
    assert store.fail_queue == []


def test_retries_follow_the_setting_and_the_inbox_makes_one_attempt(app, db, store):
    client = connector_for(app, woo_shop(app, db, store)).client
    client.retries = 0  # as the inbox sets it: one attempt per event
    store.fail_queue += [("/orders", 503), ("/orders", 503)]
    with pytest.raises(WooError, match="HTTP 503") as err:
        client.get("orders")
    assert err.value.status == 503 and len(store.fail_queue) == 1
    client.retries = 1
    assert client.get("orders") and store.fail_queue == []
    store.stop()
    with pytest.raises(WooError, match="cannot reach") as err:
        client.get("orders")
    assert err.value.status is None


def test_persistent_errors_fail_the_sync_clearly(app, db, store):
    shop = woo_shop(app, db, store)
    store.fail_queue += [("/products", 500)] * 10
    with pytest.raises(WooError, match="HTTP 500"):
        sync_shop(app, db, shop)


# ---- manual keys: CLI and form ---------------------------------------------------------------
def test_add_woocommerce_with_bad_keys_is_a_clear_error(runner, db, store):
    result = runner.invoke(args=["shop", "add-woocommerce", store.url, "--key", "ck_wrong", "--secret", "cs_wrong"])
    assert result.exit_code != 0
    assert "refused the API keys" in result.output and "Traceback" not in result.output
    assert db.execute("SELECT COUNT(*) FROM shops").fetchone()[0] == 0


def test_add_woocommerce_checks_keys_and_creates_webhooks(app, runner, db, store, live):
    result = runner.invoke(args=["shop", "add-woocommerce", store.url + "/", "--key", store.key,
                                 "--secret", store.secret, "--webhook-secret", "s3cret"])
    assert result.exit_code == 0, result.output
    shop = get_shop(db, "127.0.0.1")
    assert shop["currency"] == "USD" and shop["timezone"] == "America/Los_Angeles"
    assert load_credentials(app, shop)["webhook_secret"] == "s3cret"
    assert len(store.webhooks) == 5 and all(h["secret"] == "s3cret" for h in store.webhooks.values())
    assert [s for _, s in store.pings] == [200] * 5
    # adding again re-points the same webhooks instead of making twins
    runner.invoke(args=["shop", "add-woocommerce", store.url, "--key", store.key, "--secret", store.secret])
    assert len(store.webhooks) == 5


def test_add_woocommerce_offline_contacts_nothing(runner, db, store):
    result = runner.invoke(args=["shop", "add-woocommerce", store.url, "--key", "k", "--secret", "s", "--offline"])
    assert result.exit_code == 0 and store.requests == []
    assert get_shop(db, "127.0.0.1")["platform"] == "woocommerce"


def test_manual_key_form(client, login, db, store):
    login()
    page = client.get("/woocommerce/connect").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    bad = client.post("/woocommerce/manual", data={"csrf_token": token, "store_url": store.url,
                                                   "consumer_key": "ck_bad", "consumer_secret": "cs_bad"})
    assert bad.status_code == 400 and "refused the API keys" in bad.get_data(as_text=True)
    good = client.post("/woocommerce/manual", data={"csrf_token": token, "store_url": store.url,
                                                    "consumer_key": store.key, "consumer_secret": store.secret})
    assert good.status_code == 302 and good.headers["Location"].endswith("/shops/127.0.0.1")


def test_recent_orders_for_the_check_before_a_send(app, db, store):
    connector = connector_for(app, woo_shop(app, db, store))
    since = datetime(2026, 1, 1, tzinfo=UTC)
    registered = [o.external_id for o in connector.recent_orders({"external_id": "25"}, since)]
    guest = [o.external_id for o in connector.recent_orders({"external_id": "guest@example.org",
                                                            "email": "guest@example.org"}, since)]
    assert registered == ["801"] and guest == ["802", "803", "804"]


def test_sync_brings_product_link_picture_price_publication_and_stock(app, db, store):
    store.products[22].update(stock_status="outofstock")
    store.products[93].update(status="draft")
    shop = woo_shop(app, db, store)
    sync_shop(app, db, shop)
    rows = {r["external_id"]: r for r in db.query("SELECT * FROM products WHERE shop_id = ?", [shop["id"]])}
    premium = rows["794"]
    assert premium["url"] == "https://example.com/product/premium-quality-19/"
    assert premium["image_url"] == "https://example.com/wp-content/uploads/2017/03/T_2_front-4.jpg"
    assert premium["price_minor"] == 2199 and premium["variant_id"] == "794"
    assert (premium["published"], premium["in_stock"]) == (1, 1)
    assert (rows["22"]["published"], rows["22"]["in_stock"]) == (1, 0)
    assert (rows["93"]["published"], rows["93"]["in_stock"]) == (0, 1)


def test_variation_updates_are_not_products(app, client, db, store):
    shop = woo_shop(app, db, store, webhook_secret="s")
    from connectors.woocommerce.webhooks import handle_product
    handle_product(app, db, shop, {"id": 23, "type": "variation", "parent_id": 22, "name": "Black M"})
    handle_product(app, db, shop, {**store.products[22], "name": "Ship Your Idea 2"})
    assert db.execute("SELECT external_id, title FROM products WHERE shop_id = ?", [shop["id"]]).fetchall() == [
        ("22", "Ship Your Idea 2")]


def test_plain_http_key_errors_say_why(app, db, store):
    client = connector_for(app, woo_shop(app, db, store, consumer_secret="cs_wrong")).client
    with pytest.raises(WooError, match="only over https") as err:
        client.get("orders")
    assert err.value.status == 401


def test_changing_the_consent_source_judges_everyone_again(app, db, store):
    shop = woo_shop(app, db, store)
    save_setting(db, shop["id"], "woo_consent_source", "soft_opt_in")
    sync_shop(app, db, shop)
    consent = "SELECT accepts_marketing FROM customers WHERE shop_id = ? AND external_id = '25'"
    assert db.execute(consent, [shop["id"]]).fetchone()[0] == 1
    save_setting(db, shop["id"], "woo_consent_source", "none")
    assert sync_shop(app, db, shop)["full"] is True
    assert db.execute(consent, [shop["id"]]).fetchone()[0] == 0

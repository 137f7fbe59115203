"""The Shopify connector end to end against a fake Shopify on loopback: install, sync, webhooks,
discounts, uninstall and privacy topics, and every rejection."""
import json
import re
import time
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from app import webhooks as inbox
from app.db import connect
from app.shops import get_shop, load_credentials, store_credentials
from app.timeutil import to_db, utcnow
from connectors.codes import new_code
from connectors.shopify import bulk, oauth
from connectors.shopify.connector import ShopifyConnector
from connectors.shopify.errors import AuthError, ShopifyError
from connectors.shopify.install import save_shop
from connectors.shopify.mapping import consent, order_from_rest, order_status
from connectors.shopify.subscriptions import is_uninstalled
from connectors.sync import get_state, sync_shop
from flows.engine import tick
from tests.builders import History, at, ready_to_send
from tests.fake_shopify import FakeShopify, load_fixture_orders, sign_query, webhook_headers, winback_app_for
from tests.test_render import parse

SHOP = "winback-test.myshopify.com"


@pytest.fixture
def fake():
    server = FakeShopify(shop=SHOP).start()
    yield server
    server.stop()


@pytest.fixture
def sapp(tmp_path, fake):
    return winback_app_for(fake, tmp_path / "instance", DATABASE=str(tmp_path / "winback.db"))


@pytest.fixture
def sdb(sapp):
    handle = connect(sapp.config["DATABASE"])
    yield handle
    handle.close()


@pytest.fixture
def shop(sapp, sdb, fake):
    """A shop registered with an expiring token from the fake (webhooks subscribed)."""
    creds = oauth.exchange_code(sapp, SHOP, fake.issue_code())
    return save_shop(sapp, sdb, SHOP, creds, verify=True)


def connector(sapp, sdb, fake, shop):
    return ShopifyConnector(sapp, get_shop(sdb, shop["handle"]), db=sdb, sleep=fake.advance, poll_interval=0.01)


def synced(sapp, sdb, fake, shop, full=False):
    return sync_shop(sapp, sdb, get_shop(sdb, SHOP), full=full, connector=connector(sapp, sdb, fake, shop))


def deliver(client, fake, topic, payload, webhook_id=None, secret=None, shop=SHOP):
    body = json.dumps(payload).encode()
    headers = webhook_headers(secret or fake.secret, body, topic, shop, webhook_id or f"wh-{time.monotonic_ns()}")
    return client.post("/webhooks/shopify", data=body, headers=headers)


def signed(fake, **params):
    return sign_query(fake.secret, {"timestamp": str(int(time.time())), **params})


# ---- OAuth ----------------------------------------------------------------------------------
def test_query_hmac_matches_shopifys_documented_example():
    params = {"code": "0907a61c0c8d55e99db179b68161bc00", "shop": "some-shop.myshopify.com",
              "state": "0.6784241404160823", "timestamp": "1337178173"}
    assert oauth.query_hmac(params, "hush") == "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"


@pytest.mark.parametrize("domain", ["evil.com", "x.myshopify.com.evil.com", "-x.myshopify.com",
                                    "a.myshopify.com/../b", "", "a.b.myshopify.com", "evil.com#.myshopify.com"])
def test_shop_domains_are_checked_with_an_anchored_pattern(domain):
    assert oauth.valid_shop_domain(domain) is None
    assert oauth.valid_shop_domain("My-Shop.myshopify.com") == "my-shop.myshopify.com"


def test_install_to_callback_stores_encrypted_tokens_registers_webhooks_and_syncs(sapp, sdb, fake):
    fake.bulk_polls = 0  # the background sync polls with real sleeps
    client = sapp.test_client()
    resp = client.get("/shopify/install", query_string=signed(fake, shop=SHOP))
    assert resp.status_code == 302
    target = urlparse(resp.location)
    assert target.geturl().startswith(f"{fake.base}/{SHOP}/admin/oauth/authorize")
    query = parse_qs(target.query)
    assert query["client_id"] == [fake.client_id]
    assert query["redirect_uri"] == ["http://127.0.0.1:5000/shopify/callback"]
    assert set(query["scope"][0].split(",")) == set(oauth.SCOPES)
    state = query["state"][0]

    started = time.monotonic()
    resp = client.get("/shopify/callback", query_string=signed(fake, shop=SHOP, code=fake.issue_code(), state=state))
    assert resp.status_code == 200 and time.monotonic() - started < 5
    shop = get_shop(sdb, SHOP)
    assert shop["currency"] == "USD" and shop["timezone"] == "America/New_York"
    creds = load_credentials(sapp, shop)
    assert creds["access_token"].startswith("shpat_") and creds["refresh_token"] and creds["expires_at"]
    assert creds["access_token"] not in shop["credentials"]  # encrypted at rest
    for thread in sapp.extensions["winback_shopify_syncs"]:
        thread.join(20)
    assert {t for t, _ in fake.subscriptions} >= {"ORDERS_CREATE", "APP_UNINSTALLED", "REFUNDS_CREATE"}
    assert all(uri == "http://127.0.0.1:5000/webhooks/shopify" for _, uri in fake.subscriptions)
    run = sdb.execute("SELECT status, error FROM sync_runs WHERE shop_id = ?", [shop["id"]]).fetchone()
    assert run == ("ok", None)
    assert sdb.execute("SELECT COUNT(*) FROM orders WHERE shop_id = ?", [shop["id"]]).fetchone()[0] == len(fake.orders)
    # the state was single use
    replay = client.get("/shopify/callback", query_string=signed(fake, shop=SHOP, code=fake.issue_code(), state=state))
    assert replay.status_code == 403


def _begin(sapp, fake, client, shop=SHOP):
    resp = client.get("/shopify/install", query_string=signed(fake, shop=shop))
    return parse_qs(urlparse(resp.location).query)["state"][0]


def test_install_rejects_bad_hmac_and_bad_shop(sapp, fake):
    client = sapp.test_client()
    params = signed(fake, shop=SHOP)
    params["hmac"] = "0" * 64
    assert client.get("/shopify/install", query_string=params).status_code == 401
    assert client.get("/shopify/install", query_string={"shop": SHOP}).status_code == 401
    assert client.get("/shopify/install", query_string=signed(fake, shop="evil.example.com")).status_code == 400


def test_callback_rejects_unknown_state_other_browser_and_stale_timestamp(sapp, sdb, fake):
    client = sapp.test_client()
    state = _begin(sapp, fake, client)
    code = fake.issue_code()
    assert client.get("/shopify/callback", query_string=signed(fake, shop=SHOP, code=code,
                                                               state="made-up")).status_code == 403
    other_browser = sapp.test_client()
    assert other_browser.get("/shopify/callback", query_string=signed(fake, shop=SHOP, code=code,
                                                                      state=state)).status_code == 403
    state = _begin(sapp, fake, client)
    stale = sign_query(fake.secret, {"shop": SHOP, "code": code, "state": state,
                                     "timestamp": str(int(time.time()) - 3600)})
    assert client.get("/shopify/callback", query_string=stale).status_code == 401
    tampered = signed(fake, shop=SHOP, code=code, state=state)
    tampered["code"] = "other"
    assert client.get("/shopify/callback", query_string=tampered).status_code == 401
    assert get_shop(sdb, SHOP) is None


def test_state_is_bound_to_its_shop(sapp, sdb, fake):
    state = oauth.create_state(sdb, "other.myshopify.com")
    with pytest.raises(AuthError, match="another shop"):
        oauth.consume_state(sdb, state, state, SHOP)


# ---- sync -----------------------------------------------------------------------------------
def test_full_sync_by_bulk_maps_orders_customers_products(sapp, sdb, fake, shop):
    stats = synced(sapp, sdb, fake, shop)
    assert stats["full"] is True
    assert fake.log.count("BulkRun") == 3
    rows = {r["external_id"]: r for r in sdb.query("SELECT * FROM orders WHERE shop_id = ?", [shop["id"]])}
    assert len(rows) == len(fake.orders)
    first = rows["450789469"]  # partially refunded, with a discount code
    assert (first["status"], first["total_minor"], first["refunded_minor"]) == ("paid", 59894, 20900)
    assert json.loads(first["discount_codes"]) == ["tenoff"]
    assert first["created_at"] == "2008-01-10T16:00:00Z"  # processed_at
    assert rows["1073459983"]["status"] == "pending"
    assert rows["1073459980"]["status"] == "pending"  # partially paid
    assert rows["1073459972"]["status"] == "paid"
    assert rows["1073459976"]["currency"] == "EUR"
    assert rows["1073459976"]["customer_id"] is None  # guest without email
    lines = sdb.execute("SELECT COUNT(*) FROM order_lines WHERE shop_id = ?", [shop["id"]]).fetchone()[0]
    assert lines == sum(len(o["line_items"]) for o in fake.orders.values())
    brand, category = sdb.execute("SELECT brand, category FROM order_lines l JOIN orders o ON o.id = l.order_id"
                                  " WHERE o.external_id = '1073459972'").fetchone()
    assert (brand, category) == ("Apple", "Laptops")
    assert sdb.execute("SELECT category FROM products WHERE external_id = '632910392'").fetchone()[0] == "Phones"
    bob = next(sdb.query("SELECT * FROM customers WHERE external_id = '207119551'"))
    assert bob["email"] == "bob.norman@mail.example.com" and bob["accepts_marketing"] == 0
    assert get_state(sdb, shop["id"], "shopify_bulk_orders") is None
    # a second full sync changes nothing
    again = synced(sapp, sdb, fake, shop, full=True)
    assert again.get("orders_new", 0) == 0 and again.get("orders_updated", 0) == 0


def test_incremental_sync_reads_changed_records_by_pages(sapp, sdb, fake, shop):
    synced(sapp, sdb, fake, shop)
    sdb.execute("UPDATE sync_state SET value = '2025-01-01T00:00:00Z' WHERE resource = 'incremental_since'")
    order = fake.orders["1073459972"]
    order.update(financial_status="refunded", updated_at="2026-11-01T10:00:00Z")
    stats = synced(sapp, sdb, fake, shop)
    assert stats["full"] is False and "Orders" in fake.log and fake.log.count("BulkRun") == 3
    status = sdb.execute("SELECT status FROM orders WHERE external_id = '1073459972'").fetchone()[0]
    assert status == "refunded"


def test_throttled_queries_back_off_by_the_bucket_and_succeed(sapp, sdb, fake, shop):
    fake.bucket_available, fake.restore_rate, fake.query_cost = 0, 50, 100
    con = connector(sapp, sdb, fake, shop)
    before = fake.clock_offset
    assert con.shop_info()["currencyCode"] == "USD"
    assert "THROTTLED" in fake.log
    assert fake.clock_offset - before >= 1.9  # (100 - 0) / 50 s, waited on the fake clock


def test_network_errors_are_retried_with_backoff(sapp, sdb, fake, shop):
    fake.fail_graphql = 2
    con = connector(sapp, sdb, fake, shop)
    assert con.shop_info()["name"] == "Winback Test"
    assert fake.log.count("503") == 2

    class Flaky(requests.Session):
        calls = 0

        def post(self, *a, **kw):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise requests.ConnectionError("reset by peer")
            return super().post(*a, **kw)

    con.client.http = Flaky()
    assert con.shop_info()["name"] == "Winback Test" and Flaky.calls == 2
    fake.fail_graphql = 100
    with pytest.raises(ShopifyError, match="503"):
        con.shop_info()


def test_an_unreachable_shopify_is_given_up_after_the_retries_with_growing_waits(sapp, sdb, fake, shop):
    con = connector(sapp, sdb, fake, shop)
    waits = []
    con.client.sleep = waits.append

    class Down(requests.Session):
        def post(self, *a, **kw):
            raise requests.ConnectionError("connection refused")

    con.client.http = Down()
    with pytest.raises(ShopifyError, match="unreachable after 6 attempts: ConnectionError"):
        con.shop_info()
    assert waits == [0.5, 1, 2, 4, 8]


def test_a_crash_mid_bulk_resumes_the_same_operation(sapp, sdb, fake, shop):
    fake.fail_downloads = 50  # the orders export cannot be read: the sync fails
    fake.bulk_polls = 0
    with pytest.raises(ShopifyError):
        synced(sapp, sdb, fake, shop)
    op_id = get_state(sdb, shop["id"], "shopify_bulk_products")
    assert op_id  # persisted, not lost
    runs_before = fake.log.count("BulkRun")
    fake.fail_downloads = 0
    stats = synced(sapp, sdb, fake, shop)
    assert fake.log.count("BulkRun") == runs_before + 2  # products resumed; customers and orders started
    assert stats["orders_new"] == len(fake.orders)
    failed = sdb.execute("SELECT COUNT(*) FROM sync_runs WHERE status = 'failed'").fetchone()[0]
    assert failed == 1


def test_a_failed_bulk_operation_is_not_resumed_but_started_anew(sapp, sdb, fake, shop):
    fake.bulk_polls = 5
    con = connector(sapp, sdb, fake, shop)
    op_id = bulk.start_or_resume(con.client, con.state, "customers")
    fake.bulk_ops[int(op_id.rsplit("/", 1)[-1])]["failed"] = True
    with pytest.raises(ShopifyError, match="failed"):
        list(con.customers())
    assert get_state(sdb, shop["id"], "shopify_bulk_customers") is None
    fake.bulk_polls = 0
    assert len(list(con.customers())) == len(fake.customers)


def test_expiring_tokens_are_refreshed_and_stored(sapp, sdb, fake, shop):
    creds = load_credentials(sapp, get_shop(sdb, SHOP))
    creds["expires_at"] = to_db(utcnow() - timedelta(minutes=1))
    store_credentials(sapp, sdb, shop["id"], creds)
    con = connector(sapp, sdb, fake, shop)
    con.shop_info()
    assert "token:refresh_token" in fake.log
    new = load_credentials(sapp, get_shop(sdb, SHOP))
    assert new["access_token"] != creds["access_token"] and new["refresh_token"] != creds["refresh_token"]


# ---- webhooks -------------------------------------------------------------------------------
def test_webhook_rejections(sapp, fake, shop):
    client = sapp.test_client()
    order = load_fixture_orders()[1]
    assert deliver(client, fake, "orders/create", order, secret="wrong").status_code == 401
    assert deliver(client, fake, "orders/create", order, shop="nobody.myshopify.com").status_code == 401
    body = b"{not json"
    assert client.post("/webhooks/shopify", data=body,
                       headers=webhook_headers(fake.secret, body, "orders/create", SHOP, "x1")).status_code == 400
    body = b"\xff\xfe{"
    assert client.post("/webhooks/shopify", data=body,
                       headers=webhook_headers(fake.secret, body, "orders/create", SHOP, "x4")).status_code == 400
    body = b"{}"
    headers = webhook_headers(fake.secret, body, "orders/create", SHOP, "x2")
    del headers["X-Shopify-Topic"]
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 400
    headers = webhook_headers(fake.secret, body, "orders/create", SHOP, "x3")
    del headers["X-Shopify-Hmac-Sha256"]
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 401


def test_a_rotated_client_secret_still_accepts_the_previous_one(sapp, fake, shop):
    sapp.config.update(SHOPIFY_CLIENT_SECRET="the-new-secret", SHOPIFY_CLIENT_SECRET_PREVIOUS=fake.secret)
    client = sapp.test_client()
    order = load_fixture_orders()[1]

    def signed_by(secret):
        return sign_query(secret, {"shop": SHOP, "timestamp": str(int(time.time()))})

    def install(secret):
        return client.get("/shopify/install", query_string=signed_by(secret)).status_code

    for secret in ("the-new-secret", fake.secret):
        assert deliver(client, fake, "orders/create", order, secret=secret).status_code == 200
        assert oauth.verify_query(signed_by(secret), oauth.client_secrets(sapp)) == SHOP
        assert install(secret) == 302
    assert deliver(client, fake, "orders/create", order, secret="an-older-one").status_code == 401
    assert install("an-older-one") == 401
    sapp.config["SHOPIFY_CLIENT_SECRET_PREVIOUS"] = None  # the rotation is over
    assert deliver(client, fake, "orders/create", order, secret=fake.secret).status_code == 401
    assert install(fake.secret) == 401
    assert install("the-new-secret") == 302


def test_webhooks_are_stored_once_and_processed_in_the_background(sapp, sdb, fake, shop):
    client = sapp.test_client()
    order = dict(fake.orders["1073459972"])
    first = deliver(client, fake, "orders/create", order, webhook_id="dup-1")
    again = deliver(client, fake, "orders/create", order, webhook_id="dup-1")
    assert first.status_code == again.status_code == 200
    assert sdb.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0  # answered before processing
    assert inbox.process_due(sapp, sdb) == {"done": 1, "retry": 0, "failed": 0}
    row = next(sdb.query("SELECT * FROM orders WHERE external_id = '1073459972'"))
    assert row["status"] == "paid" and row["total_minor"] == 19900
    older = {**order, "financial_status": "pending", "updated_at": "2020-01-01T00:00:00Z"}
    deliver(client, fake, "orders/updated", older)  # late, out-of-order delivery
    assert inbox.process_due(sapp, sdb)["done"] == 1
    assert sdb.execute("SELECT status FROM orders WHERE external_id = '1073459972'").fetchone()[0] == "paid"

    product = {"id": 921728736, "title": "IPod Touch 8GB", "vendor": "Apple", "product_type": "Music players",
               "updated_at": "2026-11-01T00:00:00Z", "variants": [{"sku": "IPOD", "price": "199.00"}]}
    customer = dict(fake.customers["1073339470"], email_marketing_consent={
        "state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": "2026-11-01T00:00:00Z"})
    deliver(client, fake, "products/update", product)
    deliver(client, fake, "customers/update", customer)
    fake.orders["1073459972"]["refunds"] = [{"transactions": [{"kind": "refund", "status": "success", "amount": "50.00"}]}]
    deliver(client, fake, "refunds/create", {"id": 1, "order_id": 1073459972})
    assert inbox.process_due(sapp, sdb)["done"] == 3
    assert next(sdb.query("SELECT * FROM products WHERE external_id = '921728736'"))["category"] == "Music players"
    assert next(sdb.query("SELECT * FROM customers WHERE external_id = '1073339470'"))["accepts_marketing"] == 1
    assert sdb.execute("SELECT refunded_minor FROM orders WHERE external_id = '1073459972'").fetchone()[0] == 5000


def test_sync_brings_product_link_picture_price_publication_and_stock(sapp, sdb, fake, shop):
    fake.products["632910392"].update(status="DRAFT", onlineStoreUrl=None)
    fake.products["921728736"]["totalInventory"] = 0
    synced(sapp, sdb, fake, shop)  # bulk: variants come as lines of their own
    rows = {r["external_id"]: r for r in sdb.query("SELECT * FROM products WHERE shop_id = ?", [shop["id"]])}
    ipod = rows["921728736"]
    assert ipod["url"] == "https://shop.winback-test.example/products/p921728736"
    assert ipod["image_url"] == "https://cdn.shopify.example/files/p921728736.jpg"
    assert ipod["price_minor"] == 19900 and ipod["variant_id"] == "447654529"
    assert (ipod["published"], ipod["in_stock"]) == (1, 0)
    assert (rows["632910392"]["published"], rows["632910392"]["in_stock"]) == (0, 1)
    again = synced(sapp, sdb, fake, shop, full=True)
    assert again.get("products_updated", 0) == 0  # nothing changed, no row touched
    # an incremental sync (page query, variants nested) brings it back in stock at a new price
    fake.products["921728736"].update(totalInventory=3, updatedAt="2030-01-01T00:00:00Z")
    fake.products["921728736"]["variants"]["nodes"][0]["price"] = "179.00"
    synced(sapp, sdb, fake, shop)
    row = next(sdb.query("SELECT * FROM products WHERE external_id = '921728736'"))
    assert (row["in_stock"], row["price_minor"], row["variant_id"]) == (1, 17900, "447654529")
    assert row["url"] == "https://shop.winback-test.example/products/p921728736"


def test_product_webhook_keeps_the_link_and_updates_stock(sapp, sdb, fake, shop):
    synced(sapp, sdb, fake, shop)
    client = sapp.test_client()
    product = {"id": 921728736, "title": "IPod Touch 8GB", "vendor": "Apple", "product_type": "Music players",
               "status": "active", "published_at": "2026-01-01T00:00:00Z", "updated_at": "2031-01-01T00:00:00Z",
               "image": {"src": "https://cdn.shopify.example/files/new.jpg"},
               "variants": [{"id": 447654529, "sku": "IPOD", "price": "199.00", "inventory_management": "shopify",
                             "inventory_quantity": 0}]}
    deliver(client, fake, "products/update", product)
    assert inbox.process_due(sapp, sdb)["done"] == 1
    row = next(sdb.query("SELECT * FROM products WHERE external_id = '921728736'"))
    assert (row["in_stock"], row["published"], row["image_url"]) == (0, 1, "https://cdn.shopify.example/files/new.jpg")
    assert row["url"] == "https://shop.winback-test.example/products/p921728736"  # not in the body: kept


def test_discount_codes_are_personal_single_use_and_expiring(sapp, sdb, fake, shop):
    con = connector(sapp, sdb, fake, shop)
    expires = utcnow() + timedelta(days=4)
    code = con.create_discount(code=None, customer={"external_id": "207119551"}, percent=Decimal(15),
                               free_shipping=False, expires_at=expires)
    assert re.fullmatch(r"WB-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{2}", code) and new_code() != code
    made = fake.discounts[-1]
    assert made["customerGets"]["value"]["percentage"] == 0.15
    assert made["context"] == {"customers": {"add": ["gid://shopify/Customer/207119551"]}}
    assert made["usageLimit"] == 1 and made["appliesOncePerCustomer"] is True
    assert made["endsAt"] == to_db(expires)
    con.create_discount(code="SHIPFREE1", customer={"external_id": "207119551"}, percent=None,
                        free_shipping=True, expires_at=expires)
    assert fake.discounts[-1]["kind"] == "free_shipping"
    with pytest.raises(ShopifyError, match="unique"):
        con.create_discount(code=code, customer={"external_id": "1"}, percent=Decimal(10),
                            free_shipping=False, expires_at=expires)


def test_a_fixed_amount_code_with_a_minimum_order(sapp, sdb, fake, shop):
    """An amount off the order (split across its items) from a minimum subtotal; free shipping from a
    minimum too. Shopify's Decimal scalar travels as a string."""
    con = connector(sapp, sdb, fake, shop)
    expires = utcnow() + timedelta(days=4)
    con.create_discount(code="WBAMOUNT1", customer={"external_id": "207119551"}, percent=None, free_shipping=False,
                        expires_at=expires, amount=Decimal("10.00"), min_order=Decimal("50.00"))
    made = fake.discounts[-1]
    assert made["kind"] == "basic" and made["code"] == "WBAMOUNT1"
    assert made["customerGets"] == {"value": {"discountAmount": {"amount": "10.00", "appliesOnEachItem": False}},
                                    "items": {"all": True}}
    assert made["minimumRequirement"] == {"subtotal": {"greaterThanOrEqualToSubtotal": "50.00"}}
    assert made["usageLimit"] == 1 and made["appliesOncePerCustomer"] is True and made["endsAt"] == to_db(expires)
    assert made["context"] == {"customers": {"add": ["gid://shopify/Customer/207119551"]}}
    con.create_discount(code="WBSHIP50", customer={"external_id": "207119551"}, percent=None, free_shipping=True,
                        expires_at=expires, min_order=Decimal("50.00"))
    assert fake.discounts[-1]["kind"] == "free_shipping"
    assert fake.discounts[-1]["minimumRequirement"] == {"subtotal": {"greaterThanOrEqualToSubtotal": "50.00"}}
    con.create_discount(code="WBPCT", customer={"external_id": "207119551"}, percent=Decimal(15),
                        free_shipping=False, expires_at=expires)
    assert "minimumRequirement" not in fake.discounts[-1]  # no minimum: none sent
    with pytest.raises(ValueError, match="more than 0"):
        con.create_discount(code="WBZERO", customer={"external_id": "207119551"}, percent=None,
                            free_shipping=False, expires_at=expires, amount=Decimal(0))
    assert fake.discounts[-1]["code"] == "WBPCT"


def test_unsubscribes_are_written_back(sapp, sdb, fake, shop):
    connector(sapp, sdb, fake, shop).write_unsubscribe({"external_id": "207119551"})
    assert fake.consents == [("207119551", "UNSUBSCRIBED")]


def test_uninstall_then_privacy_topics(sapp, sdb, fake, shop):
    synced(sapp, sdb, fake, shop)
    client = sapp.test_client()
    deliver(client, fake, "customers/data_request", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": 207119551, "email": "bob.norman@mail.example.com"},
        "orders_requested": [450789469], "data_request": {"id": 9999}})
    deliver(client, fake, "app/uninstalled", {"id": 1, "domain": SHOP})
    assert inbox.process_due(sapp, sdb)["done"] == 2
    path = sdb.execute("SELECT file FROM privacy_requests WHERE topic = 'customers/data_request'").fetchone()[0]
    export = json.load(open(path))
    assert export["records"][0]["customer"]["email"] == "bob.norman@mail.example.com"
    assert {o["external_id"] for o in export["records"][0]["orders"]} >= {"450789469"}
    assert get_shop(sdb, SHOP)["credentials"] is None and is_uninstalled(sdb, shop["id"])

    orders_before = sdb.execute("SELECT COUNT(*), SUM(total_minor) FROM orders").fetchone()
    deliver(client, fake, "customers/redact", {"shop_id": 1, "shop_domain": SHOP,
                                               "customer": {"id": 207119551, "email": "bob.norman@mail.example.com"},
                                               "orders_to_redact": [450789469]})
    assert inbox.process_due(sapp, sdb)["done"] == 1
    assert sdb.execute("SELECT COUNT(*) FROM customers WHERE email = 'bob.norman@mail.example.com'").fetchone()[0] == 0
    assert sdb.execute("SELECT customer_id FROM orders WHERE external_id = '450789469'").fetchone()[0] is None
    assert sdb.execute("SELECT COUNT(*), SUM(total_minor) FROM orders").fetchone() == orders_before
    assert sdb.execute("SELECT COUNT(*) FROM webhook_events WHERE instr(payload, 'bob.norman') > 0").fetchone()[0] == 0

    deliver(client, fake, "shop/redact", {"shop_id": 1, "shop_domain": SHOP})
    assert inbox.process_due(sapp, sdb)["done"] == 1
    assert sdb.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0
    assert sdb.execute("SELECT COUNT(*), SUM(total_minor) FROM orders").fetchone() == orders_before


# ---- mapping --------------------------------------------------------------------------------
@pytest.mark.parametrize("financial,cancelled,expected", [
    ("paid", None, "paid"), ("partially_refunded", None, "paid"), ("refunded", None, "refunded"),
    ("pending", None, "pending"), ("authorized", None, "pending"), ("PARTIALLY_PAID", None, "pending"),
    ("voided", None, "cancelled"), ("expired", None, "cancelled"), ("paid", "2025-01-01T00:00:00Z", "cancelled")])
def test_order_status_mapping(financial, cancelled, expected):
    assert order_status(financial, cancelled) == expected


def test_consent_and_guest_mapping():
    assert consent("subscribed") is True and consent("UNSUBSCRIBED") is False
    assert consent("not_subscribed") is False and consent(None) is None
    orders = {str(o["id"]): o for o in load_fixture_orders()}
    guest = order_from_rest(orders["1073459966"])
    assert guest.customer is None or guest.customer.external_id is None
    refunded = order_from_rest(orders["450789469"])
    assert refunded.refunded == Decimal("209.00") and refunded.discount_codes == ["TENOFF"]
    test_order = order_from_rest({**orders["1073459972"], "test": True})
    assert test_order.test is True


# ---- CLI ------------------------------------------------------------------------------------
def test_cli_add_shopify(sapp, sdb, fake):
    runner = sapp.test_cli_runner()
    result = runner.invoke(args=["shop", "add-shopify", "evil.example.com", "--token", "x"])
    assert result.exit_code != 0 and "not a shop domain" in result.output
    result = runner.invoke(args=["shop", "add-shopify", SHOP])
    assert result.exit_code != 0 and "exactly one" in result.output
    result = runner.invoke(args=["shop", "add-shopify", SHOP, "--token", "bogus"])
    assert result.exit_code != 0 and "HTTP 401" in result.output
    result = runner.invoke(args=["shop", "add-shopify", SHOP, "--client-credentials"])
    assert result.exit_code == 0, result.output
    creds = load_credentials(sapp, get_shop(sdb, SHOP))
    assert creds["grant"] == "client_credentials" and creds["expires_at"]
    assert len(fake.subscriptions) == 9
    result = runner.invoke(args=["shop", "add-shopify", "offline.myshopify.com", "--client-credentials", "--offline"])
    assert result.exit_code == 0 and "not checked" in result.output
    assert load_credentials(sapp, get_shop(sdb, "offline.myshopify.com")) == {"grant": "client_credentials"}


def test_cli_sync_through_the_registry_and_after_uninstall(sapp, sdb, fake):
    fake.bulk_polls = 0
    token = json.loads(requests.post(f"{fake.base}/{SHOP}/admin/oauth/access_token", json={
        "client_id": fake.client_id, "client_secret": fake.secret, "code": fake.issue_code()}).text)["access_token"]
    runner = sapp.test_cli_runner()
    assert runner.invoke(args=["shop", "add-shopify", SHOP, "--token", token, "--offline"]).exit_code == 0
    assert fake.subscriptions == []  # --offline: the sync registers them
    result = runner.invoke(args=["sync", "--shop", SHOP])
    assert result.exit_code == 0, result.output
    assert f"{len(fake.orders)} new" in result.output and len(fake.subscriptions) == 9
    client = sapp.test_client()
    deliver(client, fake, "app/uninstalled", {"id": 1, "domain": SHOP})
    inbox.process_due(sapp, sdb)
    result = runner.invoke(args=["sync", "--shop", SHOP])
    assert result.exit_code != 0 and "uninstalled" in str(result.exception or result.output)


def test_scheduler_polls_installed_shops_only(sapp, sdb, fake, shop):
    from app.scheduler import tick_all
    fake.bulk_polls = 0
    results = tick_all(sapp, holder="test-scheduler")
    assert "error" not in results[SHOP]
    assert sdb.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == len(fake.orders)
    deliver(sapp.test_client(), fake, "app/uninstalled", {"id": 1})
    inbox.process_due(sapp, sdb)
    assert SHOP not in tick_all(sapp, holder="test-scheduler")


def test_a_delivered_shopify_email_applies_its_code_through_the_discount_link(sapp, sdb, fake, shop, smtp_server):
    """The whole way on a Shopify shop (the fake Shopify on loopback creates the code): the email's
    button is a tracked link whose redirect is the discount link on the primary domain the shop
    query reported at install, with that code."""
    assert shop["base_url"] == "https://shop.winback-test.example"
    smtp_server.reset()
    sapp.config["SMTP_URL"] = smtp_server.url
    h = History(sdb, shop=shop).repeat("207119551", [0, 40], total="20")
    for i in range(9):
        h.repeat(f"90{i}", [0, 40, 90], total="100")
    ready_to_send(sdb, h.write())
    result = tick(sapp, sdb, shop, at(101, 16), connector=connector(sapp, sdb, fake, shop))
    assert result["sent"] == 1, result
    [mail] = smtp_server.messages
    html = mail.get_body(preferencelist=("html",)).get_content()
    [button] = [u for u in parse(html).links if u.startswith("http://127.0.0.1:5000/c/")]
    code = sdb.execute("SELECT code FROM discount_codes").fetchone()[0]
    assert fake.discounts[-1]["code"] == code
    response = sapp.test_client().get(button[len("http://127.0.0.1:5000"):],
                                      headers={"User-Agent": "Mozilla/5.0 Chrome/131.0"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"https://shop.winback-test.example/discount/{code}?redirect=%2F"
    assert sdb.execute("SELECT link, suspect FROM clicks").fetchall() == [("shop", 0)]


def test_the_primary_domain_is_taken_only_when_it_is_an_https_address(sapp, sdb, fake):
    fake.primary_domain = "javascript:alert(1)"
    creds = oauth.exchange_code(sapp, SHOP, fake.issue_code())
    assert save_shop(sapp, sdb, SHOP, creds, verify=True)["base_url"] is None
    fake.primary_domain = "https://beans.example/"
    creds = oauth.exchange_code(sapp, SHOP, fake.issue_code())
    assert save_shop(sapp, sdb, SHOP, creds, verify=True)["base_url"] == "https://beans.example"

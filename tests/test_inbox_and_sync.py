"""The webhook inbox (persist first, dedupe, retry, visible errors) and the generic sync routine."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from app import webhooks
from app.shops import create_shop
from app.timeutil import utcnow
from connectors.base import Connector, CustomerRecord, OrderRecord, ProductRecord
from connectors.sync import CURSOR, get_state, sync_shop


@pytest.fixture
def handlers(app):
    """The app's own handler table (test topics added to it stay with this app)."""
    def add(platform, topic, write, fetch=None):
        app.extensions["winback_inbox"][(platform, topic)] = webhooks.Handler(write=write, fetch=fetch)
    return add


def test_duplicate_deliveries_are_stored_once(db):
    shop = create_shop(db, "s.example", "woocommerce")
    assert webhooks.record(db, shop["id"], "test", "orders/create", "d-1", {"id": 1}) is True
    assert webhooks.record(db, shop["id"], "test", "orders/create", "d-1", {"id": 1}) is False
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 1


def test_processing_runs_the_handler_once(app, db, handlers):
    shop = create_shop(db, "s.example", "woocommerce")
    seen = []
    handlers("test", "orders/create", lambda app, db, shop, payload: seen.append(payload["id"]))
    webhooks.record(db, shop["id"], "test", "orders/create", "d-1", {"id": 7})
    assert webhooks.process_due(app, db) == {"done": 1, "retry": 0, "failed": 0}
    assert webhooks.process_due(app, db) == {"done": 0, "retry": 0, "failed": 0}
    assert seen == [7]


def test_a_failing_handler_is_retried_with_the_error_visible(app, db, handlers):
    shop = create_shop(db, "s.example", "woocommerce")
    calls = []

    def flaky(app, db, shop, payload):
        calls.append(1)
        db.execute("INSERT INTO customers (shop_id, external_id) VALUES (?, 'half-done')", [shop["id"]])
        if len(calls) == 1:
            raise RuntimeError("platform timed out")

    handlers("test", "orders/create", flaky)
    webhooks.record(db, shop["id"], "test", "orders/create", "d-1", {"id": 7})
    assert webhooks.process_due(app, db)["retry"] == 1
    # the failed attempt left nothing behind
    assert db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0
    assert webhooks.health(db, shop["id"])["last_error"] == "RuntimeError: platform timed out"
    assert webhooks.process_due(app, db)["done"] == 0  # not due yet: backoff
    assert webhooks.process_due(app, db, now=utcnow() + timedelta(minutes=1))["done"] == 1
    assert db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 1


def test_an_event_without_handler_stays_pending_with_the_error_visible(app, db, handlers):
    shop = create_shop(db, "s.example", "woocommerce")
    webhooks.record(db, shop["id"], "test", "nobody/listens", "d-2", {"id": 3})
    later = utcnow()
    for _ in range(webhooks.MAX_ATTEMPTS + 2):  # never given up, however often it is tried
        later += timedelta(hours=7)
        assert webhooks.process_due(app, db, now=later) == {"done": 0, "retry": 1, "failed": 0}
    health = webhooks.health(db, shop["id"])
    assert health["failed"] == 0 and health["waiting"] + health["retrying"] == 1
    assert "no handler for test topic 'nobody/listens'" in health["last_error"]
    # a version that knows the topic processes it
    seen = []
    handlers("test", "nobody/listens", lambda app, db, shop, payload: seen.append(payload["id"]))
    assert webhooks.process_due(app, db, now=later + timedelta(hours=1))["done"] == 1
    assert seen == [3]


def test_a_fetch_step_runs_outside_the_write_lock(app, db, handlers):
    """The network step of a handler holds no lock: another connection can write meanwhile."""
    from app.db import connect, write_transaction
    shop = create_shop(db, "s.example", "woocommerce")
    other = connect(app.config["DATABASE"])
    other.conn.execute("PRAGMA busy_timeout = 0")  # would fail at once if the lock were held

    def fetch(app, db, shop, payload):
        with write_transaction(other):
            other.execute("INSERT INTO customers (shop_id, external_id) VALUES (?, 'written-meanwhile')",
                          [shop["id"]])
        return {"fetched": payload["id"] * 2}

    def write(app, db, shop, data):
        db.execute("INSERT INTO customers (shop_id, external_id) VALUES (?, ?)", [shop["id"], str(data["fetched"])])

    handlers("test", "orders/create", write, fetch)
    webhooks.record(db, shop["id"], "test", "orders/create", "d-3", {"id": 21})
    assert webhooks.process_due(app, db)["done"] == 1
    other.close()
    assert {r[0] for r in db.execute("SELECT external_id FROM customers")} == {"written-meanwhile", "42"}


def test_every_subscribed_topic_has_a_handler_in_a_bare_app(tmp_path):
    """No import side effect is needed: a fresh app knows every platform's topics and connectors."""
    from app import create_app
    from connectors.registry import connector_for
    from connectors.shopify.install import TOPICS as SHOPIFY_TOPICS
    from connectors.shopify.webhooks import COMPLIANCE_TOPICS
    from connectors.woocommerce.webhooks import SETUP_TOPIC, TOPICS as WOO_TOPICS
    bare = create_app({"INSTANCE_PATH": str(tmp_path / "i")})
    for topic in SHOPIFY_TOPICS + COMPLIANCE_TOPICS:
        assert webhooks.handler_for(bare, "shopify", topic) is not None, topic
    for topic in WOO_TOPICS + (SETUP_TOPIC,):
        assert webhooks.handler_for(bare, "woocommerce", topic) is not None, topic
    with pytest.raises(LookupError):
        connector_for(bare, {"platform": "demo", "handle": "demo"})
    assert set(bare.extensions["winback_connectors"]) == {"shopify", "woocommerce"}


class FakeConnector(Connector):
    platform = "import"

    def __init__(self, orders, fail=False):
        super().__init__({})
        self._orders, self.fail, self.since_seen = orders, fail, []

    def products(self, since=None):
        return iter([ProductRecord("P1", title="Beans", brand="Roastery")])

    def customers(self, since=None):
        return iter([CustomerRecord("C1", email="c1@example.com")])

    def orders(self, since=None):
        self.since_seen.append(since)
        for order in self._orders:
            yield order
        if self.fail:
            raise ConnectionError("store went away")


def _order(oid):
    return OrderRecord(oid, datetime(2026, 1, 1, tzinfo=timezone.utc), Decimal("10"), "EUR",
                       customer=CustomerRecord("C1", email="c1@example.com"))


def test_sync_is_incremental_after_the_first_and_a_failure_keeps_the_cursor(app, db):
    shop = create_shop(db, "s.example", "woocommerce")
    first = sync_shop(app, db, shop, connector=FakeConnector([_order("1")]))
    assert first["full"] is True and first["orders_new"] == 1
    cursor = get_state(db, shop["id"], CURSOR)
    assert cursor is not None
    failing = FakeConnector([_order("2")], fail=True)
    with pytest.raises(ConnectionError):
        sync_shop(app, db, shop, connector=failing)
    assert failing.since_seen[0] is not None  # incremental
    assert get_state(db, shop["id"], CURSOR) == cursor  # not advanced past what was missed
    runs = list(db.query("SELECT status, error FROM sync_runs ORDER BY id"))
    assert runs[-1]["status"] == "failed" and "store went away" in runs[-1]["error"]

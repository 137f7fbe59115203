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
    from connectors.shopify.subscriptions import TOPICS as SHOPIFY_TOPICS
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


def test_deliveries_failed_for_want_of_a_handler_are_processed_after_the_upgrade(app, tmp_path):
    """Before explicit registration, a process that had not imported a platform failed its events
    ("no handler"); the upgrade gives them back to the inbox, other failures stay failed."""
    from app.db import connect
    from app.migrations import migrations
    old = connect(str(tmp_path / "old.db"))
    migrations.apply(old, stop_before="0010_inbox")
    shop = create_shop(old, "s.example", "woocommerce")
    for delivery, error in (("lost", "LookupError: no handler for woocommerce topic 'customer.updated'"),
                            ("broken", "KeyError: 'id'")):
        webhooks.record(old, shop["id"], "woocommerce", "customer.updated", delivery,
                        {"id": 12, "email": "back@example.com", "date_modified_gmt": "2026-01-01T00:00:00"})
        old.execute("UPDATE webhook_events SET status = 'failed', attempts = 8, last_error = ? WHERE delivery_id = ?",
                    [error, delivery])
    migrations.apply(old)
    app.config["DATABASE"] = str(tmp_path / "old.db")
    assert webhooks.process_due(app, old) == {"done": 1, "retry": 0, "failed": 0}
    assert dict(old.execute("SELECT delivery_id, status FROM webhook_events").fetchall()) == {
        "lost": "done", "broken": "failed"}
    assert old.execute("SELECT email FROM customers WHERE external_id = '12'").fetchone() == ("back@example.com",)
    old.close()

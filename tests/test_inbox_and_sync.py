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
def handlers():
    saved = dict(webhooks.HANDLERS)
    yield webhooks.HANDLERS
    webhooks.HANDLERS.clear()
    webhooks.HANDLERS.update(saved)


def test_duplicate_deliveries_are_stored_once(db):
    shop = create_shop(db, "s.example", "woocommerce")
    assert webhooks.record(db, shop["id"], "test", "orders/create", "d-1", {"id": 1}) is True
    assert webhooks.record(db, shop["id"], "test", "orders/create", "d-1", {"id": 1}) is False
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 1


def test_processing_runs_the_handler_once(app, db, handlers):
    shop = create_shop(db, "s.example", "woocommerce")
    seen = []
    webhooks.handler("test", "orders/create")(lambda app, db, shop, payload: seen.append(payload["id"]))
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

    webhooks.handler("test", "orders/create")(flaky)
    webhooks.record(db, shop["id"], "test", "orders/create", "d-1", {"id": 7})
    assert webhooks.process_due(app, db)["retry"] == 1
    # the failed attempt left nothing behind
    assert db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0
    assert webhooks.health(db, shop["id"])["last_error"] == "RuntimeError: platform timed out"
    assert webhooks.process_due(app, db)["done"] == 0  # not due yet: backoff
    assert webhooks.process_due(app, db, now=utcnow() + timedelta(minutes=1))["done"] == 1
    assert db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 1


def test_an_event_without_handler_fails_visibly(app, db, handlers):
    shop = create_shop(db, "s.example", "woocommerce")
    webhooks.record(db, shop["id"], "test", "nobody/listens", "d-2", {})
    assert webhooks.process_due(app, db)["failed"] == 1
    assert webhooks.health(db, shop["id"])["failed"] == 1


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

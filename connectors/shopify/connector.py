"""The Shopify Connector: reads by bulk export or incremental pages, writes codes and consent."""
from __future__ import annotations

import threading
import time
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Iterator

from app.db import connect
from app.shops import load_credentials, store_credentials
from app.timeutil import to_db, utcnow

from .. import pipeline
from ..base import Connector, CustomerRecord, OrderRecord, ProductRecord
from ..codes import new_code
from ..store import PreparedOrders, prepare_orders
from ..sync import get_state, set_state
from . import bulk, oauth
from .errors import ShopifyError
from .graphql import GraphQL, document, user_errors
from .mapping import customer_from_graphql, gid, order_from_graphql, product_from_graphql
from .subscriptions import register_webhooks, webhooks_registered

# From this many objects (orders and their lines) on, a bulk export of orders is downloaded and
# parsed in a second process while the sync writes (connectors/pipeline.py).
PARALLEL_MIN_OBJECTS = 100_000


class _State:
    """sync_state access for one shop."""

    def __init__(self, db, shop_id):
        self.db, self.shop_id = db, shop_id

    def get(self, key):
        return get_state(self.db, self.shop_id, key)

    def set(self, key, value):
        set_state(self.db, self.shop_id, key, value)


class ShopifyConnector(Connector):
    """One Shopify shop. `sleep` and `poll_interval` are injectable so tests run without waiting."""

    platform = "shopify"

    def __init__(self, app, shop: dict, *, db=None, sleep=time.sleep, poll_interval: float = 2.0):
        super().__init__(shop)
        self.app = app
        self.db = db or connect(app.config["DATABASE"])
        self.domain = shop["handle"]
        self.creds = load_credentials(app, shop)
        self.sleep = sleep
        self.poll_interval = poll_interval
        self.state = _State(self.db, shop["id"])
        self._lock = threading.Lock()
        self.client = GraphQL(
            f"{oauth.admin_base(app, self.domain)}/admin/api/{app.config['SHOPIFY_API_VERSION']}/graphql.json",
            self._token, on_unauthorized=self._force_refresh, sleep=sleep)

    # ---- credentials ---------------------------------------------------------------------------
    def _token(self) -> str:
        with self._lock:
            if not self.creds.get("access_token") and self.creds.get("grant") == "client_credentials":
                self._refresh()
            elif oauth.needs_refresh(self.creds):
                self._refresh()
            if not self.creds.get("access_token"):
                raise ShopifyError(f"shop {self.domain} has no access token (uninstalled?)")
            return self.creds["access_token"]

    def _force_refresh(self):
        with self._lock:
            if self.creds.get("refresh_token") or self.creds.get("grant") == "client_credentials":
                self._refresh()

    def _refresh(self):
        self.creds = oauth.refresh(self.app, self.domain, self.creds)
        if self.shop.get("id") is not None:  # a probe before the shop exists keeps them in memory
            store_credentials(self.app, self.db, self.shop["id"], self.creds)

    # ---- reading -------------------------------------------------------------------------------
    def shop_info(self) -> dict:
        """Name, currency, time zone of the shop (also proves the credentials work)."""
        return self.client.execute(document("shop"))["shop"]

    def _pages(self, name: str, key: str, since: datetime) -> Iterator[dict]:
        cursor = None
        query = f"updated_at:>'{to_db(since)}'"
        while True:
            conn = self.client.execute(document(f"page_{name}"), {"cursor": cursor, "query": query})[key]
            yield from conn["nodes"]
            if not conn["pageInfo"]["hasNextPage"]:
                return
            cursor = conn["pageInfo"]["endCursor"]

    def _bulk(self, resource: str) -> Iterator[bytes]:
        op_id = bulk.start_or_resume(self.client, self.state, resource)
        try:
            op = bulk.wait(self.client, op_id, self.sleep, self.poll_interval)
            yield from bulk.stream_lines(op.get("url"), sleep=self.sleep)
        except bulk.BulkGone:
            self.state.set(bulk.state_key(resource), None)  # the next sync starts a new export
            raise
        self.state.set(bulk.state_key(resource), None)

    def products(self, since=None) -> Iterator[ProductRecord]:
        """Products (vendor = brand, product type = category): bulk export, or pages since `since`."""
        self._ensure_webhooks()
        if since is None:
            yield from bulk.stitch_products(self._bulk("products"))
            return
        for node in self._pages("products", "products", since):
            yield product_from_graphql(node)

    def customers(self, since=None) -> Iterator[CustomerRecord]:
        """Customers with email consent: bulk export, or pages since `since`."""
        nodes = (bulk.objects(self._bulk("customers")) if since is None
                 else self._pages("customers", "customers", since))
        for node in nodes:
            rec = customer_from_graphql(node)
            if rec is not None:
                yield rec

    def orders(self, since=None) -> Iterator[OrderRecord]:
        """Orders with lines: bulk export stitched by `__parentId`, or pages since `since`."""
        if since is None:
            yield from bulk.stitch_orders(self._bulk("orders"))
            return
        for node in self._pages("orders", "orders", since):
            yield order_from_graphql(node)

    def prepared_orders(self, since=None, batch_size: int = 1000) -> Iterator[PreparedOrders]:
        """`orders(since)` in batches ready for `ShopWriter.write_prepared`; a large bulk export is
        downloaded and parsed in a second process meanwhile."""
        timezone, currency = self.shop["timezone"], self.shop["currency"]
        if since is None:
            op_id = bulk.start_or_resume(self.client, self.state, "orders")
            op = bulk.wait(self.client, op_id, self.sleep, self.poll_interval)
            if op.get("url") and int(op.get("objectCount") or 0) >= PARALLEL_MIN_OBJECTS:
                try:
                    yield from pipeline.Pipeline(bulk.read_orders, (op["url"],), timezone=timezone, currency=currency,
                                        batch_size=batch_size)
                except bulk.BulkGone:
                    self.state.set(bulk.state_key("orders"), None)  # the next sync starts a new export
                    raise
                self.state.set(bulk.state_key("orders"), None)
                return
        records = iter(self.orders(since))
        while batch := list(islice(records, batch_size)):
            yield prepare_orders(batch, timezone, currency)

    def order(self, order_id) -> OrderRecord | None:
        """One order, read live (after a refund)."""
        node = self.client.execute(document("order"), {"id": gid("Order", order_id)}).get("order")
        return order_from_graphql(node) if node else None

    def recent_orders(self, customer: dict, since: datetime) -> Iterator[OrderRecord]:
        """The customer's orders updated since `since`, read live before a send."""
        query = f"customer_id:{customer['external_id']} AND updated_at:>'{to_db(since)}'"
        data = self.client.execute(document("page_orders"), {"cursor": None, "query": query})
        for node in data["orders"]["nodes"]:
            yield order_from_graphql(node)

    # ---- writing -------------------------------------------------------------------------------
    def create_discount(self, *, code: str | None, customer: dict, percent: Decimal | None,
                        free_shipping: bool, expires_at: datetime, amount: Decimal | None = None,
                        min_order: Decimal | None = None) -> str:
        """A single-use code for this customer only: a percentage off, a fixed amount off the order
        (split across its items, in the shop's currency) or free shipping; with `min_order`, only on
        a subtotal of at least that much."""
        code = code or new_code()
        common = {
            "title": f"Winback {code}", "code": code, "startsAt": to_db(utcnow()), "endsAt": to_db(expires_at),
            "context": {"customers": {"add": [gid("Customer", customer["external_id"])]}},
            "usageLimit": 1, "appliesOncePerCustomer": True,
        }
        if min_order is not None:
            if not Decimal(min_order) > 0:
                raise ValueError("a minimum order is more than 0")
            common["minimumRequirement"] = {"subtotal": {"greaterThanOrEqualToSubtotal": _decimal(min_order)}}
        if free_shipping:
            payload = self.client.execute(document("discount_freeship"), {"input": {
                **common, "destination": {"all": True},
                "combinesWith": {"orderDiscounts": True, "productDiscounts": True}}})
            user_errors(payload.get("discountCodeFreeShippingCreate"), f"discount code {code}")
            return code
        if amount is not None:
            if not Decimal(amount) > 0:
                raise ValueError("an amount off is more than 0")
            value = {"discountAmount": {"amount": _decimal(amount), "appliesOnEachItem": False}}
        elif percent is None or not (0 < Decimal(percent) <= 100):
            raise ValueError("a discount needs a percentage between 0 and 100, an amount, or free shipping")
        else:
            value = {"percentage": float((Decimal(percent) / 100).quantize(Decimal("0.0001")))}
        payload = self.client.execute(document("discount_basic"), {"input": {
            **common, "customerGets": {"value": value, "items": {"all": True}},
            "combinesWith": {"orderDiscounts": False, "productDiscounts": False, "shippingDiscounts": True}}})
        user_errors(payload.get("discountCodeBasicCreate"), f"discount code {code}")
        return code

    def write_unsubscribe(self, customer: dict, at: datetime | None = None):
        """Record on Shopify that the customer unsubscribed from email marketing."""
        payload = self.client.execute(document("consent"), {"input": {
            "customerId": gid("Customer", customer["external_id"]),
            "emailMarketingConsent": {"marketingState": "UNSUBSCRIBED", "marketingOptInLevel": "SINGLE_OPT_IN",
                                      "consentUpdatedAt": to_db(at or utcnow())}}})
        user_errors(payload.get("customerEmailMarketingConsentUpdate"), "unsubscribe")

    def _ensure_webhooks(self):
        if not webhooks_registered(self.db, self.shop["id"]):
            register_webhooks(self)


def _decimal(value) -> str:
    """A money amount as Shopify's Decimal scalar takes it: a string, "10.00"."""
    return f"{Decimal(value):f}"


def factory(app, shop):
    """The connector of a Shopify shop."""
    return ShopifyConnector(app, shop)

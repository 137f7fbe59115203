"""Shopify webhook deliveries: verification, the inbox entry, and the handlers of each topic."""
from __future__ import annotations

import json

from app import webhooks as inbox
from app.jsonbody import loads_object
from app.shops import get_shop
from app.timeutil import to_db

from .. import signing
from ..store import ShopWriter
from . import privacy
from .connector import ShopifyConnector
from .mapping import customer_from_rest, order_from_rest, product_from_rest
from .subscriptions import is_uninstalled, mark_uninstalled

# Shopify's mandatory privacy topics: they arrive (and must be honoured) after an uninstall too.
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")


def verify(app, given: str | None, body: bytes) -> bool:
    """True when `given` is the signature of the raw `body` with the app's client secret (or, during
    a rotation, the previous one: WINBACK_SHOPIFY_CLIENT_SECRET_PREVIOUS)."""
    return signing.verify([app.config.get("SHOPIFY_CLIENT_SECRET"), app.config.get("SHOPIFY_CLIENT_SECRET_PREVIOUS")],
                          body, given)


def receive(app, db, headers, body: bytes) -> tuple[int, str]:
    """Verify and store one delivery; returns (HTTP status, message). Processing happens later."""
    if not verify(app, headers.get("X-Shopify-Hmac-Sha256"), body):
        return 401, "invalid signature"
    domain = (headers.get("X-Shopify-Shop-Domain") or "").strip().lower()
    topic = (headers.get("X-Shopify-Topic") or "").strip()
    delivery = (headers.get("X-Shopify-Webhook-Id") or "").strip()
    if not (domain and topic and delivery):
        return 400, "missing X-Shopify-Shop-Domain, X-Shopify-Topic or X-Shopify-Webhook-Id"
    shop = get_shop(db, domain)
    if shop is None or shop["platform"] != "shopify":
        return 401, "unknown shop"
    if topic not in COMPLIANCE_TOPICS and is_uninstalled(db, shop["id"]):
        return 410, "the app is uninstalled from this shop"
    try:
        loads_object(body)
    except ValueError as exc:
        return 400, f"malformed JSON: {exc}"
    # The raw text is stored as it came: no need to serialise it again.
    stored = inbox.accept(app, db, shop["id"], "shopify", topic, delivery, body.decode("utf-8"))
    return 200, "ok" if stored else "duplicate"


def _categories(db, shop_id, payload) -> dict:
    ids = [str(i["product_id"]) for i in payload.get("line_items") or [] if i.get("product_id")]
    if not ids:
        return {}
    rows = db.execute("SELECT external_id, brand, category FROM products WHERE shop_id = ?"
                      " AND external_id IN (SELECT value FROM json_each(?))", [shop_id, json.dumps(ids)])
    return {r[0]: (r[1], r[2]) for r in rows}


def on_order(app, db, shop, payload):
    """Store the order as delivered (status, refunds, lines, customer, codes used).

    Deliveries arrive unordered: one older than what is stored is ignored.
    """
    rec = order_from_rest(payload, _categories(db, shop["id"], payload))
    row = db.execute("SELECT updated_at FROM orders WHERE shop_id = ? AND external_id = ?",
                     [shop["id"], rec.external_id]).fetchone()
    if row and row[0] and rec.updated_at and to_db(rec.updated_at) < row[0]:
        return
    ShopWriter(db, shop).upsert_orders([rec])


def fetch_refunded_order(app, db, shop, payload):
    """Re-read the refunded order from Shopify (outside the write lock): its refunded total and
    status are Shopify's, not a sum of ours. None when the order is gone."""
    return ShopifyConnector(app, shop, db=db).order(payload["order_id"])


def on_refund(app, db, shop, rec):
    """Store the re-read order."""
    if rec is not None:
        ShopWriter(db, shop).upsert_orders([rec])


def on_customer(app, db, shop, payload):
    """Store the customer's details and email consent."""
    rec = customer_from_rest(payload)
    if rec is not None:
        ShopWriter(db, shop).upsert_customers([rec])


def on_product(app, db, shop, payload):
    """Store the product's vendor (brand) and type (category)."""
    ShopWriter(db, shop).upsert_products([product_from_rest(payload)])


def on_uninstalled(app, db, shop, payload):
    """Forget the (already revoked) token and mark the shop uninstalled."""
    mark_uninstalled(app, db, shop)


def on_data_request(app, db, shop, payload):
    """Write what Winback holds about the customer to a file for the shop owner."""
    privacy.export_customer(app, db, shop, payload)


def on_customer_redact(app, db, shop, payload):
    """Erase the customer's personal data; their orders stay as anonymous aggregates."""
    privacy.redact_customer(app, db, shop, payload)


def on_shop_redact(app, db, shop, payload):
    """Erase all personal data of the shop; anonymous order aggregates stay."""
    privacy.redact_shop(app, db, shop, payload)

"""Shopify webhook deliveries: verification, the inbox entry, and the handlers of each topic."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

from app import webhooks as inbox
from app.shops import get_shop
from app.timeutil import to_db

from ..store import ShopWriter
from . import privacy
from .install import mark_uninstalled
from .mapping import customer_from_rest, order_from_rest, product_from_rest


def signature(secret: str, body: bytes) -> str:
    """Base64 HMAC-SHA256 of a raw body, as Shopify signs webhooks."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(app, given: str | None, body: bytes) -> bool:
    """True when `given` is the signature of the raw `body` with the app's client secret."""
    secret = app.config.get("SHOPIFY_CLIENT_SECRET")
    if not secret or not given:
        return False
    return hmac.compare_digest(signature(secret, body), given)


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
    try:
        text = body.decode("utf-8")
        payload = json.loads(text)
    except ValueError:  # UnicodeDecodeError included
        return 400, "malformed JSON"
    if not isinstance(payload, dict):
        return 400, "malformed JSON"
    # The raw text is stored as it came: no need to serialise it again.
    stored = inbox.record(db, shop["id"], "shopify", topic, delivery, text)
    if stored:
        inbox.wake(app)
    return 200, "ok" if stored else "duplicate"


def _categories(db, shop_id, payload) -> dict:
    ids = [str(i["product_id"]) for i in payload.get("line_items") or [] if i.get("product_id")]
    if not ids:
        return {}
    rows = db.execute("SELECT external_id, brand, category FROM products WHERE shop_id = ?"
                      " AND external_id IN (SELECT value FROM json_each(?))", [shop_id, json.dumps(ids)])
    return {r[0]: (r[1], r[2]) for r in rows}


@inbox.handler("shopify", "orders/create", "orders/updated", "orders/paid", "orders/cancelled")
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


@inbox.handler("shopify", "refunds/create")
def on_refund(app, db, shop, payload):
    """Re-read the refunded order so its refunded total and status are Shopify's, not a sum of ours."""
    from .connector import ShopifyConnector
    rec = ShopifyConnector(app, shop, db=db).order(payload["order_id"])
    if rec is not None:
        ShopWriter(db, shop).upsert_orders([rec])


@inbox.handler("shopify", "customers/create", "customers/update")
def on_customer(app, db, shop, payload):
    """Store the customer's details and email consent."""
    rec = customer_from_rest(payload)
    if rec is not None:
        ShopWriter(db, shop).upsert_customers([rec])


@inbox.handler("shopify", "products/update")
def on_product(app, db, shop, payload):
    """Store the product's vendor (brand) and type (category)."""
    ShopWriter(db, shop).upsert_products([product_from_rest(payload)])


@inbox.handler("shopify", "app/uninstalled")
def on_uninstalled(app, db, shop, payload):
    """Forget the (already revoked) token and mark the shop uninstalled."""
    mark_uninstalled(app, db, shop)


@inbox.handler("shopify", "customers/data_request")
def on_data_request(app, db, shop, payload):
    """Write what Winback holds about the customer to a file for the shop owner."""
    privacy.export_customer(app, db, shop, payload)


@inbox.handler("shopify", "customers/redact")
def on_customer_redact(app, db, shop, payload):
    """Erase the customer's personal data; their orders stay as anonymous aggregates."""
    privacy.redact_customer(app, db, shop, payload)


@inbox.handler("shopify", "shop/redact")
def on_shop_redact(app, db, shop, payload):
    """Erase all personal data of the shop; anonymous order aggregates stay."""
    privacy.redact_shop(app, db, shop, payload)

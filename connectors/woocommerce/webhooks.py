"""WooCommerce webhooks: creating them on the store, checking deliveries, processing them.

A delivery is signed base64(HMAC-SHA256(secret, raw body)); the ping that follows creation carries
no signature. Deliveries are stored in Winback's inbox first and processed by the handlers below.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from app.webhooks import handler

from ..base import WebhookEvent
from .client import WooClient

TOPICS = ("order.created", "order.updated", "customer.created", "customer.updated", "product.updated")
SETUP_TOPIC = "winback.setup"  # an internal inbox event: create the webhooks of a new connection


def new_secret() -> str:
    """A webhook secret: alphanumeric, since WooCommerce HTML-decodes it before signing."""
    return secrets.token_hex(24)


def delivery_url(app, shop_id) -> str:
    """Where the store delivers this shop's webhooks."""
    return f"{app.config['APP_URL']}/webhooks/woocommerce/{shop_id}"


def signature(secret: str, body: bytes) -> str:
    """WooCommerce's X-WC-Webhook-Signature of a raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(secret: str | None, headers, body: bytes) -> bool:
    """True when the delivery's signature matches (constant-time compare)."""
    given = headers.get("X-WC-Webhook-Signature") or ""
    if not secret or not given:
        return False
    return hmac.compare_digest(signature(secret, body), given)


def is_ping(headers, form) -> bool:
    """The unsigned `webhook_id=N` ping WooCommerce sends after creating a webhook."""
    return not headers.get("X-WC-Webhook-Topic") and bool(form.get("webhook_id"))


def parse(headers, body: bytes) -> WebhookEvent:
    """A verified delivery as an event; ValueError when it is malformed."""
    topic = (headers.get("X-WC-Webhook-Topic") or "").strip()
    if not topic:
        raise ValueError("no X-WC-Webhook-Topic header")
    try:
        payload = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise ValueError("the body is not a JSON object")
    return WebhookEvent(topic=topic, delivery_id=headers.get("X-WC-Webhook-Delivery-ID") or None,
                        payload=payload)


def register(client: WooClient, url: str, secret: str) -> dict[str, int]:
    """Create (or re-point) the webhooks Winback needs; returns {topic: webhook id}.

    Webhooks left from an earlier connection to the same URL get the new secret instead of a twin.
    """
    existing = {w.get("topic"): w for w in client.paginate("webhooks", status="all")
                if w.get("delivery_url") == url}
    ids = {}
    for topic in TOPICS:
        body = {"name": f"Winback {topic}", "topic": topic, "delivery_url": url,
                "secret": secret, "status": "active"}
        if topic in existing:
            ids[topic] = client.request("PUT", f"webhooks/{existing[topic]['id']}", json=body).json()["id"]
        else:
            ids[topic] = client.post("webhooks", body)["id"]
    return ids


# ---- background processing (app.webhooks inbox) --------------------------------------------
def _connector(app, shop):
    from ..registry import connector_for
    return connector_for(app, shop)


@handler("woocommerce", SETUP_TOPIC)
def handle_setup(app, db, shop, payload):
    """A new connection: learn the store's currency and time zone, create its webhooks.

    Runs from the inbox, so a store that fails is retried with backoff.
    """
    from .connect import store_settings
    connector = _connector(app, shop)
    currency, timezone = store_settings(connector.client)
    db.execute("UPDATE shops SET currency = COALESCE(?, currency), timezone = COALESCE(?, timezone)"
               " WHERE id = ?", [currency, timezone, shop["id"]])
    connector.ensure_webhooks(db, force=True)


@handler("woocommerce", "order.created", "order.updated")
def handle_order(app, db, shop, payload):
    """Write the delivered order (fetched again when the payload is not a whole order)."""
    from ..store import ShopWriter
    connector = _connector(app, shop)
    if "line_items" not in payload or "status" not in payload:
        if not payload.get("id"):
            return
        payload = connector.client.get(f"orders/{int(payload['id'])}")
    record = connector.map_orders([payload])
    if record:
        ShopWriter(db, shop).upsert_orders(record)


@handler("woocommerce", "customer.created", "customer.updated")
def handle_customer(app, db, shop, payload):
    """Write the delivered customer."""
    from ..store import ShopWriter
    record = _connector(app, shop).map_customer(payload)
    if record is not None:
        ShopWriter(db, shop).upsert_customers([record])


@handler("woocommerce", "product.updated")
def handle_product(app, db, shop, payload):
    """Write the delivered product (brand and category included)."""
    from ..store import ShopWriter
    if not payload.get("id") or payload.get("type") == "variation" or int(payload.get("parent_id") or 0):
        return  # a variation: order lines name its parent product, which carries brand and category
    ShopWriter(db, shop).upsert_products([_connector(app, shop).map_product(payload)])

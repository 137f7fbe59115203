"""WooCommerce webhooks: creating them on the store, checking deliveries, processing them.

A delivery is signed base64(HMAC-SHA256(secret, raw body)); the ping that follows creation carries
no signature. Deliveries are stored in Winback's inbox first and processed by the handlers below.
"""
from __future__ import annotations

import secrets

from app.jsonbody import loads_object
from app.shops import store_credentials, update_details

from .. import signing
from ..base import WebhookEvent
from ..registry import connector_for
from ..store import ShopWriter, change_timezone
from . import catalog, mapping
from .client import WooClient, store_settings

TOPICS = ("order.created", "order.updated", "customer.created", "customer.updated", "product.updated")
SETUP_TOPIC = "winback.setup"  # an internal inbox event: create the webhooks of a new connection


def new_secret() -> str:
    """A webhook secret: alphanumeric, since WooCommerce HTML-decodes it before signing."""
    return secrets.token_hex(24)


def delivery_url(app, shop_id) -> str:
    """Where the store delivers this shop's webhooks."""
    return f"{app.config['APP_URL']}/webhooks/woocommerce/{shop_id}"


def verify(secret: str | None, headers, body: bytes) -> bool:
    """True when the delivery's signature matches (constant-time compare)."""
    return signing.verify(secret, body, headers.get("X-WC-Webhook-Signature"))


def is_ping(headers, form) -> bool:
    """The unsigned `webhook_id=N` ping WooCommerce sends after creating a webhook."""
    return not headers.get("X-WC-Webhook-Topic") and bool(form.get("webhook_id"))


def parse(headers, body: bytes) -> WebhookEvent:
    """A verified delivery as an event; ValueError when it is malformed."""
    topic = (headers.get("X-WC-Webhook-Topic") or "").strip()
    if not topic:
        raise ValueError("no X-WC-Webhook-Topic header")
    payload = loads_object(body)
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
# `fetch_*` steps may call the store and run outside any transaction; the `handle_*` (write) steps run
# inside the event's write transaction and never do network I/O (see app.webhooks.Handler).
def _connector(app, shop):
    connector = connector_for(app, shop)
    # One attempt per event: the inbox retries with its own backoff, without holding up the others.
    connector.client.retries = 0
    return connector


def fetch_setup(app, db, shop, payload) -> dict:
    """A new connection: learn the store's currency and time zone, create its webhooks.

    Runs from the inbox, so a store that fails is retried with backoff.
    """
    connector = _connector(app, shop)
    currency, timezone = store_settings(connector.client)
    creds = dict(connector.credentials)
    creds.setdefault("webhook_secret", new_secret())
    creds["webhook_ids"] = register(connector.client, delivery_url(app, shop["id"]), creds["webhook_secret"])
    return {"currency": currency, "timezone": timezone, "credentials": creds}


def handle_setup(app, db, shop, found):
    """Store what `fetch_setup` learnt and the webhooks' secret and ids."""
    update_details(db, shop["id"], currency=found["currency"], timezone=found["timezone"])
    if found["timezone"] and found["timezone"] != shop["timezone"]:
        change_timezone(db, shop["id"], found["timezone"])
    store_credentials(app, db, shop["id"], found["credentials"])


def fetch_order(app, db, shop, payload):
    """The delivered order; read again from the store only when the payload is not a whole order."""
    if "line_items" in payload and "status" in payload:
        return payload
    if not payload.get("id"):
        return None
    return _connector(app, shop).client.get(f"orders/{int(payload['id'])}")


def handle_order(app, db, shop, payload):
    """Write the delivered order from its payload alone.

    Brand and category come from the products already stored; products the store has not told us
    about yet are marked, and the next sync fills them in (catalog.fill_pending).
    """
    if not payload:
        return
    ids = {str(li["product_id"]) for li in payload.get("line_items") or () if li.get("product_id")}
    known = catalog.known(db, shop["id"], ids)
    record = mapping.map_order(payload, catalog.consent_of(db, shop["id"]), known, shop["timezone"])
    if record is None:
        return
    writer = ShopWriter(db, shop)
    writer.upsert_orders([record])
    writer.mark_details_pending(ids - known.keys())


def handle_customer(app, db, shop, payload):
    """Write the delivered customer."""
    record = mapping.map_customer(payload, catalog.consent_of(db, shop["id"]), shop["timezone"])
    if record is not None:
        ShopWriter(db, shop).upsert_customers([record])


def handle_product(app, db, shop, payload):
    """Write the delivered product (brand and category included)."""
    if not payload.get("id") or payload.get("type") == "variation" or int(payload.get("parent_id") or 0):
        return  # a variation: order lines name its parent product, which carries brand and category
    catalog.store_products(db, shop, [mapping.map_product(payload, shop["currency"], shop["timezone"])])

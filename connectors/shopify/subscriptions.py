"""A Shopify shop's installation state (table shopify_installs): installed, uninstalled, and whether
its webhook subscriptions exist; subscribing them."""
from __future__ import annotations

from app.db import write_transaction
from app.shops import forget_credentials
from app.timeutil import to_db, utcnow

from .graphql import document, user_errors

# Compliance topics cannot be subscribed by API: they are set in the app's configuration.
TOPICS = ("orders/create", "orders/updated", "orders/paid", "orders/cancelled", "refunds/create",
          "customers/create", "customers/update", "products/update", "app/uninstalled")


def webhooks_registered(db, shop_id) -> bool:
    """True once the shop's webhook subscriptions were created."""
    row = db.execute("SELECT webhooks_registered_at FROM shopify_installs WHERE shop_id = ?", [shop_id]).fetchone()
    return bool(row and row[0])


def mark(db, shop_id, **fields):
    """Record installation facts of the shop (installed_at, uninstalled_at, webhooks_registered_at)."""
    with write_transaction(db):
        db.execute("INSERT INTO shopify_installs (shop_id) VALUES (?) ON CONFLICT DO NOTHING", [shop_id])
        for column, value in fields.items():
            db.execute(f"UPDATE shopify_installs SET {column} = ? WHERE shop_id = ?", [value, shop_id])


def register_webhooks(connector) -> int:
    """Subscribe the shop's topics to this installation's webhook URL; returns how many."""
    uri = f"{connector.app.config['APP_URL']}/webhooks/shopify"
    for topic in TOPICS:
        payload = connector.client.execute(document("webhook_create"), {
            "topic": topic.upper().replace("/", "_"), "sub": {"uri": uri, "format": "JSON"}})
        result = payload.get("webhookSubscriptionCreate") or {}
        errors = [e for e in result.get("userErrors") or [] if "taken" not in (e.get("message") or "")]
        user_errors({"userErrors": errors}, f"webhook subscription {topic}")
    mark(connector.db, connector.shop["id"], webhooks_registered_at=to_db(utcnow()))
    return len(TOPICS)


def mark_uninstalled(app, db, shop: dict):
    """The app was removed from the shop: its token is dead, so forget it and stop syncing."""
    forget_credentials(db, shop["id"])
    mark(db, shop["id"], uninstalled_at=to_db(utcnow()), webhooks_registered_at=None)


def is_uninstalled(db, shop_id) -> bool:
    """True when the app was uninstalled from the shop (and not installed again)."""
    row = db.execute("SELECT uninstalled_at FROM shopify_installs WHERE shop_id = ?", [shop_id]).fetchone()
    return bool(row and row[0])

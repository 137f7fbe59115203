"""The platforms Winback talks to: per platform, its connector factory and its webhook handlers.

A plain table, read by the app factory (app.create_app), which hands the factories to
connectors.registry, the handlers to the webhook inbox (app.webhooks) and the setting hooks to
app.settings. Nothing registers itself
as a side effect of an import, so every process kind (serve, worker, gunicorn's workers, the CLI)
knows every handler from the moment the app exists. A new platform is one more entry here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from app.webhooks import Handler

from . import woocommerce
from .shopify import webhooks as shopify_hooks
from .shopify.connector import factory as shopify_factory
from .woocommerce import webhooks as woo_hooks
from .woocommerce.consent import consent_source_changed


@dataclass(frozen=True)
class Platform:
    """One platform: `connector(app, shop)` builds a shop's Connector; `webhooks` maps a topic to its
    handler (a write function, or an app.webhooks.Handler with a fetch step)."""
    name: str
    connector: Callable
    webhooks: dict = field(default_factory=dict)
    setting_hooks: dict = field(default_factory=dict)  # {setting: hook(db, shop_id, old, new)}


PLATFORMS = (
    Platform("shopify", connector=shopify_factory, webhooks={
        "orders/create": shopify_hooks.on_order,
        "orders/updated": shopify_hooks.on_order,
        "orders/paid": shopify_hooks.on_order,
        "orders/cancelled": shopify_hooks.on_order,
        "refunds/create": Handler(fetch=shopify_hooks.fetch_refunded_order, write=shopify_hooks.on_refund),
        "customers/create": shopify_hooks.on_customer,
        "customers/update": shopify_hooks.on_customer,
        "products/update": shopify_hooks.on_product,
        "app/uninstalled": shopify_hooks.on_uninstalled,
        "customers/data_request": shopify_hooks.on_data_request,
        "customers/redact": shopify_hooks.on_customer_redact,
        "shop/redact": shopify_hooks.on_shop_redact,
    }),
    Platform("woocommerce", connector=woocommerce.factory, webhooks={
        woo_hooks.SETUP_TOPIC: Handler(fetch=woo_hooks.fetch_setup, write=woo_hooks.handle_setup),
        "order.created": Handler(fetch=woo_hooks.fetch_order, write=woo_hooks.handle_order),
        "order.updated": Handler(fetch=woo_hooks.fetch_order, write=woo_hooks.handle_order),
        "customer.created": woo_hooks.handle_customer,
        "customer.updated": woo_hooks.handle_customer,
        "product.updated": woo_hooks.handle_product,
    }, setting_hooks={"woo_consent_source": consent_source_changed}),
)


def connector_factories(platforms=PLATFORMS) -> dict:
    """{platform name: connector factory}."""
    return {p.name: p.connector for p in platforms}


def setting_hooks(platforms=PLATFORMS) -> dict:
    """{shop setting: what else changes with it} (app.settings.CHANGE_HOOKS)."""
    return {key: hook for p in platforms for key, hook in p.setting_hooks.items()}


def webhook_handlers(platforms=PLATFORMS) -> dict:
    """{(platform name, topic): handler}."""
    return {(p.name, topic): h for p in platforms for topic, h in p.webhooks.items()}

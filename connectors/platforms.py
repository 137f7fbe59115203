"""The platforms Winback talks to: per platform, its connector factory and its webhook handlers.

A plain table, read by the app factory (app.create_app), which hands the factories to
connectors.registry, the handlers to the webhook inbox (app.webhooks) and the setting hooks to
app.settings. Nothing registers itself
as a side effect of an import, so every process kind (serve, worker, gunicorn's workers, the CLI)
knows every handler from the moment the app exists. A new platform is one more entry here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from app.webhooks import Handler


class Ref:
    """A function of a platform's package, named "module:function" and imported at its first call.

    The table names every factory and handler explicitly, but importing them would load the platforms'
    HTTP clients (requests, urllib3, tenacity) into every process that makes the app, `winback
    explain` included; only what is called is imported, once (Python's import lock makes it safe
    across threads)."""

    __slots__ = ("path", "_target")

    def __init__(self, path: str):
        self.path = path
        self._target = None

    def target(self) -> Callable:
        """The function itself (imported now if it was not yet)."""
        if self._target is None:
            module, _, name = self.path.partition(":")
            self._target = getattr(importlib.import_module(module), name)
        return self._target

    def __call__(self, *args, **kwargs):
        return self.target()(*args, **kwargs)

    def __repr__(self):
        return f"Ref({self.path!r})"


def _shopify(name):
    return Ref(f"connectors.shopify.webhooks:{name}")


def _woo(name):
    return Ref(f"connectors.woocommerce.webhooks:{name}")


WOO_SETUP_TOPIC = "winback.setup"  # connectors.woocommerce.webhooks.SETUP_TOPIC (tests/test_layers.py checks)


@dataclass(frozen=True)
class Platform:
    """One platform: `connector(app, shop)` builds a shop's Connector; `webhooks` maps a topic to its
    handler (a write function, or an app.webhooks.Handler with a fetch step)."""
    name: str
    connector: Callable
    webhooks: dict = field(default_factory=dict)
    setting_hooks: dict = field(default_factory=dict)  # {setting: hook(db, shop_id, old, new)}


PLATFORMS = (
    Platform("shopify", connector=Ref("connectors.shopify.connector:factory"), webhooks={
        "orders/create": _shopify("on_order"),
        "orders/updated": _shopify("on_order"),
        "orders/paid": _shopify("on_order"),
        "orders/cancelled": _shopify("on_order"),
        "refunds/create": Handler(fetch=_shopify("fetch_refunded_order"), write=_shopify("on_refund")),
        "customers/create": _shopify("on_customer"),
        "customers/update": _shopify("on_customer"),
        "products/update": _shopify("on_product"),
        "app/uninstalled": _shopify("on_uninstalled"),
        "customers/data_request": _shopify("on_data_request"),
        "customers/redact": _shopify("on_customer_redact"),
        "shop/redact": _shopify("on_shop_redact"),
    }),
    Platform("woocommerce", connector=Ref("connectors.woocommerce:factory"), webhooks={
        WOO_SETUP_TOPIC: Handler(fetch=_woo("fetch_setup"), write=_woo("handle_setup")),
        "order.created": Handler(fetch=_woo("fetch_order"), write=_woo("handle_order")),
        "order.updated": Handler(fetch=_woo("fetch_order"), write=_woo("handle_order")),
        "customer.created": _woo("handle_customer"),
        "customer.updated": _woo("handle_customer"),
        "product.updated": _woo("handle_product"),
    }, setting_hooks={"woo_consent_source": Ref("connectors.woocommerce.consent:consent_source_changed")}),
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

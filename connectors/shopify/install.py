"""Registering a Shopify shop: credentials, shop details, then the webhook subscriptions and the first sync."""
from __future__ import annotations

import logging
import re
import threading

from app.db import connect
from app.shops import create_shop, get_shop, set_base_url, store_credentials, update_details
from app.timeutil import to_db, utcnow
from app.users import add_member
from connectors.store import change_timezone
from connectors.sync import sync_shop

from .connector import ShopifyConnector
from .errors import ShopifyError
from .subscriptions import mark, register_webhooks

log = logging.getLogger("winback.shopify")


def save_shop(app, db, domain: str, creds: dict, *, verify: bool, register: bool | None = None,
              user_id=None) -> dict:
    """Create or update the shop of `domain` with `creds`; with `verify`, read its currency and time
    zone (proving the credentials) and, unless `register` is False, subscribe the webhooks (else
    the next sync does). Returns the shop."""
    shop = get_shop(db, domain)
    if shop is not None and shop["platform"] != "shopify":
        raise ShopifyError(f"shop {domain!r} exists and is a {shop['platform']} shop")
    info = {}
    if verify:
        probe = ShopifyConnector(app, {"id": None, "handle": domain, "credentials": None}, db=db)
        probe.creds = dict(creds)
        info = probe.shop_info()
        creds = probe.creds
    storefront = _storefront(info)
    if shop is None:
        shop = create_shop(db, domain, "shopify", name=info.get("name") or domain,
                           currency=info.get("currencyCode") or "USD",
                           timezone=info.get("ianaTimezone") or "UTC", base_url=storefront,
                           review_flows=True)
    elif info:
        update_details(db, shop["id"], name=info.get("name") or shop["name"],
                       currency=info.get("currencyCode") or shop["currency"],
                       timezone=info.get("ianaTimezone") or shop["timezone"])
        if info.get("ianaTimezone") and info["ianaTimezone"] != shop["timezone"]:
            change_timezone(db, shop["id"], info["ianaTimezone"])
        if storefront:
            set_base_url(db, shop["id"], storefront)
    store_credentials(app, db, shop["id"], creds)
    mark(db, shop["id"], installed_at=to_db(utcnow()), uninstalled_at=None, webhooks_registered_at=None)
    if user_id is not None:
        add_member(db, user_id, shop["id"])
    shop = get_shop(db, domain)
    if verify and register is not False:
        register_webhooks(ShopifyConnector(app, shop, db=db))
    return shop


def _storefront(info) -> str | None:
    """The shop's primary domain (`https://shop.example`), where the emails' buttons lead; None when
    Shopify reported none or something that is not an https:// address."""
    url = ((info.get("primaryDomain") or {}).get("url") or "").strip().rstrip("/")
    return url if re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?", url) else None


def start_first_sync(app, shop: dict) -> threading.Thread:
    """Subscribe the webhooks and run the first full sync in a background thread (the install page
    answers at once; a sync that fails is recorded and resumed by the next one)."""

    def run():
        db = connect(app.config["DATABASE"])
        try:
            with app.app_context():
                sync_shop(app, db, shop, full=True)
        except Exception:  # noqa: BLE001 - recorded in sync_runs; the next sync resumes
            log.exception("first sync of %s failed", shop["handle"])
        finally:
            db.close()

    thread = threading.Thread(target=run, name=f"shopify-sync-{shop['handle']}", daemon=True)
    app.extensions.setdefault("winback_shopify_syncs", []).append(thread)
    thread.start()
    return thread

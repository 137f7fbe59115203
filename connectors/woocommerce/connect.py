"""Connecting a store: the `/wc-auth/v1/authorize` key flow and manual key entry.

A pending connection is a row in `oauth_states`; its random `state` is the `user_id` WooCommerce
echoes back (as a string) with the keys, which is what ties the keys to the Winback user who asked.
"""
from __future__ import annotations

import json
import secrets
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import requests

from app import webhooks as inbox
from app.db import write_transaction
from app.shops import ShopError, create_shop, get_shop, load_credentials, store_credentials
from app.timeutil import from_db, to_db, utcnow

from .client import WooError, normalise_store_url
from .webhooks import SETUP_TOPIC, new_secret

PENDING_FOR = timedelta(hours=1)
APP_NAME = "Winback"


class ConnectError(ValueError):
    """A refused connection attempt; `status` is the HTTP status to answer with."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def store_handle(store_url: str) -> str:
    """A WooCommerce shop's handle: the store's host name."""
    return urlsplit(normalise_store_url(store_url)).hostname


def start_connection(db, store_url: str, user_id: int | None) -> str:
    """Record a pending connection for `user_id`; returns its id (sent as WooCommerce's user_id)."""
    url = normalise_store_url(store_url)
    state = secrets.token_urlsafe(24)
    now = utcnow()
    with write_transaction(db):
        db.execute("INSERT INTO oauth_states (state, platform, shop_handle, user_id, data, created_at, expires_at)"
                   " VALUES (?, 'woocommerce', ?, ?, ?, ?, ?)",
                   [state, store_handle(url), user_id, json.dumps({"store_url": url}),
                    to_db(now), to_db(now + PENDING_FOR)])
    return state


def authorize_url(app, store_url: str, state: str) -> str:
    """The store's grant screen for this pending connection."""
    base = app.config["APP_URL"]
    query = urlencode({"app_name": APP_NAME, "scope": "read_write", "user_id": state,
                       "return_url": f"{base}/woocommerce/return",
                       "callback_url": f"{base}/woocommerce/callback"})
    return f"{normalise_store_url(store_url)}/wc-auth/v1/authorize?{query}"


def _pending(db, state: str) -> dict:
    rows = list(db.query("SELECT * FROM oauth_states WHERE state = ? AND platform = 'woocommerce'", [state]))
    if not rows:
        raise ConnectError("unknown connection", 404)
    row = rows[0]
    row["data"] = json.loads(row["data"] or "{}")
    return row


def accept_keys(app, db, body: bytes) -> dict:
    """Take the keys WooCommerce POSTs to the callback; returns the shop they connect.

    Refuses (ConnectError) malformed bodies, unknown, used or expired connections and keys without
    read_write permission, creating nothing. The webhooks are created afterwards from the inbox,
    so that the store gets its 200 at once.
    """
    try:
        data = json.loads(body or b"")
    except ValueError:
        raise ConnectError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise ConnectError("the body is not a JSON object")
    state = str(data.get("user_id") or "")
    key, secret = data.get("consumer_key"), data.get("consumer_secret")
    if not state or not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
        raise ConnectError("user_id, consumer_key and consumer_secret are required")
    with write_transaction(db):
        pending = _pending(db, state)
        if pending["data"].get("used") or from_db(pending["expires_at"]) <= utcnow():
            raise ConnectError("this connection has expired; start again from Winback")
        if data.get("key_permissions") not in (None, "read_write"):
            raise ConnectError("Winback needs read_write keys")
        try:
            shop = save_store(app, db, pending["data"]["store_url"], key, secret, user_id=pending["user_id"])
        except ShopError as exc:  # e.g. the host name is taken by another platform's shop
            raise ConnectError(str(exc), 409) from None
        db.execute("UPDATE oauth_states SET data = ? WHERE state = ?",
                   [json.dumps({**pending["data"], "used": True, "shop": shop["handle"]}), state])
        inbox.record(db, shop["id"], "woocommerce", SETUP_TOPIC, f"setup-{state}", {})
    inbox.wake(app)
    return shop


def finish_connection(db, state: str) -> dict | None:
    """After the merchant comes back: the pending connection (then forgotten), or None."""
    try:
        pending = _pending(db, state)
    except ConnectError:
        return None
    if pending["data"].get("used"):
        with write_transaction(db):
            db.execute("DELETE FROM oauth_states WHERE state = ?", [state])
    return pending


def save_store(app, db, store_url, key, secret, *, webhook_secret=None, user_id=None,
               currency=None, timezone=None) -> dict:
    """Create the shop (or give an existing WooCommerce shop new keys) and store the keys encrypted."""
    url = normalise_store_url(store_url)
    handle = store_handle(url)
    with write_transaction(db):
        shop = get_shop(db, handle)
        if shop is None:
            shop = create_shop(db, handle, "woocommerce", name=handle, base_url=url,
                               currency=currency or "EUR", timezone=timezone or "UTC")
        elif shop["platform"] != "woocommerce":
            raise ShopError(f"shop {handle!r} already exists as a {shop['platform']} shop")
        else:
            db.execute("UPDATE shops SET base_url = ? WHERE id = ?", [url, shop["id"]])
        old = load_credentials(app, shop)
        creds = {"consumer_key": key, "consumer_secret": secret,
                 "webhook_secret": webhook_secret or old.get("webhook_secret") or new_secret()}
        store_credentials(app, db, shop["id"], creds)
        if user_id is not None:
            db.execute("INSERT OR IGNORE INTO user_shops (user_id, shop_id) VALUES (?, ?)", [user_id, shop["id"]])
        return get_shop(db, handle)


def store_settings(client) -> tuple[str | None, str | None]:
    """(currency, time zone) of the store; checks the keys on the way (WooError if refused)."""
    currency = client.get("data/currencies/current").get("code") or None
    if currency:
        from app.money import check_currency
        try:
            currency = check_currency(currency)
        except ValueError:
            currency = None
    timezone = None
    try:  # the unauthenticated index; a store hiding it is no reason to fail
        index = requests.get(f"{client.store_url}/wp-json/", timeout=client.timeout).json()
        timezone = index.get("timezone_string") or None
    except (requests.RequestException, ValueError, AttributeError):
        pass
    if timezone:
        from app.timeutil import zone
        try:
            zone(timezone)
        except ValueError:
            timezone = None
    return currency, timezone


def add_store(app, db, store_url, key, secret, *, webhook_secret=None, offline=False, user_id=None) -> dict:
    """Manual key entry: check the keys against the store, save them, create the webhooks.

    With `offline` nothing is asked of the store; the next reconcile creates the webhooks.
    Raises WooError (store refused or unreachable) or ShopError; a shop created here is removed
    again when its webhooks cannot be created.
    """
    from . import factory, make_client
    url = normalise_store_url(store_url)
    currency = timezone = None
    if not offline:
        client = make_client(app, url, key, secret)
        currency, timezone = store_settings(client)
    existed = get_shop(db, store_handle(url)) is not None
    shop = save_store(app, db, url, key, secret, webhook_secret=webhook_secret, user_id=user_id,
                      currency=currency, timezone=timezone)
    if not offline:
        try:
            factory(app, shop).ensure_webhooks(db, force=True)
        except Exception:
            if not existed:
                with write_transaction(db):
                    db.execute("DELETE FROM shops WHERE id = ?", [shop["id"]])
            raise
        shop = get_shop(db, shop["handle"])
    return shop


__all__ = ["ConnectError", "WooError", "accept_keys", "add_store", "authorize_url", "finish_connection",
           "start_connection", "store_handle"]

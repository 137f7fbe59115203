"""Connecting a store: the `/wc-auth/v1/authorize` key flow and manual key entry.

A pending connection is a row in `oauth_states`, bound to the Winback user who started it and to
one store URL; it expires after PENDING_FOR and is used once. Its `state` is the `user_id`
WooCommerce echoes back (as a string) with the keys: `<selector>.<verifier>`, where the selector
finds the row and only a SHA-256 of the verifier is stored, compared in constant time. Keys only
ever reach a shop the starting user is a member of (or any shop, for an admin).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from app import webhooks as inbox
from app.db import write_transaction
from app.jsonbody import loads_object
from app.shops import ShopError, create_shop, delete_shop, get_shop, load_credentials, set_base_url, store_credentials
from app.timeutil import from_db, to_db, utcnow
from app.users import add_member

from . import factory, make_client
from .client import WooError, normalise_store_url, store_settings
from .webhooks import SETUP_TOPIC, new_secret

PENDING_FOR = timedelta(minutes=15)
APP_NAME = "Winback"


class ConnectError(ValueError):
    """A refused connection attempt; `status` is the HTTP status to answer with."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def store_handle(store_url: str) -> str:
    """A WooCommerce shop's handle: the store's host name."""
    return urlsplit(normalise_store_url(store_url)).hostname


def check_may_connect(db, user_id: int | None, handle: str) -> None:
    """Refuse (ConnectError 403) giving `user_id` keys for the shop `handle` when that shop exists
    and the user is neither one of its members nor an admin. `None` is the operator (the CLI)."""
    if user_id is None:
        return
    user = db.execute("SELECT is_admin FROM users WHERE id = ?", [user_id]).fetchone()
    if user is None:
        raise ConnectError("the user who started this connection no longer exists", 403)
    shop = get_shop(db, handle)
    if shop is None or user[0]:
        return
    member = db.execute("SELECT 1 FROM user_shops WHERE user_id = ? AND shop_id = ?",
                        [user_id, shop["id"]]).fetchone()
    if member is None:
        raise ConnectError(f"{handle} is already connected to Winback by another user; "
                           "ask them or an administrator to give you access", 403)


def _digest(verifier: str) -> str:
    return hashlib.sha256(verifier.encode()).hexdigest()


def start_connection(db, store_url: str, user_id: int) -> str:
    """Record a pending connection of `user_id` for this store; returns its state (sent as
    WooCommerce's user_id). ValueError for a bad URL, ConnectError 403 for another user's shop."""
    url = normalise_store_url(store_url)
    selector, verifier = secrets.token_urlsafe(12), secrets.token_urlsafe(24)
    now = utcnow()
    with write_transaction(db):
        check_may_connect(db, user_id, store_handle(url))
        db.execute("INSERT INTO oauth_states (state, platform, shop_handle, user_id, data, created_at, expires_at)"
                   " VALUES (?, 'woocommerce', ?, ?, ?, ?, ?)",
                   [selector, store_handle(url), user_id,
                    json.dumps({"store_url": url, "verifier": _digest(verifier)}),
                    to_db(now), to_db(now + PENDING_FOR)])
    return f"{selector}.{verifier}"


def authorize_url(app, store_url: str, state: str) -> str:
    """The store's grant screen for this pending connection."""
    base = app.config["APP_URL"]
    query = urlencode({"app_name": APP_NAME, "scope": "read_write", "user_id": state,
                       "return_url": f"{base}/woocommerce/return",
                       "callback_url": f"{base}/woocommerce/callback"})
    return f"{normalise_store_url(store_url)}/wc-auth/v1/authorize?{query}"


def _pending(db, state: str) -> dict:
    """The pending connection whose state this is; ConnectError 404 for an unknown or forged one."""
    selector, _, verifier = state.partition(".")
    rows = list(db.query("SELECT * FROM oauth_states WHERE state = ? AND platform = 'woocommerce'", [selector]))
    row = rows[0] if rows else None
    data = json.loads(row["data"] or "{}") if row else {}
    # compare_digest even when the row is missing, so both cases take the same time.
    matches = hmac.compare_digest(_digest(verifier), data.get("verifier") or "")
    if row is None or not verifier or not matches:
        raise ConnectError("unknown connection", 404)
    row["data"] = data
    return row


def accept_keys(app, db, body: bytes) -> dict:
    """Take the keys WooCommerce POSTs to the callback; returns the shop they connect.

    Refuses (ConnectError) malformed bodies, unknown, forged, used or expired connections, keys
    without read_write permission, and a shop the starting user may not connect, changing
    nothing. The keys go only to the store the connection was started for, on behalf of the user
    who started it. The webhooks are created afterwards from the inbox, so that the store gets its
    200 at once.
    """
    try:
        data = loads_object(body or b"")
    except ValueError as exc:
        raise ConnectError(str(exc)) from None
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
        if pending["user_id"] is None:
            raise ConnectError("this connection belongs to no user", 403)
        try:
            shop = save_store(app, db, pending["data"]["store_url"], key, secret, user_id=pending["user_id"])
        except ShopError as exc:  # e.g. the host name is taken by another platform's shop
            raise ConnectError(str(exc), 409) from None
        db.execute("UPDATE oauth_states SET data = ? WHERE state = ?",
                   [json.dumps({**pending["data"], "used": True, "shop": shop["handle"]}), pending["state"]])
        inbox.record(db, shop["id"], "woocommerce", SETUP_TOPIC, f"setup-{pending['state']}", {})
    inbox.wake(app)
    return shop


def finish_connection(db, state: str, user_id: int) -> dict | None:
    """After the merchant comes back: `user_id`'s pending connection (forgotten once used), or None
    for an unknown state or one that another user started."""
    try:
        pending = _pending(db, state)
    except ConnectError:
        return None
    if pending["user_id"] != user_id:
        return None
    if pending["data"].get("used"):
        with write_transaction(db):
            db.execute("DELETE FROM oauth_states WHERE state = ?", [pending["state"]])
    return pending


def save_store(app, db, store_url, key, secret, *, webhook_secret=None, user_id=None,
               currency=None, timezone=None) -> dict:
    """Create the shop (or give an existing WooCommerce shop new keys) and store the keys encrypted.

    With `user_id`, on that user's behalf: ConnectError 403 for a shop they may not connect, and
    they become a member of the shop. Without, on the operator's (the CLI).
    """
    url = normalise_store_url(store_url)
    handle = store_handle(url)
    with write_transaction(db):
        check_may_connect(db, user_id, handle)
        shop = get_shop(db, handle)
        if shop is None:
            shop = create_shop(db, handle, "woocommerce", name=handle, base_url=url,
                               currency=currency or "EUR", timezone=timezone or "UTC", review_flows=True)
        elif shop["platform"] != "woocommerce":
            raise ShopError(f"shop {handle!r} already exists as a {shop['platform']} shop")
        else:
            set_base_url(db, shop["id"], url)
        old = load_credentials(app, shop)
        creds = {"consumer_key": key, "consumer_secret": secret,
                 "webhook_secret": webhook_secret or old.get("webhook_secret") or new_secret()}
        store_credentials(app, db, shop["id"], creds)
        if user_id is not None:
            add_member(db, user_id, shop["id"])
        return get_shop(db, handle)


def add_store(app, db, store_url, key, secret, *, webhook_secret=None, offline=False, user_id=None) -> dict:
    """Manual key entry: check the keys against the store, save them, create the webhooks.

    With `offline` nothing is asked of the store; the next reconcile creates the webhooks.
    Raises WooError (store refused or unreachable), ShopError, or ConnectError 403 when `user_id`
    may not connect this shop (checked before the store is asked, and again when saving); a shop
    created here is removed again when its webhooks cannot be created.
    """
    url = normalise_store_url(store_url)
    check_may_connect(db, user_id, store_handle(url))
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
                delete_shop(db, shop["id"])
            raise
        shop = get_shop(db, shop["handle"])
    return shop


__all__ = ["ConnectError", "WooError", "accept_keys", "add_store", "authorize_url", "check_may_connect",
           "finish_connection", "start_connection", "store_handle"]

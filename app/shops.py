"""Shops: creating, finding and listing them, and their encrypted platform credentials.

This module owns the `shops` table: every write of it is a function here (the table of all owners
is in flows/enrolments.py).
"""
import json
import re

from . import keys
from .db import write_transaction
from .money import check_currency
from .timeutil import to_db, utcnow, zone

PLATFORMS = ("demo", "import", "shopify", "woocommerce")
_HANDLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ShopError(ValueError):
    """A shop that does not exist or cannot be created as asked."""


def create_shop(db, handle, platform, *, name=None, currency="EUR", timezone="UTC", locale="en",
                base_url=None, review_flows=False) -> dict:
    """Create a shop and return it; ShopError if the handle is taken or a value is invalid.

    With `review_flows` (a shop the owner just connected) its flows stay off until the owner has
    reviewed them and gone live (the guided start, flows/guided.py)."""
    if not _HANDLE.match(handle or ""):
        raise ShopError(f"shop handle {handle!r} must be letters, digits, '.', '-' or '_'")
    if platform not in PLATFORMS:
        raise ShopError(f"unknown platform {platform!r}")
    try:
        currency = check_currency(currency)
        zone(timezone)
    except ValueError as exc:
        raise ShopError(str(exc)) from None
    with write_transaction(db):
        if get_shop(db, handle):
            raise ShopError(f"shop {handle!r} already exists")
        db.execute(
            "INSERT INTO shops (handle, platform, name, currency, timezone, locale, base_url, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [handle, platform, name or handle, currency, timezone, locale, base_url, to_db(utcnow())])
        if review_flows:
            db.execute("UPDATE shops SET flows_review = 1 WHERE handle = ?", [handle])
    return get_shop(db, handle)


def get_shop(db, handle) -> dict | None:
    """The shop with this handle, or None."""
    rows = list(db.query("SELECT * FROM shops WHERE handle = ?", [handle]))
    return rows[0] if rows else None


def require_shop(db, handle) -> dict:
    """The shop with this handle; ShopError naming the known shops if there is none."""
    shop = get_shop(db, handle)
    if shop is None:
        known = [r["handle"] for r in db.query("SELECT handle FROM shops ORDER BY handle")]
        raise ShopError(f"no shop {handle!r}" + (f" (shops: {', '.join(known)})" if known
                                                 else " (no shops yet: try `winback demo`)"))
    return shop


def get_or_create_shop(db, handle, platform, **fields) -> tuple[dict, bool]:
    """The shop with this handle, created with `fields` if missing; (shop, created)."""
    shop = get_shop(db, handle)
    if shop is not None:
        return shop, False
    return create_shop(db, handle, platform, **fields), True


def list_shops(db, user=None) -> list[dict]:
    """Shops with their customer and order counts; only `user`'s shops unless they are admin."""
    where, params = "", []
    if user is not None and not user["is_admin"]:
        where = "WHERE s.id IN (SELECT shop_id FROM user_shops WHERE user_id = ?)"
        params = [user["id"]]
    return list(db.query(f"""
        SELECT s.handle, s.id, s.platform, s.name, s.currency, s.timezone, s.last_sync_at AS last_sync,
               (SELECT COUNT(*) FROM customers c WHERE c.shop_id = s.id) AS customers,
               (SELECT COUNT(*) FROM orders o WHERE o.shop_id = s.id) AS orders
        FROM shops s {where} ORDER BY s.handle""", params))


def shop_for_user(db, handle, user) -> dict | None:
    """The shop if `user` may see it (admins see all), else None."""
    shop = get_shop(db, handle)
    if shop is None or user is None:
        return None
    if user["is_admin"]:
        return shop
    row = db.execute("SELECT 1 FROM user_shops WHERE user_id = ? AND shop_id = ?",
                     [user["id"], shop["id"]]).fetchone()
    return shop if row else None


def store_credentials(app, db, shop_id, credentials: dict):
    """Store a shop's platform credentials, encrypted with the installation's key."""
    token = keys.encrypt(app, json.dumps(credentials))
    with write_transaction(db):
        db.execute("UPDATE shops SET credentials = ? WHERE id = ?", [token, shop_id])


def forget_credentials(db, shop_id):
    """Forget a shop's platform credentials (uninstalled, or erased on the platform's request)."""
    with write_transaction(db):
        db.execute("UPDATE shops SET credentials = NULL WHERE id = ?", [shop_id])


def set_timezone(db, shop_id, timezone: str):
    """Set the shop's time zone (the owner's choice under Rules)."""
    with write_transaction(db):
        db.execute("UPDATE shops SET timezone = ? WHERE id = ?", [timezone, shop_id])


def set_base_url(db, shop_id, base_url: str):
    """Set the shop's store address (WooCommerce's store, Shopify's primary domain)."""
    with write_transaction(db):
        db.execute("UPDATE shops SET base_url = ? WHERE id = ?", [base_url, shop_id])


def update_details(db, shop_id, *, name=None, currency=None, timezone=None):
    """Take the name, currency and time zone the platform reports; a None keeps the stored value."""
    with write_transaction(db):
        db.execute("UPDATE shops SET name = COALESCE(?, name), currency = COALESCE(?, currency),"
                   " timezone = COALESCE(?, timezone) WHERE id = ?", [name, currency, timezone, shop_id])


def mark_synced(db, shop_id, now_db):
    """Stamp the shop's last successful sync."""
    with write_transaction(db):
        db.execute("UPDATE shops SET last_sync_at = ? WHERE id = ?", [now_db, shop_id])


def delete_shop(db, shop_id):
    """Remove a shop that was just created and could not be set up."""
    with write_transaction(db):
        db.execute("DELETE FROM shops WHERE id = ?", [shop_id])


def load_credentials(app, shop: dict) -> dict:
    """A shop's decrypted credentials ({} when it has none)."""
    if not shop.get("credentials"):
        return {}
    return json.loads(keys.decrypt(app, shop["credentials"]))


def load_dkim_key(app, shop: dict) -> dict | None:
    """The shop's DKIM key {"domain", "selector", "private_key"} (app/dkim.py), None when it has none;
    ValueError when the installation's key cannot decrypt it."""
    if not shop.get("dkim_key"):
        return None
    return json.loads(keys.decrypt(app, shop["dkim_key"]))


def store_dkim_key(app, db, shop_id, key: dict | None, *, replacing: str | None) -> bool:
    """Store (encrypted) or, with None, remove the shop's DKIM key, but only while the stored one is
    still `replacing` (the encrypted value read before; None: no key): False when another process
    changed it meanwhile, so that two runs of `winback dkim` never make two keys."""
    token = keys.encrypt(app, json.dumps(key)) if key is not None else None
    with write_transaction(db):
        return db.execute("UPDATE shops SET dkim_key = ? WHERE id = ? AND dkim_key IS ?",
                          [token, shop_id, replacing]).rowcount == 1


# ---- the guided start (flows/guided.py) --------------------------------------------------------
def awaiting_review(db, shop_id) -> bool:
    """True while a newly connected shop's flows wait for the owner's review (they start off)."""
    row = db.execute("SELECT flows_review FROM shops WHERE id = ?", [shop_id]).fetchone()
    return bool(row and row[0])


def mark_flow_reviewed(db, shop_id, flow: str):
    """Remember that the owner has looked at `flow` (its page was opened)."""
    with write_transaction(db):
        db.execute("UPDATE shops SET flows_reviewed = json_insert(COALESCE(flows_reviewed, '[]'), '$[#]', ?)"
                   " WHERE id = ? AND NOT EXISTS (SELECT 1 FROM json_each(COALESCE(flows_reviewed, '[]'))"
                   " WHERE value = ?)", [flow, shop_id, flow])


def reviewed_flows(shop: dict) -> list[str]:
    """The flows the owner has reviewed."""
    return json.loads(shop.get("flows_reviewed") or "[]")


def mark_test_sent(db, shop_id, now_db):
    """A test email of the shop reached its mail server."""
    with write_transaction(db):
        db.execute("UPDATE shops SET test_sent_at = ? WHERE id = ?", [now_db, shop_id])


def mark_live(db, shop_id, now_db):
    """The owner went live: the review is over (call inside the write transaction that sets the flows)."""
    with write_transaction(db):
        db.execute("UPDATE shops SET flows_review = 0, live_at = ? WHERE id = ?", [now_db, shop_id])

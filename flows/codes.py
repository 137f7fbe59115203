"""Personal discount codes: unique, unguessable, single use, bound to one customer, expiring.

Platform shops create the code through their connector (Shopify discount, WooCommerce coupon);
demo and import shops keep it in SQLite alone. Either way the row here is the record the emails
quote: the expiry shown in copy is this stored `expires_at`. An order carrying the code is its use.

This module owns `discount_codes` (the table of owners is in flows/enrolments.py).
"""
import sqlite3
from datetime import timedelta
from decimal import Decimal

from app.money import to_minor
from app.timeutil import to_db
from connectors.codes import new_code

from .definitions import offer_kind

# What an email quotes of a code (its offer in words and its terms).
QUOTED = "id, code, kind, percent, amount_minor, min_order_minor, currency, expires_at"


def reserve(db, shop, enrolment, offer, now, *, platform: bool) -> int:
    """Reserve the code of one enrolment's step (inside the claiming transaction); returns its id.

    `offer` is {"percent" | "amount" | "free_shipping", "valid_days", optional "min_order"}, the
    amount and minimum in the shop's currency (kept in its minor units); the code expires
    `valid_days` after `now`, the moment it is claimed for delivery. A platform shop's code is
    `reserved` until `flows.delivery.create_reserved_codes` has created it on the platform (outside
    any transaction); a demo or import shop's is `local`, valid at once. A step already holding a
    reservation (a retry after a crash) keeps it, so the platform never gets a second code."""
    existing = db.execute("SELECT id FROM discount_codes WHERE enrolment_id = ? AND step = ?",
                          [enrolment["id"], enrolment["step"]]).fetchone()
    if existing:
        return existing[0]
    expires = now + timedelta(days=offer["valid_days"])
    kind = offer_kind(offer)
    currency = shop["currency"] if kind == "amount" or offer.get("min_order") else None
    percent = float(offer["percent"]) if kind == "percent" else None
    amount = to_minor(Decimal(str(offer["amount"])), currency) if kind == "amount" else None
    minimum = to_minor(Decimal(str(offer["min_order"])), currency) if offer.get("min_order") else None
    for _ in range(5):
        try:
            cur = db.conn.execute(
                "INSERT INTO discount_codes (shop_id, customer_id, enrolment_id, step, code, kind, percent, amount_minor,"
                " min_order_minor, currency, created_at, expires_at, platform_state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [shop["id"], enrolment["customer_id"], enrolment["id"], enrolment["step"], new_code(), kind, percent,
                 amount, minimum, currency, to_db(now), to_db(expires),
                 "reserved" if platform else "local"])
            return cur.lastrowid
        except sqlite3.IntegrityError:
            continue  # 50 random bits: a repeat is astronomically rare, but possible
    raise RuntimeError("could not find an unused discount code")


def reusable(db, enrolment_id, now) -> dict | None:
    """The enrolment's newest code that is still valid and unused, if any."""
    rows = list(db.query(
        f"SELECT {QUOTED} FROM discount_codes WHERE enrolment_id = ? AND used_order_id IS NULL"
        " AND platform_state IN ('local', 'created') AND expires_at > ? ORDER BY id DESC LIMIT 1", [enrolment_id, to_db(now)]))
    return rows[0] if rows else None


def quoted(db, code_id) -> dict | None:
    """What an email says of one code (see QUOTED), with its platform state and error."""
    rows = list(db.query(f"SELECT {QUOTED}, platform_state, platform_error FROM discount_codes WHERE id = ?",
                         [code_id]))
    return rows[0] if rows else None


# The codes the shop's orders carried are gathered once (orders store them lower-case); only the
# unused codes among them look up their first order. Joining every unused code with every coded
# order instead cost a second per tick on a shop of a few thousand customers.
MARK_USED = """
WITH coded AS MATERIALIZED (
    SELECT o.id, o.created_at, j.value AS code FROM orders o, json_each(o.discount_codes) j
    WHERE o.shop_id = :shop AND o.discount_codes IS NOT NULL AND o.created_at < :now
      AND o.status IN ('paid', 'pending')
)
UPDATE discount_codes SET (used_order_id, used_at) =
    (SELECT c.id, c.created_at FROM coded c WHERE c.code = lower(discount_codes.code) ORDER BY c.created_at, c.id LIMIT 1)
WHERE shop_id = :shop AND used_order_id IS NULL AND lower(code) IN (SELECT code FROM coded)
"""


def mark_used(db, params):
    """Record which codes orders have carried (codes compare lower-case)."""
    db.execute(MARK_USED, params)


def record_platform_result(db, code_id, state, ref, error):
    """Record what the platform said about a reserved code: created (with its reference), local,
    or still reserved with the error. Call inside a short write transaction, after the call."""
    db.execute("UPDATE discount_codes SET platform_state = ?, platform_ref = COALESCE(?, platform_ref),"
               " platform_error = ? WHERE id = ? AND platform_state = 'reserved'", [state, ref, error, code_id])


def blank_errors(db, where, params):
    """Forget the platform errors of the codes matching the SQL condition `where` (an erasure: an
    error about a personal code may quote the customer)."""
    if "platform_error" in {r[1] for r in db.execute("PRAGMA table_info(discount_codes)")}:
        db.execute(f"UPDATE discount_codes SET platform_error = NULL WHERE {where}", params)


def forget_shop(db, shop_id) -> int:
    """Delete every discount code of the shop (the demo's simulated history, before it is made again)."""
    return db.execute("DELETE FROM discount_codes WHERE shop_id = ?", [shop_id]).rowcount

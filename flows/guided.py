"""The guided start of a real shop: the owner's first steps as a checklist, each ticked from the
state it is about (never from a click on the checklist itself), and "go live".

A shop the owner connects (Shopify install, WooCommerce connect, a CSV import that creates it)
starts with its flows off (`shops.flows_review`, see flows/definitions.py `load_flows`). Opening a
flow's page counts as reviewing it; going live turns on the reviewed flows and keeps the others
off, explicitly. The demo shop and shops from before this existed are not guided.
"""
from app.db import write_transaction
from app.mailer import smtp_url_for
from app.settings import get_settings
from app.shops import get_shop, mark_live, reviewed_flows
from app.timeutil import to_db

from .definitions import DEFAULT_FLOWS, PRIORITY, load_flows, save_flow

STEPS = ("connect", "sender", "email", "review", "live")
# The flows to review before going live: those on by default. An optional one (category win-back)
# is turned on from its own page when the owner wants it.
MAIN_FLOWS = tuple(name for name in PRIORITY if DEFAULT_FLOWS[name].get("enabled", True))


def is_guided(shop: dict) -> bool:
    """A shop that gets the checklist: connected by its owner and waiting for review, or gone live
    through it."""
    return shop["platform"] != "demo" and bool(shop.get("flows_review") or shop.get("live_at"))


def checklist(app, db, shop: dict) -> list[dict]:
    """[{"key", "done", "detail"}] in the order an owner does them."""
    shop = get_shop(db, shop["handle"]) or shop
    settings = get_settings(db, shop["id"])
    if shop["platform"] in ("shopify", "woocommerce"):
        connected = bool(shop.get("last_sync_at"))
    else:  # an import shop is connected by its first import
        connected = db.execute("SELECT 1 FROM orders WHERE shop_id = ? LIMIT 1", [shop["id"]]).fetchone() is not None
    try:
        smtp = bool(smtp_url_for(app, settings))
    except ValueError:  # saved under another encryption key: not a working channel
        smtp = False
    reviewed = [name for name in MAIN_FLOWS if name in reviewed_flows(shop)]
    return [
        {"key": "connect", "done": connected, "detail": shop.get("last_sync_at")},
        {"key": "sender", "done": bool((settings.get("sender_email") or "").strip()
                                       and (settings.get("postal_address") or "").strip()), "detail": None},
        {"key": "email", "done": smtp and bool(shop.get("test_sent_at")), "detail": shop.get("test_sent_at")},
        {"key": "review", "done": len(reviewed) == len(MAIN_FLOWS),
         "detail": f"{len(reviewed)}/{len(MAIN_FLOWS)}"},
        {"key": "live", "done": bool(shop.get("live_at")), "detail": shop.get("live_at")},
    ]


class NothingReviewed(ValueError):
    """Going live needs at least one reviewed flow."""


def go_live(db, shop: dict, now) -> list[str]:
    """Turn on the reviewed flows of MAIN_FLOWS and keep the others off (each saved explicitly, so
    ending the review turns nothing else on); returns the flows turned on."""
    shop = get_shop(db, shop["handle"]) or shop
    reviewed = set(reviewed_flows(shop))
    on = [name for name in MAIN_FLOWS if name in reviewed]
    if not on:
        raise NothingReviewed("review at least one flow (open its page) before going live")
    flows = load_flows(db, shop["id"])
    with write_transaction(db):
        for name in PRIORITY:
            flow = {k: v for k, v in flows[name].items() if k != "name"}
            save_flow(db, shop["id"], name, {**flow, "enabled": name in on}, now=now)
        mark_live(db, shop["id"], to_db(now))
    return on

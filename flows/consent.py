"""Unsubscribes: they take effect at once, and platforms that keep consent hear of them later.

Winback's own unsubscribe always wins over what a platform says: `unsubscribed_at` is never
cleared by a sync. A connector with `write_unsubscribe(customer)` (Shopify's consent mutation) gets
each new unsubscribe pushed by the scheduler; until then it waits in `unsubscribe_synced_at IS NULL`.

The unsubscribe exists once: the customer's state is connectors/store.py's `unsubscribe`, the end of
their enrolments is the tick's own exit statement (flows/enrolments.py) narrowed to them, and their
rendered but undelivered marketing mail is withheld (flows/messages.py).
"""
import logging

from app.db import write_transaction
from app.timeutil import to_db, utcnow
from connectors import store

from . import enrolments, messages

log = logging.getLogger("winback.consent")


def unsubscribe(db, shop_id, customer_id, now=None) -> bool:
    """Unsubscribe one customer from marketing and end their running flows; False if already done."""
    now = to_db(now or utcnow())
    with write_transaction(db):
        changed = store.unsubscribe(db, shop_id, customer_id, now)
        enrolments.exit_unsubscribed(db, shop_id, customer_id, now)
        # Marketing mail already rendered but not yet delivered must not go out either.
        messages.withhold_unsubscribed(db, customer_id)
        return changed


def keep_subscribed(db, customer_id, now=None):
    """The customer answered the sunset email ("keep me subscribed"): their marketing consent is
    confirmed and the sunset that asked ends at once, not at the next tick."""
    now = to_db(now or utcnow())
    with write_transaction(db):
        store.confirm_marketing(db, customer_id, now)
        enrolments.exit_confirmed(db, customer_id, now)


def push_unsubscribes(db, shop, connector, limit=200) -> int:
    """Write pending unsubscribes back to the platform (when its connector can); returns how many."""
    write = getattr(connector, "write_unsubscribe", None)
    if write is None:
        return 0
    done = 0
    for customer in list(db.query("SELECT * FROM customers WHERE shop_id = ? AND unsubscribed_at IS NOT NULL"
                                  " AND unsubscribe_synced_at IS NULL LIMIT ?", [shop["id"], limit])):
        try:
            write(customer)
        except Exception:  # noqa: BLE001 - retried at the next tick
            log.warning("writing the unsubscribe of customer %s back failed", customer["id"], exc_info=True)
            continue
        with write_transaction(db):
            store.mark_unsubscribe_synced(db, customer["id"], to_db(utcnow()))
        done += 1
    return done

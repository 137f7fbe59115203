"""Unsubscribes: they take effect at once, and platforms that keep consent hear of them later.

Winback's own unsubscribe always wins over what a platform says: `unsubscribed_at` is never
cleared by a sync. A connector with `write_unsubscribe(customer)` (Shopify's consent mutation) gets
each new unsubscribe pushed by the scheduler; until then it waits in `unsubscribe_synced_at IS NULL`.
"""
import logging

from .db import write_transaction
from .timeutil import to_db, utcnow

log = logging.getLogger("winback.consent")


def unsubscribe(db, shop_id, customer_id, now=None) -> bool:
    """Unsubscribe one customer from marketing and end their running flows; False if already done."""
    now = to_db(now or utcnow())
    with write_transaction(db):
        cur = db.execute("UPDATE customers SET unsubscribed_at = ? WHERE id = ? AND shop_id = ?"
                         " AND unsubscribed_at IS NULL", [now, customer_id, shop_id])
        db.execute("UPDATE enrolments SET status = 'exited', exit_reason = 'unsubscribed', ended_at = ?,"
                   " next_due_at = NULL WHERE customer_id = ? AND status IN ('active', 'held_out')",
                   [now, customer_id])
        # Marketing mail already rendered but not yet delivered must not go out either.
        db.execute("UPDATE messages SET status = 'withheld', withheld_reason = 'the customer unsubscribed'"
                   " WHERE customer_id = ? AND status = 'outbox' AND is_marketing = 1", [customer_id])
        return cur.rowcount == 1


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
            db.execute("UPDATE customers SET unsubscribe_synced_at = ? WHERE id = ?", [to_db(utcnow()), customer["id"]])
        done += 1
    return done

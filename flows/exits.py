"""Leaving a flow: who bought, unsubscribed or lost consent leaves at once; a sunset that got no
answer ends by marking the customer inactive. Also the live look at the platform's orders right
before sending (network, so always outside a write transaction)."""
from app.timeutil import from_db
from connectors.base import Connector
from connectors.store import ShopWriter

# ---- exits ----------------------------------------------------------------------------------
# A new order (paid or awaiting payment, not a test) after entry ends the enrolment.
EXIT_ON_PURCHASE = """
UPDATE enrolments SET
    status = 'converted', ended_at = :now_db, next_due_at = NULL,
    converted_order_id = (SELECT o.id FROM orders o WHERE o.customer_id = enrolments.customer_id
                          AND o.status IN ('paid', 'pending') AND o.is_test = 0
                          AND o.created_at > enrolments.entered_at AND o.created_at < :now_db
                          ORDER BY o.created_at LIMIT 1),
    exit_reason = CASE WHEN EXISTS (SELECT 1 FROM discount_codes d WHERE d.enrolment_id = enrolments.id
                                    AND d.used_order_id IS NOT NULL) THEN 'code_used' ELSE 'purchased' END
WHERE shop_id = :shop AND status IN ('active', 'held_out') {only}
  AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = enrolments.customer_id
              AND o.status IN ('paid', 'pending') AND o.is_test = 0
              AND o.created_at > enrolments.entered_at AND o.created_at < :now_db)
"""

EXIT_ON_UNSUBSCRIBE = """
UPDATE enrolments SET status = 'exited', exit_reason = 'unsubscribed', ended_at = :now_db, next_due_at = NULL
WHERE shop_id = :shop AND status IN ('active', 'held_out') {only}
  AND customer_id IN (SELECT id FROM customers WHERE shop_id = :shop AND unsubscribed_at IS NOT NULL)
"""

EXIT_ON_CONSENT = """
UPDATE enrolments SET status = 'exited', exit_reason = 'no_consent', ended_at = :now_db, next_due_at = NULL
WHERE shop_id = :shop AND status IN ('active', 'held_out') AND flow IN (SELECT value FROM json_each(:promotional)) {only}
  AND customer_id IN (SELECT id FROM customers WHERE shop_id = :shop
                      AND (accepts_marketing IS NOT 1 OR marketing_inactive_at IS NOT NULL))
"""

# Held-out customers stay "in" the flow as long as a messaged one would, then complete.
COMPLETE_HOLDOUT = """
UPDATE enrolments SET status = 'completed', ended_at = :now_db
WHERE shop_id = :shop AND status = 'held_out' AND flow = :flow AND entered_at <= :until
"""


def exit_pass(db, params, only="") -> int:
    """End the running enrolments of customers who bought, unsubscribed or lost consent."""
    total = 0
    for sql in (EXIT_ON_PURCHASE, EXIT_ON_UNSUBSCRIBE, EXIT_ON_CONSENT):
        total += db.execute(sql.format(only=only), params).rowcount
    return total




def finish_waiting(db, enrolment, flow, now_db) -> dict:
    """An enrolment past its last email whose wait ran out: a sunset without an answer marks the
    customer inactive (it waited only because its email was delivered); any other completes."""
    if flow["name"] == "sunset":
        db.execute("UPDATE customers SET marketing_inactive_at = ? WHERE id = ?", [now_db, enrolment["customer_id"]])
        db.execute("UPDATE enrolments SET status = 'exited', exit_reason = 'no_response', next_due_at = NULL,"
                   " ended_at = ? WHERE id = ?", [now_db, enrolment["id"]])
        return {"exited": 1}
    db.execute("UPDATE enrolments SET status = 'completed', next_due_at = NULL, ended_at = ? WHERE id = ?",
               [now_db, enrolment["id"]])
    return {"completed": 1}


def live_check(db, shop, params, connector, batch_size=1000):
    """Ask the platform for the latest orders of the customers about to be emailed (when it can)."""
    if connector is None or type(connector).recent_orders is Connector.recent_orders:
        return 0
    due = list(db.query(
        "SELECT e.entered_at, c.* FROM enrolments e JOIN customers c ON c.id = e.customer_id"
        " WHERE e.shop_id = :shop AND e.status = 'active' AND e.next_due_at <= :now_db LIMIT :limit",
        {**params, "limit": batch_size}))
    found = []
    for row in due:
        found.extend(connector.recent_orders(row, from_db(row["entered_at"])))
    if found:
        ShopWriter(db, shop).write_orders(found)
    return len(found)



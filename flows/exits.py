"""Leaving a flow: a sunset that got no answer ends by marking the customer inactive. Also the
live look at the platform's orders right before sending (network, so always outside a write
transaction). The exit statements themselves live in flows/enrolments.py."""
from app.timeutil import from_db
from connectors import store
from connectors.base import Connector
from connectors.store import ShopWriter

from . import enrolments


def finish_waiting(db, enrolment, flow, now_db) -> dict:
    """An enrolment past its last email whose wait ran out: a sunset without an answer marks the
    customer inactive (it waited only because its email was delivered); any other completes."""
    if flow["name"] == "sunset":
        store.mark_inactive(db, enrolment["customer_id"], now_db)
        enrolments.exit_no_response(db, enrolment["id"], now_db)
        return {"exited": 1}
    enrolments.complete(db, enrolment["id"], now_db)
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



"""The after-purchase journey (`second_order`): service emails after a first order (how to use it,
how was it with the 0-10 question of flows/nps.py, care tips for what they bought), no offers, allowed
without marketing consent but never to an unsubscribed or undeliverable address.

It ends at the second purchase (the engine's exit on any new order) and `stop_after_days` after the
order it follows: the tick's exit statement (flows/enrolments.py) ends it, and delivery checks it
once more when an email is about to leave.
"""
import json
from datetime import timedelta

from app.timeutil import from_db

FLOW = "second_order"
STOP_AFTER_DAYS = 180
HOW_TO, HOW_WAS_IT, CARE = "journey_how_to", "second_order", "journey_care"
TEMPLATES = frozenset({HOW_TO, CARE})  # new service templates (second_order existed before)


def stop_days(flow) -> int | None:
    """Days after its order the flow's enrolments end (service journeys only), else None."""
    if flow.get("kind") != "service":
        return None
    return int(flow.get("stop_after_days") or STOP_AFTER_DAYS)


def params(flows) -> dict:
    """The exit statement's parameter: {"journey_days": JSON {flow: days}} for the service flows."""
    days = {name: stop_days(flow) for name, flow in flows.items() if stop_days(flow) is not None}
    return {"journey_days": json.dumps(days)}


def over(flow, anchor_order_at, now) -> bool:
    """True when the journey's time after its order has run out at `now`."""
    days = stop_days(flow or {})
    if days is None or not anchor_order_at:
        return False
    return now - from_db(anchor_order_at) > timedelta(days=days)


def bought_titles(db, customer_id, anchor_order_at=None, limit=5) -> list[str]:
    """The product names of the customer's first order (the one the journey follows; `anchor_order_at`
    when known), for the care tips."""
    rows = db.execute(
        "SELECT COALESCE(l.title, l.sku) FROM order_lines l JOIN orders o ON o.id = l.order_id"
        " WHERE o.customer_id = :c AND o.status IN ('paid', 'pending') AND o.is_test = 0"
        "   AND COALESCE(l.title, l.sku) IS NOT NULL"
        "   AND o.created_at <= COALESCE(:anchor, (SELECT MIN(created_at) FROM orders WHERE customer_id = :c"
        "                                           AND status = 'paid' AND is_test = 0))"
        " GROUP BY 1 ORDER BY MIN(l.id) LIMIT :limit",
        {"c": customer_id, "anchor": anchor_order_at, "limit": limit}).fetchall()
    return [r[0] for r in rows]

"""What each flow earned: last-touch attribution per step, and lift against the holdout.

Attributed (what the paid tools report): an order converts an email when it is the enrolment's
first paid order after an email, placed within `conversion_days` (5) of the last email before it or
carrying the enrolment's code; it is credited to that last email's step.

Discount cost: a percent code's share of the order before it (net × p / (100 − p)); an amount
code's amount, capped at the order's net; a free-shipping code's cost is not in the order data, so
it counts 0 and the step's note says how many orders used one.

Lift (what none of them reports): treated enrolments (meant to get the emails) against held-out
ones (never emailed), counting any paid order in the same window after entry for both groups
(last step's delay + conversion_days). Only enrolments whose window has closed count, so recent
entrants do not dilute either rate. The 95 % interval of the difference is Newcombe's hybrid score
interval, which stays honest for small samples; below MIN_GROUP matured enrolments per group the
report says "not enough data yet".
"""
import math

from app.money import from_minor
from app.settings import get_settings
from app.timeutil import to_db
from app.words import N_, Num

from . import journey, nps, offer_tests
from .clicks import clicked_messages
from .definitions import load_flows

MIN_GROUP = 30
FREE_SHIPPING_NOTE = ("{n} converted order(s) used a free-shipping code: its cost (the shipping given away) is not in"
                      " the order data, so the discount cost counts it as 0")
Z = 1.959964

ATTRIBUTED = """
WITH sent AS (
    SELECT m.enrolment_id, m.step, m.sent_at FROM messages m
    WHERE m.shop_id = :shop AND m.status = 'sent' AND m.sent_at < :now
),
candidates AS (
    SELECT e.id AS enrolment_id, e.flow, o.id AS order_id, o.created_at,
           CASE WHEN o.currency = :currency THEN o.total_minor - o.refunded_minor ELSE 0 END AS net,
           (SELECT d.percent FROM discount_codes d WHERE d.enrolment_id = e.id AND d.used_order_id = o.id) AS code_percent,
           (SELECT d.amount_minor FROM discount_codes d WHERE d.enrolment_id = e.id AND d.used_order_id = o.id
                AND d.kind = 'amount' AND d.currency = :currency) AS code_amount,
           (SELECT COUNT(*) FROM discount_codes d WHERE d.enrolment_id = e.id AND d.used_order_id = o.id
                AND d.kind = 'free_shipping') AS free_shipping,
           (SELECT COUNT(*) FROM discount_codes d WHERE d.enrolment_id = e.id AND d.used_order_id = o.id) AS with_code,
           (SELECT s.step FROM sent s WHERE s.enrolment_id = e.id AND s.sent_at < o.created_at
            ORDER BY s.sent_at DESC LIMIT 1) AS step,
           (SELECT MAX(s.sent_at) FROM sent s WHERE s.enrolment_id = e.id AND s.sent_at < o.created_at) AS last_sent
    FROM enrolments e
    JOIN orders o ON o.customer_id = e.customer_id AND o.status = 'paid' AND o.is_test = 0
                 AND o.created_at > e.entered_at AND o.created_at < :now
    WHERE e.shop_id = :shop AND e.held_out = 0 AND e.entered_at >= :since
)
SELECT flow, step, COUNT(*) AS converted, SUM(net) AS revenue,
       SUM(CASE WHEN with_code > 0 AND code_percent IS NOT NULL AND code_percent < 100
                THEN net * code_percent / (100 - code_percent)
                WHEN with_code > 0 AND code_amount IS NOT NULL THEN MIN(code_amount, MAX(net, 0))
                ELSE 0 END) AS discount_cost,
       SUM(free_shipping > 0) AS free_shipping
FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY enrolment_id ORDER BY created_at) AS nth
    FROM candidates
    WHERE step IS NOT NULL
      AND (with_code > 0 OR julianday(created_at) - julianday(last_sent) <= :days)
)
WHERE nth = 1
GROUP BY flow, step
"""

SENT = """
SELECT flow, step, COUNT(*) FILTER (WHERE status = 'sent') AS sent,
       COUNT(*) FILTER (WHERE status IN ('outbox', 'sending')) AS queued,
       COUNT(DISTINCT enrolment_id) FILTER (WHERE status = 'sent') AS recipients
FROM messages WHERE shop_id = :shop AND created_at < :now AND created_at >= :since GROUP BY flow, step
"""

RECIPIENTS = """
SELECT flow, COUNT(DISTINCT enrolment_id) FROM messages
WHERE shop_id = :shop AND status = 'sent' AND sent_at < :now AND sent_at >= :since GROUP BY flow
"""

ENROLLED = """
SELECT flow, COUNT(*) AS enrolled, COUNT(*) FILTER (WHERE held_out = 1) AS held_out
FROM enrolments WHERE shop_id = :shop AND entered_at < :now AND entered_at >= :since GROUP BY flow
"""

# Per group of one flow: matured enrolments, those with a paid order in the window, its revenue.
LIFT = """
SELECT e.held_out, COUNT(*) AS n, SUM(w.orders > 0) AS converted, COALESCE(SUM(w.revenue), 0) AS revenue
FROM enrolments e
JOIN (SELECT e2.id,
             COUNT(o.id) AS orders,
             SUM(CASE WHEN o.currency = :currency THEN o.total_minor - o.refunded_minor ELSE 0 END) AS revenue
      FROM enrolments e2
      LEFT JOIN orders o ON o.customer_id = e2.customer_id AND o.status = 'paid' AND o.is_test = 0
                        AND o.created_at > e2.entered_at
                        AND julianday(o.created_at) < julianday(e2.entered_at) + :window
      WHERE e2.shop_id = :shop AND e2.flow = :flow AND e2.entered_at >= :since
      GROUP BY e2.id) AS w ON w.id = e.id
WHERE e.shop_id = :shop AND e.flow = :flow AND julianday(e.entered_at) + :window <= julianday(:now)
  AND e.entered_at >= :since
GROUP BY e.held_out
"""


def wilson(successes, n):
    """Wilson score interval (95 %) of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1, n1, x2, n2):
    """95 % interval of p1 − p2 (Newcombe 1998, method 10, from two Wilson intervals)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1)
    l2, u2 = wilson(x2, n2)
    diff = p1 - p2
    return diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def lift(db, shop, flow_name, window_days, now, since=None) -> dict:
    """Treated against held-out conversion for one flow, with the 95 % interval and incremental revenue
    (of the customers who entered from `since` on, when given)."""
    groups = {row["held_out"]: row for row in db.query(LIFT, {
        "shop": shop["id"], "flow": flow_name, "window": window_days, "now": to_db(now),
        "since": to_db(since) if since else "",
        "currency": shop["currency"]})}
    treated = groups.get(0, {"n": 0, "converted": 0, "revenue": 0})
    held = groups.get(1, {"n": 0, "converted": 0, "revenue": 0})
    doc = {"window_days": window_days, "treated": treated["n"], "treated_converted": treated["converted"] or 0,
           "holdout": held["n"], "holdout_converted": held["converted"] or 0,
           "treated_rate": None, "holdout_rate": None, "lift": None, "ci_low": None, "ci_high": None,
           "incremental_revenue": None, "enough_data": False}
    if treated["n"] and held["n"]:
        t_rate, h_rate = treated["converted"] / treated["n"], held["converted"] / held["n"]
        low, high = newcombe(treated["converted"], treated["n"], held["converted"], held["n"])
        per_treated = treated["revenue"] / treated["n"] - held["revenue"] / held["n"]
        doc.update(treated_rate=round(t_rate, 4), holdout_rate=round(h_rate, 4), lift=round(t_rate - h_rate, 4),
                   ci_low=round(low, 4), ci_high=round(high, 4),
                   incremental_revenue=float(from_minor(round(per_treated * treated["n"]), shop["currency"])))
    doc["enough_data"] = treated["n"] >= MIN_GROUP and held["n"] >= MIN_GROUP
    if not doc["enough_data"]:
        doc["note"] = N_("not enough data yet: %(treated)s emailed and %(held)s held-out customers have finished the "
                         "%(days)s-day window; the comparison needs %(min)s of each", treated=treated["n"],
                         held=held["n"], days=Num(window_days), min=MIN_GROUP)
    elif doc["ci_low"] > 0:
        doc["note"] = N_("the emails brought in orders that would not have happened without them")
    elif doc["ci_high"] < 0:
        doc["note"] = N_("customers who got the emails bought less than those who did not")
    else:
        doc["note"] = N_("no difference that the data can tell apart from chance yet")
    return doc


def report(db, shop, now, since=None) -> dict:
    """Per flow and step: enrolled, held out, sent, clicked (messages with a counted click, and their
    share of those sent), converted, rates, revenue, discount cost, lift. With `since`, only the
    customers who entered (and the emails sent) from then until `now`."""
    settings = get_settings(db, shop["id"])
    flows = load_flows(db, shop["id"])
    params = {"shop": shop["id"], "now": to_db(now), "currency": shop["currency"], "days": settings["conversion_days"],
              "since": to_db(since) if since else ""}
    money = lambda minor: float(from_minor(round(minor or 0), shop["currency"]))  # noqa: E731
    attributed = {(r["flow"], r["step"]): r for r in db.query(ATTRIBUTED, params)}
    sent = {(r["flow"], r["step"]): r for r in db.query(SENT, params)}
    recipients = dict(db.execute(RECIPIENTS, params).fetchall())
    clicked = clicked_messages(db, shop["id"], params["now"], params["since"])
    enrolled = {r["flow"]: r for r in db.query(ENROLLED, params)}
    out = []
    for name in flows:  # in priority order, the owner's own flows included
        flow = flows[name]
        steps = []
        for i, _ in enumerate(flow["steps"]):
            s, a = sent.get((name, i), {}), attributed.get((name, i), {})
            n_sent = s.get("sent", 0)
            steps.append({"step": i + 1, "template": flow["steps"][i]["template"], "sent": n_sent,
                          "queued": s.get("queued", 0), "clicks": clicked.get((name, i), 0),
                          "click_rate": round(clicked.get((name, i), 0) / n_sent, 4) if n_sent else None,
                          "converted": a.get("converted", 0),
                          "conversion_rate": round(a.get("converted", 0) / n_sent, 4) if n_sent else None,
                          "revenue": money(a.get("revenue")), "discount_cost": money(a.get("discount_cost")),
                          "revenue_per_recipient": round(money(a.get("revenue")) / n_sent, 2) if n_sent else None,
                          "free_shipping_orders": a.get("free_shipping") or 0})
            if steps[-1]["free_shipping_orders"]:
                steps[-1]["note"] = FREE_SHIPPING_NOTE.format(n=steps[-1]["free_shipping_orders"])
            steps[-1].update(offer_tests.step_report(db, shop, flow, i, settings["conversion_days"], now))
        e = enrolled.get(name, {"enrolled": 0, "held_out": 0})
        reached = recipients.get(name, 0)
        converted = sum(s["converted"] for s in steps)
        revenue = sum(s["revenue"] for s in steps)
        window = flow["steps"][-1]["delay_days"] + settings["conversion_days"]
        out.append({"flow": name, "enabled": flow["enabled"], "enrolled": e["enrolled"], "held_out": e["held_out"],
                    "sent": sum(s["sent"] for s in steps), "queued": sum(s["queued"] for s in steps),
                    "recipients": reached, "converted": converted,
                    "conversion_rate": round(converted / reached, 4) if reached else None,
                    "revenue": round(revenue, 2), "discount_cost": round(sum(s["discount_cost"] for s in steps), 2),
                    "revenue_per_recipient": round(revenue / reached, 2) if reached else None,
                    "lift": lift(db, shop, name, window, now, since), "steps": steps})
        if name == journey.FLOW:  # the after-purchase journey's 0-10 answers
            out[-1]["nps"] = nps.summary(db, shop["id"], name, params["now"])
        shipped = out[-1]["free_shipping_orders"] = sum(s["free_shipping_orders"] for s in steps)
        if shipped:
            out[-1]["note"] = FREE_SHIPPING_NOTE.format(n=shipped)
    return {"shop": shop["handle"], "now": to_db(now), "since": params["since"] or None, "currency": shop["currency"],
            "attribution_days": settings["conversion_days"], "flows": out}

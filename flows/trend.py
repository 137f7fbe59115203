"""The report's weekly trend: per week (Monday to Sunday in the shop's time zone) the emails sent,
the orders they converted and the incremental revenue against the holdout.

- sent: marketing and service emails delivered that week;
- converted: orders that week credited to an email by the report's rule (the enrolment's first
  paid order after an email, within `conversion_days` of the last email before it or with its code);
- incremental revenue: per flow, the customers who entered that week whose window has closed,
  (treated revenue per customer - held-out revenue per customer) x treated customers, summed over
  the flows; None for a week in which no flow can compare yet.
"""
from collections import defaultdict
from datetime import date, timedelta

from app.money import from_minor
from app.settings import Message, N_, get_settings
from app.timeutil import from_db, start_of_day, to_db, zone

from .definitions import PRIORITY, load_flows

SENT_BY_HOUR = """
SELECT substr(sent_at, 1, 13) AS hour, COUNT(*) FROM messages
WHERE shop_id = :shop AND status = 'sent' AND sent_at >= :since AND sent_at < :now GROUP BY 1
"""

# `+m.status`: without the unary plus SQLite reads the messages by status (every sent email of the
# installation, once per order) instead of by customer: 28 s instead of 0.06 s on the demo.
CONVERTED = """
WITH candidates AS (
    SELECT e.id AS enrolment_id, o.created_at,
           (SELECT MAX(m.sent_at) FROM messages m WHERE m.customer_id = e.customer_id AND m.enrolment_id = e.id
                AND +m.status = 'sent'
                AND m.sent_at < :now AND m.sent_at < o.created_at) AS last_sent,
           EXISTS (SELECT 1 FROM discount_codes d WHERE d.enrolment_id = e.id AND d.used_order_id = o.id) AS with_code
    FROM enrolments e
    JOIN orders o ON o.customer_id = e.customer_id AND o.status = 'paid' AND o.is_test = 0
                 AND o.created_at > e.entered_at AND o.created_at < :now
    WHERE e.shop_id = :shop AND e.held_out = 0 AND e.entered_at >= :since
)
SELECT substr(created_at, 1, 13) AS hour, COUNT(*) FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY enrolment_id ORDER BY created_at) AS nth FROM candidates
    WHERE last_sent IS NOT NULL AND (with_code OR julianday(created_at) - julianday(last_sent) <= :days)
) WHERE nth = 1 GROUP BY 1
"""

# Per entry hour and group of one flow: matured enrolments, and their revenue within the window.
COHORTS = """
SELECT substr(e.entered_at, 1, 13) AS hour, e.held_out, COUNT(*) AS n, COALESCE(SUM(w.revenue), 0) AS revenue
FROM enrolments e
JOIN (SELECT e2.id, SUM(CASE WHEN o.currency = :currency THEN o.total_minor - o.refunded_minor ELSE 0 END) AS revenue
      FROM enrolments e2
      LEFT JOIN orders o ON o.customer_id = e2.customer_id AND o.status = 'paid' AND o.is_test = 0
                        AND o.created_at > e2.entered_at
                        AND julianday(o.created_at) < julianday(e2.entered_at) + :window
      WHERE e2.shop_id = :shop AND e2.flow = :flow AND e2.entered_at >= :since
      GROUP BY e2.id) AS w ON w.id = e.id
WHERE julianday(e.entered_at) + :window <= julianday(:now)
GROUP BY 1, 2
"""


def _week_of(hour: str, tz) -> str:
    """The Monday (shop time) of the week a stored UTC hour ('2026-06-08T09') falls in."""
    local = from_db(hour + ":00:00Z").astimezone(tz).date()
    return (local - timedelta(days=local.weekday())).isoformat()


def weekly_trend(db, shop, now, since=None) -> list[dict]:
    """[{"week" (its Monday), "sent", "converted", "incremental_revenue"}] from the first week with
    an email or an entrant to the week of `now`, oldest first; [] when there is none."""
    tz = zone(shop["timezone"])
    settings = get_settings(db, shop["id"])
    params = {"shop": shop["id"], "now": to_db(now), "since": to_db(since) if since else "",
              "days": settings["conversion_days"], "currency": shop["currency"]}
    sent, converted = defaultdict(int), defaultdict(int)
    for hour, n in db.execute(SENT_BY_HOUR, params):
        sent[_week_of(hour, tz)] += n
    for hour, n in db.execute(CONVERTED, params):
        converted[_week_of(hour, tz)] += n
    incremental: dict[str, float] = {}
    flows = load_flows(db, shop["id"])
    for name in PRIORITY:
        flow = flows[name]
        window = flow["steps"][-1]["delay_days"] + settings["conversion_days"]
        groups = defaultdict(lambda: {0: [0, 0], 1: [0, 0]})
        for r in db.query(COHORTS, {**params, "flow": name, "window": window}):
            cell = groups[_week_of(r["hour"], tz)][r["held_out"]]
            cell[0] += r["n"]
            cell[1] += r["revenue"]
        for week, g in groups.items():
            (tn, trev), (hn, hrev) = g[0], g[1]
            if tn and hn:
                extra = (trev / tn - hrev / hn) * tn
                incremental[week] = incremental.get(week, 0.0) + extra
    weeks = sorted(set(sent) | set(converted) | set(incremental))
    if not weeks:
        return []
    out, week = [], weeks[0]
    last = _week_of(to_db(now)[:13], tz)
    while week <= last:
        extra = incremental.get(week)
        out.append({"week": week, "sent": sent.get(week, 0), "converted": converted.get(week, 0),
                    "incremental_revenue": float(from_minor(round(extra), shop["currency"])) if extra is not None
                    else None})
        week = (from_db(week + "T00:00:00Z") + timedelta(days=7)).date().isoformat()
    return out


def date_range(shop, first: str | None, last: str | None, now):
    """(since, until) for the report from two dates in the shop's time zone (YYYY-MM-DD, both
    included; either may be empty): since is 00:00 of `first`, until is 00:00 after `last`, never
    later than `now`. ValueError with a reason for a date that is not one or a range that ends
    before it starts."""
    def parse(text, refused):
        try:
            return date.fromisoformat(text.strip()) if text and text.strip() else None
        except ValueError:
            raise ValueError(Message(refused, value=repr(text))) from None
    start = parse(first, N_("the first day, %(value)s, is not a date like 2026-06-01"))
    end = parse(last, N_("the last day, %(value)s, is not a date like 2026-06-01"))
    if start and end and end < start:
        raise ValueError(Message(N_("the range ends before it starts")))
    since = start_of_day(start, shop["timezone"]) if start else None
    until = min(start_of_day(end + timedelta(days=1), shop["timezone"]), now) if end else now
    return since, until

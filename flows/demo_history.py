"""The demo shop's past: months of flow history made by the real engine on simulated time.

`build_history` steps day by day from `now - days` to `now`: each day at 10:00 shop time it runs
the real tick (refresh, exits, enrolment with its holdout, claim, codes, the final checks at the
moment of sending, rendering) with `--now` on that day. The emails go to a `DemoTransport`, which
accepts and counts them and talks to no mail server: the demo can never mail anyone.

Then the simulated customers answer: some click (recorded through flows/clicks.py as a person's
click, well after delivery), and some order within a few days, more often than they would have
anyway, using the email's code. Everyone who enters a flow, held out or not, may also order within a
few days on their own (BASELINE_RATE, no code), so the control group converts too: the report's lift
is the difference. Orders are written through the
connectors' writer, as a sync would, and the engine sees each one only once its `now` has passed it.
"""
import random
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

from tqdm import tqdm

from app.db import write_transaction
from app.money import from_minor
from app.timeutil import parse_now, start_of_day, to_db, zone
from connectors.base import CustomerRecord, LineRecord, OrderRecord
from connectors.store import ShopWriter

from . import clicks, codes, enrolments, messages
from .engine import tick

HISTORY_DAYS = 180
TICK_HOUR = 10  # shop time: inside the default send window (09:00-20:00)
# What an email does to the demo's customers (per email, on top of what they would have bought anyway).
CLICK_RATE = 0.22
ORDER_RATE = {0: 0.035, 1: 0.02, 2: 0.03}  # by step: the first email, the reminder, the last chance
ORDER_PREFIX = "S"
BASELINE_RATE = 0.03  # an entrant who orders within five days anyway, emailed or held out
BASELINE_PREFIX = "B"


class DemoTransport:
    """A demo transport, not SMTP: it accepts every message and records that it did.

    Used only while the demo's history is simulated; it has the shape of the SMTP connection
    (`send`, `close`), so the engine's delivery runs unchanged up to the hand-over."""

    demo = True

    def __init__(self):
        self.accepted = 0
        self.message_ids: list[str] = []

    def connection(self):
        """The connection the engine sends through: this recorder itself."""
        return self

    def send(self, message):
        """Accept one message: counted and its Message-ID kept, nothing leaves the process."""
        self.accepted += 1
        self.message_ids.append(message["Message-ID"])

    def close(self):
        """Nothing to close."""


def forget_history(db, shop_id) -> None:
    """Remove the flow history of a shop (clicks, messages, codes, enrolments) before it is made again."""
    with write_transaction(db):
        clicks.forget_shop(db, shop_id)
        messages.erase_shop(db, shop_id)
        codes.forget_shop(db, shop_id)
        enrolments.forget_shop(db, shop_id)


def build_history(app, db, shop, *, days=HISTORY_DAYS, now, seed=1, progress=False) -> dict:
    """Simulate `days` days of flow history up to `now` (an aware datetime) with the real engine;
    returns what happened: {"days", "sent", "accepted", "clicks", "orders", "from", "to", "seconds"}.
    With `progress`, a bar over the days on stderr."""
    started = time.monotonic()
    forget_history(db, shop["id"])
    rng = random.Random(seed)
    transport = DemoTransport()
    tz = zone(shop["timezone"])
    today = now.astimezone(tz).date()
    totals = Counter()
    bar = tqdm(range(days, -1, -1), desc="Demo flow history", unit=" days", file=sys.stderr,
               disable=not progress, leave=False)
    for back in bar:
        moment = datetime.combine(today - timedelta(days=back), datetime.min.time(), tz) + timedelta(hours=TICK_HOUR)
        moment = moment.astimezone(now.tzinfo)
        if moment >= now:
            break
        result = tick(app, db, shop, moment, channel=transport)
        totals["days"] += 1
        totals["sent"] += result["sent"]
        totals.update(_customers_answer(db, shop, moment, now, rng))
    bar.close()
    totals["accepted"] = transport.accepted
    return {"days": totals["days"], "sent": totals["sent"], "accepted": totals["accepted"],
            "clicks": totals["clicks"], "orders": totals["orders"],
            "from": to_db(start_of_day(today - timedelta(days=days), shop["timezone"])), "to": to_db(now),
            "seconds": round(time.monotonic() - started, 2)}


ENTERED_TODAY = """
SELECT e.id, e.customer_id, c.external_id, c.email, NULL AS code, NULL AS kind, NULL AS percent, NULL AS amount_minor
FROM enrolments e JOIN customers c ON c.id = e.customer_id
WHERE e.shop_id = :shop AND e.entered_at = :now_db AND e.flow NOT LIKE 'campaign:%'
ORDER BY e.id
"""

SENT_TODAY = """
SELECT m.id, m.step, m.sent_at, m.customer_id, c.external_id, c.email, d.code, d.kind, d.percent, d.amount_minor
FROM messages m JOIN customers c ON c.id = m.customer_id
LEFT JOIN discount_codes d ON d.id = m.discount_code_id
WHERE m.shop_id = :shop AND m.status = 'sent' AND m.sent_at = :now_db AND m.is_marketing = 1
ORDER BY m.id
"""

# What the customer bought last: the basket they order again.
LAST_LINES = """
SELECT p.external_id AS product, l.title, l.brand, l.category, l.price_minor
FROM order_lines l JOIN orders o ON o.id = l.order_id LEFT JOIN products p ON p.id = l.product_id
WHERE o.customer_id = ? AND o.status = 'paid' AND o.is_test = 0 AND o.created_at < ?
ORDER BY o.created_at DESC, l.id LIMIT 2
"""


def _customers_answer(db, shop, moment, end, rng) -> Counter:
    """The day's emails meet their readers: clicks, and orders (with the code) within a few days."""
    counts = Counter()
    orders = []
    sent = list(db.query(SENT_TODAY, {"shop": shop["id"], "now_db": to_db(moment)}))
    for m in sent:
        buys = rng.random() < ORDER_RATE.get(m["step"], 0.05)
        if buys or rng.random() < CLICK_RATE:
            clicked_at = moment + timedelta(minutes=rng.randint(5, 600))
            if clicked_at < end and clicks.record(db, m["id"], "shop", clicked_at) == "counted":
                counts["clicks"] += 1
        if not buys:
            continue
        ordered_at = moment + timedelta(hours=rng.uniform(1, 72))
        if ordered_at >= end:
            continue
        order = _order(db, shop, m, ordered_at)
        if order is not None:
            orders.append(order)
    for e in db.query(ENTERED_TODAY, {"shop": shop["id"], "now_db": to_db(moment)}):
        ordered_at = moment + timedelta(hours=rng.uniform(1, 120))
        if rng.random() < BASELINE_RATE and ordered_at < end:
            order = _order(db, shop, e, ordered_at, prefix=BASELINE_PREFIX)
            if order is not None:
                orders.append(order)
    if orders:
        ShopWriter(db, shop).write_orders(orders)
        counts["orders"] += len(orders)
    return counts


def _order(db, shop, m, ordered_at, prefix=ORDER_PREFIX) -> OrderRecord | None:
    rows = list(db.query(LAST_LINES, [m["customer_id"], to_db(ordered_at)]))
    if not rows:
        return None
    lines = [LineRecord(line_key=str(i), product_external_id=r["product"], title=r["title"], brand=r["brand"],
                        category=r["category"], quantity=1, price=from_minor(r["price_minor"] or 0, shop["currency"]))
             for i, r in enumerate(rows, 1)]
    subtotal = sum((line.price for line in lines), Decimal(0))
    if m["kind"] == "percent" and m["percent"]:
        subtotal -= (subtotal * Decimal(m["percent"]) / 100).quantize(Decimal("0.01"))
    elif m["kind"] == "amount" and m["amount_minor"]:
        subtotal = max(subtotal - from_minor(m["amount_minor"], shop["currency"]), Decimal(0))
    return OrderRecord(
        external_id=f"{prefix}{m['id']}", created_at=ordered_at, total=subtotal, currency=shop["currency"],
        status="paid", financial_status="paid", discount_codes=[m["code"]] if m["code"] else [],
        updated_at=ordered_at, customer=CustomerRecord(external_id=m["external_id"], email=m["email"]),
        lines=lines)



def demo_history(app, db, shop, days, now, seed=1, progress=False) -> dict:
    """`winback demo`'s second half: the flow history of the freshly seeded demo shop, up to `now`
    (the command's --now: an ISO string or None for the current time)."""
    if not days:
        forget_history(db, shop["id"])
        return {"days": 0, "sent": 0, "accepted": 0, "clicks": 0, "orders": 0}
    return build_history(app, db, shop, days=days, now=parse_now(now, shop["timezone"]), seed=seed,
                         progress=progress)

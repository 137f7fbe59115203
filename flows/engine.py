"""The flow engine: one tick enrols who qualifies, exits who bought or unsubscribed, and sends what
is due. Every step of it can run at any `now`, and running the same tick twice sends nothing twice.

Delivery guarantee: at most once. A message is rendered and stored in the outbox in the same
transaction that advances its enrolment, under a unique idempotency key (enrolment:step), so a
crash before the commit leaves neither (the next tick renders it again) and a crash after it
leaves both (nothing is rendered twice). Delivery (app/mailer) marks a message `sending` before
talking to the SMTP server and never retries a message left in `sending`: a duplicate marketing
email with a discount code is worse than a rare lost one, which stays visible in the log.
"""
import hashlib
import json
from collections import Counter
from datetime import datetime, timedelta

from app.db import write_transaction
from app.settings import get_settings
from app.timeutil import local_date, to_db, zone

from . import codes, lease
from .definitions import PRIORITY, load_flows
from .refresh import ensure_snapshot
from .render import render

TICK_LEASE_SECONDS = 600
RUNNING = ("active", "held_out")


class TickBusy(RuntimeError):
    """Another tick of this shop is running."""


def holdout_bucket(shop_id, flow, customer_ref) -> float:
    """A stable number in [0, 1) per (shop, flow, customer): the same customer always lands alike."""
    digest = hashlib.sha256(f"{shop_id}:{flow}:{customer_ref}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def _register_functions(db):
    db.conn.create_function("wb_bucket", 3, holdout_bucket, deterministic=True)


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


# ---- entry ----------------------------------------------------------------------------------
ENROL = """
INSERT OR IGNORE INTO enrolments (shop_id, customer_id, flow, anchor_order_at, reason, held_out, discounted,
                                  entered_at, step, next_due_at, status)
SELECT :shop, s.customer_id, :flow, sn.last_order_at, :entry || ': ' || sn.days_since_last || ' days since the last order',
       h.out, CASE WHEN h.out = 0 AND :discounted THEN 1 ELSE 0 END, :now_db, 0,
       CASE WHEN h.out = 0 THEN :now_db END, CASE WHEN h.out = 1 THEN 'held_out' ELSE 'active' END
FROM customer_segments s
JOIN customer_snapshots sn ON sn.customer_id = s.customer_id
JOIN customers c ON c.id = s.customer_id
JOIN (SELECT 0 AS out UNION ALL SELECT 1) AS h
     ON h.out = (wb_bucket(:shop, :flow, c.external_id) < :holdout)
WHERE s.shop_id = :shop AND s.segment = :entry
  AND c.email IS NOT NULL AND c.unsubscribed_at IS NULL AND c.email_failed_at IS NULL
  AND (:service OR (c.accepts_marketing = 1 AND c.marketing_inactive_at IS NULL))
  AND NOT EXISTS (SELECT 1 FROM enrolments e WHERE e.customer_id = s.customer_id AND e.status IN ('active', 'held_out'))
  AND NOT EXISTS (SELECT 1 FROM enrolments e WHERE e.customer_id = s.customer_id AND e.flow = :flow
                  AND e.anchor_order_at = sn.last_order_at)
  {extra}
"""

NOT_RECENTLY_DISCOUNTED = """
  AND NOT EXISTS (SELECT 1 FROM enrolments e WHERE e.customer_id = s.customer_id AND e.discounted = 1
                  AND e.entered_at > :cooldown_since)"""

# The last purchase held a replenishable product: the replenish flow speaks to them, not win-back,
# until one cycle past its due date.
NOT_LEFT_TO_REPLENISH = """
  AND NOT EXISTS (SELECT 1 FROM orders o JOIN order_lines l ON l.order_id = o.id
                  JOIN json_each(:cycles) cy ON CAST(cy.key AS INTEGER) = l.product_id
                  WHERE o.customer_id = s.customer_id AND o.status = 'paid' AND o.is_test = 0
                    AND o.order_date = sn.last_date
                    AND julianday(:now_date) <= julianday(sn.last_date) + cy.value * MAX(l.quantity, 1) + cy.value)"""

NOT_VIP = """
  AND NOT EXISTS (SELECT 1 FROM customer_segments v WHERE v.customer_id = s.customer_id AND v.segment = 'vip_at_risk')"""

SECOND_ORDER_TIMING = """
  AND sn.days_since_first >= :min_days AND sn.days_since_last <= :max_days"""


def _has_offer(flow):
    return any(step.get("offer") for step in flow["steps"])


def enrol_pass(db, params, flows, settings, snapshot, customer_id=None) -> Counter:
    """Enrol the customers each flow's entry segment holds now, in priority order."""
    counts = Counter()
    cycles = json.dumps((snapshot.get("model") or {}).get("replenish_cycles") or {})
    for name in PRIORITY:
        flow = flows[name]
        if not flow["enabled"]:
            continue
        extra = ""
        if _has_offer(flow):
            extra += NOT_RECENTLY_DISCOUNTED
        if name in ("winback", "vip_winback"):
            extra += NOT_LEFT_TO_REPLENISH
        if name == "winback":
            extra += NOT_VIP
        if name == "second_order":
            extra += SECOND_ORDER_TIMING
        if customer_id is not None:
            extra += "\n  AND s.customer_id = :only_customer"
        cur = db.execute(ENROL.format(extra=extra), {
            **params, "flow": name, "entry": flow["entry"], "holdout": flow["holdout"],
            "discounted": int(_has_offer(flow)), "service": int(flow["kind"] == "service"),
            "cycles": cycles, "min_days": flow.get("min_days_since_order", 14),
            "max_days": flow.get("max_days_since_order", 180),
            "cooldown_since": to_db(params["now"] - timedelta(days=settings["discount_cooldown_days"])),
            "only_customer": customer_id})
        counts["enrolled"] += cur.rowcount
        length = flow["steps"][-1]["delay_days"] + settings["conversion_days"]
        db.execute(COMPLETE_HOLDOUT, {**params, "flow": name,
                                      "until": to_db(params["now"] - timedelta(days=length))})
    counts["held_out"] = db.execute(
        "SELECT COUNT(*) FROM enrolments WHERE shop_id = :shop AND held_out = 1 AND entered_at = :now_db",
        params).fetchone()[0]
    counts["enrolled"] -= counts["held_out"]
    return counts


# ---- sending --------------------------------------------------------------------------------
def next_window_open(now: datetime, tz: str, start: int, end: int) -> datetime | None:
    """None when `now` is inside the daily send window, else when it next opens."""
    local = now.astimezone(zone(tz))
    if start <= local.hour < end:
        return None
    opening = local.replace(hour=start, minute=0, second=0, microsecond=0)
    if local.hour >= end:
        opening += timedelta(days=1)
    return opening.astimezone(now.tzinfo)


def _cap_frees_at(sent_times, now, per_day, per_week):
    """None when one more marketing email fits the caps, else when it will."""
    day = [t for t in sent_times if t > now - timedelta(days=1)]
    week = [t for t in sent_times if t > now - timedelta(days=7)]
    waits = []
    if len(day) >= per_day:
        waits.append(sorted(day)[-per_day] + timedelta(days=1))
    if len(week) >= per_week:
        waits.append(sorted(week)[-per_week] + timedelta(days=7))
    return max(waits) if waits else None


def _links(app, shop, enrolment):
    from app import tokens
    base = app.config["APP_URL"]
    links = {"unsubscribe_url": f"{base}/u/{tokens.make(app, 'unsubscribe', shop['id'], enrolment['customer_id'])}"}
    if enrolment["flow"] == "sunset":  # only the sunset email asks to confirm
        links["keep_url"] = f"{base}/k/{tokens.make(app, 'keep', shop['id'], enrolment['customer_id'])}"
    return links


def live_check(db, shop, params, connector, batch_size=1000):
    """Ask the platform for the latest orders of the customers about to be emailed (when it can)."""
    from connectors.base import Connector
    from connectors.store import ShopWriter
    if connector is None or type(connector).recent_orders is Connector.recent_orders:
        return 0
    due = list(db.query(
        "SELECT e.entered_at, c.* FROM enrolments e JOIN customers c ON c.id = e.customer_id"
        " WHERE e.shop_id = :shop AND e.status = 'active' AND e.next_due_at <= :now_db LIMIT :limit",
        {**params, "limit": batch_size}))
    found = []
    for row in due:
        from app.timeutil import from_db
        found.extend(connector.recent_orders(row, from_db(row["entered_at"])))
    if found:
        ShopWriter(db, shop).write_orders(found)
    return len(found)


def send_pass(app, db, shop, params, flows, settings, connector=None, batch_size=1000) -> Counter:
    """Render and store every due step (deferring, never dropping, what the window or caps hold)."""
    counts = Counter()
    now = params["now"]
    opening = next_window_open(now, shop["timezone"], settings["window_start"], settings["window_end"])
    if opening is not None:
        with write_transaction(db):
            counts["deferred"] += db.execute(
                "UPDATE enrolments SET next_due_at = :opening, deferred_reason = 'send window'"
                " WHERE shop_id = :shop AND status = 'active' AND next_due_at <= :now_db",
                {**params, "opening": to_db(opening)}).rowcount
        return counts
    promotional = {n for n, f in flows.items() if f["kind"] == "promotional"}
    live_check(db, shop, params, connector)
    while True:
        with write_transaction(db):
            # The last look at the customer's orders, right before sending.
            exit_pass(db, params)
            due = list(db.query(
                "SELECT e.*, c.email, c.first_name, c.last_name, c.locale, c.external_id"
                " FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                " WHERE e.shop_id = :shop AND e.status = 'active' AND e.next_due_at <= :now_db"
                " ORDER BY e.next_due_at, e.id LIMIT :limit", {**params, "limit": batch_size}))
            if not due:
                return counts
            sent = _marketing_sends(db, [e["customer_id"] for e in due], now)
            messages, updates, render_cache = [], [], {}
            for enrolment in due:
                flow = flows.get(enrolment["flow"])
                step_no = enrolment["step"]
                if flow is None or step_no >= len(flow["steps"]):
                    updates.append(_finish(enrolment, flow, now, settings))
                    continue
                marketing = enrolment["flow"] in promotional
                if marketing:
                    frees = _cap_frees_at(sent.get(enrolment["customer_id"], []), now,
                                          settings["cap_per_day"], settings["cap_per_week"])
                    if frees is not None:
                        updates.append(("defer", to_db(frees), "frequency cap", enrolment["id"]))
                        counts["deferred"] += 1
                        continue
                step = flow["steps"][step_no]
                code = _offer_code(db, shop, enrolment, step.get("offer"), now, connector)
                email = render(step["template"], shop=shop, customer=enrolment, code=code,
                               products=_replenish_products(db, enrolment) if enrolment["flow"] == "replenish" else None,
                               links=_links(app, shop, enrolment), db=db, cache=render_cache)
                messages.append((shop["id"], enrolment["customer_id"], enrolment["id"], enrolment["flow"], step_no,
                                 f"{enrolment['id']}:{step_no}", int(marketing), enrolment["email"],
                                 email.locale, email.subject, email.text, email.html, code and code["id"],
                                 "outbox", params["now_db"], params["now_db"]))
                if marketing:
                    sent.setdefault(enrolment["customer_id"], []).append(now)
                updates.append(_advance(enrolment, flow, now, settings))
            inserted = db.conn.executemany(
                "INSERT OR IGNORE INTO messages (shop_id, customer_id, enrolment_id, flow, step, idempotency_key,"
                " is_marketing, email, locale, subject, body_text, body_html, discount_code_id, status, created_at,"
                " scheduled_for) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", messages).rowcount
            counts["sent"] += inserted
            _apply(db, updates, params)
            counts["completed"] += sum(1 for u in updates if u[0] == "complete")
            counts["exited"] += sum(1 for u in updates if u[0] == "no_response")


def _marketing_sends(db, customer_ids, now) -> dict:
    rows = db.execute(
        "SELECT customer_id, created_at FROM messages WHERE is_marketing = 1 AND created_at > ?"
        " AND customer_id IN (SELECT value FROM json_each(?))",
        [to_db(now - timedelta(days=7)), json.dumps(customer_ids)]).fetchall()
    out = {}
    for cid, created in rows:
        out.setdefault(cid, []).append(datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=now.tzinfo))
    return out


def _offer_code(db, shop, enrolment, offer, now, connector):
    if not offer:
        return None
    if offer.get("reuse"):
        code = codes.reusable(db, enrolment["id"], now)
        if code is not None:
            return code
        previous = codes.latest(db, enrolment["id"])  # expired: the same offer again, new code
        if previous is None:
            return None
        offer = ({"free_shipping": True, "valid_days": 1} if previous["kind"] == "free_shipping"
                 else {"percent": previous["percent"], "valid_days": 1})
    customer = {"id": enrolment["customer_id"], "email": enrolment["email"], "external_id": enrolment["external_id"]}
    return codes.create(db, shop, customer, enrolment["id"], offer, now, connector)


def _replenish_products(db, enrolment):
    row = db.execute("SELECT detail FROM customer_segments WHERE customer_id = ? AND segment = 'replenish_due'",
                     [enrolment["customer_id"]]).fetchone()
    return [item["title"] for item in json.loads(row[0])] if row and row[0] else None


def _advance(enrolment, flow, now, settings):
    first_sent = enrolment["first_sent_at"] or to_db(now)
    nxt = enrolment["step"] + 1
    if nxt < len(flow["steps"]):
        base = datetime.strptime(first_sent, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=now.tzinfo)
        return ("advance", nxt, first_sent, to_db(base + timedelta(days=flow["steps"][nxt]["delay_days"])),
                enrolment["id"])
    if flow["name"] == "sunset":  # wait for an answer, then mark inactive
        return ("advance", nxt, first_sent, to_db(now + timedelta(days=flow.get("no_response_days", 14))),
                enrolment["id"])
    return ("complete", nxt, first_sent, enrolment["id"])


def _finish(enrolment, flow, now, settings):
    if flow is not None and flow["name"] == "sunset":
        return ("no_response", enrolment["customer_id"], enrolment["id"])
    return ("complete", enrolment["step"], enrolment["first_sent_at"], enrolment["id"])


def _apply(db, updates, params):
    by_kind = {}
    for u in updates:
        by_kind.setdefault(u[0], []).append(u[1:])
    conn = db.conn
    if "advance" in by_kind:
        conn.executemany("UPDATE enrolments SET step = ?, first_sent_at = ?, next_due_at = ?, deferred_reason = NULL"
                         " WHERE id = ?", by_kind["advance"])
    if "complete" in by_kind:
        conn.executemany(f"UPDATE enrolments SET step = ?, first_sent_at = ?, next_due_at = NULL, status = 'completed',"
                         f" ended_at = '{params['now_db']}' WHERE id = ?", by_kind["complete"])
    if "defer" in by_kind:
        conn.executemany("UPDATE enrolments SET next_due_at = ?, deferred_reason = ? WHERE id = ?", by_kind["defer"])
    if "no_response" in by_kind:
        conn.executemany("UPDATE customers SET marketing_inactive_at = ? WHERE id = ?",
                         [(params["now_db"], cid) for cid, _ in by_kind["no_response"]])
        conn.executemany("UPDATE enrolments SET status = 'exited', exit_reason = 'no_response', next_due_at = NULL,"
                         " ended_at = ? WHERE id = ?", [(params["now_db"], eid) for _, eid in by_kind["no_response"]])


# ---- the tick -------------------------------------------------------------------------------
def _context(db, shop, now):
    _register_functions(db)
    settings = get_settings(db, shop["id"])
    flows = load_flows(db, shop["id"])
    snapshot = ensure_snapshot(db, shop, now)
    params = {"shop": shop["id"], "now": now, "now_db": to_db(now),
              "now_date": local_date(now, shop["timezone"]),
              "promotional": json.dumps([n for n, f in flows.items() if f["kind"] == "promotional"])}
    return settings, flows, snapshot, params


def preview(db, shop, now, customer_id=None) -> list[dict]:
    """Who would enter which flow at `now`, and why: the real rules run and are rolled back."""
    settings, flows, snapshot, params = _context(db, shop, now)
    with write_transaction(db):
        db.execute("SAVEPOINT preview")
        try:
            before = db.execute("SELECT COALESCE(MAX(id), 0) FROM enrolments").fetchone()[0]
            exit_pass(db, params)
            enrol_pass(db, params, flows, settings, snapshot, customer_id=customer_id)
            rows = list(db.query(
                "SELECT c.external_id AS customer, c.email, e.flow, e.held_out, e.reason FROM enrolments e"
                " JOIN customers c ON c.id = e.customer_id WHERE e.id > ? ORDER BY e.flow, c.external_id", [before]))
        finally:
            db.execute("ROLLBACK TO preview")
            db.execute("RELEASE preview")
    for row in rows:
        row["held_out"] = bool(row["held_out"])
    return rows


def tick(app, db, shop, now, connector=None) -> dict:
    """One scheduler tick for one shop at `now`: {"enrolled", "sent", "held_out", "exited", "deferred"}."""
    holder = lease.holder_id()
    name = f"flows:{shop['id']}"
    if not lease.acquire(db, name, holder, TICK_LEASE_SECONDS):
        raise TickBusy(f"another tick of shop {shop['handle']!r} is running")
    try:
        settings, flows, snapshot, params = _context(db, shop, now)
        counts = Counter()
        with write_transaction(db):
            codes.mark_used(db, params)
            counts["exited"] += exit_pass(db, params)
            counts.update(enrol_pass(db, params, flows, settings, snapshot))
        counts.update(send_pass(app, db, shop, params, flows, settings, connector))
        from app.mailer import deliver
        delivery = deliver(app, db, shop, now)  # None: no SMTP configured, the outbox waits
        return {key: counts.get(key, 0) for key in ("enrolled", "sent", "held_out", "exited", "deferred")} | {
            "completed": counts.get("completed", 0), "now": params["now_db"], "delivery": delivery}
    finally:
        lease.release(db, name, holder)

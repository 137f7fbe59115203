"""Delivery: what leaves is decided when it leaves.

A flow step that falls due is *claimed* (a message row in `outbox`, in a short write transaction),
its discount code is created on the platform (outside any transaction), and then, right before the
message is handed to the mail server, it is checked once more against the state of that moment:
flow still on, customer still subscribed and consenting, address deliverable, no purchase since
entry, frequency cap over *delivered* marketing email, send window, postal address, and not too late
(`max_lateness_hours` after its planned time). Only then is it rendered, with the time left on its
code counted from that moment, and sent. What fails a check is `withheld` with a reason the owner
can read; the enrolment ends (nothing of it was delivered yet, or the customer or flow is the
reason) or moves on to its next step.

Without a delivery channel nothing is claimed at all (the engine runs in preview), so there is never
a backlog to flush when email is configured later.

At most once: a message is marked `sending` with its Message-ID (committed) before the SMTP
conversation and `sent` right after it. A process killed in between leaves it `sending`; the next
delivery run of the shop (which holds the shop's lease, so no other sender is alive) marks it
`unknown` and never sends it again; the owner can confirm it from the mail server's log.

No network I/O happens inside a write transaction: codes are reserved in the database, created on
the platform, then recorded; SMTP talks between two short transactions.
"""
import json
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal

from app import tokens
from app.addresses import address_problem
from app.db import write_transaction
from app.mailer import (
    MAX_ATTEMPTS,
    RETRY_AFTER,
    Connection,
    PermanentFailure,
    SmtpConfig,
    TemporaryFailure,
    build,
    smtp_url_for,
)
from app.money import from_minor
from app.timeutil import from_db, to_db, utcnow, zone
from connectors import store

from . import (campaigns, category_winback, clicks, codes, enrolments, journey, messages, nps, offer_arms,
               offer_policy, products)
from .definitions import FLOW_OFF
from .enrolments import exit_pass
from .exits import finish_waiting, live_check
from .render import products_wanted, render
from .storefront import shop_target

log = logging.getLogger("winback.delivery")
BATCH = 200
MIN_CODE_LEFT = timedelta(hours=2)  # a reminder about a code with less time left is withheld
CODE_RETRY = timedelta(minutes=5)
CODE_CONCURRENCY = 4   # a code the platform did not create yet is tried again this much later
INTERRUPTED = "interrupted while being handed to the mail server; not sent again automatically"


def channel_for(app, settings) -> SmtpConfig | None:
    """The shop's working delivery channel (its SMTP server), or None: flows then run in preview."""
    try:  # an SMTP URL that cannot be decrypted or parsed is no working channel (the dashboard says why)
        url = smtp_url_for(app, settings)
        return SmtpConfig.parse(url) if url else None
    except ValueError:
        return None


def next_window_open(now: datetime, tz: str, start: int, end: int) -> datetime | None:
    """None when `now` is inside the daily send window, else when it next opens."""
    local = now.astimezone(zone(tz))
    if start <= local.hour < end:
        return None
    opening = local.replace(hour=start, minute=0, second=0, microsecond=0)
    if local.hour >= end:
        opening += timedelta(days=1)
    return opening.astimezone(now.tzinfo)


def cap_frees_at(sent_times, now, per_day, per_week):
    """None when one more marketing email fits the caps, else when it will."""
    day = [t for t in sent_times if t > now - timedelta(days=1)]
    week = [t for t in sent_times if t > now - timedelta(days=7)]
    waits = []
    if len(day) >= per_day:
        waits.append(sorted(day)[-per_day] + timedelta(days=1))
    if len(week) >= per_week:
        waits.append(sorted(week)[-per_week] + timedelta(days=7))
    return max(waits) if waits else None


def delivered_marketing(db, customer_ids, now) -> dict:
    """{customer id: [hand-over times]} of marketing email in the last 7 days that may have reached
    them (sent, being sent, or interrupted mid-send)."""
    rows = db.execute(
        "SELECT customer_id, sent_at FROM messages WHERE is_marketing = 1 AND status IN ('sent', 'sending', 'unknown')"
        " AND sent_at > ? AND sent_at <= ? AND customer_id IN (SELECT value FROM json_each(?))",
        [to_db(now - timedelta(days=7)), to_db(now), json.dumps(customer_ids)]).fetchall()
    out = {}
    for cid, sent in rows:
        out.setdefault(cid, []).append(from_db(sent))
    return out


def customer_problem(row, marketing: bool) -> str | None:
    """Why this customer may not get this email now (None: they may)."""
    if row["unsubscribed_at"]:
        return "the customer unsubscribed"
    if not row["email"]:
        return "the customer has no email address"
    if row["email_failed_at"]:
        return f"the address is undeliverable ({row['email_failure'] or 'failed before'})"
    problem = address_problem(row["email"])
    if problem:
        return problem
    if marketing and row["accepts_marketing"] != 1:
        return "no marketing consent"
    if marketing and row["marketing_inactive_at"]:
        return "marked inactive by the sunset flow"
    return None


# ---- advancing enrolments (their statements are in flows/enrolments.py) ----------------------
def _next_step(db, enrolment, flow, delivered_at, now):
    """After step `enrolment.step` was decided: schedule the next step, the sunset wait, or complete.
    Delays count from the first delivered email of the enrolment."""
    first = enrolment["first_sent_at"] or (to_db(delivered_at) if delivered_at else None)
    nxt = enrolment["step"] + 1
    if first is None:  # nothing of this enrolment was delivered: it ends here
        return None
    if nxt < len(flow["steps"]):
        due = to_db(max(from_db(first) + timedelta(days=flow["steps"][nxt]["delay_days"]), now))
        enrolments.schedule_step(db, enrolment["id"], nxt, first, due)
    elif flow["name"] == "sunset" and delivered_at is not None:
        # Wait for an answer to the delivered email, then mark the customer inactive.
        due = to_db(delivered_at + timedelta(days=flow.get("no_response_days", 14)))
        enrolments.schedule_step(db, enrolment["id"], nxt, first, due)
    else:
        enrolments.complete_after(db, enrolment["id"], nxt, first, to_db(now))
    return nxt


def _withhold_step(db, shop, enrolment, flow, reason, now, *, end: bool, message_id=None):
    """Record a step that was not sent, and end the enrolment or move it on."""
    now_db = to_db(now)
    if message_id is None:
        messages.record_withheld(db, shop["id"], enrolment, flow, reason, now_db)
    else:
        messages.withhold(db, message_id, reason)
    if end or flow is None or _next_step(db, enrolment, flow, None, now) is None:
        enrolments.end(db, enrolment["id"], reason, now_db)


# ---- claiming what is due --------------------------------------------------------------------
DUE = """
SELECT e.*, c.email, c.external_id, c.unsubscribed_at, c.accepts_marketing, c.marketing_inactive_at,
       c.email_failed_at, c.email_failure
FROM enrolments e JOIN customers c ON c.id = e.customer_id
WHERE e.shop_id = :shop AND e.status = 'active' AND e.next_due_at <= :now_db
ORDER BY e.next_due_at, e.id LIMIT :limit
"""


def _late_reason(hours):
    return f"could not leave within {hours} h of its planned time"


def claim(db, shop, params, flows, settings, limit) -> Counter:
    """One short write transaction: decide every due step (claim, defer or withhold)."""
    now, now_db = params["now"], params["now_db"]
    counts = Counter()
    lateness = timedelta(hours=settings["max_lateness_hours"])
    postal = (settings.get("postal_address") or "").strip()
    opening = next_window_open(now, shop["timezone"], settings["window_start"], settings["window_end"])
    with write_transaction(db):
        counts["exited"] += exit_pass(db, params)  # the last look at the orders, right before sending
        due = list(db.query(DUE, {**params, "limit": limit}))
        sent = delivered_marketing(db, [e["customer_id"] for e in due], now)
        for e in due:
            flow = flows.get(e["flow"])
            if flow is None or not flow["enabled"]:
                _withhold_step(db, shop, e, None, FLOW_OFF, now, end=True)
                counts["withheld"] += 1
                continue
            if e["step"] >= len(flow["steps"]):  # past the last email: only sunset waits here
                counts.update(finish_waiting(db, e, flow, now_db))
                continue
            marketing = flow["kind"] == "promotional"
            planned = from_db(e["step_planned_at"] or e["next_due_at"])
            problem = customer_problem(e, marketing)
            if problem is None and marketing and not postal:
                problem = "no postal address in the shop's settings (required in marketing email)"
            if problem:
                _withhold_step(db, shop, e, flow, problem, now, end=True)
                counts["withheld"] += 1
                continue
            hold_until, why = None, None
            if opening is not None:
                hold_until, why = opening, "send window"
            elif marketing:
                frees = cap_frees_at(sent.get(e["customer_id"], []), now, settings["cap_per_day"], settings["cap_per_week"])
                if frees is not None:
                    hold_until, why = frees, "frequency cap"
            late_from = from_db(flow["starts_at"]) if flow.get("starts_at") else planned  # a campaign: its time
            if now > late_from + lateness:
                _withhold_step(db, shop, e, flow, _late_reason(settings["max_lateness_hours"]), now, end=False)
                counts["withheld"] += 1
                continue
            if hold_until is not None:
                # The window and the caps re-plan the step (deferred, never dropped); lateness counts
                # from the new plan. Whether its code still holds is checked when it leaves.
                enrolments.defer(db, e["id"], to_db(hold_until), why)
                counts["deferred"] += 1
                continue
            _claim_step(db, shop, e, flow, planned, now)
            if marketing:
                sent.setdefault(e["customer_id"], []).append(now)
            counts["claimed"] += 1
    return counts


def _claim_step(db, shop, e, flow, planned, now):
    now_db = to_db(now)
    offer = offer_arms.offer_for(db, shop["id"], e, flow, now_db)  # the step's offer, or its test's arm
    offer, note = offer_policy.decide(db, shop, e, offer)  # the discount guardrails, on that offer
    code_id = None
    if offer and not offer.get("reuse"):
        # Reserve the code here; it is created on the platform outside this transaction.
        code_id = codes.reserve(db, shop, e, offer, now, platform=shop["platform"] not in ("demo", "import"))
    messages.claim(db, shop["id"], e, flow["kind"] == "promotional", code_id, now_db, to_db(planned))
    if note:
        messages.note_offer(db, e, json.dumps(note))
    enrolments.claimed(db, e["id"], to_db(planned))


# ---- codes on the platform, outside any transaction ------------------------------------------
def create_reserved_codes(db, shop, connector) -> Counter:
    """Create the shop's reserved codes on the platform: the calls run outside any transaction (a
    few at a time), each result is recorded in its own short one. A code reserved before a crash is
    created with the same string, so a retry never makes a second code; "already exists" means the
    first call went through."""
    counts = Counter()
    rows = list(db.query(
        "SELECT d.*, c.external_id, c.email FROM discount_codes d JOIN customers c ON c.id = d.customer_id"
        " WHERE d.shop_id = ? AND d.platform_state = 'reserved'", [shop["id"]]))
    if not rows:
        return counts
    if connector is None:
        results = [(row, "reserved", None, "no connection to the shop's platform") for row in rows]
    else:
        # requests' connection pool is thread-safe; a few calls at once keep a slow platform from
        # stretching a tick to hours, and stay well inside Shopify's and WooCommerce's rate limits.
        with ThreadPoolExecutor(max_workers=CODE_CONCURRENCY) as pool:
            results = list(pool.map(lambda row: _create_one(shop, connector, row), rows))
    for row, state, ref, error in results:
        with write_transaction(db):
            codes.record_platform_result(db, row["id"], state, ref, error)
        counts["codes_created" if state != "reserved" else "codes_failed"] += 1
    return counts


def _create_one(shop, connector, row):
    """(row, state, platform ref, error) of one platform call."""
    try:
        ref = connector.create_discount(
            code=row["code"], customer={"id": row["customer_id"], "email": row["email"],
                                        "external_id": row["external_id"]},
            percent=Decimal(str(row["percent"])) if row["percent"] is not None else None,
            free_shipping=row["kind"] == "free_shipping", expires_at=from_db(row["expires_at"]),
            amount=from_minor(row["amount_minor"], row["currency"]) if row["amount_minor"] else None,
            min_order=from_minor(row["min_order_minor"], row["currency"]) if row["min_order_minor"] else None)
        return row, "created", ref, None
    except NotImplementedError:
        return row, "local", None, None
    except Exception as exc:  # noqa: BLE001 - one code's trouble stays with its message
        if _already_exists(exc):
            return row, "created", None, None
        log.warning("creating code %s for shop %s failed: %s", row["code"], shop["handle"], exc)
        return row, "reserved", None, f"{type(exc).__name__}: {exc}"[:500]


def _already_exists(exc) -> bool:
    text = str(exc).lower()
    return (getattr(exc, "code", None) == "woocommerce_rest_coupon_code_already_exists"
            or "already exists" in text or "must be unique" in text or "already been taken" in text)


# ---- handing over --------------------------------------------------------------------------
FRESH = """
SELECT m.*, e.status AS e_status, e.exit_reason, e.step AS e_step, e.first_sent_at, e.entered_at, e.next_due_at, e.step_planned_at,
       e.flow AS e_flow, e.segment AS e_segment, e.anchor_order_at AS e_anchor,
       c.email AS c_email, c.first_name, c.last_name, c.locale AS c_locale, c.external_id,
       c.unsubscribed_at, c.accepts_marketing, c.marketing_inactive_at, c.email_failed_at, c.email_failure,
       EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = e.customer_id AND o.status IN ('paid', 'pending')
               AND o.is_test = 0 AND o.created_at > e.entered_at AND o.created_at < :now_db) AS bought
FROM messages m JOIN enrolments e ON e.id = m.enrolment_id JOIN customers c ON c.id = m.customer_id
WHERE m.id = :id
"""


def _final_problem(row, flow, settings, now, marketing, owns) -> tuple[str | None, bool]:
    """(why this message may not leave at this moment, whether that ends the enrolment)."""
    if flow is None or not flow["enabled"]:
        return FLOW_OFF, True
    problem = customer_problem({**row, "email": row["c_email"]}, marketing)
    if problem:
        return problem, True
    if row["bought"]:
        return "the customer ordered again", True
    if journey.over(flow, row["e_anchor"], now):
        return "the journey is over (its time after the order ran out)", True
    if owns and row["e_status"] != "active":
        return f"the enrolment ended ({row['exit_reason'] or row['e_status']})", True
    if marketing and not (settings.get("postal_address") or "").strip():
        return "no postal address in the shop's settings (required in marketing email)", True
    planned = from_db(row["planned_for"] or row["scheduled_for"])
    if now > planned + timedelta(hours=settings["max_lateness_hours"]):
        return _late_reason(settings["max_lateness_hours"]), False
    return None, False


def _code_for(db, row, step, now):
    """(code dict or None, problem or None) for the message's step."""
    offer = offer_arms.drawn_offer(db, row["enrolment_id"], row["step"], step.get("offer"))
    if not offer or offer_policy.removed(row):
        return None, None
    if offer.get("reuse"):
        code = codes.reusable(db, row["enrolment_id"], now)
        if code is None or from_db(code["expires_at"]) - now < MIN_CODE_LEFT:
            return None, "its code has expired or runs out too soon for a reminder"
        return code, None
    code = codes.quoted(db, row["discount_code_id"]) if row["discount_code_id"] else None
    if code is None:
        return None, "its code is missing"
    if code["platform_state"] == "reserved":
        return None, f"the code could not be created on the platform yet: {code['platform_error'] or 'pending'}"
    return dict(code), None


def drain(app, db, shop, params, flows, settings, channel, connector=None, *, realtime=False,
          heartbeat=None) -> Counter:
    """Deliver everything of the shop that is due, continuously, at the shop's pace; returns counts.

    With `realtime` (the scheduler) each hand-over happens at the wall clock and a per-minute rate is
    waited out; otherwise (a run with `--now T`) everything is recorded at T and the run stops when
    the rate is used up. `heartbeat` renews the shop's lease between messages."""
    clock = utcnow if realtime else (lambda: params["now"])
    heartbeat = heartbeat or (lambda: None)
    counts = Counter()
    counts["unknown"] += settle_interrupted(db, shop, params["now_db"])
    live_check(db, shop, params, connector)
    flows = {**flows, **campaigns.start_due(db, shop, params, settings)}  # one-off campaigns: one-step sources
    # A channel that brings its own connection (the demo's recording transport) is used as it is.
    conn = channel.connection() if hasattr(channel, "connection") else Connection(channel)
    rate = settings.get("send_rate_per_minute")
    cache = {}
    try:
        while True:
            now = clock()
            step_params = {**params, "now": now, "now_db": to_db(now)}
            limit = BATCH
            if rate:
                budget = rate - _sent_last_minute(db, shop["id"], now)
                if budget <= 0:
                    if not realtime:
                        break  # a run "as of" a moment stops here; the scheduler goes on later
                    heartbeat()
                    time.sleep(1)
                    continue
                limit = min(limit, budget)
            decided = claim(db, shop, step_params, flows, settings, limit)
            counts.update(decided)
            counts.update(create_reserved_codes(db, shop, connector))
            pending = list(db.query(
                "SELECT id FROM messages WHERE shop_id = ? AND status = 'outbox' AND scheduled_for <= ?"
                " ORDER BY scheduled_for, id LIMIT ?", [shop["id"], to_db(now), limit]))
            if not pending and not decided.get("claimed"):
                if sum(decided.values()) == 0:
                    break
                continue
            stop = False
            for message_id in [r["id"] for r in pending]:
                heartbeat()
                outcome = deliver_one(app, db, shop, message_id, flows, settings, conn, clock(), render, cache)
                counts["retry" if outcome == "unreachable" else outcome] += 1
                if outcome == "unreachable":
                    stop = True
                    break
            if stop or not pending:
                break
    finally:
        conn.close()
    return counts


def _sent_last_minute(db, shop_id, now) -> int:
    return db.execute("SELECT COUNT(*) FROM messages WHERE shop_id = ? AND status IN ('sent', 'sending', 'unknown')"
                      " AND sent_at > ? AND sent_at <= ?",
                      [shop_id, to_db(now - timedelta(minutes=1)), to_db(now)]).fetchone()[0]


def deliver_one(app, db, shop, message_id, flows, settings, conn, now, render, cache) -> str:
    """Check one claimed message against this moment, render it and hand it to the mail server.
    Returns what happened: sent, withheld, retry, failed or unreachable."""
    now_db = to_db(now)
    row = next(iter(db.query(FRESH, {"id": message_id, "now_db": now_db})), None)
    if row is None or row["status"] != "outbox":
        return "skipped"
    # A message claimed by this engine owns its enrolment's step; one rendered by an older version
    # (its enrolment already moved on) only settles itself.
    owns = row["e_step"] == row["step"] and row["next_due_at"] is None
    flow = flows.get(row["flow"])
    marketing = bool(row["is_marketing"])
    enrolment = {"id": row["enrolment_id"], "customer_id": row["customer_id"], "flow": row["flow"],
                 "step": row["step"], "first_sent_at": row["first_sent_at"], "email": row["c_email"],
                 "step_planned_at": row["planned_for"], "next_due_at": row["next_due_at"]}
    problem, ends = _final_problem(row, flow, settings, now, marketing, owns)
    code = None
    if problem is None:
        step = flow["steps"][row["step"]]
        code, problem = _code_for(db, row, step, now)
        if problem and problem.startswith("the code could not be created"):
            with write_transaction(db):  # tried again at the next run, until it is too late
                messages.retry_at(db, message_id, problem[:500], to_db(now + CODE_RETRY))
            return "retry"
    if problem is not None:
        with write_transaction(db):
            if owns:
                _withhold_step(db, shop, enrolment, flow, problem, now, end=ends, message_id=message_id)
            else:
                messages.withhold(db, message_id, problem)
        return "withheld"
    try:
        customer = {"id": row["customer_id"], "first_name": row["first_name"], "last_name": row["last_name"],
                    "locale": row["c_locale"], "email": row["c_email"], "external_id": row["external_id"]}
        wanted = products_wanted(db, shop, customer, step["template"], cache)
        category = category_winback.category_of(row["e_segment"])
        picks = (campaigns.picks(db, shop["id"], step, wanted, cache) if step.get("campaign") else
                 products.picks_for(db, shop["id"], row["customer_id"], step["template"], wanted, cache=cache,
                                    category=category))
        items = products.blocks(picks, shop, settings, app.config["APP_URL"], code["code"] if code else None)
        named = (replenish_products(db, row["customer_id"]) if row["flow"] == "replenish"
                 else journey.bought_titles(db, row["customer_id"], row["e_anchor"])
                 if step["template"] == journey.CARE else None)
        email = render(step["template"], shop=shop, customer=customer, code=code, products=named or None,
                       items=items, links=_links(app, shop, row, settings, code, items), db=db, cache=cache, now=now,
                       campaign=step.get("campaign"), category=category)
        stored = {**row, "email": row["c_email"], "subject": email.subject, "body_text": email.text,
                  "body_html": email.html}
        message = build(app, shop, settings, stored)
    except Exception as exc:  # noqa: BLE001 - one message's trouble must not stop the run
        log.warning("message %s could not be built: %s", message_id, exc)
        with write_transaction(db):
            messages.fail(db, message_id, f"could not be built: {type(exc).__name__}: {exc}"[:500])
            if owns:
                enrolments.end(db, row["enrolment_id"], "message could not be built", now_db)
        return "failed"
    with write_transaction(db):
        messages.start_sending(db, message_id, message_id_header=message["Message-ID"], now_db=now_db,
                               email=row["c_email"], locale=email.locale, subject=email.subject,
                               body_text=email.text, body_html=email.html, code_id=code and code["id"])
    try:
        conn.send(message)
    except PermanentFailure as exc:
        with write_transaction(db):
            messages.fail(db, message_id, str(exc)[:500])
            store.mark_undeliverable(db, row["customer_id"], now_db, str(exc)[:500])
            if owns:
                enrolments.end(db, row["enrolment_id"], "undeliverable address", now_db)
        return "failed"
    except TemporaryFailure as exc:
        attempts = row["attempts"] + 1
        with write_transaction(db):
            if attempts >= MAX_ATTEMPTS:
                messages.fail(db, message_id, f"gave up after {attempts} attempts: {exc}"[:500])
                if owns:
                    enrolments.end(db, row["enrolment_id"], "delivery failed", now_db)
            else:
                later = now + timedelta(seconds=RETRY_AFTER[min(attempts - 1, len(RETRY_AFTER) - 1)])
                messages.retry_send(db, message_id, str(exc)[:500], to_db(later))
        return "unreachable" if exc.unreachable else "retry"
    with write_transaction(db):
        messages.mark_sent(db, message_id)
        if flow is not None and owns and row["e_status"] == "active":
            _next_step(db, enrolment, flow, now, now)
    return "sent"


def _links(app, shop, row, settings, code=None, items=()):
    return email_links(app, shop, settings, row["id"], row["customer_id"], row["flow"], code, items)


def email_links(app, shop, settings, message_id, customer_id, flow, code=None, items=()) -> dict:
    """The personal URLs of one email: the shop button's, the product blocks' (`items`:
    product_<i>, reorder_<i>) and the sunset's keep link go through the click redirect (flows.clicks,
    bound to `message_id`); the unsubscribe link stays direct (it must work however old the email
    is, and it is the List-Unsubscribe target: never a redirect)."""
    base = app.config["APP_URL"]
    links = {"unsubscribe_url": f"{base}/u/{tokens.make(app, 'unsubscribe', shop['id'], customer_id)}"}
    target = shop_target(shop, settings, code["code"] if code else None, app_url=base)
    if target:
        links["shop_url"] = clicks.tracked_url(app, message_id, "shop", target)
    for i, item in enumerate(items or ()):
        links[f"product_{i}"] = clicks.tracked_url(app, message_id, "product", item["url"])
        if item.get("reorder_url"):
            links[f"reorder_{i}"] = clicks.tracked_url(app, message_id, "reorder", item["reorder_url"])
    if flow == "sunset":  # only the sunset email asks to confirm
        keep = f"{base}/k/{tokens.make(app, 'keep', shop['id'], customer_id)}"
        links["keep_url"] = clicks.tracked_url(app, message_id, "keep", keep)
    if flow == journey.FLOW and customer_id is not None:  # the 0-10 answers: direct, signed, expiring
        links.update(nps.answer_links(app, shop["id"], customer_id, message_id))
    return links


def replenish_products(db, customer_id):
    """The titles of the products the customer is due to reorder (their replenish_due segment), or None."""
    row = db.execute("SELECT detail FROM customer_segments WHERE customer_id = ? AND segment = 'replenish_due'",
                     [customer_id]).fetchone()
    return [item["title"] for item in json.loads(row[0])] if row and row[0] else None


# ---- interrupted sends ---------------------------------------------------------------------
def settle_interrupted(db, shop, now_db) -> int:
    """Messages left `sending` by a process that died mid-send become `unknown` (never resent);
    their enrolment ends, and no consent changes follow from them. Call only while holding the
    shop's delivery lease: then no other sender of this shop is alive."""
    with write_transaction(db):
        rows = db.execute("SELECT id, enrolment_id, message_id FROM messages WHERE shop_id = ? AND status = 'sending'",
                          [shop["id"]]).fetchall()  # plain tuples
        for mid, enrolment_id, msgid in rows:
            messages.mark_unknown(db, mid, f"{INTERRUPTED} (Message-ID {msgid})")
            if enrolment_id is not None:
                enrolments.end(db, enrolment_id, "delivery unknown", now_db)
    return len(rows)

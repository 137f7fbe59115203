"""The flow engine: one tick enrols who qualifies, exits who bought or unsubscribed, and delivers
what is due (flows/delivery.py decides each email at the moment it leaves). Every step of it can run
at any `now`, and running the same tick twice sends nothing twice.

Without a delivery channel a shop's flows run in preview: nobody is enrolled, nothing is queued, no
code is created and no consent changes; `preview` shows who would get what. Flows start the moment
delivery is configured, so there is never a backlog.

A tick holds the shop's lease (a short one, renewed as a heartbeat while it delivers), so a killed
tick blocks the shop for no longer than LEASE_SECONDS.
"""
import hashlib
import json
import time
from collections import Counter
from datetime import timedelta

from app.db import write_transaction
from app.settings import get_settings
from app.timeutil import local_date, to_db

from . import category_winback, codes, enrolments, journey, lease, offer_arms, offer_promotion, owner_flows
from .definitions import load_flows
from .enrolments import exit_pass
from .refresh import ensure_snapshot

LEASE_SECONDS = 60


class TickBusy(RuntimeError):
    """Another tick of this shop is running."""


def holdout_bucket(shop_id, flow, customer_ref) -> float:
    """A stable number in [0, 1) per (shop, flow, customer): the same customer always lands alike."""
    digest = hashlib.sha256(f"{shop_id}:{flow}:{customer_ref}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def _register_functions(db):
    db.conn.create_function("wb_bucket", 3, holdout_bucket, deterministic=True)


# ---- entry ----------------------------------------------------------------------------------
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
    return any(step.get("offer") or step.get("offers") for step in flow["steps"])


def paused_flows(flows, settings) -> dict:
    """{flow: why it enrols nobody now}: turned off, or promotional without the postal address that
    marketing email must carry."""
    paused = {}
    postal = (settings.get("postal_address") or "").strip()
    for name, flow in flows.items():
        if not flow["enabled"]:
            paused[name] = "turned off"
        elif flow["kind"] == "promotional" and not postal:
            paused[name] = "no postal address"
    return paused


def enrol_pass(db, params, flows, settings, snapshot, customer_id=None) -> Counter:
    """Enrol the customers each flow's entry segment holds now, in priority order."""
    counts = Counter()
    cycles = json.dumps((snapshot.get("model") or {}).get("replenish_cycles") or {})
    paused = paused_flows(flows, settings)
    for name in flows:  # in priority order (definitions.load_flows), the owner's own flows included
        flow = flows[name]
        if name in paused:
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
        extra += category_winback.extra_sql(name)
        if flow.get("custom"):
            extra += owner_flows.ENTRY_TIMING
        if customer_id is not None:
            extra += "\n  AND s.customer_id = :only_customer"
        counts["enrolled"] += enrolments.enrol(db, extra, {
            **params, "flow": name, "entry": flow["entry"], "holdout": flow["holdout"],
            "discounted": int(_has_offer(flow)), "service": int(flow["kind"] == "service"),
            "cycles": cycles, "min_days": flow.get("min_days_since_order", 14),
            "max_days": flow.get("max_days_since_order", 180), "since_last": flow.get("days_since_last_order") or 0,
            "cooldown_since": to_db(params["now"] - timedelta(days=settings["discount_cooldown_days"])),
            "only_customer": customer_id}, **category_winback.entry_sql(name))
        offer_arms.assign_entrants(db, params, name, flow)
        length = flow["steps"][-1]["delay_days"] + settings["conversion_days"]
        enrolments.complete_holdout(db, {**params, "flow": name,
                                         "until": to_db(params["now"] - timedelta(days=length))})
    counts["held_out"] = db.execute(
        "SELECT COUNT(*) FROM enrolments WHERE shop_id = :shop AND held_out = 1 AND entered_at = :now_db",
        params).fetchone()[0]
    counts["enrolled"] -= counts["held_out"]
    return counts


# ---- the tick -------------------------------------------------------------------------------
def _context(db, shop, now):
    _register_functions(db)
    settings = get_settings(db, shop["id"])
    flows = load_flows(db, shop["id"])
    snapshot = ensure_snapshot(db, shop, now)
    params = {"shop": shop["id"], "now": now, "now_db": to_db(now),
              "now_date": local_date(now, shop["timezone"]),
              "promotional": json.dumps([n for n, f in flows.items() if f["kind"] == "promotional"]),
              **journey.params(flows)}
    return settings, flows, snapshot, params


def preview(db, shop, now, customer_id=None) -> list[dict]:
    """Who would enter which flow at `now`, and why: the real rules run and are rolled back
    (as if email delivery were configured)."""
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


def tick(app, db, shop, now, connector=None, *, realtime=False, channel=None) -> dict:
    """One scheduler tick for one shop at `now`: {"enrolled", "sent", "held_out", "exited", "deferred",
    "withheld", "mode"}. `mode` is "live" when the shop has a delivery channel, else "preview"
    (nothing enrolled or queued). With `realtime` (the scheduler) emails leave at the wall clock.
    `channel` replaces the shop's SMTP server (the demo's recording transport, flows/demo_history.py)."""
    from . import campaigns, delivery  # the mailer and its DKIM signing: `explain` uses `preview` without them
    holder, name, ttl = lease.holder_id(), lease_name(shop), _lease_seconds(app)
    if not lease.acquire(db, name, holder, ttl):
        raise TickBusy(f"another tick of shop {shop['handle']!r} is running")
    try:
        offer_promotion.auto_promote(db, shop, now)  # before the flows are read: a winner applies at once
        settings, flows, snapshot, params = _context(db, shop, now)
        channel = channel or delivery.channel_for(app, settings)
        counts = Counter()
        with write_transaction(db):
            codes.mark_used(db, params)
            counts["exited"] += exit_pass(db, params)
            if channel is not None:
                counts.update(enrol_pass(db, params, flows, settings, snapshot))
        if channel is not None:
            counts.update(delivery.drain(app, db, shop, params, flows, settings, channel, connector,
                                         realtime=realtime, heartbeat=_heartbeat(db, name, holder, ttl)))
            counts.update(campaigns.taken(db, shop["id"], params["now_db"]))  # started in the delivery
        keys = ("enrolled", "sent", "held_out", "exited", "deferred", "withheld", "completed", "failed", "retry",
                "unknown")
        return {key: counts.get(key, 0) for key in keys} | {
            "now": params["now_db"], "mode": "live" if channel is not None else "preview",
            "paused": paused_flows(flows, settings)}
    finally:
        lease.release(db, name, holder)


def deliver_due(app, db, shop, now, connector=None, *, realtime=True) -> dict | None:
    """Between ticks: deliver what fell due since (no enrolment, no refresh). None without a channel."""
    from . import delivery
    holder, name, ttl = lease.holder_id(), lease_name(shop), _lease_seconds(app)
    settings = get_settings(db, shop["id"])
    channel = delivery.channel_for(app, settings)
    if channel is None:
        return None
    if not lease.acquire(db, name, holder, ttl):
        raise TickBusy(f"another tick of shop {shop['handle']!r} is running")
    try:
        _register_functions(db)
        flows = load_flows(db, shop["id"])
        params = {"shop": shop["id"], "now": now, "now_db": to_db(now),
                  "now_date": local_date(now, shop["timezone"]),
                  "promotional": json.dumps([n for n, f in flows.items() if f["kind"] == "promotional"]),
                  **journey.params(flows)}
        counts = delivery.drain(app, db, shop, params, flows, settings, channel, connector,
                                realtime=realtime, heartbeat=_heartbeat(db, name, holder, ttl))
        return {key: counts.get(key, 0) for key in ("sent", "withheld", "deferred", "exited", "failed", "retry",
                                                     "unknown", "completed")}
    finally:
        lease.release(db, name, holder)


def lease_name(shop) -> str:
    """The lease that one shop's ticks and deliveries share."""
    return f"flows:{shop['id']}"


def _lease_seconds(app) -> int:
    return int(app.config.get("FLOW_LEASE_SECONDS") or LEASE_SECONDS)


def _heartbeat(db, name, holder, ttl):
    """Renew the lease (at most every quarter of its life) while work goes on."""
    last = [time.monotonic()]

    def beat():
        if time.monotonic() - last[0] >= ttl / 4:
            lease.acquire(db, name, holder, ttl)
            last[0] = time.monotonic()
    return beat

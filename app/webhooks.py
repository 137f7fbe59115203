"""The webhook inbox: deliveries are stored first (deduplicated), answered at once, and processed
in the background with retries, so nothing is lost when processing fails.

A connector registers a handler per (platform, topic) with `@handler`; `process_due` runs the due
events, each in its own write transaction. Failures are retried with backoff and stay visible
(`last_error`); after MAX_ATTEMPTS an event is marked failed.
"""
import json
import logging
import threading
from datetime import timedelta

from .db import connect, write_transaction
from .timeutil import to_db, utcnow

log = logging.getLogger("winback.webhooks")
HANDLERS = {}
MAX_ATTEMPTS = 8
BACKOFF_SECONDS = (10, 60, 300, 900, 3600, 3 * 3600, 6 * 3600)


def handler(platform, *topics):
    """Register a function(app, db, shop, payload) for these topics of `platform`."""
    def register(func):
        for topic in topics:
            HANDLERS[(platform, topic)] = func
        return func
    return register


def record(db, shop_id, platform, topic, delivery_id, payload: dict | str) -> bool:
    """Store a delivery; False when this delivery id was already stored (a duplicate)."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    now = to_db(utcnow())
    with write_transaction(db):
        cur = db.execute(
            "INSERT OR IGNORE INTO webhook_events (shop_id, platform, topic, delivery_id, received_at,"
            " payload, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [shop_id, platform, topic, delivery_id, now, body, now])
        return cur.rowcount == 1


def process_due(app, db, limit=200, now=None) -> dict:
    """Process up to `limit` due events; returns {"done", "retry", "failed"} counts."""
    now = now or utcnow()
    counts = {"done": 0, "retry": 0, "failed": 0}
    rows = list(db.query(
        "SELECT e.*, s.handle FROM webhook_events e JOIN shops s ON s.id = e.shop_id"
        " WHERE e.status = 'pending' AND e.next_attempt_at <= ? ORDER BY e.id LIMIT ?", [to_db(now), limit]))
    for event in rows:
        func = HANDLERS.get((event["platform"], event["topic"]))
        shop = next(iter(db.query("SELECT * FROM shops WHERE id = ?", [event["shop_id"]])), None)
        try:
            if func is None:
                raise LookupError(f"no handler for {event['platform']} topic {event['topic']!r}")
            with write_transaction(db):
                func(app, db, shop, json.loads(event["payload"]))
                db.execute("UPDATE webhook_events SET status = 'done', attempts = attempts + 1,"
                           " processed_at = ?, last_error = NULL WHERE id = ?", [to_db(utcnow()), event["id"]])
            counts["done"] += 1
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
            attempts = event["attempts"] + 1
            final = attempts >= MAX_ATTEMPTS or isinstance(exc, LookupError)
            delay = BACKOFF_SECONDS[min(attempts - 1, len(BACKOFF_SECONDS) - 1)]
            with write_transaction(db):
                db.execute("UPDATE webhook_events SET status = ?, attempts = ?, last_error = ?,"
                           " next_attempt_at = ? WHERE id = ?",
                           ["failed" if final else "pending", attempts, f"{type(exc).__name__}: {exc}"[:1000],
                            to_db(now + timedelta(seconds=delay)), event["id"]])
            counts["failed" if final else "retry"] += 1
            log.warning("webhook %s (%s) failed: %s", event["id"], event["topic"], exc)
    return counts


def scrub_payloads(db, shop_id, needles, mentions=None, keep_topics=()) -> int:
    """Erase the stored deliveries of `shop_id` that mention a person (privacy redaction).

    Candidates are the events whose payload or last error contains one of `needles`
    (case-insensitive); `mentions(payload, last_error)`, when given, confirms each one. A confirmed
    event is deleted, whatever its status (processing it later would bring the person back), except those
    of `keep_topics` (the compliance requests themselves, the one being processed included): they
    keep their row with the payload replaced by {"redacted": true}. Returns how many were erased.
    """
    erased = 0
    for needle in {str(n).strip().lower() for n in needles if n and str(n).strip()}:
        rows = db.execute("SELECT id, topic, payload, last_error FROM webhook_events WHERE shop_id = ?"
                          " AND payload <> '{\"redacted\": true}' AND (instr(lower(payload), ?) > 0"
                          " OR instr(lower(coalesce(last_error, '')), ?) > 0)",
                          [shop_id, needle, needle]).fetchall()
        for event_id, topic, payload, last_error in rows:
            if mentions is not None and not mentions(payload, last_error or ""):
                continue
            if topic in keep_topics:
                db.execute("UPDATE webhook_events SET payload = '{\"redacted\": true}', last_error = NULL"
                           " WHERE id = ?", [event_id])
            else:
                db.execute("DELETE FROM webhook_events WHERE id = ?", [event_id])
            erased += 1
    return erased


def health(db, shop_id) -> dict:
    """What the dashboard warns about: events waiting, failing and failed, and the last error."""
    row = db.execute(
        "SELECT COUNT(*) FILTER (WHERE status = 'pending' AND attempts = 0),"
        " COUNT(*) FILTER (WHERE status = 'pending' AND attempts > 0),"
        " COUNT(*) FILTER (WHERE status = 'failed'),"
        " (SELECT last_error FROM webhook_events WHERE shop_id = :s AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1)"
        " FROM webhook_events WHERE shop_id = :s", {"s": shop_id}).fetchone()
    return {"waiting": row[0], "retrying": row[1], "failed": row[2], "last_error": row[3]}


class Processor:
    """A background thread that processes the inbox soon after each delivery (and every few seconds)."""

    def __init__(self, app, interval=5.0):
        self.app, self.interval = app, interval
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="winback-webhooks", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        db = connect(self.app.config["DATABASE"])
        while True:
            self.wake.wait(self.interval)
            self.wake.clear()
            try:
                with self.app.app_context():
                    while sum(process_due(self.app, db).values()) > 0:
                        pass
            except Exception:  # noqa: BLE001 - keep the thread alive; the next round retries
                log.exception("webhook processing round failed")


def wake(app):
    """Ask the app's processor (if this process runs one) to look at the inbox now."""
    processor = app.extensions.get("winback_webhooks")
    if processor is not None:
        processor.wake.set()


def start_processor(app):
    """Start this process's webhook processor (serve and worker do)."""
    if "winback_webhooks" not in app.extensions:
        app.extensions["winback_webhooks"] = Processor(app).start()
    return app.extensions["winback_webhooks"]



"""The webhook inbox: deliveries are stored first (deduplicated), answered at once, and processed
in the background with retries, so nothing is lost when processing fails.

Which function handles which (platform, topic) is told by the app factory (`init_app`, from the
table in connectors/platforms.py), so every process kind knows every handler from the moment the
app exists. `process_due` runs the due events: a handler's optional `fetch` step (network allowed)
runs outside any transaction, then its `write` step and the event's new status commit together in
one short write transaction. Failures are retried with backoff and stay visible (`last_error`);
after MAX_ATTEMPTS an event is marked failed. An event whose handler is unknown stays pending.
Intake (`accept`) never waits long for the write lock: when the database is busy, a delivery is
spooled to a file and moved into the inbox by the next `process_due`.

This module owns `webhook_events` (the table of owners is in flows/enrolments.py).
"""
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from .db import BUSY_TIMEOUT_MS, connect, write_transaction
from .timeutil import to_db, utcnow

log = logging.getLogger("winback.webhooks")
MAX_ATTEMPTS = 8
BACKOFF_SECONDS = (10, 60, 300, 900, 3600, 3 * 3600, 6 * 3600)
UNKNOWN_TOPIC_RETRY_SECONDS = 300
EXTENSION = "winback_inbox"
PRUNE_EVERY_SECONDS = 3600
ACCEPT_WAIT_MS = 10
SPOOL_BATCH = 500
SPOOL_FOLDER = "webhook-spool"


@dataclass(frozen=True)
class Handler:
    """How one topic is processed.

    `fetch(app, db, shop, payload)` (optional) runs first, outside any transaction: the only place
    where a handler may call the platform. What it returns is what `write` gets instead of the
    payload. `write(app, db, shop, data)` runs inside the event's write transaction: no network I/O.
    """
    write: Callable[..., Any]
    fetch: Callable[..., Any] | None = None


def init_app(app, handlers: dict) -> dict:
    """Give the app its handlers: {(platform, topic): Handler or a write function}."""
    table = {key: h if isinstance(h, Handler) else Handler(write=h) for key, h in handlers.items()}
    app.extensions[EXTENSION] = table
    return table


def handler_for(app, platform, topic) -> Handler | None:
    """The app's handler of this topic, or None."""
    return app.extensions.get(EXTENSION, {}).get((platform, topic))


@contextlib.contextmanager
def _busy_timeout(db, ms):
    db.conn.execute(f"PRAGMA busy_timeout = {int(ms)}")
    try:
        yield
    finally:
        db.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def accept(app, db, shop_id, platform, topic, delivery_id, text: str) -> bool:
    """Take a verified delivery for processing and wake the processor; answers in milliseconds.

    The write lock of the database is shared with ticks and syncs, which may hold it for seconds.
    Intake waits at most ACCEPT_WAIT_MS for it; when it is busy, the delivery goes to the spool
    folder instead (a file each: no lock needed) and the processor moves it into the inbox soon
    after. False only for a duplicate seen at once (a spooled duplicate is dropped later).
    """
    try:
        with _busy_timeout(db, ACCEPT_WAIT_MS):
            stored = record(db, shop_id, platform, topic, delivery_id, text)
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        _spool(app, {"shop_id": shop_id, "platform": platform, "topic": topic, "delivery_id": delivery_id,
                     "received_at": to_db(utcnow()), "payload": text})
        stored = True
    if stored:
        wake(app)
    return stored


def spool_folder(app) -> str:
    """Where deliveries wait when the database was busy at intake."""
    return os.path.join(app.instance_path, SPOOL_FOLDER)


def _spool(app, entry: dict):
    # A hand-made spool, not a queue library: one JSON file per delivery, written to a temporary
    # name and renamed, so a reader never sees half a file. Not fsynced, like SQLite's WAL with
    # synchronous=NORMAL: a process crash loses nothing, a power cut may lose the last moments.
    folder = spool_folder(app)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
    tmp = os.path.join(folder, f".{name}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
        json.dump(entry, f)
    os.replace(tmp, os.path.join(folder, f"{name}.json"))


def ingest_spool(app, db) -> int:
    """Move spooled deliveries into the inbox (oldest first, in batches); returns how many files
    were taken.

    Two processors may read the same file: the (shop, delivery id) key, made up from the file name
    when the platform sent none, keeps one row.
    """
    folder = spool_folder(app)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
    except FileNotFoundError:
        return 0
    for start in range(0, len(names), SPOOL_BATCH):
        rows, paths = [], []
        for name in names[start:start + SPOOL_BATCH]:
            path = os.path.join(folder, name)
            try:
                with open(path, encoding="utf-8") as f:
                    entry = json.load(f)
            except FileNotFoundError:  # another processor took it
                continue
            except ValueError:  # unreadable: set aside (kept for a look), never blocking the others
                log.error("webhook spool file %s is unreadable; renamed to .bad", name)
                os.replace(path, path + ".bad")
                continue
            paths.append(path)
            rows.append([entry["shop_id"], entry["platform"], entry["topic"], entry["delivery_id"] or f"spool:{name}",
                         entry["received_at"], entry["payload"], entry["received_at"], entry["shop_id"]])
        with write_transaction(db):
            db.conn.executemany(
                "INSERT OR IGNORE INTO webhook_events (shop_id, platform, topic, delivery_id, received_at,"
                " payload, next_attempt_at) SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM shops WHERE id = ?)",
                rows)
        for path in paths:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
    return len(names)


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
    ingest_spool(app, db)
    now = now or utcnow()
    counts = {"done": 0, "retry": 0, "failed": 0}
    rows = list(db.query(
        "SELECT e.id, e.shop_id, e.platform, e.topic, e.attempts FROM webhook_events e"
        " JOIN shops s ON s.id = e.shop_id"
        " WHERE e.status = 'pending' AND e.next_attempt_at <= ? ORDER BY e.id LIMIT ?", [to_db(now), limit]))
    for event in rows:
        func = handler_for(app, event["platform"], event["topic"])
        if func is None:
            _unknown(db, event, now)
            counts["retry"] += 1
            continue
        try:
            _process(app, db, event, func)
            counts["done"] += 1
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
            attempts = event["attempts"] + 1
            final = attempts >= MAX_ATTEMPTS
            delay = BACKOFF_SECONDS[min(attempts - 1, len(BACKOFF_SECONDS) - 1)]
            with write_transaction(db):
                db.execute("UPDATE webhook_events SET status = ?, attempts = ?, last_error = ?,"
                           " next_attempt_at = ? WHERE id = ? AND status = 'pending'",
                           ["failed" if final else "pending", attempts, f"{type(exc).__name__}: {exc}"[:1000],
                            to_db(now + timedelta(seconds=delay)), event["id"]])
            counts["failed" if final else "retry"] += 1
            log.warning("webhook %s (%s) failed: %s", event["id"], event["topic"], exc)
    return counts


def _process(app, db, event, func: Handler):
    """Fetch (outside the lock), then write and mark done in one transaction."""
    shop = next(iter(db.query("SELECT * FROM shops WHERE id = ?", [event["shop_id"]])), None)
    row = db.execute("SELECT payload FROM webhook_events WHERE id = ?", [event["id"]]).fetchone()
    data = json.loads(row[0])
    if func.fetch is not None:
        data = func.fetch(app, db, shop, data)
    with write_transaction(db):
        # Decided at the moment of effect: another processor may have handled it meanwhile.
        status = db.execute("SELECT status FROM webhook_events WHERE id = ?", [event["id"]]).fetchone()
        if not status or status[0] != "pending":
            return
        func.write(app, db, shop, data)
        db.execute("UPDATE webhook_events SET status = 'done', attempts = attempts + 1,"
                   " processed_at = ?, last_error = NULL WHERE id = ?", [to_db(utcnow()), event["id"]])


def _unknown(db, event, now):
    """No handler (yet): keep the event pending and say why; a later version may know the topic."""
    error = f"LookupError: no handler for {event['platform']} topic {event['topic']!r}"
    with write_transaction(db):
        db.execute("UPDATE webhook_events SET last_error = ?, next_attempt_at = ? WHERE id = ?",
                   [error, to_db(now + timedelta(seconds=UNKNOWN_TOPIC_RETRY_SECONDS)), event["id"]])
    log.warning("webhook %s: %s", event["id"], error)


def prune(app, db, now=None) -> int:
    """Remove the payloads of events processed more than WEBHOOK_RETENTION_DAYS ago; returns how many.

    The row stays (its delivery id still deduplicates a late resend); only the payload, which holds
    personal data, goes. Events still pending are never pruned.
    """
    days = float(app.config.get("WEBHOOK_RETENTION_DAYS", 7))
    cutoff = to_db((now or utcnow()) - timedelta(days=days))
    total = 0
    while True:  # in batches: a short write lock each time
        with write_transaction(db):
            n = db.execute(
                "UPDATE webhook_events SET payload = '' WHERE id IN (SELECT id FROM webhook_events"
                " WHERE status IN ('done', 'failed') AND payload <> ''"
                " AND COALESCE(processed_at, received_at) < ? LIMIT 1000)", [cutoff]).rowcount
        total += n
        if n < 1000:
            return total


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


def erase_shop_events(db, shop_id, keep_topic) -> int:
    """Delete every stored delivery of the shop except those of `keep_topic` (a shop redaction
    keeps the request itself); returns how many went."""
    return db.execute("DELETE FROM webhook_events WHERE shop_id = ? AND topic <> ?", [shop_id, keep_topic]).rowcount


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
    """A background thread that processes the inbox soon after each delivery (and every few seconds),
    and prunes old payloads once an hour."""

    def __init__(self, app, interval=5.0):
        self.app, self.interval = app, interval
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="winback-webhooks", daemon=True)
        self.pruned_at = None

    def start(self):
        self.thread.start()
        return self

    def stop(self, timeout=10.0):
        """Finish the current round and end the thread."""
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout)

    def _run(self):
        db = connect(self.app.config["DATABASE"])
        while not self.stopping.is_set():
            self.wake.wait(self.interval)
            self.wake.clear()
            if self.stopping.is_set():
                break
            try:
                with self.app.app_context():
                    while sum(process_due(self.app, db).values()) > 0:
                        pass
                    self._prune(db)
            except Exception:  # noqa: BLE001 - keep the thread alive; the next round retries
                log.exception("webhook processing round failed")
        db.close()

    def _prune(self, db):
        now = utcnow()
        if self.pruned_at is None or (now - self.pruned_at).total_seconds() >= PRUNE_EVERY_SECONDS:
            self.pruned_at = now
            prune(self.app, db, now)


def wake(app):
    """Ask the app's processor (if this process runs one) to look at the inbox now."""
    processor = app.extensions.get("winback_webhooks")
    if processor is not None:
        processor.wake.set()


def start_processor(app):
    """Start this process's webhook processor (serve and worker do)."""
    if "winback_webhooks" not in app.extensions:
        # WEBHOOK_POLL_SECONDS: how often a process that is not woken (a worker beside gunicorn) looks.
        interval = float(app.config.get("WEBHOOK_POLL_SECONDS", 5.0))
        app.extensions["winback_webhooks"] = Processor(app, interval=interval).start()
    return app.extensions["winback_webhooks"]


def scrub_spool(app, shop_id, needles=None) -> int:
    """Delete spooled deliveries of `shop_id` (waiting, or set aside as unreadable) that mention one
    of `needles` (any of the shop's, when None): a redaction leaves nothing in the instance folder."""
    folder = spool_folder(app)
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return 0
    lowered = {str(n).strip().lower() for n in needles or () if n and str(n).strip()}
    removed = 0
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        try:
            ours = json.loads(text).get("shop_id") == shop_id
        except (ValueError, AttributeError):
            ours = f'"shop_id": {shop_id},' in text or f'"shop_id": {shop_id}}}' in text
        if ours and (needles is None or any(n in text.lower() for n in lowered)):
            os.remove(path)
            removed += 1
    return removed

"""The message log and each customer's place in the flows.

This module owns `messages`: every statement that writes it is a function here (the table of
owners is in flows/enrolments.py). Callers hold the write transaction unless a function says so.
"""
from app.db import write_transaction
from app.timeutil import from_db, zone

STATUSES = ("outbox", "sending", "sent", "failed", "withheld", "unknown")


def message_log(db, shop, limit=200, customer_id=None, status=None, search=None, offset=0) -> list[dict]:
    """Messages newest first, in the `winback messages` JSON shape; optionally one customer's, one
    status's, or those whose customer id or address contains `search` (case-insensitive)."""
    where, params = "m.shop_id = ?", [shop["id"]]
    if customer_id is not None:
        where += " AND m.customer_id = ?"
        params.append(customer_id)
    if status is not None:
        where += " AND m.status = ?"
        params.append(status)
    if search:
        where += " AND (instr(lower(c.external_id), lower(?)) > 0 OR instr(lower(COALESCE(m.email, c.email)), lower(?)) > 0)"
        params += [search, search]
    return list(db.query(f"""
        SELECT m.id, c.external_id AS customer, COALESCE(m.email, c.email) AS email, m.flow, m.step, m.subject,
               d.code AS discount_code, d.expires_at AS code_expires_at, m.status, m.withheld_reason,
               m.planned_for, m.scheduled_for, m.sent_at, m.created_at, m.error, m.message_id
        FROM messages m
        LEFT JOIN customers c ON c.id = m.customer_id
        LEFT JOIN discount_codes d ON d.id = m.discount_code_id
        WHERE {where} ORDER BY m.id DESC LIMIT ? OFFSET ?""", params + [limit, offset]))


def count_messages(db, shop, status=None) -> int:
    """How many messages the shop has (of one status)."""
    sql, params = "SELECT COUNT(*) FROM messages WHERE shop_id = ?", [shop["id"]]
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    return db.execute(sql, params).fetchone()[0]


def upcoming(db, shop, until) -> list[dict]:
    """What goes out next, per day (shop time), flow and step: running enrolments due before `until`.

    Counted per hour in SQL, then the hours are put on the shop's calendar (a zone with a half-hour
    offset may put a step due in its first half hour on the neighbouring day)."""
    rows = db.execute(
        "SELECT substr(next_due_at, 1, 13) || ':00:00Z', flow, step, COUNT(*) FROM enrolments"
        " WHERE shop_id = ? AND status = 'active' AND next_due_at IS NOT NULL AND next_due_at < ?"
        " GROUP BY 1, 2, 3", [shop["id"], until]).fetchall()
    tz = zone(shop["timezone"] or "UTC")
    out = {}
    for hour, flow, step, n in rows:
        key = (from_db(hour).astimezone(tz).date().isoformat(), flow, step)
        out[key] = out.get(key, 0) + n
    return [{"day": day, "flow": flow, "step": step, "count": n} for (day, flow, step), n in sorted(out.items())]


def settle_unknown(db, shop_id, message_id, delivered: bool) -> bool:
    """The owner settles a message whose delivery is unknown: confirmed from the mail server's log
    (then it counts as sent) or not delivered (failed). Returns False when there was nothing to settle."""
    with write_transaction(db):
        cur = db.execute(
            "UPDATE messages SET status = ?, error = ? WHERE id = ? AND shop_id = ? AND status = 'unknown'",
            ["sent" if delivered else "failed",
             "confirmed delivered by the owner" if delivered else "confirmed not delivered by the owner",
             message_id, shop_id])
    return cur.rowcount == 1


def flow_state(db, customer_id) -> dict | None:
    """The customer's running or latest enrolment: flow, why, step, what comes next."""
    rows = list(db.query(
        "SELECT flow, reason, status, held_out, step, entered_at, next_due_at, deferred_reason, exit_reason, ended_at"
        " FROM enrolments WHERE customer_id = ? ORDER BY (status IN ('active', 'held_out')) DESC, id DESC LIMIT 1",
        [customer_id]))
    return rows[0] if rows else None


# ---- writes --------------------------------------------------------------------------------
def record_withheld(db, shop_id, enrolment, flow, reason, now_db):
    """Record a due step that was not claimed: a `withheld` message with the reason (once per step)."""
    db.execute(
        "INSERT OR IGNORE INTO messages (shop_id, customer_id, enrolment_id, flow, step, idempotency_key,"
        " is_marketing, email, status, withheld_reason, created_at, scheduled_for, planned_for)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'withheld', ?, ?, ?, ?)",
        [shop_id, enrolment["customer_id"], enrolment["id"], enrolment["flow"], enrolment["step"],
         f"{enrolment['id']}:{enrolment['step']}", int(flow is None or flow["kind"] == "promotional"),
         enrolment["email"], reason, now_db, now_db, enrolment["step_planned_at"] or enrolment["next_due_at"]])


def claim(db, shop_id, e, marketing: bool, code_id, now_db, planned_db):
    """Put the enrolment's due step in the outbox (once per step: the idempotency key)."""
    db.execute(
        "INSERT OR IGNORE INTO messages (shop_id, customer_id, enrolment_id, flow, step, idempotency_key, is_marketing,"
        " email, discount_code_id, status, created_at, scheduled_for, planned_for)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'outbox', ?, ?, ?)",
        [shop_id, e["customer_id"], e["id"], e["flow"], e["step"], f"{e['id']}:{e['step']}",
         int(marketing), e["email"], code_id, now_db, now_db, planned_db])


def note_offer(db, e, note):
    """Record on the enrolment's claimed step what the discount guardrails did to its offer (JSON)."""
    db.execute("UPDATE messages SET offer_note = ? WHERE idempotency_key = ?", [note, f"{e['id']}:{e['step']}"])


def withhold(db, message_id, reason):
    """A claimed message may not leave: withheld, with the reason."""
    db.execute("UPDATE messages SET status = 'withheld', withheld_reason = ? WHERE id = ?", [reason, message_id])


def withhold_flow(db, shop_id, flow, reason) -> int:
    """Withhold what a flow turned off had claimed but not delivered; returns how many."""
    return db.execute(
        "UPDATE messages SET status = 'withheld', withheld_reason = ? WHERE shop_id = ? AND flow = ?"
        " AND status = 'outbox'", [reason, shop_id, flow]).rowcount


def withhold_unsubscribed(db, customer_id) -> int:
    """Marketing mail already rendered but not yet delivered to a customer who unsubscribed."""
    return db.execute("UPDATE messages SET status = 'withheld', withheld_reason = 'the customer unsubscribed'"
                      " WHERE customer_id = ? AND status = 'outbox' AND is_marketing = 1", [customer_id]).rowcount


def retry_at(db, message_id, error, later_db):
    """Leave the message in the outbox, tried again at `later_db`, with the reason."""
    db.execute("UPDATE messages SET error = ?, scheduled_for = ? WHERE id = ?", [error, later_db, message_id])


def retry_send(db, message_id, error, later_db):
    """The mail server failed for now: back to the outbox, tried again at `later_db`."""
    db.execute("UPDATE messages SET status = 'outbox', sent_at = NULL, error = ?, scheduled_for = ?"
               " WHERE id = ?", [error, later_db, message_id])


def fail(db, message_id, error):
    """The message failed for good (not built, address refused, gave up)."""
    db.execute("UPDATE messages SET status = 'failed', error = ?, sent_at = NULL WHERE id = ?", [error, message_id])


def start_sending(db, message_id, *, message_id_header, now_db, email, locale, subject, body_text, body_html,
                  code_id) -> bool:
    """Mark an outbox message `sending` with its Message-ID and rendered content, before the SMTP
    conversation (commit this before talking to the server: at most once)."""
    return db.execute(
        "UPDATE messages SET status = 'sending', attempts = attempts + 1, message_id = ?, sent_at = ?,"
        " email = ?, locale = ?, subject = ?, body_text = ?, body_html = ?, discount_code_id = ?,"
        " error = NULL WHERE id = ? AND status = 'outbox'",
        [message_id_header, now_db, email, locale, subject, body_text, body_html, code_id, message_id]).rowcount == 1


def mark_sent(db, message_id):
    """The mail server accepted the message."""
    db.execute("UPDATE messages SET status = 'sent' WHERE id = ?", [message_id])


def mark_unknown(db, message_id, error):
    """Interrupted mid-send: never sent again automatically."""
    db.execute("UPDATE messages SET status = 'unknown', error = ? WHERE id = ?", [error, message_id])


# ---- erasure (a platform's privacy request; handed to the connector by the app factory) -----
# The columns that hold personal data, and what they become; other columns (added by later
# migrations) that may quote an address get REDACTED when they mention the person.
PERSONAL = {"email": None, "subject": "", "body_text": "", "body_html": None}
NOTES = ("error", "withheld_reason")
REDACTED = "redacted"


def erase_person(db, shop_id, where, params, needles):
    """Keep only the anonymous facts (flow, step, status, times) of the shop's messages matching
    the SQL condition `where` (with `params`); notes that mention one of `needles` become REDACTED."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(messages)")}
    for column in NOTES:
        if column in columns:
            for needle in needles:
                db.execute(f"UPDATE messages SET {column} = ? WHERE shop_id = ? AND {where}"
                           f" AND instr(lower({column}), ?) > 0", [REDACTED, shop_id, *params, needle])
    sets = ", ".join(f"{c} = ?" for c in PERSONAL if c in columns)
    db.execute(f"UPDATE messages SET {sets} WHERE shop_id = ? AND {where}",
               [v for c, v in PERSONAL.items() if c in columns] + [shop_id, *params])


def erase_shop(db, shop_id):
    """Remove every message of the shop (a shop erasure)."""
    db.execute("DELETE FROM messages WHERE shop_id = ?", [shop_id])

"""The message log and each customer's place in the flows."""


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
    from app.timeutil import from_db, zone
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
    from app.db import write_transaction
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

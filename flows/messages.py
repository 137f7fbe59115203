"""The message log and each customer's place in the flows."""


def message_log(db, shop, limit=200, customer_id=None) -> list[dict]:
    """Messages newest first, in the `winback messages` JSON shape."""
    where, params = "m.shop_id = ?", [shop["id"]]
    if customer_id is not None:
        where += " AND m.customer_id = ?"
        params.append(customer_id)
    return list(db.query(f"""
        SELECT m.id, c.external_id AS customer, m.email, m.flow, m.step, m.subject,
               d.code AS discount_code, d.expires_at AS code_expires_at, m.status, m.scheduled_for, m.sent_at,
               m.created_at, m.error
        FROM messages m
        LEFT JOIN customers c ON c.id = m.customer_id
        LEFT JOIN discount_codes d ON d.id = m.discount_code_id
        WHERE {where} ORDER BY m.id DESC LIMIT ?""", params + [limit]))


def flow_state(db, customer_id) -> dict | None:
    """The customer's running or latest enrolment: flow, why, step, what comes next."""
    rows = list(db.query(
        "SELECT flow, reason, status, held_out, step, entered_at, next_due_at, deferred_reason, exit_reason, ended_at"
        " FROM enrolments WHERE customer_id = ? ORDER BY (status IN ('active', 'held_out')) DESC, id DESC LIMIT 1",
        [customer_id]))
    return rows[0] if rows else None

"""Rows for the CSV downloads of the message log and of the report (the customers' are in
flows.customer_list). Steps are numbered from 1, as the pages and the report number the emails."""

MESSAGE_HEADER = ["id", "customer_id", "email", "flow", "step", "subject", "status", "withheld_reason",
                  "discount_code", "code_expires_at", "planned_for", "scheduled_for", "sent_at", "created_at",
                  "error", "message_id"]

REPORT_HEADER = ["flow", "enabled", "step", "template", "enrolled", "held_out", "sent", "clicks", "click_rate",
                 "converted", "conversion_rate", "revenue", "discount_cost", "revenue_per_recipient", "currency",
                 "lift", "lift_ci_low", "lift_ci_high", "incremental_revenue", "enough_data"]


def _message_where(shop, status, search):
    where, params = "m.shop_id = ?", [shop["id"]]
    if status is not None:
        where += " AND m.status = ?"
        params.append(status)
    if search:
        where += (" AND (instr(lower(c.external_id), lower(?)) > 0"
                  " OR instr(lower(COALESCE(m.email, c.email)), lower(?)) > 0)")
        params += [search, search]
    return where, params


def message_count(db, shop, status=None, search=None) -> int:
    """How many messages the outbox page's filter matches (flows.messages.message_log's filter)."""
    where, params = _message_where(shop, status, search)
    return db.execute(f"SELECT COUNT(*) FROM messages m LEFT JOIN customers c ON c.id = m.customer_id WHERE {where}",
                      params).fetchone()[0]


def message_rows(db, shop, status=None, search=None):
    """The shop's messages newest first (of one status; whose customer id or address contains
    `search`, case-insensitively), one statement read row by row."""
    where, params = _message_where(shop, status, search)
    cursor = db.execute(f"""
        SELECT m.id, c.external_id, COALESCE(m.email, c.email), m.flow, m.step + 1, m.subject, m.status,
               m.withheld_reason, d.code, d.expires_at, m.planned_for, m.scheduled_for, m.sent_at, m.created_at,
               m.error, m.message_id
        FROM messages m
        LEFT JOIN customers c ON c.id = m.customer_id
        LEFT JOIN discount_codes d ON d.id = m.discount_code_id
        WHERE {where} ORDER BY m.id DESC""", params)
    yield from (list(row) for row in cursor)


def report_rows(doc):
    """flows.attribution.report's document as rows: each flow's totals (step "all") with its lift,
    then each of its emails."""
    currency = doc["currency"]
    for f in doc["flows"]:
        lift = f.get("lift") or {}
        yield [f["flow"], "yes" if f["enabled"] else "no", "all", "", f["enrolled"], f["held_out"], f["sent"],
               sum(s["clicks"] for s in f["steps"]), None, f["converted"], f["conversion_rate"], f["revenue"],
               f["discount_cost"], f["revenue_per_recipient"], currency, lift.get("lift"), lift.get("ci_low"),
               lift.get("ci_high"), lift.get("incremental_revenue"), "yes" if lift.get("enough_data") else "no"]
        for s in f["steps"]:
            yield [f["flow"], "yes" if f["enabled"] else "no", s["step"], s["template"], None, None, s["sent"],
                   s["clicks"], s["click_rate"], s["converted"], s["conversion_rate"], s["revenue"],
                   s["discount_cost"], s["revenue_per_recipient"], currency, None, None, None, None, None]

"""Every statement that writes `enrolments`: entry, the exits, the steps, the end.

Table owners (the only module that writes each table; others call it):

| table | owner |
|---|---|
| shops | app/shops.py |
| users, user_shops | app/users.py |
| shop_settings | app/settings.py |
| webhook_events | app/webhooks.py |
| sync_runs | app/runs.py |
| customers, orders, order_lines, products | connectors/store.py |
| enrolments | flows/enrolments.py |
| messages | flows/messages.py |
| discount_codes | flows/codes.py |
| sync_state | connectors/sync.py |
| shopify_installs, privacy_requests | connectors/shopify/subscriptions.py, connectors/shopify/privacy.py |
| oauth_states | each platform its own rows: connectors/shopify/oauth.py, connectors/woocommerce/connect.py |
| leases | flows/lease.py |
| customer_snapshots | the intelligence pipeline: flows/metrics.py builds, flows/scores.py and flows/segments.py add columns |
| customer_segments | flows/segments.py |
| shop_snapshots | flows/refresh.py |
| login_failures | app/login_throttle.py |
| clicks | flows/clicks.py |
| campaigns | flows/campaigns.py |
| nps_answers | flows/nps.py |
| offer_arms, offer_test_history | flows/offer_arms.py |
| owner_segments | flows/owner_segments.py (members go to customer_segments through flows/segments.py) |

tests/test_layers.py keeps this table true. A Shopify erasure reaches messages and codes through
`erase_person`/`erase_shop` (flows/messages.py) and `blank_errors` (flows/codes.py), handed to
connectors/shopify/privacy.py by the app factory (the connectors sit below flows/).

Callers hold the write transaction; these functions only run their statement. Set-based exits stay
set-based: the unsubscribe of one customer runs the same statement as the tick, narrowed to them.
"""

# ---- entry ----------------------------------------------------------------------------------
ENROL = """
INSERT OR IGNORE INTO enrolments (shop_id, customer_id, flow, anchor_order_at, reason, held_out, discounted,
                                  entered_at, step, next_due_at, step_planned_at, status, segment)
SELECT :shop, s.customer_id, :flow, sn.last_order_at, {reason},
       h.out, CASE WHEN h.out = 0 AND :discounted THEN 1 ELSE 0 END, :now_db, 0,
       CASE WHEN h.out = 0 THEN :now_db END, CASE WHEN h.out = 0 THEN :now_db END,
       CASE WHEN h.out = 1 THEN 'held_out' ELSE 'active' END, s.segment
FROM customer_segments s
JOIN customer_snapshots sn ON sn.customer_id = s.customer_id
JOIN customers c ON c.id = s.customer_id
JOIN (SELECT 0 AS out UNION ALL SELECT 1) AS h
     ON h.out = (wb_bucket(:shop, :flow, c.external_id) < :holdout)
WHERE s.shop_id = :shop AND {segment}
  AND c.email IS NOT NULL AND c.unsubscribed_at IS NULL AND c.email_failed_at IS NULL
  AND (:service OR (c.accepts_marketing = 1 AND c.marketing_inactive_at IS NULL))
  AND NOT EXISTS (SELECT 1 FROM enrolments e WHERE e.customer_id = s.customer_id AND e.status IN ('active', 'held_out')
                  AND e.flow NOT LIKE 'campaign:%')
  AND NOT EXISTS (SELECT 1 FROM enrolments e WHERE e.customer_id = s.customer_id AND e.flow = :flow
                  AND e.anchor_order_at = sn.last_order_at)
  {extra}
"""


ENTRY_SEGMENT = "s.segment = :entry"
ENTRY_REASON = ":entry || ': ' || sn.days_since_last || ' days since the last order'"


def enrol(db, extra: str, params: dict, segment: str = ENTRY_SEGMENT, reason: str = ENTRY_REASON) -> int:
    """Enrol who the flow's entry segment holds (narrowed by the SQL conditions in `extra`); returns
    how many rows were added. `segment` (the SQL choosing the segment row `s`) and `reason` (the
    SQL of the reason recorded) default to the flow's one entry segment."""
    return db.execute(ENROL.format(extra=extra, segment=segment, reason=reason), params).rowcount


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

# The after-purchase journey ends `stop_after_days` after the order it follows (flows/journey.py
# gives :journey_days, {flow: days}).
EXIT_JOURNEY_OVER = """
UPDATE enrolments SET status = 'exited', exit_reason = 'journey over', ended_at = :now_db, next_due_at = NULL
WHERE shop_id = :shop AND status IN ('active', 'held_out') {only}
  AND flow IN (SELECT key FROM json_each(:journey_days))
  AND julianday(:now_db) - julianday(anchor_order_at) > json_extract(:journey_days, '$.' || flow)
"""

ONE_CUSTOMER = "AND customer_id = :customer"

# Held-out customers stay "in" the flow as long as a messaged one would, then complete.
COMPLETE_HOLDOUT = """
UPDATE enrolments SET status = 'completed', ended_at = :now_db
WHERE shop_id = :shop AND status = 'held_out' AND flow = :flow AND entered_at <= :until
"""


def exit_pass(db, params, only="") -> int:
    """End the running enrolments of customers who bought, unsubscribed or lost consent, and the
    journeys that ran their time."""
    total = 0
    params = {"journey_days": "{}", **params}
    for sql in (EXIT_ON_PURCHASE, EXIT_ON_UNSUBSCRIBE, EXIT_ON_CONSENT, EXIT_JOURNEY_OVER):
        total += db.execute(sql.format(only=only), params).rowcount
    return total


def exit_unsubscribed(db, shop_id, customer_id, now_db) -> int:
    """End the running enrolments of one customer who unsubscribed (the tick's own exit statement,
    narrowed to them: the unsubscribe exists once)."""
    return db.execute(EXIT_ON_UNSUBSCRIBE.format(only=ONE_CUSTOMER),
                      {"shop": shop_id, "customer": customer_id, "now_db": now_db}).rowcount


def exit_confirmed(db, customer_id, now_db) -> int:
    """The customer answered the sunset email ("keep me subscribed"): the sunset that asked ends."""
    return db.execute("UPDATE enrolments SET status = 'exited', exit_reason = 'confirmed', ended_at = ?,"
                      " next_due_at = NULL WHERE customer_id = ? AND flow = 'sunset' AND status = 'active'",
                      [now_db, customer_id]).rowcount


def complete_holdout(db, params) -> int:
    """Held-out enrolments of `:flow` entered before `:until` complete."""
    return db.execute(COMPLETE_HOLDOUT, params).rowcount


def withdraw(db, shop_id, flow, reason, now_db) -> int:
    """End every running enrolment of a flow that was turned off."""
    return db.execute(
        "UPDATE enrolments SET status = 'exited', exit_reason = ?, ended_at = ?, next_due_at = NULL"
        " WHERE shop_id = ? AND flow = ? AND status IN ('active', 'held_out')",
        [reason, now_db, shop_id, flow]).rowcount


# ---- steps ----------------------------------------------------------------------------------
def end(db, enrolment_id, reason, now_db):
    """End one active enrolment with `reason`."""
    db.execute("UPDATE enrolments SET status = 'exited', exit_reason = ?, ended_at = ?, next_due_at = NULL,"
               " deferred_reason = NULL WHERE id = ? AND status = 'active'", [reason, now_db, enrolment_id])


def schedule_step(db, enrolment_id, step, first_sent_at, due):
    """Move on to `step`, due at `due` (also the sunset's wait for an answer)."""
    db.execute("UPDATE enrolments SET step = ?, first_sent_at = ?, next_due_at = ?, step_planned_at = ?,"
               " deferred_reason = NULL WHERE id = ?", [step, first_sent_at, due, due, enrolment_id])


def complete_after(db, enrolment_id, step, first_sent_at, now_db):
    """The last step was decided: the enrolment completes."""
    db.execute("UPDATE enrolments SET step = ?, first_sent_at = ?, next_due_at = NULL, status = 'completed',"
               " ended_at = ?, deferred_reason = NULL WHERE id = ?", [step, first_sent_at, now_db, enrolment_id])


def defer(db, enrolment_id, until_db, why):
    """Re-plan the due step to `until_db` (send window or frequency cap)."""
    db.execute("UPDATE enrolments SET next_due_at = ?, deferred_reason = ?, step_planned_at = ?"
               " WHERE id = ?", [until_db, why, until_db, enrolment_id])


def claimed(db, enrolment_id, planned_db):
    """Its step became a message in the outbox: nothing more is due until it is decided."""
    db.execute("UPDATE enrolments SET next_due_at = NULL, deferred_reason = NULL, step_planned_at = ? WHERE id = ?",
               [planned_db, enrolment_id])


def exit_no_response(db, enrolment_id, now_db):
    """A sunset whose wait for an answer ran out ends ("no_response")."""
    db.execute("UPDATE enrolments SET status = 'exited', exit_reason = 'no_response', next_due_at = NULL,"
               " ended_at = ? WHERE id = ?", [now_db, enrolment_id])


def complete(db, enrolment_id, now_db):
    """An enrolment past its last email whose wait ran out completes."""
    db.execute("UPDATE enrolments SET status = 'completed', next_due_at = NULL, ended_at = ? WHERE id = ?",
               [now_db, enrolment_id])


# ---- campaigns (flows/campaigns.py): one step, members taken once --------------------------
# A campaign's members are enrolments of `campaign:<id>` made when it starts, from the stored
# segment of that moment: held-out ones (a stable hash per campaign) are recorded completed and
# never emailed; the others are due at once, planned for the campaign's time (lateness counts
# from it). The same consent and address conditions as a flow's entry.
ENROL_CAMPAIGN = """
INSERT OR IGNORE INTO enrolments (shop_id, customer_id, flow, anchor_order_at, reason, held_out, discounted,
                                  entered_at, step, next_due_at, step_planned_at, status, ended_at)
SELECT :shop, s.customer_id, :flow, :planned, 'segment ' || :segment, h.out,
       CASE WHEN h.out = 0 AND :discounted THEN 1 ELSE 0 END, :now_db, 0,
       CASE WHEN h.out = 0 THEN :now_db END, CASE WHEN h.out = 0 THEN :planned END,
       CASE WHEN h.out = 1 THEN 'completed' ELSE 'active' END, CASE WHEN h.out = 1 THEN :now_db END
FROM customer_segments s
JOIN customers c ON c.id = s.customer_id
JOIN (SELECT 0 AS out UNION ALL SELECT 1) AS h
     ON h.out = (wb_bucket(:shop, :flow, c.external_id) < :holdout)
WHERE s.shop_id = :shop AND s.segment = :segment
  AND c.email IS NOT NULL AND c.unsubscribed_at IS NULL AND c.email_failed_at IS NULL
  AND c.accepts_marketing = 1 AND c.marketing_inactive_at IS NULL
  {extra}
"""


def enrol_campaign(db, extra: str, params: dict) -> int:
    """Take a campaign's members (see ENROL_CAMPAIGN; `extra` narrows them in SQL); returns how many."""
    return db.execute(ENROL_CAMPAIGN.format(extra=extra), params).rowcount


def forget_shop(db, shop_id) -> int:
    """Delete every enrolment of the shop (the demo's simulated history, before it is made again)."""
    return db.execute("DELETE FROM enrolments WHERE shop_id = ?", [shop_id]).rowcount

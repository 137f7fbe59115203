"""Offer tests: which arm of a step's offer test each entrant gets, fixed once drawn.

A step may carry `"offers": [offer, offer, …]` (2 to 6 arms, `None` = no code; checked by
flows/definitions.py). Each entrant who is not held out gets one arm, drawn by a stable hash of
(shop, flow, step, customer), so the same customer always lands alike. The draw is stored in
`offer_arms` with the arm's offer itself and the key of the test it came from: changing or ending the
test later never changes what someone already got, and the report counts each test on its own.

Entrants are drawn when they enter (set-based, in the engine's enrolment pass), so the comparison
with the holdout counts everyone meant to get the arm, also those who bought before its email left
(intention to treat, as the flow's lift does). An enrolment that was running before the test began
draws its arm when its step is claimed.

This module owns `offer_arms` and `offer_test_history` (the table of owners is in
flows/enrolments.py). Callers hold the write transaction.
"""
import hashlib
import json

TEST_KEY_CHARS = 16


def arms_key(arms) -> str:
    """The key of one test: the same arms in the same order give the same key."""
    return hashlib.sha256(json.dumps(arms, sort_keys=True).encode()).hexdigest()[:TEST_KEY_CHARS]


def arm_index(shop_id, flow, step, customer_ref, n_arms) -> int:
    """The arm (0 … n_arms − 1) of one customer at one step: a stable hash of (shop, flow, step,
    customer), independent of the holdout's (which hashes shop, flow and customer)."""
    digest = hashlib.sha256(f"{shop_id}:{flow}:{step}:{customer_ref}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * n_arms // 2 ** 64


def tested_steps(flow) -> list[int]:
    """The indexes of the flow's steps that carry an offer test."""
    return [i for i, step in enumerate(flow["steps"]) if step.get("offers")]


ASSIGN = """
INSERT OR IGNORE INTO offer_arms (shop_id, enrolment_id, flow, step, test, arm, offer, assigned_at)
SELECT :shop, x.id, :flow, :step, :test, x.arm, json_extract(:arms, '$[' || x.arm || ']'), :now_db
FROM (SELECT e.id, wb_arm(:shop, :flow, :step, c.external_id, :n) AS arm
      FROM enrolments e JOIN customers c ON c.id = e.customer_id
      WHERE e.shop_id = :shop AND e.flow = :flow AND e.entered_at = :now_db AND e.held_out = 0) AS x
"""


def assign_entrants(db, params, name, flow) -> int:
    """Draw the arms of everyone who entered `flow` at `params["now_db"]` (not held out), for each of
    its tested steps; returns how many draws were stored."""
    steps = tested_steps(flow)
    if not steps:
        return 0
    db.conn.create_function("wb_arm", 5, arm_index, deterministic=True)
    total = 0
    for i in steps:
        arms = flow["steps"][i]["offers"]
        total += db.execute(ASSIGN, {"shop": params["shop"], "flow": name, "step": i, "test": arms_key(arms),
                                     "arms": json.dumps(arms), "n": len(arms), "now_db": params["now_db"]}).rowcount
    return total


def _stored(db, enrolment_id, step):
    return db.execute("SELECT offer FROM offer_arms WHERE enrolment_id = ? AND step = ?",
                      [enrolment_id, step]).fetchone()


def offer_for(db, shop_id, enrolment, flow, now_db):
    """The offer of the enrolment's due step: its drawn arm's when it has one; else, when the step
    tests offers, a new draw (stored now); else the step's own offer. Call in the claiming
    transaction (`enrolment` has id, step, flow and the customer's external_id)."""
    step_no = enrolment["step"]
    row = _stored(db, enrolment["id"], step_no)
    if row is not None:
        return json.loads(row[0]) if row[0] else None
    step = flow["steps"][step_no]
    arms = step.get("offers")
    if not arms:
        return step.get("offer")
    arm = arm_index(shop_id, enrolment["flow"], step_no, enrolment["external_id"], len(arms))
    db.execute("INSERT INTO offer_arms (shop_id, enrolment_id, flow, step, test, arm, offer, assigned_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               [shop_id, enrolment["id"], enrolment["flow"], step_no, arms_key(arms), arm,
                json.dumps(arms[arm]) if arms[arm] else None, now_db])
    return arms[arm]


def drawn_offer(db, enrolment_id, step, default):
    """The offer a claimed message carries: its drawn arm's, else `default` (the step's own offer;
    a message claimed before its step tested offers keeps the offer it was claimed with)."""
    row = _stored(db, enrolment_id, step)
    if row is None:
        return default
    return json.loads(row[0]) if row[0] else None


def record_decision(db, shop_id, flow, step, offers, chosen, decided_by, user_id, now_db, summary):
    """Record that a test ended with `chosen` made the step's offer (by the owner or by Winback)."""
    db.execute("INSERT INTO offer_test_history (shop_id, flow, step, offers, chosen, decided_by, user_id,"
               " decided_at, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [shop_id, flow, step, json.dumps(offers), json.dumps(chosen), decided_by, user_id, now_db, summary])


def history(db, shop_id, limit=20) -> list[dict]:
    """The shop's decided offer tests, newest first."""
    rows = list(db.query("SELECT flow, step, offers, chosen, decided_by, decided_at, summary FROM offer_test_history"
                         " WHERE shop_id = ? ORDER BY decided_at DESC, id DESC LIMIT ?", [shop_id, limit]))
    for row in rows:
        row.update(offers=json.loads(row["offers"]), chosen=json.loads(row["chosen"]), step=row["step"] + 1)
    return rows

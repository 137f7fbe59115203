"""`run-flows --dry-run`, summed up per flow: who would enter, who would be held out, whose first
email would be claimed for sending now and whose would wait (send window, frequency cap) or be
withheld, with the reasons counted. The real entry and claim statements run and are rolled back,
as in `flows.engine.preview`; nothing is sent, no code is kept, no consent changes.
"""
from collections import Counter

from app.db import write_transaction

from .definitions import PRIORITY
from .delivery import claim
from .engine import _context, enrol_pass
from .enrolments import exit_pass

NEW_ENROLMENTS = """
SELECT e.flow, e.held_out, e.deferred_reason, m.status AS message_status, m.withheld_reason
FROM enrolments e LEFT JOIN messages m ON m.enrolment_id = e.id
WHERE e.shop_id = :shop AND e.id > :before
"""


def summary(db, shop, now) -> list[dict]:
    """[{"flow", "would_enter", "held_out", "would_send", "deferred", "withheld", "reasons"}] in the
    flows' priority order; `reasons` counts why emails would wait or be withheld."""
    settings, flows, snapshot, params = _context(db, shop, now)
    per_flow = {name: Counter() for name in PRIORITY}
    reasons = {name: Counter() for name in PRIORITY}
    with write_transaction(db):
        db.execute("SAVEPOINT dry_run_summary")
        try:
            before = db.execute("SELECT COALESCE(MAX(id), 0) FROM enrolments").fetchone()[0]
            exit_pass(db, params)
            enrol_pass(db, params, flows, settings, snapshot)
            claim(db, shop, params, flows, settings, limit=-1)
            rows = list(db.query(NEW_ENROLMENTS, {"shop": shop["id"], "before": before}))
        finally:
            db.execute("ROLLBACK TO dry_run_summary")
            db.execute("RELEASE dry_run_summary")
    for r in rows:
        counts = per_flow[r["flow"]]
        counts["would_enter"] += 1
        if r["held_out"]:
            counts["held_out"] += 1
        elif r["message_status"] == "outbox":
            counts["would_send"] += 1
        elif r["message_status"] == "withheld":
            counts["withheld"] += 1
            reasons[r["flow"]][r["withheld_reason"] or "withheld"] += 1
        elif r["deferred_reason"]:
            counts["deferred"] += 1
            reasons[r["flow"]][r["deferred_reason"]] += 1
    return [{"flow": name, **{k: per_flow[name][k] for k in
                              ("would_enter", "held_out", "would_send", "deferred", "withheld")},
             "reasons": dict(reasons[name].most_common())} for name in PRIORITY]


def summary_lines(rows) -> list[str]:
    """The summary as text lines, one per flow that anyone would enter."""
    lines = ["Per flow: would enter, held out, would send now, deferred, withheld:"]
    width = max((len(r["flow"]) for r in rows), default=0)  # one column, whatever the flows' names
    for r in rows:
        if not r["would_enter"]:
            lines.append(f"  {r['flow']:{width}} {'nobody':>6}")
            continue
        why = "; ".join(f"{reason}: {n}" for reason, n in r["reasons"].items())
        lines.append(f"  {r['flow']:{width}} {r['would_enter']:>6} enter, {r['held_out']} held out, "
                     f"{r['would_send']} send, {r['deferred']} deferred, {r['withheld']} withheld"
                     + (f" ({why})" if why else ""))
    return lines

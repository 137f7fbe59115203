"""One refresh: metrics, shop rhythm, every segment, RFM and model scores, stored for `now`.

The UI and the flows read the stored snapshot (`customer_snapshots`, `customer_segments`,
`shop_snapshots`) instead of recomputing.
"""
import json
import time
from concurrent.futures import ThreadPoolExecutor

from app import snapshot_marks
from app.db import connect, write_transaction
from app.settings import get_settings
from app.timeutil import local_date, to_db, utcnow

from . import metrics, owner_segments, segments


def refresh(db, shop, now, settings=None) -> dict:
    """Recompute and store the shop's intelligence as of `now`; returns a summary."""
    started = time.perf_counter()
    settings = settings or get_settings(db, shop["id"])
    path = db.execute("PRAGMA database_list").fetchone()[2]
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The line-based rules read committed orders only: on a file database they run on a second
        # connection, on the other core, while this one builds the snapshot.
        lines = pool.submit(_line_rules, path, shop, now, settings) if path else None
        with write_transaction(db):
            metrics.materialise_purchases(db, shop, now, days=False, lines=lines is None)
            metrics.fill_snapshot(db, shop, now)
            rhythm = metrics.shop_rhythm(db, shop, settings)
            params = segments.rule_params(shop, now, settings, rhythm)
            # The rule's status and lapse day (segments.classify) are stored by scores.score.
            from . import scores  # start-up cost: scipy takes half a second to load; only a refresh needs it
            model = scores.score(db, params)
            segments.fill_rule_segments(db, params)
            line_rows, cycles = lines.result() if lines else segments.line_segments(db, shop, now, settings)
            segments.add_line_segments(db, params, line_rows)
            owner_segments.refresh_members(db, shop, params["now"])
            metrics.drop_purchases(db)
            snapshot_marks.clear(db, shop["id"])  # this snapshot has seen every change so far
            seconds = round(time.perf_counter() - started, 3)
            db.execute("""
                INSERT INTO shop_snapshots (shop_id, computed_for, computed_at, now_date, customers,
                    retention_days, one_time_return_days, vip_threshold_minor, model, seconds)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (shop_id) DO UPDATE SET computed_for = excluded.computed_for,
                    computed_at = excluded.computed_at, now_date = excluded.now_date,
                    customers = excluded.customers, retention_days = excluded.retention_days,
                    one_time_return_days = excluded.one_time_return_days,
                    vip_threshold_minor = excluded.vip_threshold_minor, model = excluded.model,
                    seconds = excluded.seconds""",
                [shop["id"], to_db(now), to_db(utcnow()), local_date(now, shop["timezone"]), rhythm.customers,
                 rhythm.retention_days, rhythm.one_time_return_days, rhythm.vip_threshold_minor,
                 json.dumps({**model, "replenish_cycles": {str(k): v for k, v in cycles.items()},
                             "one_time_return_learned": rhythm.one_time_return_learned,
                             "returners": rhythm.returners}),
                 seconds])
    return {"customers": rhythm.customers, "seconds": seconds, "now": to_db(now),
            "retention_days": rhythm.retention_days,
            "one_time_return_days": rhythm.one_time_return_days,
            "vip_threshold_minor": rhythm.vip_threshold_minor, "model": model.get("status")}


def _line_rules(path, shop, now, settings):
    db = connect(path)
    try:
        metrics.materialise_purchases(db, shop, now, days=False)
        return segments.line_segments(db, shop, now, settings)
    finally:
        db.close()


def stored_snapshot(db, shop) -> dict | None:
    """The shop's stored snapshot summary (None before the first refresh)."""
    rows = list(db.query("SELECT * FROM shop_snapshots WHERE shop_id = ?", [shop["id"]]))
    if not rows:
        return None
    row = rows[0]
    row["model"] = json.loads(row["model"]) if row["model"] else None
    return row


def ensure_snapshot(db, shop, now) -> dict:
    """The snapshot for `now`: the stored one when it still holds for `now`, else a new refresh."""
    snap = stored_snapshot(db, shop)
    if snap is not None and snap["computed_for"] != to_db(now) and still_holds(db, shop, snap, now):
        with write_transaction(db):
            db.execute("UPDATE shop_snapshots SET computed_for = ? WHERE shop_id = ?", [to_db(now), shop["id"]])
        snap["computed_for"] = to_db(now)
    if snap is None or snap["computed_for"] != to_db(now):
        refresh(db, shop, now)
        snap = stored_snapshot(db, shop)
    return snap


def still_holds(db, shop, snap, now) -> bool:
    """Whether the stored snapshot is exactly what a refresh for `now` would give.

    Every rule counts in whole days of the shop's calendar and reads orders created before `now`: the
    snapshot holds on the same day when nothing it reads has changed since (no snapshot mark) and no
    order falls between the two moments.
    """
    if snap["now_date"] != local_date(now, shop["timezone"]):
        return False
    if snapshot_marks.has_marks(db, shop["id"]):
        return False
    low, high = sorted((snap["computed_for"], to_db(now)))
    return not db.execute("SELECT 1 FROM orders WHERE shop_id = ? AND created_at >= ? AND created_at < ? LIMIT 1",
                          [shop["id"], low, high]).fetchone()


def segment_counts(db, shop_id) -> dict[str, int]:
    """{segment: members} from the stored snapshot, the base segments always present."""
    counts = {name: 0 for name in segments.BASE_SEGMENTS}
    for name, n in db.execute("SELECT segment, COUNT(*) FROM customer_segments WHERE shop_id = ?"
                              " GROUP BY segment ORDER BY segment", [shop_id]):
        counts[name] = n
    return counts


def segment_members(db, shop_id) -> dict[str, list[str]]:
    """{segment: [customer id]} from the stored snapshot."""
    members = {name: [] for name in segments.BASE_SEGMENTS}
    for name, ext in db.execute(
            "SELECT s.segment, c.external_id FROM customer_segments s JOIN customers c ON c.id = s.customer_id"
            " WHERE s.shop_id = ? ORDER BY s.segment, c.external_id", [shop_id]):
        members.setdefault(name, []).append(ext)
    return members

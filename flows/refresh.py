"""One refresh: metrics, shop rhythm, every segment, RFM and model scores, stored for `now`.

The UI and the flows read the stored snapshot (`customer_snapshots`, `customer_segments`,
`shop_snapshots`) instead of recomputing.

What a refresh learns from the whole shop (the purchase and spend models, the return curve, the RFM
cut points and value tiers, the rhythm thresholds, the replenish cycles) is learned by the first
refresh of the shop's day and kept with the snapshot (`shop_snapshots.learned`). The day's later
refreshes recompute only the customers whose data changed since (their snapshot marks, and whoever
ordered between the two moments) and score them with what was learned: exactly what recomputing
everyone with it gives, in a fraction of the time. It is learned again on the next day (every
customer's chances move with the calendar), when a setting or a product changed, or when more than
RELEARN_SHARE of the customers changed (an import).
"""
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from app import snapshot_marks
from app.db import connect, rewriting, write_transaction
from app.settings import get_settings
from app.timeutil import local_date, to_db, utcnow

from . import metrics, owner_segments, segments

LEARNED_VERSION = 3
RELEARN_SHARE = 0.02  # changed customers, as a share of all, above which the shop is learned again


def refresh(db, shop, now, settings=None, full=False) -> dict:
    """Recompute and store the shop's intelligence as of `now`; returns a summary.

    Only the changed customers are recomputed when the day's learned state still holds, unless
    `full`: then every customer is (with the day's learned state when it holds, so both agree)."""
    started = time.perf_counter()
    settings = settings or get_settings(db, shop["id"])
    with rewriting(db), write_transaction(db):
        stored, changed = _plan(db, shop, now)
        if full or stored is None:
            rhythm, learned, summary = _everyone(db, shop, now, settings, stored and stored["learned"], changed)
        else:
            rhythm, learned = _changed_only(db, shop, now, settings, stored["learned"], changed)
        snapshot_marks.clear(db, shop["id"])  # this snapshot has seen every change so far
        seconds = round(time.perf_counter() - started, 3)
        if stored is None:
            model = _store_learned(db, shop, now, rhythm, learned, summary, seconds)
        else:
            model = stored["model"]
            db.execute("UPDATE shop_snapshots SET computed_for = ?, computed_at = ?, customers = ?, seconds = ?"
                       " WHERE shop_id = ?", [to_db(now), to_db(utcnow()), rhythm.customers, seconds, shop["id"]])
    return {"customers": rhythm.customers, "seconds": seconds, "now": to_db(now),
            "retention_days": rhythm.retention_days,
            "one_time_return_days": rhythm.one_time_return_days,
            "vip_threshold_minor": rhythm.vip_threshold_minor, "model": model.get("status"),
            "recomputed": rhythm.customers if full or stored is None else len(changed), "learned": stored is None}


def _plan(db, shop, now) -> tuple[dict | None, list[int] | None]:
    """(the stored snapshot's learned state and model when they still hold for `now`, else None; the
    customers whose stored metrics changed since, or None when everyone's are to be read: no
    snapshot yet, or one read in another currency or time zone).

    A customer's metrics are read from their own orders only, so a mark of the whole shop (a setting,
    a product, a customer removed with their snapshot row) has the shop learned anew and every
    customer scored again, but leaves the other customers' metrics as they are."""
    row = db.execute("SELECT computed_for, learned, model FROM shop_snapshots WHERE shop_id = ?",
                     [shop["id"]]).fetchone()
    if row is None:
        return None, None
    learned = json.loads(row[1]) if row[1] else None
    if learned is None or learned.get("read_as") != _read_as(shop):
        return None, None  # the stored metrics were read in another currency or time zone (or unknown)
    marked = set(snapshot_marks.marked(db, shop["id"]))
    # Orders created between the two moments change what their customers had bought by `now`.
    low, high = sorted((row[0], to_db(now)))
    between = [r[0] for r in db.execute(
        "SELECT DISTINCT customer_id FROM orders WHERE shop_id = ? AND created_at >= ? AND created_at < ?"
        " AND customer_id IS NOT NULL", [shop["id"], low, high])]
    changed = sorted((marked | set(between)) - {snapshot_marks.WHOLE_SHOP})
    if (snapshot_marks.WHOLE_SHOP in marked or learned.get("version") != LEARNED_VERSION
            or learned["now_date"] != local_date(now, shop["timezone"])
            or len(changed) > RELEARN_SHARE * max(learned["customers"], 1)):
        return None, changed
    return {"learned": learned, "model": json.loads(row[2]) if row[2] else {}}, changed


def _everyone(db, shop, now, settings, learned, changed) -> tuple:
    """Recompute every customer: with `learned` (the day's), or learning the shop anew (None; then the
    new learned state and the model's summary are returned with the rhythm). Only
    the `changed` customers' metrics are read from their orders again (None: everyone's): the
    others' still hold, and their days are counted to `now` with the scores."""
    path = db.execute("PRAGMA database_list").fetchone()[2]
    cycles = _cycles(learned["cycles"]) if learned else None
    compiled, parts = owner_segments.compiled_rules(db, shop)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The line-based rules, and what the owner's segments ask was bought, read committed orders
        # only: on a file database they run on a second connection, on the other core, while this
        # one builds the snapshot (no one else can commit meanwhile: this transaction holds the
        # write lock).
        lines = pool.submit(_on_own_connection, path, _line_rules, shop, now, settings, cycles) if path else None
        bought = (pool.submit(_on_own_connection, path, owner_segments.read_bought, parts, to_db(now))
                  if path and parts else None)
        if lines is None:  # an in-memory database: no second connection
            metrics.materialise_purchases(db, shop, now)
        if changed is None:
            metrics.fill_snapshot(db, shop, now)
        else:
            with _changed_customers(db, changed) as only:
                metrics.fill_snapshot(db, shop, now, only)
        from . import scores  # start-up cost: scipy takes half a second to load; only a refresh needs it
        rows = scores.buyer_rows(db, metrics.query_params(shop, now))  # read once: the rhythm's and scores'
        rhythm = (metrics.shop_rhythm(db, shop, settings, **scores.rhythm_inputs(rows)) if learned is None
                  else _rhythm(db, shop, learned))
        params = segments.rule_params(shop, now, settings, rhythm)
        # The rule's status and lapse day (segments.rule_status) are stored by scores.score.
        summary, taught = scores.score(db, params, learned and learned["scores"], rows=rows)
        del rows
        segments.stage_segments(db, params)
        line_rows, cycles = lines.result() if lines else segments.line_segments(db, shop, now, settings, cycles)
        segments.apply_segments(db, params, line_rows)
        read = bought.result() if bought else owner_segments.read_bought(db, parts, params["now"])
        owner_segments.refresh_members(db, shop, params["now"], prepared=(compiled, read))
        metrics.drop_purchases(db)
    if learned is not None:
        return rhythm, learned, None
    return rhythm, {"version": LEARNED_VERSION, "now_date": params["now_date"], "read_as": _read_as(shop),
                    "customers": rhythm.customers,
                    "rhythm": {"retention_days": rhythm.retention_days,
                               "one_time_return_days": rhythm.one_time_return_days,
                               "one_time_return_learned": rhythm.one_time_return_learned,
                               "returners": rhythm.returners, "vip_threshold_minor": rhythm.vip_threshold_minor},
                    "cycles": {str(k): v for k, v in cycles.items()}, "scores": taught}, summary


def _changed_only(db, shop, now, settings, learned, changed) -> tuple:
    """Recompute the `changed` customers only, with the day's learned state."""
    with _changed_customers(db, changed) as only:
        metrics.fill_snapshot(db, shop, now, only)
        rhythm = _rhythm(db, shop, learned)
        params = segments.rule_params(shop, now, settings, rhythm)
        from . import scores
        scores.score(db, params, learned["scores"], only)
        segments.fill_rule_segments(db, params, only)
        metrics.materialise_purchases(db, shop, now, only=only)
        line_rows, _ = segments.line_segments(db, shop, now, settings, _cycles(learned["cycles"]))
        segments.add_line_segments(db, params, line_rows)
        owner_segments.refresh_members(db, shop, params["now"], changed=True)
        metrics.drop_purchases(db)
    return rhythm, learned


def _read_as(shop) -> list:
    """What a customer's stored metrics depend on besides their own orders: the shop's currency (money
    in other currencies is not summed) and time zone (its calendar days)."""
    return [shop["currency"], shop["timezone"]]


@contextmanager
def _changed_customers(db, changed):
    """temp.refresh_customers (metrics.CHANGED reads it) holding the changed customers, for the block."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS refresh_customers (customer_id INTEGER PRIMARY KEY)")
    db.execute("DELETE FROM temp.refresh_customers")
    db.conn.executemany("INSERT INTO temp.refresh_customers VALUES (?)", ((c,) for c in changed))
    try:
        yield metrics.CHANGED
    finally:
        db.execute("DROP TABLE IF EXISTS temp.refresh_customers")


def _rhythm(db, shop, learned) -> metrics.ShopRhythm:
    """The learned rhythm thresholds, with the shop's customers counted now."""
    customers = db.execute("SELECT COUNT(*) FROM customers WHERE shop_id = ?", [shop["id"]]).fetchone()[0]
    return metrics.ShopRhythm(customers=customers, buyers=None, repeat_buyers=None, **learned["rhythm"])


def _cycles(stored) -> dict[int, float]:
    return {int(k): v for k, v in stored.items()}


def _store_learned(db, shop, now, rhythm, learned, summary, seconds) -> dict:
    """Store the shop-level snapshot of a refresh that learned the shop anew (`summary`: its model's,
    flows.scores.score); returns its model."""
    model = {**summary, "replenish_cycles": learned["cycles"],
             "one_time_return_learned": rhythm.one_time_return_learned, "returners": rhythm.returners}
    db.execute("""
        INSERT INTO shop_snapshots (shop_id, computed_for, computed_at, now_date, customers,
            retention_days, one_time_return_days, vip_threshold_minor, model, seconds, learned)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (shop_id) DO UPDATE SET computed_for = excluded.computed_for,
            computed_at = excluded.computed_at, now_date = excluded.now_date,
            customers = excluded.customers, retention_days = excluded.retention_days,
            one_time_return_days = excluded.one_time_return_days,
            vip_threshold_minor = excluded.vip_threshold_minor, model = excluded.model,
            seconds = excluded.seconds, learned = excluded.learned""",
        [shop["id"], to_db(now), to_db(utcnow()), local_date(now, shop["timezone"]), rhythm.customers,
         rhythm.retention_days, rhythm.one_time_return_days, rhythm.vip_threshold_minor, json.dumps(model),
         seconds, json.dumps(learned)])
    return model


def _on_own_connection(path, work, *args):
    """`work(db, *args)` on a connection of its own to the database file (a refresh's second one)."""
    db = connect(path)
    try:
        return work(db, *args)
    finally:
        db.close()


def _line_rules(db, shop, now, settings, cycles=None):
    metrics.materialise_purchases(db, shop, now)
    return segments.line_segments(db, shop, now, settings, cycles)


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

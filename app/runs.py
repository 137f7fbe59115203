"""A record of each import, demo seeding and sync: when, what it did, how it ended."""
import json

from . import shops
from .db import write_transaction
from .timeutil import to_db, utcnow


def start_run(db, shop_id, kind, source=None) -> int:
    """Record the start of a run; returns its id."""
    with write_transaction(db):
        cur = db.execute("INSERT INTO sync_runs (shop_id, kind, source, started_at) VALUES (?, ?, ?, ?)",
                         [shop_id, kind, source, to_db(utcnow())])
        return cur.lastrowid


def finish_run(db, run_id, stats=None, error=None):
    """Record how a run ended (failed when `error` is given) and stamp the shop's last sync."""
    now = to_db(utcnow())
    with write_transaction(db):
        db.execute("UPDATE sync_runs SET finished_at = ?, status = ?, stats = ?, error = ? WHERE id = ?",
                   [now, "failed" if error else "ok", json.dumps(stats or {}, default=str), error, run_id])
        if not error:
            row = db.execute("SELECT shop_id FROM sync_runs WHERE id = ?", [run_id]).fetchone()
            if row is not None:
                shops.mark_synced(db, row[0], now)


def recent_runs(db, shop_id, limit=10) -> list[dict]:
    """The shop's latest runs, newest first."""
    rows = list(db.query("SELECT * FROM sync_runs WHERE shop_id = ? ORDER BY id DESC LIMIT ?",
                         [shop_id, limit]))
    for row in rows:
        row["stats"] = json.loads(row["stats"]) if row["stats"] else {}
    return rows

"""Pulling a shop's data from its platform into SQLite: full or incremental, recorded, resumable.

The cursor of an incremental sync is the start time of the last successful one (minus a margin for
clock skew), kept in `sync_state`; a sync that fails keeps the old cursor, so the next run picks up
what this one missed. Writes go through ShopWriter, so re-reading records is harmless.
"""
import logging
from datetime import timedelta
from itertools import islice
from typing import Iterator

from tqdm import tqdm

from app.db import write_transaction
from app.runs import finish_run, start_run
from app.timeutil import from_db, to_db, utcnow

from .registry import connector_for
from .store import PreparedOrders, ShopWriter, keep_days_in_zone, prepare_orders

log = logging.getLogger("winback.sync")
CURSOR = "incremental_since"
SKEW = timedelta(minutes=10)
ORDER_BATCH = 1000  # orders per write transaction: short, so webhook intake never waits long


def get_state(db, shop_id, resource):
    """A stored sync value of the shop (None when unset)."""
    row = db.execute("SELECT value FROM sync_state WHERE shop_id = ? AND resource = ?", [shop_id, resource]).fetchone()
    return row[0] if row else None


def set_state(db, shop_id, resource, value):
    """Store (or with None, clear) a sync value of the shop."""
    with write_transaction(db):
        if value is None:
            db.execute("DELETE FROM sync_state WHERE shop_id = ? AND resource = ?", [shop_id, resource])
        else:
            db.execute("INSERT INTO sync_state (shop_id, resource, value, updated_at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (shop_id, resource) DO UPDATE SET value = excluded.value,"
                       " updated_at = excluded.updated_at", [shop_id, resource, value, to_db(utcnow())])


def _batches(iterable, size):
    it = iter(iterable)
    while batch := list(islice(it, size)):
        yield batch


def _order_batches(connector, shop, since) -> Iterator[PreparedOrders]:
    """The connector's orders in prepared batches: its own `prepared_orders` when it has one (a
    connector that reads a large export in a second process), else prepared here."""
    own = getattr(connector, "prepared_orders", None)
    if own is not None:
        return own(since, ORDER_BATCH)
    return (prepare_orders(batch, shop["timezone"], shop["currency"])
            for batch in _batches(connector.orders(since), ORDER_BATCH))


def sync_shop(app, db, shop, *, full=False, progress=False, connector=None) -> dict:
    """Pull products, customers and orders (all, or changed since the last sync); returns stats."""
    connector = connector or connector_for(app, shop)
    started = utcnow()
    cursor = None if full else get_state(db, shop["id"], CURSOR)
    since = from_db(cursor) if cursor else None
    run = start_run(db, shop["id"], "sync", "full" if since is None else f"since {cursor}")
    writer = ShopWriter(db, shop)
    try:
        with tqdm(desc=f"sync {shop['handle']}", unit=" records", disable=not progress) as bar:
            for batch in _batches(connector.products(since), 500):
                writer.upsert_products(batch)
                bar.update(len(batch))
            for batch in _batches(connector.customers(since), 1000):
                writer.upsert_customers(batch)
                bar.update(len(batch))
            for batch in _order_batches(connector, shop, since):
                writer.write_prepared(batch)
                bar.update(len(batch.orders))
        keep_days_in_zone(db, shop["id"], shop["timezone"])  # the zone its orders were dated in
    except Exception as exc:
        finish_run(db, run, dict(writer.stats), error=f"{type(exc).__name__}: {exc}")
        raise
    set_state(db, shop["id"], CURSOR, to_db(started - SKEW))
    stats = dict(writer.stats)
    finish_run(db, run, stats)
    return {"shop": shop["handle"], "full": since is None, **stats}


def poll_shop(app, db, shop, connector) -> dict:
    """The scheduler's periodic poll of a platform shop; returns the sync's stats.

    The connector prepares first (creates the webhooks of a shop added offline, fills in pending
    catalog details); that is best effort, since the incremental sync after it picks up whatever
    webhooks missed either way."""
    try:
        connector.prepare(db)
    except Exception:  # noqa: BLE001 - the sync below still reconciles
        log.warning("preparing %s failed", shop["handle"], exc_info=True)
    return sync_shop(app, db, shop, connector=connector)

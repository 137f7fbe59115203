"""A prepared batch of orders as a small SQLite database, for the writer to copy in with INSERT … SELECT.

Binding a row's values from Python costs the writer about as much as SQLite's own work for the row
(executemany of 15 values: some 3 µs a row, INSERT … SELECT: a tenth of that), and that writer is
the one process that can write the database. So the reading process puts the orders and lines of
a batch into an in-memory database of its own (`stage`) and sends it serialized (bytes pickle as
one copy); the writer attaches it under STAGE (`attached`, `load`) and lets SQLite copy the rows.
Customers and products stay plain Python values: the writer merges them row by row anyway.

The staged database is a scratch copy, never the shop's database: it has no journal and is thrown
away after the batch.
"""
from __future__ import annotations

import contextlib
import sqlite3
from typing import NamedTuple

STAGE = "import_stage"

# The order rows of PreparedOrders.orders (their lines apart), numbered by `seq` in batch order.
ORDER_COLUMNS = ("external_id", "name", "customer_key", "created_at", "order_date", "currency", "total_minor",
                 "refunded_minor", "status", "financial_status", "is_test", "discount_codes", "updated_at",
                 "merge_lines", "repeats")
LINE_COLUMNS = ("order_seq", "line_key", "product_key", "sku", "title", "brand", "category", "quantity",
                "price_minor")
_SCHEMA = f"""
CREATE TABLE stage_orders (seq INTEGER PRIMARY KEY, {", ".join(ORDER_COLUMNS)});
CREATE TABLE stage_lines ({", ".join(LINE_COLUMNS)});
"""
_ADD_ORDER = f"INSERT INTO stage_orders VALUES (?, {', '.join('?' * len(ORDER_COLUMNS))})"
_ADD_LINE = f"INSERT INTO stage_lines VALUES ({', '.join('?' * len(LINE_COLUMNS))})"


class StagedOrders(NamedTuple):
    """A PreparedOrders whose orders and lines travel as a serialized SQLite database (`data`);
    `orders` is how many orders it holds."""
    customers: dict
    products: dict
    problems: dict
    data: bytes
    orders: int


def stage(batch) -> StagedOrders:
    """The batch (a store.PreparedOrders, not imported here: store imports this module) with its
    orders and lines in a serialized database (runs in the reading process)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("PRAGMA journal_mode = OFF")  # a scratch copy: nothing to roll back to
        conn.executescript(_SCHEMA)
        orders = batch.orders
        conn.executemany(_ADD_ORDER, [(seq, *o[:14], o[15]) for seq, o in enumerate(orders)])
        conn.executemany(_ADD_LINE, [(seq, *line) for seq, o in enumerate(orders) for line in o[14]])
        data = conn.serialize()
    finally:
        conn.close()
    return StagedOrders(batch.customers, batch.products, batch.problems, data, len(batch.orders))


@contextlib.contextmanager
def attached(db):
    """Attach an empty STAGE schema to the writer's connection for the block (outside a transaction:
    SQLite attaches and detaches only there)."""
    db.execute(f"ATTACH ':memory:' AS {STAGE}")
    try:
        yield
    finally:
        db.execute(f"DETACH {STAGE}")


def load(db, batch: StagedOrders):
    """Make `batch` the content of the attached STAGE schema."""
    db.conn.deserialize(batch.data, name=STAGE)


def order_rows(db) -> list[tuple]:
    """The loaded batch's orders in PreparedOrders.orders form (each with its lines), in batch order."""
    lines: dict[int, list] = {}
    for row in db.execute(f"SELECT {', '.join(LINE_COLUMNS)} FROM {STAGE}.stage_lines ORDER BY rowid"):
        lines.setdefault(row[0], []).append(row[1:])
    return [(*row[1:15], lines.get(row[0], []), row[15])
            for row in db.execute(f"SELECT seq, {', '.join(ORDER_COLUMNS)} FROM {STAGE}.stage_orders ORDER BY seq")]

"""Leases in SQLite: whoever holds `name` until `expires_at` may act; nobody else may.

Two schedulers on one database (a second `winback worker`, or `serve` beside a worker) would both
send; a lease makes sure only one ticks at a time, and a crashed holder's lease simply expires.
"""
import os
import socket
import threading
import uuid
from datetime import timedelta

from app.db import write_transaction
from app.timeutil import to_db, utcnow

_PROCESS = uuid.uuid4().hex[:8]


def holder_id() -> str:
    """This process and thread, as a lease holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{_PROCESS}"


def acquire(db, name, holder, ttl_seconds, now=None) -> bool:
    """Take or renew the lease; False when someone else holds it and it has not expired."""
    now = now or utcnow()
    with write_transaction(db):
        row = db.execute("SELECT holder, expires_at FROM leases WHERE name = ?", [name]).fetchone()
        if row and row[0] != holder and row[1] > to_db(now):
            return False
        db.execute("INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name)"
                   " DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                   [name, holder, to_db(now + timedelta(seconds=ttl_seconds))])
        return True


def release(db, name, holder):
    """Give the lease back (only if still ours)."""
    with write_transaction(db):
        db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", [name, holder])

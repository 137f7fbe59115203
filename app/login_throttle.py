"""Login throttling: after 10 failed logins for one user name, or from one client address, within 15
minutes, every further attempt is refused for 15 minutes, the right password included.

The counts live in the `login_failures` table rather than in Flask-Limiter: gunicorn runs several
worker processes, so the counts must be shared between them, and Flask-Limiter's storages are
per-process memory, Redis, Memcached or MongoDB, none of which a Winback installation runs. The SQLite
file that every process already shares holds these few rows well.

An attempt is recorded as a failure before the password is checked (in the same transaction as the
check of the limit), and forgotten when the password turns out right: so parallel guesses in several
workers cannot slip past the limit while their passwords are being hashed. Refused attempts are not
recorded, so a lock ends 15 minutes after the failure that caused it.
"""
from datetime import timedelta

from .db import write_transaction
from .timeutil import from_db, to_db, utcnow

LIMIT = 10
WINDOW = timedelta(minutes=15)
LOCK = timedelta(minutes=15)


def _keys(username, address) -> list[str]:
    return [f"user:{(username or '').strip().lower()[:100]}", f"address:{address or 'unknown'}"]


def _lock_end(times, now):
    """The end of the lock that a key's failure times (ascending) impose at `now`, or None."""
    end = None
    for i in range(LIMIT - 1, len(times)):
        if times[i - LIMIT + 1] >= times[i] - WINDOW and times[i] + LOCK > now:
            end = times[i] + LOCK
    return end


def locked_until(db, username, address, now=None):
    """When the lock on this user name or this address ends (a datetime), or None if attempts may go on."""
    now = now or utcnow()
    ends = []
    for key in _keys(username, address):
        times = [from_db(r[0]) for r in db.execute(
            "SELECT at FROM login_failures WHERE key = ? AND at >= ? ORDER BY at, id",
            [key, to_db(now - WINDOW - LOCK)])]
        end = _lock_end(times, now)
        if end is not None:
            ends.append(end)
    return max(ends) if ends else None


def begin_attempt(db, username, address, now=None):
    """Start a login attempt: (None, attempt ids) when it may go on, else (lock end, None).

    The attempt counts as a failure until `succeeded` is called with its ids.
    """
    now = now or utcnow()
    with write_transaction(db):
        until = locked_until(db, username, address, now)
        if until is not None:
            return until, None
        db.execute("DELETE FROM login_failures WHERE at < ?", [to_db(now - WINDOW - LOCK)])
        ids = [db.execute("INSERT INTO login_failures (key, at) VALUES (?, ?)", [key, to_db(now)]).lastrowid
               for key in _keys(username, address)]
    return None, ids


def succeeded(db, username, attempt_ids):
    """The password was right: forget this attempt and the user name's earlier failures.

    The address's earlier failures stay, so that logging in to one's own account does not reset the
    count of guesses at other accounts from the same address.
    """
    with write_transaction(db):
        db.execute(f"DELETE FROM login_failures WHERE id IN ({','.join('?' * len(attempt_ids))})", attempt_ids)
        db.execute("DELETE FROM login_failures WHERE key = ?", [_keys(username, None)[0]])

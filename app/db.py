"""The SQLite store: connections, transactions and the request-scoped handle."""
import contextlib
import os
import sqlite3

from .sqlite_lib import sqlite_utils, without_memory_statistics

BUSY_TIMEOUT_MS = 30_000


def connect(path) -> sqlite_utils.Database:
    """Open the database file with Winback's settings: WAL, busy timeout, foreign keys.

    The connection runs in autocommit mode; writes go through `write_transaction`, which takes the
    write lock up front (BEGIN IMMEDIATE) so that a reader turned writer never fails with
    "database is locked" while the scheduler and a request write at once.
    """
    without_memory_statistics()  # before the process's first connection
    if str(path) != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        _owner_only(str(path))
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Deleted rows are overwritten with zeros, not left in free space: a redacted customer's data
    # must not survive in the file (see connectors/shopify/privacy.py).
    conn.execute("PRAGMA secure_delete = ON")
    # No sqlite-utils plugins: Winback's connections are its own (and looking for plugins reads the
    # metadata of every installed package, at each start of a command).
    return sqlite_utils.Database(conn, execute_plugins=False)


def _owner_only(path):
    """Create the database file readable by its owner only (0600), and tighten an existing one.

    SQLite gives the -wal and -shm files the permissions of the database file. Not umask: it is
    process-wide, and other threads create files meanwhile.
    """
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for name in (path, path + "-wal", path + "-shm"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except (FileNotFoundError, PermissionError):  # gone, or another user's file to keep private
            pass


REWRITE_CACHE_KIB = 262_144  # page cache while rewriting derived tables (SQLite's default: 2 MB)


@contextlib.contextmanager
def larger_cache(db: sqlite_utils.Database, kib: int):
    """Give the connection a page cache of at least `kib` KiB for a bulk job, then the one it had."""
    previous = db.execute("PRAGMA cache_size").fetchone()[0]
    if previous < 0 and -previous >= kib:
        yield db
        return
    db.execute(f"PRAGMA cache_size = -{kib}")
    try:
        yield db
    finally:
        db.execute(f"PRAGMA cache_size = {int(previous)}")


@contextlib.contextmanager
def rewriting(db: sqlite_utils.Database):
    """Settings for rewriting a shop's derived tables (a refresh's snapshot): a page cache large
    enough for them, and deleted rows zeroed only where that costs no extra I/O (secure_delete FAST).
    The rows a refresh deletes are ones it writes again; a redacted customer's rows were zeroed when
    they were deleted. Both settings are restored afterwards."""
    secure = db.execute("PRAGMA secure_delete").fetchone()[0]
    db.execute("PRAGMA secure_delete = FAST")
    try:
        with larger_cache(db, REWRITE_CACHE_KIB):
            yield db
    finally:
        db.execute(f"PRAGMA secure_delete = {int(secure)}")


# SQLite's NOCASE and lower() fold A-Z only: text in other alphabets is compared through Python's
# casefold, registered on a connection that needs it under this name.
CASEFOLD = "wb_casefold"


def casefold_function(db) -> None:
    """Give the connection the CASEFOLD SQL function (NULL and non-text values pass unchanged)."""
    db.conn.create_function(CASEFOLD, 1, lambda v: v.casefold() if isinstance(v, str) else v, deterministic=True)


@contextlib.contextmanager
def write_transaction(db: sqlite_utils.Database):
    """Run a block as one write transaction (a savepoint when already inside one)."""
    conn = db.conn
    if conn.in_transaction:
        with db.atomic():
            yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        db.__dict__.pop("_winback_after_commit", None)
        raise
    conn.execute("COMMIT")
    for func in db.__dict__.pop("_winback_after_commit", []):
        func()


def after_commit(db: sqlite_utils.Database, func):
    """Run `func()` once the write transaction in progress has committed (dropped if it rolls
    back); at once when there is none. For work that must run outside any transaction."""
    if not db.conn.in_transaction:
        func()
        return
    db.__dict__.setdefault("_winback_after_commit", []).append(func)


def get_db() -> sqlite_utils.Database:
    """The request's (or CLI command's) database handle, opened on first use."""
    from flask import current_app, g  # here: `winback explain` opens its database without Flask (app/entry.py)
    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(exc=None):
    """Close the handle at the end of the app context."""
    from flask import g
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app):
    """Close the request's connection at the end of each app context."""
    app.teardown_appcontext(close_db)

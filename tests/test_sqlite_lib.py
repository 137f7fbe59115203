"""SQLite's memory statistics (app/sqlite_lib.py): off for Winback's processes, so that two threads'
queries do not queue on one mutex; and never turned off under a connection that is already open."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FRESH = """
import ctypes, _sqlite3, sys
from app.db import connect, write_transaction
from app.sqlite_lib import without_memory_statistics
db = connect(sys.argv[1])
with write_transaction(db):
    db.execute("CREATE TABLE t (x)")
    db.conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
print(without_memory_statistics(), ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used(),
      db.execute("SELECT SUM(x) FROM t").fetchone()[0])
"""

ALREADY_OPEN = """
import sqlite3, sys
early = sqlite3.connect(sys.argv[1])
early.execute("CREATE TABLE t (x)")
early.execute("INSERT INTO t VALUES (41)")
early.commit()
from app.db import connect
from app.sqlite_lib import without_memory_statistics
db = connect(sys.argv[1])
early.execute("INSERT INTO t VALUES (1)")  # the early connection still works: SQLite was not shut down
early.commit()
print(without_memory_statistics(), db.execute("SELECT SUM(x) FROM t").fetchone()[0])
"""


def _run(script, path):
    out = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def test_statistics_are_off_in_a_process_that_opens_its_first_connection_through_connect(tmp_path):
    off, used, total = _run(FRESH, tmp_path / "a.db")
    assert sys.platform != "linux" or (off, used) == ("True", "0")
    assert total == str(sum(range(1000)))


def test_a_connection_opened_before_is_left_working_with_the_statistics_on(tmp_path):
    off, total = _run(ALREADY_OPEN, tmp_path / "b.db")
    assert (off, total) == ("False", "42")

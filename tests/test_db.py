"""The SQLite store: migrations (fresh and upgrade), connection settings, concurrent writers."""
import threading

import pytest

from app.db import connect, write_transaction

from app.migrations import init_db
from app.migrations import migrations
from app.shops import create_shop


def _tables(db):
    return {t for t in db.table_names() if not t.startswith("_")}


def test_fresh_database_gets_every_table(tmp_path):
    db = connect(tmp_path / "fresh.db")
    applied = init_db(db)
    assert applied == [m.name for m in migrations._migrations]
    assert {"shops", "customers", "orders", "order_lines", "products", "users", "user_shops",
            "shop_settings", "sync_runs"} <= _tables(db)
    assert init_db(db) == []  # second run: nothing pending


def test_upgrade_keeps_existing_data(tmp_path):
    path = tmp_path / "old.db"
    db = connect(path)
    # A database made by the first release: only the first migration applied.
    migrations.apply(db, stop_before="0002_users_settings_runs")
    assert "users" not in _tables(db)
    db.execute("INSERT INTO shops (handle, platform, name, created_at) VALUES ('old', 'import', 'Old', '2025-01-01T00:00:00Z')")
    db.close()

    db = connect(path)
    assert init_db(db) == [m.name for m in migrations._migrations][1:]
    assert "users" in _tables(db)
    assert [r["handle"] for r in db.query("SELECT handle FROM shops")] == ["old"]


def test_connection_settings(tmp_path):
    db = connect(tmp_path / "x.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_foreign_keys_and_checks_are_enforced(tmp_path):
    import sqlite3
    db = connect(tmp_path / "x.db")
    init_db(db)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO customers (shop_id, external_id) VALUES (999, 'c1')")
    shop = create_shop(db, "s", "import")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO orders (shop_id, external_id, created_at, order_date, currency, total_minor, status)"
                   " VALUES (?, '1', '2025-01-01T00:00:00Z', '2025-01-01', 'EUR', 100, 'shipped')", [shop["id"]])


def test_deleting_a_shop_removes_its_rows(tmp_path):
    db = connect(tmp_path / "x.db")
    init_db(db)
    shop = create_shop(db, "s", "import")
    db.execute("INSERT INTO customers (shop_id, external_id) VALUES (?, 'c1')", [shop["id"]])
    db.execute("DELETE FROM shops WHERE id = ?", [shop["id"]])
    assert db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0


def test_rollback_on_error_leaves_nothing(tmp_path):
    db = connect(tmp_path / "x.db")
    init_db(db)
    with pytest.raises(RuntimeError):
        with write_transaction(db):
            create_shop(db, "s", "import")
            raise RuntimeError("boom")
    assert db.execute("SELECT COUNT(*) FROM shops").fetchone()[0] == 0


def test_two_writers_at_once_never_see_database_is_locked(tmp_path):
    """The scheduler and a request write at the same time: both finish, nothing is lost."""
    path = tmp_path / "busy.db"
    init_db(connect(path))
    shop = create_shop(connect(path), "s", "import")
    errors, per_thread = [], 150

    def writer(tag):
        db = connect(path)
        try:
            for i in range(per_thread):
                with write_transaction(db):
                    # read, then write, inside one transaction: the pattern that fails with a
                    # deferred BEGIN when another connection commits in between
                    n = db.execute("SELECT COUNT(*) FROM customers WHERE shop_id = ?", [shop["id"]]).fetchone()[0]
                    db.execute("INSERT INTO customers (shop_id, external_id, first_name) VALUES (?, ?, ?)",
                               [shop["id"], f"{tag}-{i}", str(n)])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert connect(path).execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 3 * per_thread

"""The bulk import's shortcuts land exactly what the plain path lands: several prepared batches per
write transaction, and known customers updated by row id rather than by the upsert."""
import itertools
from pathlib import Path

import pytest

from app.db import connect
from app.migrations import init_db
from app.shops import create_shop
from connectors import csv_import, store
from connectors.csv_import import import_orders
from tests.test_import_pipeline import HEADER, ROWS, dump

DATA = Path(__file__).parent / "data"


def fresh(path):
    db = connect(path)
    init_db(db)
    return db, create_shop(db, "s", "import", currency="EUR", timezone="Europe/Berlin")


def test_several_batches_per_transaction_land_the_rows_of_one_batch_per_transaction(tmp_path, monkeypatch):
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "\n".join(ROWS) + "\n")
    monkeypatch.setattr(csv_import, "BATCH_SIZE", 2)
    monkeypatch.setattr(csv_import, "PARALLEL_BATCH_SIZE", 2)
    dumps, results = {}, {}
    for name, parallel, per_transaction in (("serial", False, 1), ("grouped", True, 3)):
        monkeypatch.setattr(csv_import, "PARALLEL_TRANSACTION_ORDERS", per_transaction)
        db, shop = fresh(tmp_path / f"{name}.db")
        import_orders(db, shop, DATA / "generic_orders.csv", parallel=parallel)
        first = import_orders(db, shop, path, parallel=parallel)
        landed = dump(db)
        again = import_orders(db, shop, path, parallel=parallel)
        assert dump(db) == landed  # a re-import changes nothing
        assert (again["orders_new"], again["orders_updated"]) == (0, 0)
        dumps[name], results[name] = landed, first
        db.close()
    assert dumps["grouped"] == dumps["serial"]
    assert results["grouped"] == results["serial"]
    assert len(results["grouped"]["skipped"]) == 3  # bad rows reported by line, the good ones kept


# A stored customer and what a later record says of them: each value given or not, consent older,
# newer or the same age, dates earlier or later.
STORED = [
    ("ann@example.com", "Ann", None, "en", 1, "2024-01-05T10:00:00Z", "2024-01-05T10:00:00Z", None),
    ("bob@example.org", None, "Berg", None, None, None, None, "2024-02-01T00:00:00Z"),
]
INCOMING = [
    ("ann@example.com", "Ann", None, "en", 1, "2024-01-05T10:00:00Z", "2024-01-05T10:00:00Z", None),
    (None, None, None, None, None, None, None, None),
    ("new@example.com", "Anna", "Smith", "de", 0, "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z",
     "2024-03-02T00:00:00Z"),
    (None, "Bo", None, "nl", 0, "2023-12-01T00:00:00Z", "2023-01-01T00:00:00Z", "2023-01-01T00:00:00Z"),
    ("x@example.com", None, None, None, 1, None, None, None),
    (None, None, None, None, 0, "2024-01-05T10:00:00Z", None, None),  # consent as old as the stored one
]


@pytest.mark.parametrize("stored, incoming", list(itertools.product(STORED, INCOMING)))
def test_a_known_customer_updated_by_id_ends_as_the_upsert_leaves_them(tmp_path, stored, incoming):
    ends = {}
    for how in ("upsert", "by id"):
        db, shop = fresh(tmp_path / f"{how}.db")
        db.execute(store.INSERT_CUSTOMER, (7, shop["id"], "C1", *stored))
        if how == "upsert":
            changed = db.execute(store.UPSERT_CUSTOMER, (shop["id"], "C1", *incoming)).rowcount
        else:
            changed = db.execute(store.UPDATE_CUSTOMER_BY_ID, (7, *incoming)).rowcount
        marks = db.execute("SELECT customer_id FROM snapshot_marks").fetchall()
        ends[how] = (changed, db.execute("SELECT * FROM customers").fetchall(), marks)
        db.close()
    assert ends["by id"] == ends["upsert"]

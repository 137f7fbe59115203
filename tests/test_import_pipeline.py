"""Reading a large import in a second process (connectors/pipeline.py) lands exactly the rows that
reading it in one process lands: guests merged by email, refunds, bad rows reported by line,
invalid addresses marked, a re-import changing nothing; for CSV files and Shopify bulk exports."""
from pathlib import Path

import pytest

from app.db import connect
from app.migrations import init_db
from app.shops import create_shop, get_shop
from connectors import csv_import, pipeline
from connectors.csv_import import import_orders
from connectors.shopify import connector as shopify_connector
from tests.test_shopify import SHOP, fake, sapp, sdb, shop, synced  # noqa: F401 - fixtures

DATA = Path(__file__).parent / "data"

HEADER = ("order_id,created_at,customer_id,email,first_name,locale,accepts_marketing,currency,status,total,"
          "refunded_amount,product_id,sku,title,brand,category,quantity,price\n")
ROWS = [
    "A1,2024-01-05T10:00:00Z,C1,ann@example.com,Ann,en,true,EUR,paid,30.00,,P1,S1,Tea,Acme,Tea,1,10.00",
    "A1,2024-01-05T10:00:00Z,C1,ann@example.com,Ann,en,true,EUR,paid,30.00,,P2,S2,Mug,Acme,Home,2,10.00",
    # a guest with the email of a registered customer: one customer
    "A2,2024-02-01T09:00:00+02:00,,ANN@example.com,Ann,en,,EUR,paid,12.50,,P1,S1,Tea,Acme,Tea,1,12.50",
    # fully refunded, partly refunded, cancelled
    "A3,2024-02-03T10:00:00Z,C2,bob@example.org,Bob,de,false,EUR,paid,20.00,20.00,P3,,Socks,,,1,20.00",
    "A4,2024-02-04T10:00:00Z,C2,bob@example.org,Bob,de,false,EUR,paid,40.00,10.00,P3,,Socks,,,2,20.00",
    "A5,2024-02-05T10:00:00Z,C3,carla@example.net,Carla,fr,yes,EUR,cancelled,5.00,,P4,S4,Pen,,,1,5.00",
    # bad rows: reported by line, the good ones kept
    "A6,not a date,C3,carla@example.net,Carla,fr,yes,EUR,paid,5.00,,P4,S4,Pen,,,1,5.00",
    "A7,2024-02-06T10:00:00Z,C3,carla@example.net,Carla,fr,maybe,EUR,paid,5.00,,P4,S4,Pen,,,1,5.00",
    "A8,2024-02-07T10:00:00Z,C4,dan@example.com,Dan,en,,EUR,paid,-3,,P4,S4,Pen,,,1,5.00",
    # an address no mail server takes: the customer is marked undeliverable
    "A9,2024-02-08T10:00:00Z,C5,eve@localhost,Eve,en,true,EUR,paid,7.00,,P5,S5,Cup,,,1,7.00",
    # the order's rows split across the file: its lines are added together
    "A1,2024-01-05T10:00:00Z,C1,ann@example.com,Ann,en,true,EUR,paid,30.00,,P5,S5,Cup,,,1,10.00",
    # a line without an order id gets an id of its own
    ",2024-03-01T10:00:00Z,C2,bob@example.org,Bob,de,true,EUR,pending,9.00,,P1,S1,Tea,Acme,Tea,1,9.00",
]


def dump(db):
    """Every row of the shop tables, every column, in id order (the time of an address mark left out:
    it is the time of the import)."""
    out = {}
    for table in ("customers", "products", "orders", "order_lines"):
        cur = db.execute(f"SELECT * FROM {table} ORDER BY id")
        cols = [d[0] for d in cur.description]
        out[table] = [{c: ("set" if c == "email_failed_at" and v else v) for c, v in zip(cols, row)}
                      for row in cur.fetchall()]
    return out


def fresh(path):
    db = connect(path)
    init_db(db)
    return db, create_shop(db, "s", "import", currency="EUR", timezone="Europe/Berlin")


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of two orders: customers, guests and split orders cross batch boundaries."""
    monkeypatch.setattr(csv_import, "BATCH_SIZE", 2)
    monkeypatch.setattr(csv_import, "PARALLEL_BATCH_SIZE", 2)


@pytest.mark.parametrize("rows", [ROWS, list(reversed(ROWS[:-1])) + ROWS[-1:]], ids=["in order", "reversed"])
def test_reading_in_a_second_process_lands_exactly_the_rows_of_one_process(tmp_path, small_batches, rows):
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    results, dumps = {}, {}
    for parallel in (False, True):
        db, shop = fresh(tmp_path / f"{parallel}.db")
        first = import_orders(db, shop, path, parallel=parallel)
        landed = dump(db)
        again = import_orders(db, shop, path, parallel=parallel)
        assert dump(db) == landed  # re-importing the same file changes nothing
        assert (again["orders_new"], again["orders_updated"]) == (0, 0)
        results[parallel], dumps[parallel] = (first, again), landed
        db.close()
    assert results[True] == results[False]
    assert dumps[True] == dumps[False]
    first = results[True][0]
    assert sorted(s["line"] for s in first["skipped"]) == sorted(2 + rows.index(r) for r in ROWS[6:9])
    customers = {c["external_id"]: c for c in dumps[True]["customers"]}
    assert "ann@example.com" not in customers  # the guest merged with C1
    assert customers["C5"]["email_failure"].startswith("invalid address")
    assert customers["C5"]["email_failed_at"] == "set"
    orders = {o["external_id"]: o for o in dumps[True]["orders"]}
    assert orders["A3"]["status"] == "refunded" and orders["A4"]["refunded_minor"] == 1000
    a1_lines = [line for line in dumps[True]["order_lines"] if line["order_id"] == orders["A1"]["id"]]
    assert len(a1_lines) == 3


def test_the_shipped_sample_files_land_alike_either_way(tmp_path):
    files = [("generic", DATA / "generic_orders.csv"), ("generic", DATA / "generic_bad_rows.csv"),
             ("generic", DATA / "generic_no_order_id.csv"), ("shopify", DATA / "shopify_orders_export.csv")]
    dumps = {}
    for parallel in (False, True):
        db, shop = fresh(tmp_path / f"{parallel}.db")
        for fmt, path in files:
            import_orders(db, shop, path, fmt=fmt, parallel=parallel)
        dumps[parallel] = dump(db)
        db.close()
    assert dumps[True]["orders"] and dumps[True] == dumps[False]


def test_a_file_problem_found_by_the_reading_process_fails_clearly_and_imports_nothing(tmp_path, db):
    shop = create_shop(db, "s", "import", currency="EUR", timezone="Europe/Berlin")
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + ROWS[0] + "\n").encode() + "A2,2024-01-05,C9,zo\xeb@example.com\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text"):
        import_orders(db, shop, path, parallel=True)
    assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
    run = db.execute("SELECT status, error FROM sync_runs WHERE kind = 'import'").fetchone()
    assert run[0] == "failed" and "not UTF-8" in run[1]


def test_a_large_shopify_bulk_export_is_read_in_a_second_process_with_the_same_rows(
        sapp, sdb, fake, shop, monkeypatch):  # noqa: F811 - fixtures
    used = []

    class Spy(pipeline.Pipeline):
        def __iter__(self):
            used.append(self.source.__name__)
            yield from super().__iter__()

    monkeypatch.setattr(pipeline, "Pipeline", Spy)
    monkeypatch.setattr(shopify_connector, "PARALLEL_MIN_OBJECTS", 0)
    stats = synced(sapp, sdb, fake, shop)
    assert used == ["read_orders"]
    rows = {r["external_id"]: r for r in sdb.query("SELECT * FROM orders WHERE shop_id = ?", [shop["id"]])}
    assert len(rows) == len(fake.orders) == stats["orders_new"]
    assert (rows["450789469"]["status"], rows["450789469"]["refunded_minor"]) == ("paid", 20900)
    lines = sdb.execute("SELECT COUNT(*) FROM order_lines WHERE shop_id = ?", [shop["id"]]).fetchone()[0]
    assert lines == sum(len(o["line_items"]) for o in fake.orders.values())
    landed = dump(sdb)

    # the same export read in this process finds nothing to change
    monkeypatch.setattr(shopify_connector, "PARALLEL_MIN_OBJECTS", 10 ** 9)
    again = synced(sapp, sdb, fake, shop, full=True)
    assert used == ["read_orders"]
    assert again.get("orders_new", 0) == again.get("orders_updated", 0) == again.get("lines_removed", 0) == 0
    assert dump(sdb) == landed
    assert get_shop(sdb, SHOP)["id"] == shop["id"]


def test_new_orders_read_in_a_second_process_mark_their_customers_for_the_incremental_refresh(tmp_path, small_batches):
    from app import snapshot_marks
    first, later = tmp_path / "first.csv", tmp_path / "later.csv"
    first.write_text(HEADER + "\n".join(ROWS[:6]) + "\n")
    # new orders of two known customers (C2 and the guest merged into C1) and of a new one
    later.write_text(HEADER + "\n".join([
        "B1,2024-04-01T10:00:00Z,C2,bob@example.org,Bob,de,false,EUR,paid,20.00,,P3,,Socks,,,1,20.00",
        "B2,2024-04-02T10:00:00Z,,ann@example.com,Ann,en,,EUR,paid,10.00,,P1,S1,Tea,Acme,Tea,1,10.00",
        "B3,2024-04-03T10:00:00Z,C7,gus@example.com,Gus,en,,EUR,paid,10.00,,P1,S1,Tea,Acme,Tea,1,10.00",
    ]) + "\n")
    marked = {}
    for parallel in (False, True):
        db, shop = fresh(tmp_path / f"marks-{parallel}.db")
        import_orders(db, shop, first, parallel=parallel)
        snapshot_marks.clear(db, shop["id"])  # as a refresh leaves it
        import_orders(db, shop, later, parallel=parallel)
        marked[parallel] = {row[0] for row in db.execute(
            "SELECT c.external_id FROM snapshot_marks m JOIN customers c ON c.id = m.customer_id")}
        db.close()
    assert marked[True] == marked[False] == {"C1", "C2", "C7"}


@pytest.mark.parametrize("column", [0, 1, 3])
def test_the_quick_scan_of_a_file_without_quotes_finds_the_split_orders_the_csv_reader_finds(tmp_path, column):
    import csv
    import io

    def row(key, other="v"):
        values = [other] * 5
        values[column] = key
        return ",".join(values)
    blocks = [
        [row("A1"), ",,,,,", row("A1")],  # values all empty: A1 goes on
        [row("A2"), "", row("A2")],  # a blank line: A2 goes on
        [row("A3"), row(" A3 "), row("A3")],  # the same key, spaced
        [row("B1"), ",".join(["x"] * column) if column else ",x", row("B1")],  # a record with no key: B1 is split
        [row("B2"), row("  "), row("B2")],  # an empty key among values: B2 is split
        [row("B3"), row("C1"), row("B3")],  # another order between: B3 is split
    ]
    text = "\r\n".join(line for block in blocks for line in block) + "\n"
    found = csv_import._split_keys(csv.reader(io.StringIO(text, newline="")), column)
    assert found == {"B1", "B2", "B3"}
    assert csv_import._split_keys_plain(io.StringIO(text, newline=""), column) == found

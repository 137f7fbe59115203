"""CSV import: the generic format and Shopify's Orders → Export, bad rows, re-imports, the CLI."""
import csv
import json
import shutil
from pathlib import Path

import pytest

from app.shops import create_shop, get_shop
from connectors.csv_import import import_orders

DATA = Path(__file__).parent / "data"
GENERIC = DATA / "generic_orders.csv"
BAD = DATA / "generic_bad_rows.csv"
NO_ORDER_ID = DATA / "generic_no_order_id.csv"
SHOPIFY = DATA / "shopify_orders_export.csv"


@pytest.fixture
def shop(db):
    return create_shop(db, "s", "import", currency="EUR", timezone="Europe/Berlin")


@pytest.fixture
def us_shop(db):
    return create_shop(db, "us", "import", currency="USD", timezone="America/Los_Angeles")


def dump(db, shop):
    """Every row the shop owns, every column, in id order."""
    return {table: db.execute(f"SELECT * FROM {table} WHERE shop_id = ? ORDER BY id", [shop["id"]]).fetchall()
            for table in ("customers", "products", "orders", "order_lines")}


def orders_by_id(db, shop):
    rows = db.execute("SELECT o.*, c.external_id AS customer FROM orders o"
                      " LEFT JOIN customers c ON c.id = o.customer_id WHERE o.shop_id = ?",
                      [shop["id"]]).fetchall()
    cols = [d[0] for d in db.execute("SELECT o.*, 1 AS customer FROM orders o LIMIT 0").description]
    return {row[cols.index("external_id")]: dict(zip(cols, row)) for row in rows}


def lines_of(db, shop, order_external_id):
    return db.execute(
        "SELECT l.line_key, p.external_id, l.sku, l.title, l.brand, l.category, l.quantity, l.price_minor"
        " FROM order_lines l JOIN orders o ON o.id = l.order_id LEFT JOIN products p ON p.id = l.product_id"
        " WHERE o.shop_id = ? AND o.external_id = ? ORDER BY l.id", [shop["id"], order_external_id]).fetchall()


def customers(db, shop):
    cols = ("external_id", "email", "first_name", "last_name", "locale", "accepts_marketing",
            "marketing_updated_at", "created_at")
    rows = db.execute(f"SELECT {', '.join(cols)} FROM customers WHERE shop_id = ?", [shop["id"]]).fetchall()
    return {row[0]: dict(zip(cols, row)) for row in rows}


# ---- generic format ------------------------------------------------------------------------
def test_generic_file_lands_with_customers_orders_lines_and_consent(db, shop):
    result = import_orders(db, shop, GENERIC)

    assert result["skipped"] == []
    assert (result["orders"], result["customers"], result["lines"]) == (8, 4, 10)
    assert (result["orders_new"], result["orders_updated"], result["orders_unchanged"]) == (8, 0, 0)

    orders = orders_by_id(db, shop)
    assert set(orders) == {f"A-100{i}" for i in range(1, 9)}
    # Date-only and naive times are shop-local (Berlin): CET in February, still CET at 01:30 on
    # the night the clocks go forward.
    assert (orders["A-1002"]["created_at"], orders["A-1002"]["order_date"]) == ("2024-02-09T23:00:00Z", "2024-02-10")
    assert orders["A-1003"]["created_at"] == "2024-03-31T00:30:00Z"
    assert orders["A-1004"]["created_at"] == "2024-04-02T07:15:00Z"
    # Status words are case-insensitive; an empty currency is the shop's.
    assert (orders["A-1002"]["status"], orders["A-1002"]["currency"], orders["A-1002"]["total_minor"]) == \
        ("pending", "EUR", 1999)
    assert (orders["A-1004"]["status"], orders["A-1004"]["refunded_minor"]) == ("refunded", 4000)
    assert (orders["A-1005"]["status"], orders["A-1005"]["currency"]) == ("cancelled", "USD")
    assert (orders["A-1006"]["currency"], orders["A-1006"]["total_minor"], orders["A-1006"]["refunded_minor"]) == \
        ("JPY", 1500, 500)
    assert (orders["A-1008"]["total_minor"], orders["A-1008"]["refunded_minor"]) == (2500, 500)
    assert orders["A-1007"]["total_minor"] == 300

    # A-1001's rows are split by other orders: all three lines land on one order.
    assert lines_of(db, shop, "A-1001") == [
        ("P1@12.5", "P1", "SKU-1", "Espresso Beans", "Northwind", "Coffee", 2, 1250),
        ("P2@5", "P2", "SKU-2", "Filter Papers", "Acme", "Accessories", 1, 500),
        ("P4@2.5", "P4", "SKU-4", "Milk Jug", "Acme", "Accessories", 1, 250),
    ]
    # Product key falls back to the SKU, then the title; quantity defaults to 1.
    assert lines_of(db, shop, "A-1002") == [("sku:SKU-3@19.99", "sku:SKU-3", "SKU-3", "Green Tea", "Leaf & Co", "Tea", 1, 1999)]
    assert lines_of(db, shop, "A-1007") == [('title:Sticker "Hello"@1', 'title:Sticker "Hello"', None,
                                             'Sticker "Hello"', None, None, 3, 100)]
    # Two identical lines stay two lines; a row without product fields makes no line.
    assert [key for key, *_ in lines_of(db, shop, "A-1008")] == ["P1@12.5", "P1@12.5#2"]
    assert lines_of(db, shop, "A-1005") == []

    people = customers(db, shop)
    # The guest row for ann@example.com joined registered customer C1.
    assert set(people) == {"C1", "C2", "C3", "C4"}
    assert orders["A-1003"]["customer"] == "C1"
    # Consent: the newest order's evidence wins, though the file lists it first.
    assert people["C1"]["email"] == "ann@example.com"
    assert (people["C1"]["accepts_marketing"], people["C1"]["marketing_updated_at"]) == (1, "2024-06-01T08:00:00Z")
    assert people["C1"]["created_at"] == "2024-01-05T10:00:00Z"
    assert (people["C2"]["accepts_marketing"], people["C2"]["marketing_updated_at"]) == (1, "2024-05-01T12:00:00Z")
    assert people["C3"]["accepts_marketing"] == 1  # an empty value later says nothing
    assert people["C4"]["accepts_marketing"] is None
    assert (people["C1"]["first_name"], people["C1"]["locale"]) == ("Ann", "de")


def test_reimporting_the_same_files_changes_nothing(db, shop, us_shop):
    for target, path, fmt in ((shop, GENERIC, "generic"), (shop, NO_ORDER_ID, "generic"),
                              (shop, BAD, "generic"), (us_shop, SHOPIFY, "shopify")):
        first = import_orders(db, target, path, fmt=fmt)
        before = dump(db, target)
        again = import_orders(db, target, path, fmt=fmt)
        assert dump(db, target) == before, path.name
        assert (again["orders_new"], again["orders_updated"]) == (0, 0), path.name
        assert again["orders_unchanged"] == first["orders"] == again["orders"]
        assert again["skipped"] == first["skipped"]


def test_bad_rows_are_reported_by_line_and_good_rows_land(db, shop):
    result = import_orders(db, shop, BAD)

    errors = {row["line"]: row["error"] for row in result["skipped"]}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 17, 18]
    expected = {
        3: ["created_at", "2024-13-45T10:00:00Z", "ISO 8601"],
        4: ["total", "'ten'", "not a number"],
        5: ["total", "-5.00", "negative"],
        6: ["customer_id", "email"],
        7: ["status", "shipped"],
        8: ["accepts_marketing", "maybe"],
        9: ["quantity", "1.5"],
        10: ["refunded_amount", "12.00", "total"],
        11: ["XYZ"],
        13: ["total", "35.00", "line 12", "30.00"],
        17: ["quantity", "-1"],  # the quoted two-line title of G-3 (lines 15-16) is counted
        18: ["total", "25.00", "line 2", "20.00"],  # G-1 again, after other orders
    }
    for line, words in expected.items():
        for word in words:
            assert word in errors[line], (line, errors[line])

    assert (result["orders"], result["customers"], result["lines"]) == (3, 3, 5)
    orders = orders_by_id(db, shop)
    assert set(orders) == {"G-1", "G-2", "G-3"}
    # G-1's last row repeats the same time and total in other words and leaves customer
    # fields empty: it joins the order.
    assert [row[1] for row in lines_of(db, shop, "G-1")] == ["P1", "P2"]
    assert [row[1] for row in lines_of(db, shop, "G-2")] == ["P1", "P3"]
    assert lines_of(db, shop, "G-3")[0][3] == "Gift box\nlarge"


def test_rows_without_order_id_get_stable_ids_of_their_own(db, shop):
    result = import_orders(db, shop, NO_ORDER_ID)

    assert result["skipped"] == []
    assert (result["orders"], result["customers"], result["lines"]) == (4, 2, 3)
    ids = sorted(orders_by_id(db, shop))
    assert len(ids) == 4 and all(i.startswith("row-") for i in ids)
    # Two identical rows are two orders, told apart by their occurrence.
    assert sum(i.endswith("-2") for i in ids) == 1
    assert set(customers(db, shop)) == {"zoe@example.com", "yan@example.com"}


def test_generated_ids_do_not_depend_on_the_file_name_or_row_positions(db, shop, tmp_path):
    import_orders(db, shop, NO_ORDER_ID)
    text = NO_ORDER_ID.read_text().split("\n")
    moved = tmp_path / "export-again.csv"
    # The same rows, the order without lines moved to the end, and a blank line in between.
    moved.write_text("\n".join([text[0], text[1], text[2], "", text[4], text[3]]) + "\n")

    result = import_orders(db, shop, moved)

    assert (result["orders"], result["orders_new"], result["orders_updated"]) == (4, 0, 0)


def test_a_reexport_that_lost_a_line_replaces_the_order_lines(db, shop, tmp_path):
    header = "order_id,created_at,customer_id,total,product_id,price\n"
    first = tmp_path / "first.csv"
    first.write_text(header + "X-1,2024-01-01T10:00:00Z,C1,15,P1,10\nX-1,2024-01-01T10:00:00Z,C1,15,P2,5\n")
    second = tmp_path / "second.csv"
    second.write_text(header + "X-1,2024-01-01T10:00:00Z,C1,10,P1,10\n")

    import_orders(db, shop, first)
    result = import_orders(db, shop, second)

    assert result["orders_updated"] == 1
    assert [row[1] for row in lines_of(db, shop, "X-1")] == ["P1"]
    assert orders_by_id(db, shop)["X-1"]["total_minor"] == 1000


def test_guest_and_registered_rows_with_one_email_end_as_one_customer(db, shop, tmp_path):
    guest = tmp_path / "guest.csv"
    guest.write_text("order_id,created_at,email,total\nW-1,2024-01-01,Mia@Example.com,10\n")
    registered = tmp_path / "registered.csv"
    registered.write_text("order_id,created_at,customer_id,email,total\nW-2,2024-02-01,C77,mia@example.com,20\n")

    assert import_orders(db, shop, guest)["customers"] == 1
    assert set(customers(db, shop)) == {"mia@example.com"}
    assert import_orders(db, shop, registered)["customers"] == 1

    assert set(customers(db, shop)) == {"C77"}
    orders = orders_by_id(db, shop)
    assert orders["W-1"]["customer"] == orders["W-2"]["customer"] == "C77"


# ---- Shopify export ------------------------------------------------------------------------
def test_shopify_export_lands(db, us_shop):
    result = import_orders(db, us_shop, SHOPIFY, fmt="shopify")

    assert (result["orders"], result["customers"], result["lines"]) == (8, 6, 11)
    errors = {row["line"]: row["error"] for row in result["skipped"]}
    # Line numbers are physical lines: #1010's Note spans lines 2-3 (a CRLF inside quotes).
    assert sorted(errors) == [11, 12, 15]
    assert "#1005" in errors[11] and "Email" in errors[11]
    assert "line 11" in errors[12]
    assert "#1002" in errors[15]

    orders = orders_by_id(db, us_shop)
    assert set(orders) == {"5601234567890", "5601234567889", "5601234567888", "5601234567887",
                           "5601234567886", "5601234567884", "5601234567883", "5601234567881"}
    first = orders["5601234567890"]
    assert (first["name"], first["created_at"], first["order_date"]) == ("#1010", "2025-03-20T12:20:57Z", "2025-03-20")
    assert (first["currency"], first["total_minor"], first["status"], first["financial_status"]) == \
        ("USD", 4998, "paid", "paid")
    assert json.loads(first["discount_codes"]) == ["spring10"]
    # Times before the spring change are -0800; the two 01:30s of the autumn night differ by an hour.
    assert orders["5601234567889"]["created_at"] == "2025-03-09T02:02:11Z"
    assert orders["5601234567884"]["created_at"] == "2024-11-03T09:30:00Z"
    assert orders["5601234567883"]["created_at"] == "2024-11-03T08:30:00Z"
    # Financial Status mapping; the raw word is kept.
    assert [(orders[i]["status"], orders[i]["financial_status"], orders[i]["refunded_minor"]) for i in (
        "5601234567889", "5601234567888", "5601234567887", "5601234567886", "5601234567883")] == [
        ("paid", "partially_refunded", 1500), ("refunded", "refunded", 2500),
        ("cancelled", "voided", 0), ("pending", "pending", 0), ("pending", "authorized", 0)]

    assert lines_of(db, us_shop, "5601234567890") == [
        ("sku:CB-250@17.99", "sku:CB-250", "CB-250", "Cold Brew Coffee - 250g", "Northwind Roasters", None, 2, 1799),
        ("sku:MUG-1@10", "sku:MUG-1", "MUG-1", "Ceramic Mug", "Acme Home", None, 1, 1000),
        ("title:Gift wrapping@4", "title:Gift wrapping", None, "Gift wrapping", "Acme Home", None, 1, 400),
    ]
    assert len(lines_of(db, us_shop, "5601234567888")) == 2

    people = customers(db, us_shop)
    assert set(people) == {"ann.smith@example.com", "bob@example.com", "carl@example.com",
                           "dana@example.com", "eve@example.com", "gus@example.com"}
    ann = people["ann.smith@example.com"]
    assert (ann["first_name"], ann["last_name"]) == ("Ann", "Smith")
    # Ann said yes on her newest order (first in the file) and no on older ones.
    assert (ann["accepts_marketing"], ann["marketing_updated_at"]) == (1, "2025-03-20T12:20:57Z")
    assert ann["created_at"] == "2024-11-03T09:30:00Z"
    assert people["dana@example.com"]["accepts_marketing"] is None
    assert people["gus@example.com"]["last_name"] == "O'Neill"
    assert orders["5601234567888"]["customer"] == "ann.smith@example.com"


def _shopify_rows():
    with open(SHOPIFY, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def _write_rows(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return path


def test_shopify_export_without_id_column_keys_orders_by_name(db, us_shop, tmp_path):
    rows = _shopify_rows()
    keep = [i for i, name in enumerate(rows[0]) if name != "Id"]
    path = _write_rows(tmp_path / "orders_export_1.csv", [[row[i] for i in keep] for row in rows])

    result = import_orders(db, us_shop, path, fmt="shopify")

    assert result["orders"] == 8
    assert "#1010" in orders_by_id(db, us_shop)


def test_shopify_line_items_split_from_their_order_are_merged(db, us_shop, tmp_path):
    rows = _shopify_rows()
    # #1010's last line item (record 3) moved after #1009's row (record 4).
    moved = rows[:3] + [rows[4], rows[3]] + rows[5:]
    path = _write_rows(tmp_path / "orders_export.csv", moved)

    result = import_orders(db, us_shop, path, fmt="shopify")
    again = import_orders(db, us_shop, path, fmt="shopify")

    assert (result["orders"], result["lines"]) == (8, 11)
    assert [row[3] for row in lines_of(db, us_shop, "5601234567890")] == \
        ["Cold Brew Coffee - 250g", "Ceramic Mug", "Gift wrapping"]
    assert (again["orders_new"], again["orders_updated"], again["orders_unchanged"]) == (0, 0, 8)


# ---- file-level problems -------------------------------------------------------------------
def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, data, words", [
    ("missing.csv", b"order_id,created_at,email\nA,2024-01-01,a@example.com\n", ["total"]),
    ("nocustomer.csv", b"created_at,total\n2024-01-01,10\n", ["customer_id or email"]),
    ("empty.csv", b"", ["empty"]),
    ("blank.csv", b"\n\n", ["empty"]),
    ("latin1.csv", "created_at,email,total\n2024-01-01,jos\xe9@example.com,10\n".encode("latin-1"),
     ["UTF-8", "line 2"]),
    ("semicolons.csv", b"created_at;email;total\n2024-01-01;a@example.com;10\n", ["';'"]),
])
def test_file_level_problems_fail_clearly_and_import_nothing(db, shop, tmp_path, name, data, words):
    path = _write(tmp_path, name, data)

    with pytest.raises(ValueError) as info:
        import_orders(db, shop, path)

    message = str(info.value)
    assert "\n" not in message and name in message
    for word in words:
        assert word in message
    assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
    run = db.execute("SELECT kind, source, status, error FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone()
    assert run == ("import", name, "failed", message)


def test_a_shopify_export_given_as_generic_says_which_format(db, shop):
    with pytest.raises(ValueError, match="--format shopify"):
        import_orders(db, shop, SHOPIFY)
    with pytest.raises(ValueError, match="Financial Status"):
        import_orders(db, shop, GENERIC, fmt="shopify")


def test_a_header_only_file_imports_nothing_without_error(db, shop, tmp_path):
    path = _write(tmp_path, "header.csv", b"\xef\xbb\xbfcreated_at,email,total\r\n")
    result = import_orders(db, shop, path)
    assert (result["orders"], result["lines"], result["skipped"]) == (0, 0, [])


def test_import_is_recorded_as_a_run(db, shop):
    import_orders(db, shop, GENERIC)
    kind, source, status, stats = db.execute(
        "SELECT kind, source, status, stats FROM sync_runs WHERE shop_id = ?", [shop["id"]]).fetchone()
    assert (kind, source, status) == ("import", "generic_orders.csv", "ok")
    assert json.loads(stats)["orders"] == 8
    assert get_shop(db, "s")["last_sync_at"] is not None


def test_progress_bar_goes_to_stderr(db, shop, capsys):
    import_orders(db, shop, GENERIC, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "generic_orders.csv" in captured.err


# ---- command line --------------------------------------------------------------------------
def test_cli_json_prints_the_spec_shape_and_creates_an_import_shop(app, db, runner, tmp_path):
    path = tmp_path / "orders.csv"
    shutil.copy(BAD, path)

    result = runner.invoke(args=["import-orders", "--shop", "s", str(path), "--json"])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"orders", "customers", "skipped"} <= set(doc)
    assert (doc["orders"], doc["customers"]) == (3, 3)
    assert [row["line"] for row in doc["skipped"]][:2] == [3, 4]
    assert set(doc["skipped"][0]) == {"line", "error"}
    assert get_shop(db, "s")["platform"] == "import"


def test_cli_summary_lists_skipped_lines(app, runner):
    result = runner.invoke(args=["import-orders", "--shop", "us", str(SHOPIFY), "--format", "shopify",
                                 "--currency", "USD", "--timezone", "America/Los_Angeles"])

    assert result.exit_code == 0, result.output
    assert "Created shop 'us'" in result.stdout
    assert "Imported 8 orders (8 new, 0 changed) for 6 customers from 11 lines; 3 rows skipped." in result.stdout
    assert "line 11:" in result.stderr and "line 15:" in result.stderr


def test_cli_file_problem_is_one_line_and_exit_1(app, runner, tmp_path):
    from app.__main__ import main
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    result = runner.invoke(main, args=["import-orders", "--shop", "s", str(path)])

    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "empty" in result.stderr
    assert "Traceback" not in result.output

"""What an outside-in review of the owner's first hour (issue 17) found on main, each with its fix:
the demo report's weekly trend read every sent email once per order (44 s for the demo's report
page), the public-address warning told owners on the right address that "this page" was opened
elsewhere, and the segment editor's refusals were English on Dutch and Polish pages."""
import logging
import re
import sqlite3

from app import create_app
from app.db import connect
from app.migrations import init_db
from app.users import ensure_admin
from app.web.public_address import serve_address
from conftest import ADMIN_PASSWORD, CHEAP_HASH
from flows import trend
from tests.builders import make_shop


def test_the_trend_reads_an_orders_emails_by_customer_not_every_sent_email(tmp_path):
    """The report's weekly trend finds the last email before each order through the customer's
    messages; read by status it went through every sent email of the installation per order."""
    db = sqlite3.connect(tmp_path / "w.db")
    init_db(connect(tmp_path / "w.db"))
    params = {"shop": 1, "now": "2026-12-05T12:00:00Z", "since": "", "days": 5, "currency": "EUR"}
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + trend.CONVERTED, params)]
    reads = [step for step in plan if re.search(r"\bm USING", step)]
    assert reads and all("messages_customer" in step for step in reads), plan


def _login(client, base):
    page = client.get("/login", base_url=base)
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
                base_url=base)


def test_the_address_warning_is_for_the_page_opened_elsewhere_not_for_the_right_address(tmp_path, caplog):
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path / "i"), "DATABASE": str(tmp_path / "w.db"),
                      "PASSWORD_HASH_METHOD": CHEAP_HASH})
    with app.app_context():
        from app.db import get_db
        init_db(get_db())
        ensure_admin(get_db(), ADMIN_PASSWORD, method=CHEAP_HASH)
    serve_address(app, "127.0.0.1", 8000)
    make_shop(connect(app.config["DATABASE"]), "s")
    elsewhere, right = app.test_client(), app.test_client()
    with caplog.at_level(logging.WARNING, logger="winback.address"):
        _login(elsewhere, "http://localhost:8000")
        page = elsewhere.get("/shops/s", base_url="http://localhost:8000").get_data(as_text=True)
    assert 'data-warning="public_address"' in page and "localhost:8000" in page
    _login(right, "http://127.0.0.1:8000")
    page = right.get("/shops/s", base_url="http://127.0.0.1:8000").get_data(as_text=True)
    # The owner on the public address is not told "this page was opened at localhost:8000".
    assert 'data-warning="public_address"' not in page and "localhost:8000" not in page
    assert len([r for r in caplog.records if "localhost:8000" in r.getMessage()]) == 1


def test_a_refused_segment_row_says_why_in_polish_next_to_it_and_keeps_what_was_typed(client, login, db):
    from test_segment_pages import rows, shop_with_history
    from tests.conftest import _csrf
    shop_with_history(db)
    login()
    home = client.get("/shops/corner").get_data(as_text=True)
    client.post("/language", data={"lang": "pl", "next": "/", "csrf_token": _csrf(home)})
    token = _csrf(client.get("/shops/corner/segments/new").get_data(as_text=True))
    refused = client.post("/shops/corner/segments/new", data={
        **rows(**{"0": ("orders", ">=", "2"), "1": ("clv", ">=", "dużo"), "2": ("accepts_marketing", "=", "może")}),
        "name": "Stali klienci", "csrf_token": token})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'lang="pl"' in page
    row = re.search(r'<div class="condition" data-row="1">(.*?)</div>', page, re.S).group(1)
    assert 'id="error-conditions-1-value">wpisz liczbę<' in row and 'aria-invalid="true"' in row
    row = re.search(r'<div class="condition" data-row="2">(.*?)</div>', page, re.S).group(1)
    assert "wpisz tak lub nie" in row
    brand = client.post("/shops/corner/segments/new", data={**rows(**{"0": ("brand", "<", "Wella")}),
                                                           "name": "Fani", "csrf_token": token}).get_data(as_text=True)
    assert "dla tego pola wybierz = != in" in brand and "takes the operators" not in brand
    assert "takes a number" not in page and "rule.all" not in page  # the rule's English, internal names
    for typed in ('value="dużo"', 'value="może"', 'value="Stali klienci"', 'value="2"'):
        assert typed in page
    assert db.execute("SELECT COUNT(*) FROM owner_segments").fetchone()[0] == 0


def test_the_dry_run_summary_keeps_one_column_for_long_flow_names(app, db, runner):
    from tests.builders import lapsed_shop
    lapsed_shop(db)
    out = runner.invoke(args=["run-flows", "--shop", "s", "--now", "2026-04-12T10:00:00+00:00", "--dry-run"]).output
    summary = out.split("Per flow:", 1)[1].splitlines()[1:]
    assert any(line.split()[0] == "category_winback" for line in summary)
    # The count (or "nobody") of every flow ends in the same column, category_winback's too.
    ends = {re.match(r"\s+\S+\s+\S+", line).end() for line in summary}
    assert len(ends) == 1, summary


def test_the_live_count_of_a_new_segment_says_nothing_in_english(client, login, db):
    """Opening the editor (no condition yet) and typing a word where a number goes: the live count's
    message is empty, then in the page's language; never the rule's English."""
    from test_segment_pages import rows, shop_with_history
    from tests.conftest import _csrf
    shop_with_history(db)
    login()
    home = client.get("/shops/corner").get_data(as_text=True)
    client.post("/language", data={"lang": "nl", "next": "/", "csrf_token": _csrf(home)})
    token = _csrf(client.get("/shops/corner/segments/new").get_data(as_text=True))
    empty = client.post("/shops/corner/segments/count", data={**rows(), "csrf_token": token}).get_json()
    assert empty == {"count": None, "sample": [], "error": None}
    typed = client.post("/shops/corner/segments/count", data={**rows(**{"0": ("clv", ">=", "veel")}),
                                                              "csrf_token": token}).get_json()
    assert typed["count"] is None and typed["error"] == "Voorwaarde 1: vul een getal in"


def test_a_shop_without_campaigns_reports_none_without_reading_its_orders(db):
    """The report's campaign part read every flow's orders (1.3 s on the demo) to keep none."""
    from app.timeutil import parse_now
    from flows import campaigns
    from tests.builders import lapsed_shop
    shop = lapsed_shop(db)
    statements = []
    db.conn.set_trace_callback(statements.append)
    try:
        assert campaigns.report(db, shop, parse_now("2026-04-12T10:00:00Z")) == []
    finally:
        db.conn.set_trace_callback(None)
    assert statements and not [s for s in statements if "orders" in s], statements


def test_a_report_range_that_is_not_one_says_why_in_the_page_language(client, login, db):
    from test_segment_pages import shop_with_history
    from tests.conftest import _csrf
    shop_with_history(db)
    login()
    home = client.get("/shops/corner").get_data(as_text=True)
    client.post("/language", data={"lang": "pl", "next": "/", "csrf_token": _csrf(home)})
    page = client.get("/shops/corner/report?from=2026-06-10&to=2026-06-01").get_data(as_text=True)
    assert "zakres kończy się przed początkiem" in page and "ends before it starts" not in page
    page = client.get("/shops/corner/report?from=wczoraj").get_data(as_text=True)
    assert "pierwszy dzień, &#39;wczoraj&#39;, nie jest datą" in page and "is not a date" not in page

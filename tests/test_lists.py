"""Lists that work (issue 17): customers with a total, sorting, case-insensitive search and a CSV of
the current filter; every product, searchable, with its learned cycle; messages and the report as CSV."""
import csv
import io
import re

import pytest

from app.timeutil import parse_now
from flows.refresh import refresh
from tests.builders import History, at, lapsed_shop


def _csv(response):
    assert response.status_code == 200
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")  # Excel reads the accents right
    return list(csv.reader(io.StringIO(text[1:])))


def _order_on_page(html):
    return re.findall(r'<tr data-customer="([^"]+)"', html)


def _total(html):
    return re.search(r'data-test="total">([^<]+)<', html).group(1)


@pytest.fixture
def shop(db):
    h = History(db, "corner")
    h.repeat("ABC-77", [0, 20, 40], total="30", email="ann@example.com", first_name="Ann")
    h.order("B2", 10, total="200", email="bob@example.com", first_name='=HYPERLINK("http://evil.example","x")')
    h.repeat("C3", [0, 100], total="10", email="zoe@example.com", first_name="Zoë")
    shop = h.write()
    refresh(db, shop, parse_now("2026-05-01", "UTC"))
    return shop


def test_customers_have_a_total_and_sort_by_every_column(client, login, shop):
    login()
    page = client.get("/shops/corner/customers").get_data(as_text=True)
    assert _total(page) == "Total: 3" and "Page 1 of 1" in page
    assert _order_on_page(page) == ["C3", "ABC-77", "B2"]  # by default the latest order first
    expected = {("clv", "desc"): ["B2", "ABC-77", "C3"], ("clv", "asc"): ["C3", "ABC-77", "B2"],
                ("orders", "desc"): ["ABC-77", "C3", "B2"], ("last_order", "asc"): ["B2", "ABC-77", "C3"],
                ("id", "asc"): ["ABC-77", "B2", "C3"], ("name", "asc"): ["B2", "ABC-77", "C3"],
                ("customer", "desc"): ["C3", "B2", "ABC-77"]}
    for (sort, direction), order in expected.items():
        page = client.get(f"/shops/corner/customers?sort={sort}&dir={direction}").get_data(as_text=True)
        assert _order_on_page(page) == order, (sort, direction)
    # The column headers link to the other direction of the current sort.
    page = client.get("/shops/corner/customers?sort=clv&dir=desc").get_data(as_text=True)
    assert re.search(r'href="[^"]*sort=clv&amp;dir=asc"\s+aria-sort="descending"', page)


def test_an_unknown_sort_is_the_default_never_sql(client, login, shop, db):
    login()
    for sort in ["clv; DROP TABLE customers", "c.id", "1"]:
        response = client.get("/shops/corner/customers", query_string={"sort": sort, "dir": "sideways"})
        assert response.status_code == 200
        assert _order_on_page(response.get_data(as_text=True)) == ["C3", "ABC-77", "B2"]
    assert db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 3


@pytest.mark.parametrize("q, found", [("abc-77", ["ABC-77"]), ("ANN@EXAMPLE", ["ABC-77"]), ("zoË", ["C3"]),
                                      ("ann", ["ABC-77"]), ("b2", ["B2"]), ("nobody", [])])
def test_search_ignores_case_in_ids_emails_and_names(client, login, shop, q, found):
    login()
    page = client.get("/shops/corner/customers", query_string={"q": q}).get_data(as_text=True)
    assert _order_on_page(page) == found
    if found:
        assert _total(page) == "Total: 1"


def test_the_customer_csv_is_the_current_filter_and_sort_and_defuses_formulas(client, login, shop):
    login()
    rows = _csv(client.get("/shops/corner/customers.csv?sort=clv&dir=desc"))
    header, body = rows[0], rows[1:]
    assert header[:6] == ["customer_id", "email", "first_name", "last_name", "orders", "lifetime_value"]
    assert [r[0] for r in body] == ["B2", "ABC-77", "C3"]
    bob = dict(zip(header, body[0]))
    assert bob["first_name"] == "'" + '=HYPERLINK("http://evil.example","x")'  # text, not a formula
    assert bob["lifetime_value"] == "200.00" and bob["orders"] == "1" and bob["currency"] == "EUR"
    ann = dict(zip(header, body[1]))
    assert ann["orders"] == "3" and ann["lifetime_value"] == "90.00" and ann["last_order"] == "2026-02-10"
    assert ann["status"] == "lapsed" and "lapsed" in ann["segments"].split()
    zoe = dict(zip(header, body[2]))
    assert zoe["first_name"] == "Zoë"
    only = _csv(client.get("/shops/corner/customers.csv?q=ZOE"))
    assert [r[0] for r in only[1:]] == ["C3"]
    lapsed = _csv(client.get("/shops/corner/customers.csv?segment=lapsed"))
    assert sorted(r[0] for r in lapsed[1:]) == ["ABC-77", "B2"]


def test_lists_and_downloads_are_the_shop_owners_only(client, login, make_user, shop, db):
    from tests.builders import make_shop
    other = make_shop(db, "other")
    make_user("olga", "olga password", shop_ids=[other["id"]])
    assert client.get("/shops/corner/customers.csv").status_code == 302  # to the login
    login("olga", "olga password")
    for url in ["/shops/corner/customers.csv", "/shops/corner/outbox.csv", "/shops/corner/report.csv"]:
        assert client.get(url).status_code == 404, url


@pytest.fixture
def catalogue(db):
    """60 products bought once each, and coffee beans bought by 25 customers every 30 days."""
    h = History(db, "beans")
    for i in range(60):
        h.order(f"once{i}", 5, total="10", lines=[{"product": f"p{i:02}", "title": f"Mug {i:02}"}])
    for i in range(25):
        h.repeat(f"r{i}", [0, 30, 60, 90], total="12",
                 lines=[{"product": "beans", "title": "Coffee Beans", "category": "Coffee", "qty": 1}])
    return h.write()


def test_every_product_is_listed_a_page_at_a_time_and_can_be_marked(client, login, db, catalogue):
    login()
    page = client.get("/shops/beans/products").get_data(as_text=True)
    assert _total(page) == "Total: 61" and "Page 1 of 2" in page
    assert len(re.findall(r'<tr data-product="', page)) == 50
    second = client.get("/shops/beans/products?page=2").get_data(as_text=True)
    assert len(re.findall(r'<tr data-product="', second)) == 11
    # A product nobody bought twice can be marked too, from the list.
    mug = db.execute("SELECT id FROM products WHERE external_id = 'p59'").fetchone()[0]
    assert f'action="/shops/beans/products/{mug}?page=2"' in second
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', second).group(1)
    response = client.post(f"/shops/beans/products/{mug}?page=2", data={"replenishable": "on", "days": "45",
                                                                         "csrf_token": token})
    assert response.status_code == 302 and "page=2" in response.headers["Location"]
    assert db.execute("SELECT replenishable, replenish_days FROM products WHERE id = ?", [mug]).fetchone() == (1, 45)
    first = client.get("/shops/beans/products").get_data(as_text=True)
    assert re.findall(r'<tr data-product="(\d+)"', first)[0] == str(mug)  # the marked ones come first


def test_products_are_searchable_and_show_the_learned_cycle(client, login, db, catalogue):
    login()
    page = client.get("/shops/beans/products?q=coffee BEANS").get_data(as_text=True)
    assert _total(page) == "Total: 1"
    row = re.search(r'<tr data-product="\d+".*?</tr>', page, re.S).group(0)
    assert "Coffee Beans" in row
    learned = re.search(r'data-test="learned">(.*?)</td>', row, re.S).group(1)
    assert "30.0 days" in learned and "repurchases: 75" in learned
    assert "data-candidate=" in page  # suggested: 75 repurchases on a steady cycle
    page = client.get("/shops/beans/products?q=MUG 07").get_data(as_text=True)
    assert _total(page) == "Total: 1" and "not bought again yet" in page
    assert "Mug 07" in page
    # Once marked, the page shows the cycle the reminder uses (from the last refresh).
    beans = db.execute("SELECT id FROM products WHERE external_id = 'beans'").fetchone()[0]
    db.execute("UPDATE products SET replenishable = 1 WHERE id = ?", [beans])
    refresh(db, catalogue, parse_now("2026-05-01", "UTC"))
    page = client.get("/shops/beans/products?q=beans").get_data(as_text=True)
    assert "the reminder uses 30.0 days" in page


def test_messages_and_the_report_download_as_csv(app, client, login, db, smtp):
    from flows.engine import tick
    shop = lapsed_shop(db)
    tick(app, db, shop, at(101))
    login()
    page = client.get("/shops/s/outbox").get_data(as_text=True)
    sent = db.execute("SELECT COUNT(*) FROM messages WHERE status = 'sent'").fetchone()[0]
    total = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert sent >= 1 and _total(page) == f"Total: {total}"
    rows = _csv(client.get("/shops/s/outbox.csv"))
    header, body = rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]
    assert header[:5] == ["id", "customer_id", "email", "flow", "step"] and len(body) == total
    first = next(r for r in body if r["customer_id"] == "A")
    assert first["email"] == "a@example.com" and first["flow"] == "winback" and first["step"] == "1"
    assert first["status"] == "sent" and first["discount_code"] and first["subject"]
    assert all(r["status"] == "withheld" for r in _csv(client.get("/shops/s/outbox.csv?status=withheld"))[1:])
    assert [r[1] for r in _csv(client.get("/shops/s/outbox.csv?q=A@EXAMPLE"))[1:]] == ["A"]
    assert client.get("/shops/s/outbox.csv?status=bogus").status_code == 400
    report = _csv(client.get("/shops/s/report.csv"))
    lines = [dict(zip(report[0], r)) for r in report[1:]]
    winback = [r for r in lines if r["flow"] == "winback"]
    assert winback[0]["step"] == "all" and winback[0]["sent"] == "1" and winback[0]["currency"] == "EUR"
    assert [r["step"] for r in winback[1:]] == ["1", "2", "3"] and winback[1]["sent"] == "1"
    assert {r["flow"] for r in lines} >= {"winback", "vip_winback", "replenish", "second_order", "sunset"}

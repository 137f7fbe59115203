"""The shop owner's first pages: shop overview, customer list with search, one customer."""
from datetime import date
from decimal import Decimal

import pytest

from tests.builders import History


def _order(h, oid, email, day, total, status="paid", refunded="0", first_name=None, cid=None):
    """Order #oid on 2025-05-<day>: two bags of coffee beans; consent not known."""
    return h.order(cid, date(2025, 5, day), total, status=status, refunded=refunded, oid=oid, name=f"#{oid}",
                   email=email, first_name=first_name, consent=None,
                   lines=[{"product": "p1", "title": "Coffee beans", "brand": "Roastery", "qty": 2,
                           "price": Decimal(total) / 2}])


@pytest.fixture
def shop(db):
    h = History(db, "corner", name="Corner Shop")
    _order(h, "1", "ann@example.com", 1, "40.00", first_name="Ann", cid="C1")
    _order(h, "2", "ann@example.com", 9, "10.00", cid="C1", refunded="2.50")
    _order(h, "3", "bob@example.com", 3, "99.00", status="cancelled", first_name="Bob")
    _order(h, "4", "zoe@example.com", 4, "15.00", first_name="<script>alert(1)</script>")
    return h.write()


def test_shop_overview_counts(client, login, shop):
    login()
    page = client.get("/shops/corner").get_data(as_text=True)
    assert 'data-test="customers">3<' in page
    assert 'data-test="orders">4<' in page
    assert "€62.50" in page  # 40 + 10 − 2.50 + 15; the cancelled order is not revenue


def test_single_shop_opens_directly(client, login, shop):
    login()
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/shops/corner")


def test_customer_list_and_search(client, login, shop):
    login()
    page = client.get("/shops/corner/customers").get_data(as_text=True)
    for email in ("ann@example.com", "bob@example.com", "zoe@example.com"):
        assert email in page
    page = client.get("/shops/corner/customers?q=ANN").get_data(as_text=True)
    assert "ann@example.com" in page and "bob@example.com" not in page
    page = client.get("/shops/corner/customers?q=Bob").get_data(as_text=True)  # by name
    assert "bob@example.com" in page and "ann@example.com" not in page
    page = client.get("/shops/corner/customers?q=C1").get_data(as_text=True)  # by id
    assert "ann@example.com" in page
    page = client.get("/shops/corner/customers?q=%25").get_data(as_text=True)  # a literal %
    assert "No customer matches" in page


def test_customer_page_shows_orders(client, login, shop):
    login()
    page = client.get("/shops/corner/customers/C1").get_data(as_text=True)
    assert "#1" in page and "#2" in page and "Coffee beans ×2" in page
    assert "€2.50" in page  # refunded part
    assert client.get("/shops/corner/customers/nobody").status_code == 404


def test_customer_data_is_escaped(client, login, shop):
    login()
    page = client.get("/shops/corner/customers").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_paging(client, login, db):
    h = History(db, "big")
    for i in range(120):
        _order(h, str(i), f"c{i}@example.com", 1 + i % 28, "5.00")
    h.write()
    login()
    first = client.get("/shops/big/customers").get_data(as_text=True)
    assert first.count("@example.com</a>") == 50 and "Next" in first
    third = client.get("/shops/big/customers?page=3").get_data(as_text=True)
    assert third.count("@example.com</a>") == 20 and "Next" not in third


def test_segments_on_the_shop_page_and_refresh_button(client, login, shop):
    import re
    login()
    page = client.get("/shops/corner").get_data(as_text=True)
    assert "Segments have not been computed yet" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/shops/corner/refresh").status_code == 400  # no CSRF token, no refresh
    response = client.post("/shops/corner/refresh", data={"csrf_token": token}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "Segments refreshed for 3 customers" in page
    assert 'data-segment="active">' in page


def test_segment_filter_and_why(client, login, shop, db):
    from app.timeutil import parse_now
    from flows.refresh import refresh
    refresh(db, shop, parse_now("2025-09-01", "UTC"))  # Ann: two orders, May 1 and May 9
    login()
    page = client.get("/shops/corner/customers?segment=lapsed").get_data(as_text=True)
    assert "ann@example.com" in page and "zoe@example.com" in page
    assert "bob@example.com" not in page  # a cancelled order only: no segment
    page = client.get("/shops/corner/customers/C1").get_data(as_text=True)
    assert "lapsed: 115 days since the last order, 1.5 × their usual 8 days is 12, and never before 30 days" in page

"""Forms that keep what was typed (issue 17): the users page and the WooCommerce connect page answer a
refusal with the form as it was filled in and the reason next to the field it is about."""
import re

from app.shops import create_shop
from tests.conftest import _csrf


def _error(html, key):
    found = re.search(rf'id="error-{key}">([^<]*)<', html)
    return found and found.group(1)


def test_a_refused_new_user_keeps_the_name_and_shops_and_says_why_next_to_the_field(client, login, db):
    for handle in ("alpha", "beta"):
        create_shop(db, handle, "import")
    login()
    page = client.get("/users").get_data(as_text=True)
    response = client.post("/users", data={"username": "fay", "password": "short", "shops": ["beta"],
                                           "csrf_token": _csrf(page)})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "at least 8 characters" in _error(html, "password")
    assert re.search(r'id="new-username"[^>]*value="fay"|value="fay"[^>]*id="new-username"', html)
    add_form = html[html.index('action="/users"'):]
    assert 'value="beta" checked' in add_form and 'value="alpha" checked' not in add_form
    taken = client.post("/users", data={"username": "ADMIN", "password": "long enough", "csrf_token": _csrf(page)})
    assert "already exists" in _error(taken.get_data(as_text=True), "username")
    unknown = client.post("/users", data={"username": "gus", "password": "long enough", "shops": ["gamma"],
                                          "csrf_token": _csrf(page)})
    assert "There is no shop" in _error(unknown.get_data(as_text=True), "shops")


def test_a_refused_password_reset_says_why_next_to_that_users_field(client, login):
    login()
    page = client.get("/users").get_data(as_text=True)
    response = client.post("/users/admin/password", data={"password": "short", "csrf_token": _csrf(page)})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "at least 8 characters" in _error(html, "reset-1")


def test_refused_woocommerce_keys_keep_the_store_address(client, login):
    login()
    page = client.get("/woocommerce/connect").get_data(as_text=True)
    response = client.post("/woocommerce/manual", data={"store_url": "https://shop.example", "consumer_key": "",
                                                        "consumer_secret": "", "csrf_token": _csrf(page)})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "all needed" in html
    assert html.count('value="https://shop.example"') == 2  # both forms keep the store's address

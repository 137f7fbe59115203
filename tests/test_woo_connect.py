"""The WooCommerce key flow as an attacker would try it: a pending connection is bound to the user
who started it and to one store, expires, is used once, and never hands another user's shop over."""
import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from app.shops import get_shop, load_credentials
from app.timeutil import utcnow
from connectors.woocommerce import connect as woo_connect
from connectors.woocommerce.connect import add_store, start_connection

from fake_woo import FakeStore
from conftest import ADMIN_PASSWORD

A_URL, B_URL = "https://shop-a.example", "https://shop-b.example"


@pytest.fixture
def shops(app, db, make_user):
    """Shop A (Alice's) and shop B (Bob's), both connected with known keys."""
    a = add_store(app, db, A_URL, "ck_alice", "cs_alice", offline=True)
    b = add_store(app, db, B_URL, "ck_bob", "cs_bob", offline=True)
    make_user("alice", "alice password", shop_ids=[a["id"]])
    make_user("bob", "bob password", shop_ids=[b["id"]])
    return a, b


@pytest.fixture
def store():
    fake = FakeStore().start()
    yield fake
    fake.stop()


def user_id(db, name):
    return db.execute("SELECT id FROM users WHERE username = ?", [name]).fetchone()[0]


def members(db, shop):
    return {r[0] for r in db.execute("SELECT u.username FROM user_shops s JOIN users u ON u.id = s.user_id"
                                     " WHERE s.shop_id = ?", [shop["id"]])}


def keys(app, db, handle):
    return load_credentials(app, get_shop(db, handle))["consumer_key"]


def callback(client, state, key="ck_evil", secret="cs_evil"):
    body = json.dumps({"key_id": 7, "user_id": state, "consumer_key": key, "consumer_secret": secret,
                       "key_permissions": "read_write"})
    return client.post("/woocommerce/callback", data=body,
                       headers={"Content-Type": "application/json;charset=UTF-8"})


def token(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def start(client, store_url):
    page = client.get(f"/woocommerce/connect?store_url={store_url}")
    return client.post("/woocommerce/connect", data={"csrf_token": token(page), "store_url": store_url})


def state_of(resp):
    return parse_qs(urlsplit(resp.headers["Location"]).query)["user_id"][0]


def pending_count(db):
    return db.execute("SELECT COUNT(*) FROM oauth_states WHERE platform = 'woocommerce'").fetchone()[0]


# ---- the takeover ------------------------------------------------------------------------------
def test_bob_cannot_start_a_connection_for_alices_shop(app, client, login, db, shops):
    a, _ = shops
    login("bob", "bob password")
    resp = start(client, A_URL)
    assert resp.status_code == 403 and "another user" in resp.get_data(as_text=True)
    assert pending_count(db) == 0
    assert keys(app, db, "shop-a.example") == "ck_alice" and members(db, a) == {"alice"}


def test_a_state_bob_holds_cannot_take_over_alices_shop(app, client, login, db, make_user):
    # Bob started a connection for A's store before Alice connected it; then Alice connected A.
    make_user("bob", "bob password")
    state = start_connection(db, A_URL, user_id(db, "bob"))
    a = add_store(app, db, A_URL, "ck_alice", "cs_alice", offline=True)
    make_user("alice", "alice password", shop_ids=[a["id"]])

    resp = callback(client, state)
    assert resp.status_code == 403
    assert keys(app, db, "shop-a.example") == "ck_alice" and members(db, a) == {"alice"}
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0


def test_bobs_manual_keys_for_alices_shop_are_refused(app, client, login, db, shops, store):
    # Even keys the store accepts: the shop is Alice's, and Bob is not an admin.
    a = add_store(app, db, store.url, store.key, store.secret, offline=True)
    db.execute("INSERT INTO user_shops (user_id, shop_id) VALUES (?, ?)", [user_id(db, "alice"), a["id"]])
    store.keys["ck_bob2"] = "cs_bob2"
    login("bob", "bob password")
    page = client.get("/woocommerce/connect")
    resp = client.post("/woocommerce/manual", data={"csrf_token": token(page), "store_url": store.url,
                                                    "consumer_key": "ck_bob2", "consumer_secret": "cs_bob2"})
    assert resp.status_code == 403
    assert keys(app, db, "127.0.0.1") == store.key and members(db, a) == {"alice"}
    assert store.requests == []  # refused before the store was asked anything


def test_an_admin_may_give_any_shop_new_keys(app, client, login, db, shops):
    a, _ = shops
    login("admin", ADMIN_PASSWORD)
    state = state_of(start(client, A_URL))
    assert callback(client, state, "ck_new", "cs_new").status_code == 200
    assert keys(app, db, "shop-a.example") == "ck_new"


# ---- the state itself --------------------------------------------------------------------------
def test_normal_flow_binds_the_new_shop_to_its_user(app, client, login, db, shops):
    login("bob", "bob password")
    assert client.get("/woocommerce/connect?store_url=https://new.example").status_code == 200
    assert pending_count(db) == 0  # a GET only shows the confirm form
    resp = start(client, "https://new.example")
    assert resp.status_code == 302
    state = state_of(resp)
    assert state not in json.dumps(list(db.query("SELECT * FROM oauth_states")))  # only a hash is kept
    assert callback(client, state, "ck_new", "cs_new").status_code == 200
    shop = get_shop(db, "new.example")
    assert keys(app, db, "new.example") == "ck_new" and members(db, shop) == {"bob"}
    back = client.get(f"/woocommerce/return?success=1&user_id={state}")
    assert back.status_code == 302 and back.headers["Location"].endswith("/shops/new.example")


def test_connecting_needs_the_csrf_token(client, login, db, shops):
    login("bob", "bob password")
    assert client.post("/woocommerce/connect", data={"store_url": "https://new.example"}).status_code == 400
    assert pending_count(db) == 0


def test_a_used_state_cannot_be_replayed(app, client, login, db, shops):
    login("bob", "bob password")
    state = state_of(start(client, B_URL))
    assert callback(client, state, "ck_bob_new", "cs_bob_new").status_code == 200
    replay = callback(client, state, "ck_evil", "cs_evil")
    assert 400 <= replay.status_code < 500
    assert keys(app, db, "shop-b.example") == "ck_bob_new"


def test_an_expired_state_changes_nothing(app, client, login, db, shops, monkeypatch):
    login("bob", "bob password")
    state = state_of(start(client, B_URL))
    later = utcnow() + timedelta(minutes=16)
    monkeypatch.setattr(woo_connect, "utcnow", lambda: later)
    assert callback(client, state).status_code == 400
    assert keys(app, db, "shop-b.example") == "ck_bob"


def test_a_state_only_ever_connects_its_own_store(app, client, login, db, shops):
    a, b = shops
    login("bob", "bob password")
    state = state_of(start(client, B_URL))
    selector = state.partition(".")[0]
    # a forged verifier on Bob's selector, or a made-up state: unknown, nothing changes
    assert callback(client, f"{selector}.forged").status_code == 404
    assert callback(client, selector).status_code == 404
    assert keys(app, db, "shop-b.example") == "ck_bob"
    # the real state connects B, the store it was started for, and nothing else
    assert callback(client, state, "ck_b2", "cs_b2").status_code == 200
    assert keys(app, db, "shop-b.example") == "ck_b2" and keys(app, db, "shop-a.example") == "ck_alice"
    assert members(db, a) == {"alice"} and members(db, b) == {"bob"}


def test_the_return_page_ignores_another_users_state(app, client, login, db, shops):
    bob_state = start_connection(db, "https://new.example", user_id(db, "bob"))
    assert callback(client, bob_state).status_code == 200
    login("alice", "alice password")
    back = client.get(f"/woocommerce/return?success=1&user_id={bob_state}")
    assert back.headers["Location"].endswith("/woocommerce/connect")
    assert pending_count(db) == 1  # Bob's connection is not consumed by Alice's visit


def test_hostile_callback_bodies_are_refused_not_500(client):
    for body in (b"[" * 20_000 + b"]" * 20_000, '{"user_id": "x"}'.encode("utf-16"), b"not json", b"[1]"):
        resp = client.post("/woocommerce/callback", data=body, content_type="application/json")
        assert resp.status_code == 400, body[:20]

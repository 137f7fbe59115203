"""Accounts (issue 12, point 7): users from the CLI and the UI, login throttling, sessions that end
server-side, and the security headers."""
import json
import re
from datetime import timedelta

import pytest

from app import create_app
from app.db import get_db
from app.migrations import init_db
from app.shops import create_shop
from app.timeutil import parse_now
from tests.conftest import ADMIN_PASSWORD, CHEAP_HASH

T0 = parse_now("2026-06-01T12:00:00Z")


def make_app(tmp_path, **config):
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"),
                      "DATABASE": str(tmp_path / "winback.db"), "ADMIN_PASSWORD": ADMIN_PASSWORD,
                      "PASSWORD_HASH_METHOD": CHEAP_HASH, **config})
    with app.app_context():
        init_db(get_db())
        from app.users import ensure_admin
        ensure_admin(get_db(), ADMIN_PASSWORD, method=CHEAP_HASH)
    return app


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def shops(db):
    return {h: create_shop(db, h, "import", name=h.title()) for h in ("alpha", "beta")}


@pytest.fixture
def clock(monkeypatch):
    """The throttle's clock, moved by hand: `clock.now += timedelta(...)`."""
    class Clock:
        now = T0
    monkeypatch.setattr("app.login_throttle.utcnow", lambda: Clock.now)
    return Clock


def token(html):
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def log_in(client, username, password, address="127.0.0.1"):
    page = client.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token(page)},
                       environ_base={"REMOTE_ADDR": address})


def log_out(client):
    page = client.get("/account/password").get_data(as_text=True)
    return client.post("/logout", data={"csrf_token": token(page)})


def logged_in(client) -> bool:
    return client.get("/").status_code != 302


def add_user(runner, *args):
    return runner.invoke(args=["user", "add", *args])


# ---- login throttling ------------------------------------------------------------------------


def test_ten_failures_lock_the_user_even_with_the_right_password(app, client, runner, clock):
    assert add_user(runner, "bob", "--password", "bob password 1").exit_code == 0
    for i in range(10):
        assert log_in(client, "bob", f"wrong {i}", "10.0.0.1").status_code == 401
        clock.now += timedelta(seconds=30)
    refused = log_in(client, "bob", "bob password 1", "10.0.0.1")
    assert refused.status_code == 429 and "Too many failed logins" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) > 0
    assert not logged_in(client)
    # The user name is locked from any address; the address is locked for any user name.
    assert log_in(client, "bob", "bob password 1", "10.0.0.9").status_code == 429
    assert log_in(client, "admin", ADMIN_PASSWORD, "10.0.0.1").status_code == 429
    # Another user from another address is not affected.
    assert log_in(client, "admin", ADMIN_PASSWORD, "10.0.0.2").status_code == 302
    log_out(client)
    # Refused attempts do not extend the lock: 15 minutes after the tenth failure it is over.
    clock.now += timedelta(minutes=14)
    assert log_in(client, "bob", "bob password 1", "10.0.0.1").status_code == 429
    clock.now += timedelta(minutes=1, seconds=1)
    assert log_in(client, "bob", "bob password 1", "10.0.0.1").status_code == 302
    assert logged_in(client)


def test_failures_spread_over_more_than_15_minutes_do_not_lock(app, client, runner, clock):
    add_user(runner, "bob", "--password", "bob password 1")
    for i in range(12):
        assert log_in(client, "bob", f"wrong {i}", "10.0.0.1").status_code == 401
        clock.now += timedelta(minutes=2)
    assert log_in(client, "bob", "bob password 1", "10.0.0.1").status_code == 302


def test_the_lock_holds_across_processes(tmp_path, clock):
    """gunicorn's workers are separate apps on one database: the counts are in it."""
    one, two = make_app(tmp_path), create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"),
                                               "DATABASE": str(tmp_path / "winback.db")})
    first, second = one.test_client(), two.test_client()
    for i in range(5):
        assert log_in(first, "admin", f"wrong {i}").status_code == 401
        assert log_in(second, "admin", f"wrong {i}").status_code == 401
    assert log_in(second, "admin", ADMIN_PASSWORD).status_code == 429
    assert log_in(first, "admin", ADMIN_PASSWORD).status_code == 429


def test_a_right_password_forgets_the_users_failures(app, client, clock):
    for i in range(9):
        log_in(client, "admin", f"wrong {i}", f"10.0.1.{i}")
    assert log_in(client, "admin", ADMIN_PASSWORD, "10.0.2.1").status_code == 302
    log_out(client)
    assert log_in(client, "admin", "wrong again", "10.0.2.2").status_code == 401
    assert log_in(client, "admin", ADMIN_PASSWORD, "10.0.2.3").status_code == 302


# ---- sessions --------------------------------------------------------------------------------


def _session_cookie(response):
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, "no session cookie was set"
    return cookies[-1]


def test_cookie_flags_follow_the_app_url(tmp_path):
    secure = make_app(tmp_path / "s", APP_URL="https://winback.example.com").test_client()
    cookie = _session_cookie(log_in(secure, "admin", ADMIN_PASSWORD))
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "SameSite=Lax" in cookie
    plain = make_app(tmp_path / "p", APP_URL="http://127.0.0.1:5000").test_client()
    cookie = _session_cookie(log_in(plain, "admin", ADMIN_PASSWORD))
    assert "; Secure" not in cookie and "; HttpOnly" in cookie and "SameSite=Lax" in cookie


def _copy_session(source, app):
    thief = app.test_client()
    thief.set_cookie("session", source.get_cookie("session").value)
    return thief


def test_logout_ends_a_copied_cookie_too(app, client):
    log_in(client, "admin", ADMIN_PASSWORD)
    thief = _copy_session(client, app)
    assert logged_in(thief)
    log_out(client)
    assert not logged_in(client)
    assert not logged_in(thief)


def test_old_style_and_forged_session_ids_are_refused(app, client):
    with client.session_transaction() as session:
        session["user_id"] = 1  # the cookie of the version before
    assert not logged_in(client)
    with client.session_transaction() as session:
        session["_user_id"] = "1"  # no session token
    assert not logged_in(client)
    with client.session_transaction() as session:
        session["_user_id"] = "1:not-the-token"
    assert not logged_in(client)


def test_changing_ones_password_needs_the_current_one_and_ends_other_sessions(app, client, runner):
    add_user(runner, "bob", "--password", "bob password 1")
    log_in(client, "bob", "bob password 1")
    other = app.test_client()
    log_in(other, "bob", "bob password 1")
    form = client.get("/account/password").get_data(as_text=True)
    wrong = client.post("/account/password", data={"current": "guess", "new": "bob password 2",
                                                   "confirm": "bob password 2", "csrf_token": token(form)})
    assert wrong.status_code == 422 and "not your current password" in wrong.get_data(as_text=True)
    assert logged_in(other)
    short = client.post("/account/password", data={"current": "bob password 1", "new": "short",
                                                   "confirm": "short", "csrf_token": token(form)})
    assert short.status_code == 422 and "at least 8 characters" in short.get_data(as_text=True)
    done = client.post("/account/password", data={"current": "bob password 1", "new": "bob password 2",
                                                  "confirm": "bob password 2", "csrf_token": token(form)},
                       follow_redirects=True)
    assert "Your password is changed" in done.get_data(as_text=True)
    assert logged_in(client)  # this session goes on
    assert not logged_in(other)  # the other one ended
    fresh = app.test_client()
    assert log_in(fresh, "bob", "bob password 1").status_code == 401
    assert log_in(fresh, "bob", "bob password 2").status_code == 302


# ---- headers ---------------------------------------------------------------------------------


def test_security_headers_on_every_page(app, client):
    pages = [client.get("/login"), client.get("/healthz"), client.get("/nope")]
    log_in(client, "admin", ADMIN_PASSWORD)
    pages += [client.get("/"), client.get("/users"), client.get("/account/password"),
              client.get("/static/winback.css")]
    for response in pages:
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["X-Frame-Options"] == "DENY"


def test_pages_have_no_inline_scripts_or_styles_that_the_policy_would_block(app, client, db):
    from connectors.demo import seed_demo
    seed_demo(db, customers=30, seed=1, now=T0)
    log_in(client, "admin", ADMIN_PASSWORD)
    for url in ["/", "/shops/demo", "/shops/demo/flows/winback", "/shops/demo/settings", "/users"]:
        html = client.get(url).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), url
        assert "<style" not in html and not re.search(r"\sstyle=", html) and not re.search(r"\son[a-z]+=", html), url


def test_the_email_preview_may_be_framed_by_the_app_only(app, client, db):
    from connectors.demo import seed_demo
    seed_demo(db, customers=30, seed=1, now=T0)
    log_in(client, "admin", ADMIN_PASSWORD)
    response = client.get("/shops/demo/flows/winback/0/preview")
    csp = response.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox") and "frame-ancestors 'self'" in csp
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


# ---- the users CLI ---------------------------------------------------------------------------


def test_user_add_prints_a_generated_password_once_and_it_works(app, client, runner, shops):
    result = add_user(runner, "carol", "--shop", "alpha")
    assert result.exit_code == 0, result.output
    password = re.search(r"Password: (\S+) \(shown once", result.output).group(1)
    assert len(password) >= 12
    assert log_in(client, "carol", password).status_code == 302
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "Alpha" in page
    assert client.get("/shops/beta").status_code == 404
    listed = runner.invoke(args=["user", "list"]).output
    assert password not in listed


def test_user_list_json_and_text(app, runner, shops):
    add_user(runner, "carol", "--password", "carol password", "--shop", "alpha", "--shop", "beta")
    add_user(runner, "dave", "--password", "dave password")
    doc = json.loads(runner.invoke(args=["user", "list", "--json"]).output)
    assert doc == [{"name": "admin", "admin": True, "shops": []},
                   {"name": "carol", "admin": False, "shops": ["alpha", "beta"]},
                   {"name": "dave", "admin": False, "shops": []}]
    text = runner.invoke(args=["user", "list"]).output
    assert re.search(r"carol\s+-\s+alpha, beta", text) and re.search(r"admin\s+admin", text)


@pytest.mark.parametrize("args, message", [
    (["user", "add", "carol", "--password", "carol password", "--shop", "nope"], "no shop 'nope'"),
    (["user", "add", "admin", "--password", "another password"], "user 'admin' already exists"),
    (["user", "add", "ADMIN", "--password", "another password"], "already exists"),
    (["user", "add", "carol", "--password", "short"], "at least 8 characters"),
    (["user", "add", "bad name!", "--password", "long enough"], "must be 1 to 100 letters"),
    (["user", "passwd", "nobody", "--password", "long enough"], "no user 'nobody'"),
    (["user", "remove", "nobody"], "no user 'nobody'"),
    (["user", "remove", "admin"], "only admin"),
])
def test_user_command_errors_are_one_clear_line(app, runner, db, shops, args, message):
    before = db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == before


def test_user_passwd_and_remove_end_sessions(app, client, runner):
    add_user(runner, "bob", "--password", "bob password 1")
    log_in(client, "bob", "bob password 1")
    result = runner.invoke(args=["user", "passwd", "bob"])
    assert result.exit_code == 0 and "logged out" in result.output
    new = re.search(r"Password: (\S+)", result.output).group(1)
    assert not logged_in(client)
    assert log_in(client, "bob", "bob password 1").status_code == 401
    assert log_in(client, "bob", new).status_code == 302
    assert runner.invoke(args=["user", "passwd", "bob", "--password", "bob password 3"]).exit_code == 0
    assert log_in(client, "bob", "bob password 3").status_code == 302
    assert runner.invoke(args=["user", "remove", "bob"]).exit_code == 0
    assert not logged_in(client)
    assert log_in(client, "bob", "bob password 3").status_code == 401


def test_a_second_admin_makes_the_first_removable(app, runner):
    assert add_user(runner, "root2", "--password", "root2 password", "--admin").exit_code == 0
    assert runner.invoke(args=["user", "remove", "admin"]).exit_code == 0
    assert json.loads(runner.invoke(args=["user", "list", "--json"]).output) == \
        [{"name": "root2", "admin": True, "shops": []}]


# ---- the users page --------------------------------------------------------------------------


def test_admin_manages_users_in_the_ui(app, client, shops):
    log_in(client, "admin", ADMIN_PASSWORD)
    page = client.get("/users").get_data(as_text=True)
    assert 'href="/users"' in page
    # Add with a generated password, shown once in the answer.
    added = client.post("/users", data={"username": "erin", "password": "", "shops": ["alpha"],
                                        "csrf_token": token(page)})
    assert added.status_code == 201
    password = re.search(r"<code>([^<]+)</code>", added.get_data(as_text=True)).group(1)
    assert password not in client.get("/users").get_data(as_text=True)
    erin = app.test_client()
    assert log_in(erin, "erin", password).status_code == 302
    assert erin.get("/shops/alpha").status_code == 200 and erin.get("/shops/beta").status_code == 404
    # Duplicate and unknown shop: refused with a clear message, nothing changes.
    again = client.post("/users", data={"username": "Erin", "password": "erin password", "csrf_token": token(page)})
    assert again.status_code == 422 and "already exists" in again.get_data(as_text=True)
    # Give beta, take alpha.
    moved = client.post("/users/erin/shops", data={"shops": ["beta"], "csrf_token": token(page)},
                        follow_redirects=True)
    assert moved.status_code == 200
    assert erin.get("/shops/alpha").status_code == 404 and erin.get("/shops/beta").status_code == 200
    # Reset the password: erin's session ends, the new password works.
    reset = client.post("/users/erin/password", data={"password": "erin password 2", "csrf_token": token(page)})
    assert reset.status_code == 302
    assert not logged_in(erin)
    assert log_in(erin, "erin", "erin password 2").status_code == 302
    # Remove: erin's session ends and she cannot log in.
    assert client.post("/users/erin/remove", data={"csrf_token": token(page)}).status_code == 302
    assert not logged_in(erin)
    assert log_in(erin, "erin", "erin password 2").status_code == 401
    assert 'id="user-erin"' not in client.get("/users").get_data(as_text=True)


def test_admin_ui_refuses_clearly(app, client, shops):
    log_in(client, "admin", ADMIN_PASSWORD)
    page = client.get("/users").get_data(as_text=True)
    short = client.post("/users", data={"username": "fay", "password": "short", "csrf_token": token(page)})
    assert short.status_code == 422 and "at least 8 characters" in short.get_data(as_text=True)
    unknown = client.post("/users", data={"username": "fay", "password": "fay password", "shops": ["gamma"],
                                          "csrf_token": token(page)})
    assert unknown.status_code == 422 and "There is no shop" in unknown.get_data(as_text=True)
    assert 'id="user-fay"' not in client.get("/users").get_data(as_text=True)
    myself = client.post("/users/admin/remove", data={"csrf_token": token(page)})
    assert myself.status_code == 422 and logged_in(client)
    assert client.post("/users", data={"username": "fay", "password": "fay password"}).status_code == 400


def test_non_admins_never_see_the_users_page(app, client, runner, shops):
    add_user(runner, "bob", "--password", "bob password 1", "--shop", "alpha")
    log_in(client, "bob", "bob password 1")
    page = client.get("/shops/alpha").get_data(as_text=True)
    assert 'href="/users"' not in page and 'href="/account/password"' in page
    assert client.get("/users").status_code == 404
    csrf = token(page)
    for url, data in [("/users", {"username": "mallory", "password": "mallory password", "admin": "y"}),
                      ("/users/bob/shops", {"shops": ["beta"]}),
                      ("/users/admin/password", {"password": "taken over!"}),
                      ("/users/admin/remove", {})]:
        assert client.post(url, data={**data, "csrf_token": csrf}).status_code == 404, url
    assert client.get("/shops/beta").status_code == 404
    assert log_in(app.test_client(), "admin", ADMIN_PASSWORD).status_code == 302
    assert log_in(app.test_client(), "mallory", "mallory password").status_code == 401
    # Anonymous visitors are sent to the login page.
    assert app.test_client().get("/users").status_code == 302

"""Fixtures in the Flask tutorial's style: an app on a temporary database, its client and CLI runner."""
import os

import pytest

from app import create_app
from app.db import connect
from app.migrations import init_db
from app.users import create_user

ADMIN_PASSWORD = "correct horse battery"
# Tests hash passwords with one round of PBKDF2: werkzeug's scrypt costs ~0.1 s a hash, and nearly
# every test makes an admin. Production keeps scrypt (tests/test_auth.py checks that).
CHEAP_HASH = "pbkdf2:sha256:1"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # A developer's own WINBACK_* settings must not leak into the tests.
    for name in list(os.environ):
        if name.startswith("WINBACK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def app(tmp_path):
    app = create_app({
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE": str(tmp_path / "winback.db"),
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PASSWORD_HASH_METHOD": CHEAP_HASH,
    })
    with app.app_context():
        from app.db import get_db
        init_db(get_db())
        from app.users import ensure_admin
        ensure_admin(get_db(), ADMIN_PASSWORD, method=CHEAP_HASH)
    yield app


@pytest.fixture(scope="session")
def smtp_server():
    """One real SMTP server on loopback for the whole run (aiosmtpd)."""
    from tests.smtp_server import SmtpServer
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The browser tests' live server with the demo shop: seeded once per run (it takes seconds)."""
    from test_browser import live_demo_server
    yield from live_demo_server(tmp_path_factory)


@pytest.fixture(scope="session")
def browser():
    """One chromium for all the browser tests (each test opens its own context)."""
    from test_browser import chromium_browser
    yield from chromium_browser()


@pytest.fixture
def smtp(app, smtp_server):
    """Email delivery configured for `app`, through the loopback SMTP server (emptied first)."""
    smtp_server.reset()
    app.config["SMTP_URL"] = smtp_server.url
    yield smtp_server


@pytest.fixture
def db(app):
    """A connection of its own to the app's database."""
    handle = connect(app.config["DATABASE"])
    yield handle
    handle.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def login(client):
    """Log the test client in: login() as admin, login(user, password) as another."""
    def do(username="admin", password=ADMIN_PASSWORD):
        page = client.get("/login")
        token = _csrf(page.get_data(as_text=True))
        return client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    return do


def _csrf(html):
    import re
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def make_user(db):
    def make(username, password, shop_ids=()):
        return create_user(db, username, password, shop_ids=shop_ids, method=CHEAP_HASH)
    return make


@pytest.fixture
def live(app):
    """The app on a real loopback port (threaded, like a production server), so that a fake store
    can call it back; yields its URL, which is also the app's APP_URL."""
    import threading

    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    app.config["APP_URL"] = f"http://127.0.0.1:{server.server_port}"
    yield app.config["APP_URL"]
    server.shutdown()


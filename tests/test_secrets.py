"""Secrets at rest (issue 12, point 8): the shop's SMTP URL encrypted and never shown back, platform
credentials and webhook secrets encrypted, a bounded "send me a test", and a database file only its
owner can read."""
import json
import os
import re
import socket
import stat
import threading
import time

import pytest

from app.mailer import smtp_url_for
from app.settings import get_settings
from app.shops import get_shop
from app.timeutil import parse_now
from tests.smtp_server import SmtpServer

NOW = parse_now("2026-06-01T12:00:00Z")
PASSWORD = "Sm7pPassw0rd-only-here"
URL = f"smtps://mailer:{PASSWORD}@mail.example.com:465"


@pytest.fixture
def demo(app, db):
    from connectors.demo import seed_demo
    seed_demo(db, customers=40, seed=1, now=NOW)
    return get_shop(db, "demo")


def token(html):
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


def rules_form(client):
    """The rules form as the page fills it in, ready to post back."""
    page = client.get("/shops/demo/settings").get_data(as_text=True)
    values = dict(re.findall(r'<input[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"', page))
    values["postal_address"] = "Main street 1"
    values.pop("smtp_url_clear", None)
    values.pop("lang", None)
    values["smtp_url"] = ""
    values["csrf_token"] = token(page)
    return values


def stored_bytes(app):
    path = app.config["DATABASE"]
    return b"".join(open(p, "rb").read() for p in (path, path + "-wal") if os.path.exists(p))


def test_smtp_url_is_stored_encrypted_and_never_shown_back(app, client, login, db, demo):
    login()
    saved = client.post("/shops/demo/settings", data={**rules_form(client), "smtp_url": URL}, follow_redirects=True)
    assert saved.status_code == 200 and "Saved." in saved.get_data(as_text=True)
    row = db.execute("SELECT value FROM shop_settings WHERE key = 'smtp_url'").fetchone()[0]
    assert PASSWORD not in row and "mail.example.com" not in row
    assert PASSWORD.encode() not in stored_bytes(app)
    page = client.get("/shops/demo/settings").get_data(as_text=True)
    assert PASSWORD not in page
    assert "mailer:••••@mail.example.com:465" in page  # masked, so the owner knows what is saved
    assert re.search(r'name="smtp_url"[^>]*type="password"|type="password"[^>]*name="smtp_url"', page)
    assert not re.search(r'name="smtp_url"[^>]*value="[^"]', page)
    # The mailer reads it as before.
    assert smtp_url_for(app, get_settings(db, demo["id"])) == URL


def test_empty_smtp_field_keeps_the_saved_server_and_the_box_clears_it(app, client, login, db, demo):
    app.config["SMTP_URL"] = "smtp://installation.example:25"
    login()
    client.post("/shops/demo/settings", data={**rules_form(client), "smtp_url": URL})
    client.post("/shops/demo/settings", data={**rules_form(client), "window_start": "8"})
    assert smtp_url_for(app, get_settings(db, demo["id"])) == URL
    assert get_settings(db, demo["id"])["window_start"] == 8
    client.post("/shops/demo/settings", data={**rules_form(client), "smtp_url_clear": "y"})
    assert smtp_url_for(app, get_settings(db, demo["id"])) == "smtp://installation.example:25"
    assert "mailer:" not in client.get("/shops/demo/settings").get_data(as_text=True)


def test_a_refused_form_does_not_echo_the_typed_password(app, client, login, db, demo):
    login()
    refused = client.post("/shops/demo/settings", data={**rules_form(client), "smtp_url": URL, "lapse_factor": "99"})
    assert refused.status_code == 422
    assert PASSWORD not in refused.get_data(as_text=True)
    assert db.execute("SELECT COUNT(*) FROM shop_settings WHERE key = 'smtp_url'").fetchone()[0] == 0


def test_a_plain_text_smtp_url_from_before_is_encrypted_on_upgrade(app, db, demo):
    from app.settings import encrypt_plain_secrets
    db.execute("INSERT INTO shop_settings (shop_id, key, value, updated_at) VALUES (?, 'smtp_url', ?, '2026-01-01T00:00:00Z')",
               [demo["id"], json.dumps(URL)])
    assert smtp_url_for(app, get_settings(db, demo["id"])) == URL  # still read meanwhile
    with app.app_context():
        encrypt_plain_secrets(app, db)
    assert PASSWORD not in db.execute("SELECT value FROM shop_settings WHERE key = 'smtp_url'").fetchone()[0]
    assert smtp_url_for(app, get_settings(db, demo["id"])) == URL


def test_settings_never_print_the_secret(app, db, demo):
    from app.settings import save_setting
    save_setting(db, demo["id"], "smtp_url", URL, app=app)
    assert PASSWORD not in repr(get_settings(db, demo["id"])) and PASSWORD not in str(get_settings(db, demo["id"]))


def test_platform_credentials_and_webhook_secrets_are_encrypted(app, db):
    from connectors.shopify.install import save_shop
    from connectors.woocommerce.connect import add_store
    from app.shops import load_credentials
    woo = add_store(app, db, "https://store.example", "ck_" + "k" * 40, "cs_" + "s" * 40,
                    webhook_secret="whsec-never-plain", offline=True)
    save_shop(app, db, "bean.myshopify.com", {"grant": "token", "access_token": "shpat_never_plain_1234"}, verify=False)
    data = stored_bytes(app)
    for secret in (b"k" * 40, b"s" * 40, b"whsec-never-plain", b"shpat_never_plain_1234"):
        assert secret not in data
    assert load_credentials(app, get_shop(db, woo["handle"]))["webhook_secret"] == "whsec-never-plain"


# ---- send me a test ----------------------------------------------------------------------------


class Listener:
    """A TCP server on loopback that counts connections and answers with `behaviour`."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self.behaviour, args=(conn, self.stop), daemon=True).start()

    def close(self):
        self.stop.set()
        self.sock.close()


def silent(conn, stop):
    stop.wait(30)
    conn.close()


def drip(conn, stop):
    """An SMTP greeting that never ends: a continuation line every 0.2 s."""
    while not stop.is_set():
        try:
            conn.sendall(b"220-still greeting\r\n")
        except OSError:
            return
        time.sleep(0.2)


def not_smtp(conn, stop):
    conn.sendall(b"SSH-2.0-OpenSSH_9.6 secret-banner\r\n")
    stop.wait(5)
    conn.close()


def _send_test(client, login, extra=None):
    login()
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    return client.post("/shops/demo/flows/winback/0/test",
                       data={"email": "owner@example.com", "csrf_token": token(page), **(extra or {})},
                       follow_redirects=True).get_data(as_text=True)


@pytest.mark.parametrize("behaviour, said", [(silent, "did not answer within 1 seconds"),
                                             (drip, "did not answer within 1 seconds"),
                                             (not_smtp, "no SMTP server answered at 127.0.0.1:")])
def test_send_me_a_test_gives_up_soon_and_once(app, client, login, db, demo, monkeypatch, behaviour, said):
    from app.settings import save_setting
    monkeypatch.setattr("app.web.quick_send.TIMEOUT", 1)
    server = Listener(behaviour)
    try:
        save_setting(db, demo["id"], "smtp_url", f"smtp://127.0.0.1:{server.port}", app=app)
        page = _send_test(client, login)
    finally:
        server.close()
    assert "The test email could not be sent" in page and said in page
    assert "secret-banner" not in page and "OpenSSH" not in page
    assert server.connections == 1  # no retries that would hold the worker longer


def test_send_me_a_test_uses_only_the_configured_server(app, client, login, db, demo):
    from app.settings import save_setting
    probe = Listener(silent)
    try:
        with SmtpServer() as smtp:
            save_setting(db, demo["id"], "smtp_url", smtp.url, app=app)
            page = _send_test(client, login, {"smtp_url": f"smtp://127.0.0.1:{probe.port}", "host": "127.0.0.1",
                                              "port": str(probe.port)})
            assert "A test email was sent to owner@example.com" in page
            assert len(smtp.messages) == 1
    finally:
        probe.close()
    assert probe.connections == 0


# ---- the database file ---------------------------------------------------------------------------


def test_database_and_wal_are_readable_by_the_owner_only(app, db, demo):
    path = app.config["DATABASE"]
    assert os.path.exists(path + "-wal")
    for name in (path, path + "-wal", path + "-shm"):
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name


def test_an_existing_readable_database_is_tightened(tmp_path):
    from app.db import connect
    path = tmp_path / "old.db"
    connect(path).close()
    os.chmod(path, 0o644)
    connect(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_an_smtp_url_saved_under_another_key_is_a_warning_not_an_error(app, client, login, db, demo):
    from cryptography.fernet import Fernet
    from app.settings import save_setting
    other = type("OtherApp", (), {"config": {"ENCRYPTION_KEY": Fernet.generate_key().decode()}})()
    save_setting(db, demo["id"], "smtp_url", URL, app=other)
    login()
    dashboard = client.get("/shops/demo")
    assert dashboard.status_code == 200 and 'data-warning="no_smtp"' in dashboard.get_data(as_text=True)
    rules = client.get("/shops/demo/settings").get_data(as_text=True)
    assert "key cannot read it" in rules and PASSWORD not in rules
    page = _send_test(client, login)
    assert "cannot be read with this installation" in page

"""Login, logout, the admin user and who sees which shop."""
from app.users import ensure_admin
from app.shops import create_shop
from tests.conftest import ADMIN_PASSWORD


def test_pages_need_a_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
    assert client.get("/healthz").get_json() == {"ok": True}  # health needs none


def test_login_with_the_right_password(client, login):
    response = login()
    assert response.status_code == 302
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "Log out admin" in page


def test_wrong_password_is_refused(client, login):
    response = login(password="nope")
    assert response.status_code == 401
    assert "Wrong user or password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still not logged in


def test_unknown_user_is_refused_the_same_way(client, login):
    response = login(username="mallory", password="x")
    assert response.status_code == 401
    assert "Wrong user or password" in response.get_data(as_text=True)


def test_login_form_needs_csrf_token(client):
    response = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code in (400, 401)
    assert client.get("/").status_code == 302


def test_logout(client, login):
    login()
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    import re
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/logout", data={"csrf_token": token})
    assert client.get("/").status_code == 302


def test_login_redirects_back_but_never_off_site(client):
    page = client.get("/login?next=//evil.example/x").get_data(as_text=True)
    import re
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login?next=//evil.example/x",
                           data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_passwords_are_hashed(db):
    stored = db.execute("SELECT password_hash FROM users WHERE username = 'admin'").fetchone()[0]
    assert ADMIN_PASSWORD not in stored and stored.startswith(("scrypt:", "pbkdf2:"))


def test_admin_is_created_once_with_a_random_password(tmp_path):
    from app.db import connect
    from app.migrations import init_db
    db = connect(tmp_path / "a.db")
    init_db(db)
    first = ensure_admin(db)
    assert first and len(first) >= 12
    assert ensure_admin(db) is None  # never again, never printed again


def test_init_db_prints_the_admin_login_once(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from app.__main__ import main
    monkeypatch.setenv("WINBACK_INSTANCE_PATH", str(tmp_path / "inst"))
    runner = CliRunner()
    first = runner.invoke(main, ["init-db"])
    assert first.exit_code == 0, first.output
    assert "Admin login: user 'admin', password '" in first.output
    second = runner.invoke(main, ["init-db"])
    assert second.exit_code == 0 and "Admin login" not in second.output


def test_admin_password_from_environment(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from app.__main__ import main
    monkeypatch.setenv("WINBACK_INSTANCE_PATH", str(tmp_path / "inst"))
    monkeypatch.setenv("WINBACK_ADMIN_PASSWORD", "123456")  # digits: must stay a string
    result = CliRunner().invoke(main, ["init-db"])
    assert "from WINBACK_ADMIN_PASSWORD" in result.output and "123456" not in result.output
    from app import create_app
    app = create_app()
    client = app.test_client()
    import re
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"username": "admin", "password": "123456",
                                       "csrf_token": token}).status_code == 302


def test_a_user_sees_only_their_shops(client, db, login, make_user):
    mine = create_shop(db, "mine", "import", name="My Shop")
    create_shop(db, "theirs", "import", name="Their Shop")
    make_user("owner", "owner-password-1", shop_ids=[mine["id"]])
    login("owner", "owner-password-1")
    assert client.get("/shops/mine").status_code == 200
    assert client.get("/shops/theirs").status_code == 404
    assert client.get("/shops/theirs/customers").status_code == 404
    assert client.get("/shops/nonexistent").status_code == 404
    index = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "Their Shop" not in index


def test_production_hashes_passwords_with_scrypt(tmp_path, monkeypatch):
    """Only the tests choose a cheap hash: an app configured as in production stores scrypt hashes."""
    from click.testing import CliRunner
    from app.__main__ import main
    from app.db import connect
    monkeypatch.setenv("WINBACK_INSTANCE_PATH", str(tmp_path / "inst"))
    monkeypatch.setenv("WINBACK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    assert CliRunner().invoke(main, ["init-db"]).exit_code == 0
    db = connect(tmp_path / "inst" / "winback.db")
    stored = db.execute("SELECT password_hash FROM users WHERE username = 'admin'").fetchone()[0]
    assert stored.startswith("scrypt:") and ADMIN_PASSWORD not in stored
    db.close()

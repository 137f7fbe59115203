"""Installation secrets and encrypted platform credentials."""
import os

import pytest

from app import create_app
from app.keys import decrypt, encrypt
from app.shops import create_shop, load_credentials, store_credentials


def test_keys_are_generated_once_into_the_instance_folder(tmp_path):
    inst = tmp_path / "inst"
    first = create_app({"INSTANCE_PATH": str(inst)})
    second = create_app({"INSTANCE_PATH": str(inst)})
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["ENCRYPTION_KEY"] == second.config["ENCRYPTION_KEY"]
    assert oct(os.stat(inst / "secret_key").st_mode & 0o777) == "0o600"
    assert oct(os.stat(inst / "encryption_key").st_mode & 0o777) == "0o600"


def test_settings_come_from_winback_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WINBACK_APP_URL", "https://winback.example.com/")
    monkeypatch.setenv("WINBACK_DATABASE", str(tmp_path / "elsewhere.db"))
    monkeypatch.setenv("WINBACK_MAIL_FROM", "Shop <shop@example.com>")
    app = create_app({"INSTANCE_PATH": str(tmp_path / "inst")})
    assert app.config["APP_URL"] == "https://winback.example.com"
    assert app.config["DATABASE"] == str(tmp_path / "elsewhere.db")
    assert app.config["MAIL_FROM"] == "Shop <shop@example.com>"
    assert app.config["SMTP_URL"] is None


def test_credentials_are_encrypted_at_rest(app, db):
    shop = create_shop(db, "s.myshopify.com", "shopify")
    store_credentials(app, db, shop["id"], {"access_token": "shpat_secret_123"})
    raw = db.execute("SELECT credentials FROM shops WHERE id = ?", [shop["id"]]).fetchone()[0]
    assert "shpat_secret_123" not in raw
    shop = db.execute("SELECT * FROM shops WHERE id = ?", [shop["id"]]).fetchone()
    row = dict(zip([d[0] for d in db.execute("SELECT * FROM shops").description], shop))
    assert load_credentials(app, row) == {"access_token": "shpat_secret_123"}


def test_a_wrong_key_cannot_decrypt(tmp_path):
    one = create_app({"INSTANCE_PATH": str(tmp_path / "a")})
    other = create_app({"INSTANCE_PATH": str(tmp_path / "b")})
    token = encrypt(one, "secret")
    assert decrypt(one, token) == "secret"
    with pytest.raises(ValueError):
        decrypt(other, token)


def test_key_rotation_keeps_old_tokens_readable(tmp_path):
    old = create_app({"INSTANCE_PATH": str(tmp_path / "a")})
    token = encrypt(old, "secret")
    from cryptography.fernet import Fernet
    rotated = create_app({"INSTANCE_PATH": str(tmp_path / "b"),
                          "ENCRYPTION_KEY": Fernet.generate_key().decode() + "," + old.config["ENCRYPTION_KEY"]})
    assert decrypt(rotated, token) == "secret"

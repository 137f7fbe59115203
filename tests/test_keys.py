"""Installation secrets and encrypted platform credentials."""
import os

import pytest

from app import create_app
from app.keys import EncryptionKeyError, decrypt, encrypt
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


# ---- a lost or wrong key is refused, never replaced (issue 12) ----------------------------------
def _installation_with_credentials(inst):
    from app.db import connect
    from app.migrations import init_db
    app = create_app({"INSTANCE_PATH": str(inst)})
    db = connect(app.config["DATABASE"])
    init_db(db)
    shop = create_shop(db, "s.myshopify.com", "shopify")
    store_credentials(app, db, shop["id"], {"access_token": "shpat_secret_123"})
    db.close()
    return app


def test_a_missing_key_with_encrypted_data_refuses_to_start(tmp_path):
    inst = tmp_path / "inst"
    _installation_with_credentials(inst)
    os.remove(inst / "encryption_key")
    with pytest.raises(EncryptionKeyError, match="encryption key is missing.*restore the key"):
        create_app({"INSTANCE_PATH": str(inst)})
    assert not (inst / "encryption_key").exists()


def test_the_cli_says_so_in_one_line_and_writes_no_key(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    inst = tmp_path / "inst"
    _installation_with_credentials(inst)
    os.remove(inst / "encryption_key")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINBACK_")}
    env["WINBACK_INSTANCE_PATH"] = str(inst)
    for args in (["shop", "list"], ["--help"]):
        done = subprocess.run([Path(sys.executable).parent / "winback", *args], env=env,
                              capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "encryption key is missing" in lines[0] and "Traceback" not in done.stderr
        assert not (inst / "encryption_key").exists()


def test_a_key_that_decrypts_nothing_refuses_to_start(tmp_path):
    from cryptography.fernet import Fernet
    inst = tmp_path / "inst"
    _installation_with_credentials(inst)
    (inst / "encryption_key").write_text(Fernet.generate_key().decode() + "\n")
    with pytest.raises(EncryptionKeyError, match="does not decrypt.*shop s.myshopify.com"):
        create_app({"INSTANCE_PATH": str(inst)})
    with pytest.raises(EncryptionKeyError, match="does not decrypt"):
        create_app({"INSTANCE_PATH": str(tmp_path / "other"), "DATABASE": str(inst / "winback.db"),
                    "ENCRYPTION_KEY": Fernet.generate_key().decode()})


def test_the_right_key_starts_and_a_database_without_secrets_gets_a_new_key(tmp_path):
    inst = tmp_path / "inst"
    first = _installation_with_credentials(inst)
    again = create_app({"INSTANCE_PATH": str(inst)})
    assert again.config["ENCRYPTION_KEY"] == first.config["ENCRYPTION_KEY"]
    # a database with shops but nothing encrypted: a fresh key is harmless
    from app.db import connect
    db = connect(again.config["DATABASE"])
    db.execute("UPDATE shops SET credentials = NULL")
    db.close()
    os.remove(inst / "encryption_key")
    fresh = create_app({"INSTANCE_PATH": str(inst)})
    assert (inst / "encryption_key").exists() and fresh.config["ENCRYPTION_KEY"] != first.config["ENCRYPTION_KEY"]

"""Secrets of one installation: the session key and the key that encrypts platform tokens."""
import logging
import os
import re
import secrets
import sqlite3
import time

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger("winback.keys")
# A Fernet token: version byte 0x80 then the timestamp, base64url: always starts "gAAAAA".
_TOKEN = re.compile(r"gAAAAA[A-Za-z0-9_=-]{50,}")


class EncryptionKeyError(RuntimeError):
    """Winback cannot start: the database holds encrypted data that the key cannot open."""


def _read_or_create(path, make):
    """Return the key stored at `path`, creating it (mode 0600) if missing.

    O_EXCL makes two processes starting at once (web and worker) agree on one key.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="ascii") as f:
            value = f.read().strip()
        if value:
            return value
        # An empty file means another process is writing it right now.
        time.sleep(0.2)
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    value = make()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
    return value


def encrypted_values(database) -> list[tuple[str, str]]:
    """(what, token) for the encrypted values stored in the database file: shops' credentials and
    any setting holding a Fernet token. Empty when there is no database yet."""
    if str(database) == ":memory:" or not os.path.exists(database):
        return []
    found = []
    conn = sqlite3.connect(str(database), timeout=30)
    try:
        for query in ("SELECT 'shop ' || handle, credentials FROM shops WHERE credentials IS NOT NULL",
                      "SELECT 'DKIM key of shop ' || handle, dkim_key FROM shops WHERE dkim_key IS NOT NULL",
                      "SELECT 'setting ' || key || ' of shop ' || shop_id, value FROM shop_settings"
                      " WHERE instr(value, 'gAAAAA') > 0"):
            try:
                rows = conn.execute(query).fetchall()
            except sqlite3.DatabaseError:  # a database from before that table existed (or no database)
                continue
            found += [(what, token) for what, value in rows for token in _TOKEN.findall(value or "")]
    finally:
        conn.close()
    return found


def _check_key(app, stored):
    """Refuse a key that opens none of the stored values; warn about single values it cannot open
    (that shop's trouble is shown on its own, the others go on)."""
    failed = []
    for what, token in stored:
        try:
            decrypt(app, token)
        except (ValueError, TypeError):
            failed.append(what)
    if stored and len(failed) == len(stored):
        raise EncryptionKeyError(
            f"WINBACK_ENCRYPTION_KEY (or {os.path.join(app.instance_path, 'encryption_key')}) does not decrypt"
            f" the encrypted data in {app.config['DATABASE']} ({', '.join(failed[:3])}"
            f"{', ...' if len(failed) > 3 else ''}): restore the key that encrypted it")
    if failed:
        log.warning("the encryption key does not decrypt: %s", ", ".join(failed))


def init_app(app):
    """Fill SECRET_KEY and ENCRYPTION_KEY from the environment or the instance folder.

    A fresh installation gets its keys generated once. When the database already holds encrypted
    data, a missing encryption key is never generated anew (that would lock the data out for good):
    EncryptionKeyError says what to restore; so does a key that decrypts none of that data.
    """
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _read_or_create(
            os.path.join(app.instance_path, "secret_key"), lambda: secrets.token_hex(32))
    stored = encrypted_values(app.config["DATABASE"])
    if not app.config.get("ENCRYPTION_KEY"):
        path = os.path.join(app.instance_path, "encryption_key")
        if stored and not os.path.exists(path):
            raise EncryptionKeyError(
                f"the encryption key is missing: {app.config['DATABASE']} holds encrypted data"
                f" ({stored[0][0]}{', ...' if len(stored) > 1 else ''}) but there is no {path} and no"
                " WINBACK_ENCRYPTION_KEY; restore the key from your backup (a new key cannot decrypt it)")
        app.config["ENCRYPTION_KEY"] = _read_or_create(path, lambda: Fernet.generate_key().decode())
    try:
        _fernet(app)
    except ValueError as exc:
        raise EncryptionKeyError(f"WINBACK_ENCRYPTION_KEY is not a valid key: {exc}") from None
    _check_key(app, stored)


def _fernet(app):
    # Several comma-separated keys allow rotation: the first encrypts, all decrypt.
    keys = [k.strip() for k in str(app.config["ENCRYPTION_KEY"]).split(",") if k.strip()]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(app, plaintext: str) -> str:
    """Encrypt a secret (a platform token) for storage."""
    return _fernet(app).encrypt(plaintext.encode()).decode()


def decrypt(app, token: str) -> str:
    """Decrypt a stored secret; raises ValueError if the key does not fit."""
    try:
        return _fernet(app).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("stored secret cannot be decrypted with WINBACK_ENCRYPTION_KEY") from exc

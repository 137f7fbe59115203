"""Secrets of one installation: the session key and the key that encrypts platform tokens."""
import os
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


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
        import time
        time.sleep(0.2)
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    value = make()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
    return value


def init_app(app):
    """Fill SECRET_KEY and ENCRYPTION_KEY from the environment or the instance folder."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _read_or_create(
            os.path.join(app.instance_path, "secret_key"), lambda: secrets.token_hex(32))
    if not app.config.get("ENCRYPTION_KEY"):
        app.config["ENCRYPTION_KEY"] = _read_or_create(
            os.path.join(app.instance_path, "encryption_key"), lambda: Fernet.generate_key().decode())


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

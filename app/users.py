"""Accounts: the `users` table, who belongs to which shop, passwords and session tokens.

Owns `users` and `user_shops` (see the table of owners in flows/enrolments.py).
Used by the `winback user` commands and the users pages alike, so both refuse the same things with the
same words. A user's `session_token` is part of their login cookie (see app/web/auth.py): replacing it
ends every session of that user at once (logout, password change, reset).
"""
import functools
import hmac
import re
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

from .db import write_transaction
from .timeutil import to_db, utcnow

MIN_PASSWORD = 8
MAX_PASSWORD = 200
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


class UserError(ValueError):
    """A user or shop that does not exist, a taken name, or a password that is refused."""


def hash_password(password, method=None) -> str:
    """A salted hash of the password; `method` (a werkzeug method string) only for cheap test hashes."""
    return generate_password_hash(password, method=method) if method else generate_password_hash(password)


def check_password(stored_hash, password) -> bool:
    """Whether the password fits the stored hash (constant-time comparison inside werkzeug)."""
    return check_password_hash(stored_hash, password)


def new_password() -> str:
    """A random password to hand out once (16 URL-safe characters)."""
    return secrets.token_urlsafe(12)


def new_session_token() -> str:
    """A fresh random session token."""
    return secrets.token_urlsafe(24)


def same_token(a, b) -> bool:
    """Compare two session tokens in constant time (None never matches)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def check_name(name) -> str:
    """The user name, stripped; UserError unless it is 1-100 letters, digits, '.', '_', '@' or '-'."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise UserError(f"user name {name!r} must be 1 to 100 letters, digits, '.', '_', '@' or '-'")
    return name


def check_password_rules(password) -> str:
    """The password if it is long enough (8 to 200 characters); UserError otherwise."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"a password can have at most {MAX_PASSWORD} characters")
    return password


def get_user(db, name) -> dict | None:
    """The user row with this name (any case), or None."""
    rows = list(db.query("SELECT * FROM users WHERE username = ?", [(name or "").strip()]))
    return rows[0] if rows else None


def user_by_id(db, user_id) -> dict | None:
    """The user row with this id, or None."""
    rows = list(db.query("SELECT * FROM users WHERE id = ?", [user_id]))
    return rows[0] if rows else None


def require_user(db, name) -> dict:
    """The user with this name; UserError naming the known users when there is none."""
    user = get_user(db, name)
    if user is None:
        known = [r[0] for r in db.execute("SELECT username FROM users ORDER BY username")]
        raise UserError(f"no user {name!r}" + (f" (users: {', '.join(known)})" if known else ""))
    return user


def _shop_ids(db, handles) -> list[int]:
    ids = []
    for handle in dict.fromkeys(handles or ()):
        row = db.execute("SELECT id FROM shops WHERE handle = ?", [handle]).fetchone()
        if row is None:
            known = [r[0] for r in db.execute("SELECT handle FROM shops ORDER BY handle")]
            raise UserError(f"no shop {handle!r}" + (f" (shops: {', '.join(known)})" if known else " (no shops yet)"))
        ids.append(row[0])
    return ids


def create_user(db, username, password, *, is_admin=False, shop_ids=(), method=None) -> int:
    """Create a user with a hashed password, belonging to `shop_ids`; returns the id."""
    with write_transaction(db):
        cur = db.execute("INSERT INTO users (username, password_hash, is_admin, created_at, session_token)"
                         " VALUES (?, ?, ?, ?, ?)",
                         [username, hash_password(password, method), int(is_admin), to_db(utcnow()),
                          new_session_token()])
        for shop_id in shop_ids:
            db.execute("INSERT OR IGNORE INTO user_shops (user_id, shop_id) VALUES (?, ?)", [cur.lastrowid, shop_id])
        return cur.lastrowid


def add_member(db, user_id, shop_id):
    """Make the user a member of the shop (kept when already one)."""
    with write_transaction(db):
        db.execute("INSERT OR IGNORE INTO user_shops (user_id, shop_id) VALUES (?, ?)", [user_id, shop_id])


def set_email(db, user_id, email: str):
    """Remember the user's address (where "send me a test" goes)."""
    with write_transaction(db):
        db.execute("UPDATE users SET email = ? WHERE id = ?", [email, user_id])


def add_user(db, name, password=None, shops=(), *, is_admin=False, method=None) -> tuple[dict, str | None]:
    """Add a user belonging to the shops with these handles: (user, generated password or None).

    UserError for a bad or taken name, an unknown shop or a short password; nothing is created then.
    """
    name = check_name(name)
    generated = None
    if password is None or password == "":
        password = generated = new_password()
    check_password_rules(password)
    shop_ids = _shop_ids(db, shops)
    if get_user(db, name):
        raise UserError(f"user {name!r} already exists")
    create_user(db, name, password, is_admin=is_admin, shop_ids=shop_ids, method=method)
    return get_user(db, name), generated


def list_users(db) -> list[dict]:
    """Every user: {"name", "admin", "shops": [handle]}, by name."""
    shops = {}
    for user_id, handle in db.execute("SELECT us.user_id, s.handle FROM user_shops us JOIN shops s ON s.id = us.shop_id"
                                      " ORDER BY s.handle"):
        shops.setdefault(user_id, []).append(handle)
    return [{"name": r["username"], "admin": bool(r["is_admin"]), "shops": shops.get(r["id"], [])}
            for r in db.query("SELECT id, username, is_admin FROM users ORDER BY username COLLATE NOCASE")]


def set_password(db, name, password=None, *, method=None) -> str | None:
    """Set a user's password (a generated one when None) and end all their sessions.

    Returns the generated password, or None when one was given.
    """
    user = require_user(db, name)
    generated = None
    if password is None or password == "":
        password = generated = new_password()
    check_password_rules(password)
    with write_transaction(db):
        db.execute("UPDATE users SET password_hash = ?, session_token = ? WHERE id = ?",
                   [hash_password(password, method), new_session_token(), user["id"]])
    return generated


def end_sessions(db, user_id) -> str:
    """End every session of the user (a new session token); returns the new token."""
    token = new_session_token()
    with write_transaction(db):
        db.execute("UPDATE users SET session_token = ? WHERE id = ?", [token, user_id])
    return token


def set_shops(db, name, handles) -> list[str]:
    """Make the user a member of exactly these shops; returns their handles. UserError for unknown ones."""
    user = require_user(db, name)
    shop_ids = _shop_ids(db, handles)
    with write_transaction(db):
        db.execute("DELETE FROM user_shops WHERE user_id = ?", [user["id"]])
        for shop_id in shop_ids:
            db.execute("INSERT INTO user_shops (user_id, shop_id) VALUES (?, ?)", [user["id"], shop_id])
    return sorted(dict.fromkeys(handles))


def remove_user(db, name):
    """Remove a user (and their shop memberships); refuses to remove the last admin."""
    user = require_user(db, name)
    with write_transaction(db):
        if user["is_admin"] and db.execute("SELECT COUNT(*) FROM users WHERE is_admin = 1").fetchone()[0] <= 1:
            raise UserError(f"{user['username']!r} is the only admin and cannot be removed")
        db.execute("DELETE FROM users WHERE id = ?", [user["id"]])


@functools.cache
def _dummy_hash():
    return generate_password_hash(secrets.token_hex(8))


def authenticate(db, username, password) -> dict | None:
    """The user row when the password is right, else None (about the same work either way)."""
    user = get_user(db, username)
    if user is None:
        check_password_hash(_dummy_hash(), password)  # keep the timing alike for unknown users
        return None
    return user if check_password_hash(user["password_hash"], password) else None


def ensure_admin(db, password=None, *, method=None):
    """Create user `admin` when there are no users; returns its password then, else None."""
    if db.execute("SELECT 1 FROM users LIMIT 1").fetchone():
        return None
    password = password or new_password()
    create_user(db, "admin", password, is_admin=True, method=method)
    return password

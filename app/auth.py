"""Users, login and the `login_required` guard."""
import functools
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from .db import get_db, write_transaction
from .timeutil import to_db, utcnow

bp = Blueprint("auth", __name__)


class TokenForm(FlaskForm):
    """A form with only its CSRF token, for pages that read and validate their fields by hand."""


class LoginForm(FlaskForm):
    username = StringField("User", validators=[DataRequired(), Length(max=100)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def create_user(db, username, password, *, is_admin=False, shop_ids=()) -> int:
    """Create a user with a hashed password, belonging to `shop_ids`; returns the id."""
    with write_transaction(db):
        cur = db.execute("INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?)",
                         [username, generate_password_hash(password), int(is_admin), to_db(utcnow())])
        for shop_id in shop_ids:
            db.execute("INSERT OR IGNORE INTO user_shops (user_id, shop_id) VALUES (?, ?)", [cur.lastrowid, shop_id])
        return cur.lastrowid


def ensure_admin(db, password=None):
    """Create user `admin` when there are no users; returns its password then, else None."""
    if db.execute("SELECT 1 FROM users LIMIT 1").fetchone():
        return None
    password = password or secrets.token_urlsafe(12)
    create_user(db, "admin", password, is_admin=True)
    return password


def authenticate(db, username, password):
    """The user row when the password is right, else None (same work either way)."""
    row = db.execute("SELECT id, password_hash FROM users WHERE username = ?", [username]).fetchone()
    if row is None:
        check_password_hash(_DUMMY_HASH, password)  # keep timing alike for unknown users
        return None
    return row[0] if check_password_hash(row[1], password) else None


_DUMMY_HASH = generate_password_hash(secrets.token_hex(8))


@bp.before_app_request
def load_logged_in_user():
    user_id = session.get("user_id")
    g.user = None
    if user_id is not None:
        rows = list(get_db().query("SELECT id, username, is_admin FROM users WHERE id = ?", [user_id]))
        g.user = rows[0] if rows else None


def login_required(view):
    """Send anonymous visitors to the login page, then back."""
    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.user is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(**kwargs)
    return wrapped


def owned_shop_or_404(handle):
    """The shop with this handle if the logged-in user may see it; 404 otherwise, for shops of
    other users too, so that nobody learns which shops exist."""
    from flask import abort
    from .shops import shop_for_user
    shop = shop_for_user(get_db(), handle, g.user)
    if shop is None:
        abort(404)
    return shop


def _safe_next(target):
    # Only local paths: an open redirect to another site would help phishing.
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/login", methods=("GET", "POST"))
def login():
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user_id = authenticate(get_db(), form.username.data.strip(), form.password.data)
        if user_id is None:
            error = "Wrong user or password."
        else:
            session.clear()
            session["user_id"] = user_id
            return redirect(_safe_next(request.args.get("next")) or url_for("pages.index"))
    elif request.method == "POST":
        error = "Please fill in both fields." if not form.csrf_token.errors else \
            "The form expired; please try again."
    return render_template("login.html", form=form, error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    session.clear()
    flash("Logged out.")
    return redirect(url_for("auth.login"))

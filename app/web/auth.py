"""Login, logout, one's own password, and the guards `login_required` and `owned_shop_or_404`.

Sessions are Flask-Login's. The id kept in the (signed) session cookie is "<user id>:<session token>",
Flask-Login's documented "alternative token" scheme: the token is stored in the database and replaced
on logout and on every password change, so a copied cookie stops working then, in every process.
"""
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import (  # re-exported for the page modules
    LoginManager,
    UserMixin,
    current_user,
    login_required as login_required,
    login_user,
    logout_user,
)
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from .. import login_throttle, users
from ..db import get_db
from ..shops import shop_for_user
from ..users import authenticate

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = None  # the login page says enough; no untranslated flash


class TokenForm(FlaskForm):
    """A form with only its CSRF token, for pages that read and validate their fields by hand."""


class LoginForm(FlaskForm):
    username = StringField("User", validators=[DataRequired(), Length(max=100)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class PasswordForm(FlaskForm):
    current = PasswordField("current", validators=[Length(max=users.MAX_PASSWORD)])
    new = PasswordField("new", validators=[Length(max=users.MAX_PASSWORD)])
    confirm = PasswordField("confirm", validators=[Length(max=users.MAX_PASSWORD)])


class User(UserMixin):
    """The logged-in user as Flask-Login sees it; `row` is their `users` row."""

    def __init__(self, row):
        self.row = row
        self.id = row["id"]

    def get_id(self):
        return f"{self.row['id']}:{self.row['session_token']}"


@login_manager.user_loader
def load_user(session_id):
    """The user whose id and current session token the cookie holds, else None (logged out)."""
    user_id, _sep, token = str(session_id).partition(":")
    if not user_id.isdigit():
        return None
    row = users.user_by_id(get_db(), int(user_id))
    if row is None or not users.same_token(row["session_token"], token):
        return None
    return User(row)


def hash_method():
    """The password hash method from the config (None: werkzeug's default, scrypt)."""
    return current_app.config.get("PASSWORD_HASH_METHOD")


def init_app(app):
    """Set up Flask-Login and `g.user` (the user's id, name and admin flag, or None) for every request."""
    login_manager.init_app(app)

    @app.before_request
    def load_logged_in_user():
        g.user = None
        if current_user.is_authenticated:
            row = current_user.row
            g.user = {"id": row["id"], "username": row["username"], "is_admin": row["is_admin"]}


def owned_shop_or_404(handle):
    """The shop with this handle if the logged-in user may see it; 404 otherwise, for shops of
    other users too, so that nobody learns which shops exist."""
    shop = shop_for_user(get_db(), handle, g.user)
    if shop is None:
        abort(404)
    return shop


def admin_or_404():
    """Stop anyone but an admin: 404, so that the page does not even seem to exist."""
    if g.user is None or not g.user["is_admin"]:
        abort(404)


def _safe_next(target):
    # Only local paths: an open redirect to another site would help phishing.
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _start_session(db, row):
    """Log this user in, in a fresh session (users from before sessions were tracked get a token now)."""
    if not row["session_token"]:
        row = {**row, "session_token": users.end_sessions(db, row["id"])}
    session.clear()
    login_user(User(row))


@bp.route("/login", methods=("GET", "POST"))
def login():
    form = LoginForm()
    error, status, headers = None, 200, {}
    if form.validate_on_submit():
        db = get_db()
        name = form.username.data.strip()
        locked, attempt = login_throttle.begin_attempt(db, name, request.remote_addr)
        if locked is not None:
            minutes = max(1, -(-int((locked - login_throttle.utcnow()).total_seconds()) // 60))
            error, status = _("Too many failed logins for this user or from this address. "
                              "Try again in %(minutes)s minutes.", minutes=minutes), 429
            headers["Retry-After"] = str(minutes * 60)
        else:
            row = authenticate(db, name, form.password.data)
            if row is None:
                error, status = _("Wrong user or password."), 401
            else:
                login_throttle.succeeded(db, name, attempt)
                _start_session(db, row)
                return redirect(_safe_next(request.args.get("next")) or url_for("pages.index"))
    elif request.method == "POST":
        error, status = (_("Please fill in both fields.") if not form.csrf_token.errors
                         else _("The form expired; please try again.")), 401
    return render_template("login.html", form=form, error=error), status, headers


@bp.post("/logout")
def logout():
    """End the session here and everywhere else the user is logged in (a copied cookie included)."""
    if current_user.is_authenticated:
        users.end_sessions(get_db(), current_user.id)
    logout_user()
    session.clear()
    flash(_("Logged out."))
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=("GET", "POST"))
@login_required
def password():
    """Change one's own password (the current one is required); other sessions end."""
    form = PasswordForm()
    errors = {}
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        db = get_db()
        row = users.user_by_id(db, g.user["id"])
        if not users.check_password(row["password_hash"], form.current.data or ""):
            errors["current"] = _("That is not your current password.")
        elif len(form.new.data or "") < users.MIN_PASSWORD:
            errors["new"] = _("A password needs at least %(n)s characters.", n=users.MIN_PASSWORD)
        elif form.new.data != form.confirm.data:
            errors["confirm"] = _("The two new passwords differ.")
        else:
            users.set_password(db, row["username"], form.new.data, method=hash_method())
            _start_session(db, users.user_by_id(db, row["id"]))
            flash(_("Your password is changed. Your other sessions are logged out."))
            return redirect(url_for("pages.index"))
    return render_template("password.html", form=form, errors=errors), (422 if errors else 200)

"""The users page, for admins only: add a user, give and take shops, reset a password, remove a user.

Anyone else gets 404, as for a shop that is not theirs. A generated password is shown once, in the
answer to the post that made it (never in a flash message, which would travel in the cookie).
"""
import re

from flask import Blueprint, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectMultipleField, StringField
from wtforms.validators import Length

from .. import users
from ..db import get_db
from .auth import TokenForm, admin_or_404, hash_method, login_required

bp = Blueprint("user_pages", __name__)


class AddUserForm(FlaskForm):
    username = StringField("username", validators=[Length(max=100)])
    password = PasswordField("password", validators=[Length(max=users.MAX_PASSWORD)])
    admin = BooleanField("admin")
    shops = SelectMultipleField("shops", validate_choice=False)


class ShopsForm(FlaskForm):
    shops = SelectMultipleField("shops", validate_choice=False)


class ResetForm(FlaskForm):
    password = PasswordField("password", validators=[Length(max=users.MAX_PASSWORD)])


# The users module speaks English (the CLI prints it); these put its messages in the UI's language.
_MESSAGES = [
    (r"user name (?P<v>.+) must be .*", lambda m: _("User name %(name)s: use 1 to 100 letters, digits, '.', '_', '@' or '-'.", name=m["v"])),
    (r"a password needs at least (?P<n>\d+) characters", lambda m: _("A password needs at least %(n)s characters.", n=m["n"])),
    (r"a password can have at most (?P<n>\d+) characters", lambda m: _("A password can have at most %(n)s characters.", n=m["n"])),
    (r"user (?P<v>.+) already exists", lambda m: _("User %(name)s already exists.", name=m["v"])),
    (r"no user (?P<v>'[^']*').*", lambda m: _("There is no user %(name)s.", name=m["v"])),
    (r"no shop (?P<v>'[^']*').*", lambda m: _("There is no shop %(name)s.", name=m["v"])),
    (r"(?P<v>.+) is the only admin and cannot be removed", lambda m: _("%(name)s is the only admin and cannot be removed.", name=m["v"])),
]


def _say(exc) -> str:
    for pattern, make in _MESSAGES:
        match = re.fullmatch(pattern, str(exc))
        if match:
            return make(match)
    return str(exc)


def _field_of(exc) -> str:
    """Which field of the add form a users.UserError is about (its error is shown next to it)."""
    text = str(exc)
    if text.startswith("a password"):
        return "password"
    if text.startswith("no shop"):
        return "shops"
    return "username"


def _page(status=200, **extra):
    db = get_db()
    shops = [r[0] for r in db.execute("SELECT handle FROM shops ORDER BY handle")]
    return render_template("users.html", users=users.list_users(db), shops=shops, me=g.user["username"],
                           add_form=extra.pop("add_form", None) or AddUserForm(formdata=None),
                           token_form=TokenForm(), add_errors=extra.pop("add_errors", {}),
                           reset_error=extra.pop("reset_error", None), **extra), status


@bp.get("/users")
@login_required
def index():
    """Every user with their shops, and the forms to change them."""
    admin_or_404()
    return _page()


@bp.post("/users")
@login_required
def add():
    """Add a user; a generated password (when none was typed) is shown once on the answer."""
    admin_or_404()
    form = AddUserForm()
    if not form.validate_on_submit():
        return _page(400, add_form=form, error=_("The form expired or a field is too long; please try again."))
    try:
        user, generated = users.add_user(get_db(), form.username.data, form.password.data or None,
                                         form.shops.data or [], is_admin=form.admin.data, method=hash_method())
    except users.UserError as exc:
        return _page(422, add_form=form, error=_say(exc), add_errors={_field_of(exc): _say(exc)})
    if generated:
        return _page(201, shown_password=(user["username"], generated))
    flash(_("User %(name)s added.", name=user["username"]))
    return redirect(url_for("user_pages.index"))


@bp.post("/users/<name>/shops")
@login_required
def shops(name):
    """Make the user a member of exactly the ticked shops."""
    admin_or_404()
    form = ShopsForm()
    if not form.validate_on_submit():
        return _page(400, error=_("The form expired; please try again."))
    try:
        users.set_shops(get_db(), name, form.shops.data or [])
    except users.UserError as exc:
        return _page(422, error=_say(exc))
    flash(_("The shops of %(name)s are saved.", name=name))
    return redirect(url_for("user_pages.index"))


@bp.post("/users/<name>/password")
@login_required
def reset(name):
    """Set a new password (typed, or generated and shown once); the user's sessions end."""
    admin_or_404()
    form = ResetForm()
    if not form.validate_on_submit():
        return _page(400, error=_("The form expired or a field is too long; please try again."))
    try:
        generated = users.set_password(get_db(), name, form.password.data or None, method=hash_method())
    except users.UserError as exc:
        return _page(422, error=_say(exc), reset_error=(name, _say(exc)))
    if generated:
        return _page(200, shown_password=(name, generated))
    flash(_("The password of %(name)s is changed; their sessions are logged out.", name=name))
    return redirect(url_for("user_pages.index"))


@bp.post("/users/<name>/remove")
@login_required
def remove(name):
    """Remove a user (never oneself, never the last admin)."""
    admin_or_404()
    if not TokenForm().validate_on_submit():
        return _page(400, error=_("The form expired; please try again."))
    if name.lower() == g.user["username"].lower():
        return _page(422, error=_("You cannot remove yourself."))
    try:
        users.remove_user(get_db(), name)
    except users.UserError as exc:
        return _page(422, error=_say(exc))
    flash(_("User %(name)s removed.", name=name))
    return redirect(url_for("user_pages.index"))

"""The pages behind the links in emails. They need no login: the signed token is the key."""
from flask import Blueprint, abort, current_app, redirect, render_template, request
from flask_babel import force_locale, gettext as _
from flask_login import current_user

from connectors.demo import CATALOGUE, SHOP_CURRENCY
from flows import clicks
from flows.consent import keep_subscribed, unsubscribe as do_unsubscribe
from flows.render import pick_locale

from .. import tokens
from ..db import get_db
from ..timeutil import utcnow

bp = Blueprint("links", __name__)


def _customer(kind, token):
    found = tokens.read(current_app, kind, token)
    if found is None:
        abort(404)
    shop_id, customer_id = found
    rows = list(get_db().query("SELECT c.*, s.name AS shop_name, s.locale AS shop_locale"
                               " FROM customers c JOIN shops s ON s.id = c.shop_id"
                               " WHERE c.id = ? AND c.shop_id = ?", [customer_id, shop_id]))
    if not rows:
        abort(404)
    return rows[0]


def _in_their_language(template, customer, **context):
    """A page for the customer in their language (then the shop's), whatever the browser or owner says."""
    with force_locale(pick_locale(customer["locale"], customer["shop_locale"])):
        return render_template(template, customer=customer, **context)


@bp.get("/k/<token>")
def keep(token):
    """The sunset email's "yes, keep me subscribed" page (a GET changes nothing)."""
    return _in_their_language("keep.html", _customer("keep", token), done=False)


@bp.post("/k/<token>")
def keep_confirm(token):
    """Record that the customer wants to keep hearing from the shop."""
    customer = _customer("keep", token)
    keep_subscribed(get_db(), customer["id"])
    return _in_their_language("keep.html", customer, done=True)


@bp.get("/u/<token>")
def unsubscribe_page(token):
    """The unsubscribe page with its confirm button; a GET (a link scanner) never unsubscribes."""
    return _in_their_language("unsubscribe.html", _customer("unsubscribe", token), done=False)


@bp.post("/u/<token>")
def unsubscribe(token):
    """Unsubscribe: the button, or a mail provider's RFC 8058 one-click POST
    (`List-Unsubscribe=One-Click`, no cookies). Answers 200, never a redirect."""
    customer = _customer("unsubscribe", token)
    do_unsubscribe(get_db(), customer["shop_id"], customer["id"])
    if request.form.get("List-Unsubscribe") == "One-Click":
        with force_locale(pick_locale(customer["locale"], customer["shop_locale"])):
            return _("Unsubscribed.") + "\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
    return _in_their_language("unsubscribe.html", customer, done=True)


@bp.get("/c/<token>")
def click(token):
    """A tracked link: 302 to the target the token carries (never one from the query), recording
    the click unless it is a scanner's prefetch, an expired token, a preview's link (no message) or
    a Winback user (the owner opening a sent email in the outbox is no customer coming back).
    A forged or altered token is a 404: nothing to redirect to."""
    found = clicks.read_token(current_app, token)
    if found is None:
        abort(404)
    message_id, link, target, fresh = found
    if (fresh and message_id is not None and not current_user.is_authenticated
            and not clicks.is_scanner(request.method, request.user_agent.string)):
        clicks.record(get_db(), message_id, link, utcnow())
    response = redirect(target, code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/demo-store")
def demo_store():
    """The demo shop's stand-in storefront (its `store_url`), so that its emails' buttons lead somewhere:
    the catalogue with pictures and prices, one anchor per product (the demo products' links)."""
    return render_template("demo_store.html", products=CATALOGUE, currency=SHOP_CURRENCY)

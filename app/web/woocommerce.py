"""WooCommerce's routes: connect, key callback, return page, manual keys, webhooks (issue #7)."""
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from connectors.woocommerce import WooError
from connectors.woocommerce.connect import (
    ConnectError,
    accept_keys,
    add_store,
    authorize_url,
    finish_connection,
    start_connection,
)
from connectors.woocommerce.webhooks import is_ping, parse, verify

from .. import webhooks as inbox
from ..db import get_db
from ..shops import ShopError, load_credentials
from .auth import login_required
from .forms import WooConnectForm, WooManualForm
from .limits import WEBHOOK_BYTES, body_limit

bp = Blueprint("woocommerce", __name__)


@bp.record_once
def _exempt_from_csrf(state):
    # The store, not a browser form, posts to these: they are authenticated by the pending
    # connection id and by the webhook signature instead.
    csrf = state.app.extensions["csrf"]
    csrf.exempt(callback)
    csrf.exempt(webhook)


def _callback_reachable(app_url: str) -> bool:
    """Whether WooCommerce could POST keys to this app (https, public host, allowed port)."""
    parts = urlsplit(app_url)
    host = parts.hostname or ""
    local = host in ("localhost",) or host.startswith(("127.", "10.", "192.168.", "0.")) \
        or host.endswith(".local")
    return parts.scheme == "https" and not local and (parts.port in (None, 443, 8080))


@bp.get("/woocommerce/connect")
@login_required
def connect():
    """The connect page; with `store_url`, filled in and asking to confirm (connecting is a POST)."""
    return _page(store_url=request.args.get("store_url", "").strip()[:2000], confirm=True)


@bp.post("/woocommerce/connect")
@login_required
def start():
    """Start a connection for this user and store, and send the owner to the store's grant screen."""
    form = WooConnectForm()
    store_url = (form.store_url.data or "").strip()
    if not form.validate():
        return _page(error=str(form.store_url.errors[0]), store_url=store_url), 400
    try:
        state = start_connection(get_db(), store_url, g.user["id"])
    except ConnectError as exc:
        return _page(error=str(exc), store_url=store_url), exc.status
    except ValueError as exc:
        return _page(error=str(exc), store_url=store_url), 400
    return redirect(authorize_url(current_app, store_url, state))


@bp.post("/woocommerce/callback")
def callback():
    """The store posts the new keys here; it deletes them again unless it gets exactly 200."""
    try:
        accept_keys(current_app._get_current_object(), get_db(), request.get_data())
    except ConnectError as exc:
        return {"error": str(exc)}, exc.status
    return "ok", 200


@bp.get("/woocommerce/return")
@login_required
def returned():
    """Where the store sends the owner back after the grant screen."""
    pending = finish_connection(get_db(), request.args.get("user_id", ""), g.user["id"])
    if request.args.get("success") == "1" and pending and pending["data"].get("used"):
        flash(_("Connected %(shop)s. The first sync runs in the background (or now: winback sync --shop "
                "%(shop)s).", shop=pending["data"]["shop"]))
        return redirect(url_for("pages.shop", handle=pending["data"]["shop"]))
    flash(_("The store did not connect (access denied, or its keys never reached Winback). "
            "You can enter the keys by hand below."))
    return redirect(url_for("woocommerce.connect"))


@bp.post("/woocommerce/manual")
@login_required
def manual():
    """Manual key entry, for stores that cannot reach this app; only for a new shop or one of the
    user's own (an admin's: any)."""
    form = WooManualForm()
    store_url = (form.store_url.data or "").strip()
    if not form.validate():
        return _page(error=str(next(iter(form.errors.values()))[0]), store_url=store_url), 400
    key, secret = form.consumer_key.data.strip(), form.consumer_secret.data.strip()
    try:
        shop = add_store(current_app._get_current_object(), get_db(), store_url, key, secret,
                         user_id=g.user["id"])
    except ConnectError as exc:
        return _page(error=str(exc), store_url=store_url), exc.status
    except (WooError, ShopError, ValueError) as exc:
        return _page(error=str(exc), store_url=store_url), 400
    flash(_("Connected %(shop)s; webhooks created.", shop=shop["handle"]))
    return redirect(url_for("pages.shop", handle=shop["handle"]))


def _page(error=None, store_url="", confirm=False):
    return render_template("woocommerce_connect.html", error=error, store_url=store_url,
                           confirm=confirm and bool(store_url),
                           reachable=_callback_reachable(current_app.config["APP_URL"]),
                           app_url=current_app.config["APP_URL"])


@bp.post("/webhooks/woocommerce/<int:shop_id>")
@body_limit(WEBHOOK_BYTES)
def webhook(shop_id):
    """A WooCommerce delivery: the ping gets 200; a signed delivery is stored, then processed."""
    db = get_db()
    rows = list(db.query("SELECT * FROM shops WHERE id = ? AND platform = 'woocommerce'", [shop_id]))
    if not rows:
        abort(404)
    shop = rows[0]
    body = request.get_data()  # the raw bytes: the signature is over them, not over parsed JSON
    if is_ping(request.headers, request.form):
        return "ok", 200
    # Only the secret is needed here (no connector: intake stays cheap); no keys, no secret: 401.
    secret = load_credentials(current_app, shop).get("webhook_secret")
    if not verify(secret, request.headers, body):
        return {"error": "bad signature"}, 401
    try:
        event = parse(request.headers, body)
    except ValueError as exc:
        return {"error": str(exc)}, 400
    inbox.accept(current_app, db, shop["id"], "woocommerce", event.topic, event.delivery_id, body.decode("utf-8"))
    return "ok", 200

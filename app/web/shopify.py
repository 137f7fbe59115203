"""Shopify's routes: install, OAuth callback, webhooks (issue #6)."""
from flask import Blueprint, abort, current_app, redirect, request, session, url_for

from connectors.shopify.errors import AuthError, ShopifyError
from connectors.shopify.install import save_shop, start_first_sync
from connectors.shopify.oauth import (
    authorize_url,
    client_secrets,
    consume_state,
    create_state,
    exchange_code,
    verify_query,
)
from connectors.shopify.webhooks import receive

from ..db import get_db
from .limits import WEBHOOK_BYTES, body_limit

bp = Blueprint("shopify", __name__)


@bp.record_once
def _exempt_webhooks_from_csrf(state):
    # Shopify signs deliveries with HMAC; there is no browser session to protect.
    csrf = state.app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(webhook)


def _verified_shop(max_age):
    try:
        return verify_query(request.args.to_dict(), client_secrets(current_app), max_age=max_age)
    except AuthError as exc:
        abort(400 if "domain" in str(exc) else 401, description=str(exc))


@bp.get("/shopify/install")
def install():
    """Entry from Shopify: verify the signed request, then send the merchant to the grant screen."""
    if not current_app.config.get("SHOPIFY_CLIENT_ID"):
        abort(503, description="WINBACK_SHOPIFY_CLIENT_ID is not set")
    # The install link may have been opened a while after Shopify signed it: check only the HMAC age
    # loosely here; the callback's timestamp is checked strictly.
    shop = _verified_shop(max_age=24 * 3600)
    state = create_state(get_db(), shop, session.get("user_id"))
    session["shopify_state"] = state
    return redirect(authorize_url(current_app, shop, state))


@bp.get("/shopify/callback")
def callback():
    """Shopify's redirect after the grant: verify, exchange the code, store it, start syncing."""
    shop_domain = _verified_shop(max_age=300)
    db = get_db()
    try:
        state = consume_state(db, request.args.get("state", ""), session.pop("shopify_state", None), shop_domain)
    except AuthError as exc:
        abort(403, description=str(exc))
    code = request.args.get("code")
    if not code:
        abort(400, description="missing code")
    try:
        creds = exchange_code(current_app, shop_domain, code)
        # Webhooks are subscribed by the background sync, so the merchant is not kept waiting.
        shop = save_shop(current_app, db, shop_domain, creds, verify=True, register=False,
                         user_id=state["user_id"] or session.get("user_id"))
    except ShopifyError as exc:
        abort(502, description=str(exc))
    start_first_sync(current_app._get_current_object(), shop)
    if session.get("user_id"):
        return redirect(url_for("pages.shop", handle=shop["handle"]))
    return (f"<p>Winback is connected to {shop['handle']}; the first sync is running. "
            f"<a href=\"{url_for('auth.login')}\">Log in</a> to see it.</p>")


@bp.post("/webhooks/shopify")
@body_limit(WEBHOOK_BYTES)
def webhook():
    """Every Shopify topic: verified, stored once, answered at once, processed in the background."""
    status, message = receive(current_app, get_db(), request.headers, request.get_data(cache=False))
    return {"ok": status == 200, "message": message}, status

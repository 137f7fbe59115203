"""The owner's pages, the email links and the platforms' endpoints: one blueprint per feature.

`register(app)` is the whole list, in the order their hooks run (like Flask's tutorial `flaskr`
registering `auth` and `blog`): nothing is registered by importing a module.
"""
from flask import jsonify
from flask_wtf.csrf import CSRFProtect

from . import (
    auth,
    campaigns,
    dashboard,
    email_links,
    errors,
    exports,
    feedback,
    flow_editor,
    formatting,
    guided_start,
    i18n,
    limits,
    nps,
    offer_tests,
    outbox,
    pages,
    products,
    public_address,
    rules,
    security,
    segments,
    shopify,
    sync_words,
    users,
    woocommerce,
)

BLUEPRINTS = (auth, users, pages, dashboard, flow_editor, rules, products, outbox, email_links, shopify, woocommerce,
               feedback, nps, offer_tests, exports, segments, public_address, guided_start)
BLUEPRINTS += (campaigns,)  # one-off emails to a segment
# Followed from mail clients (no session, so no CSRF token): the signed token in the URL authorises them.
# The platforms' endpoints are authorised by their HMAC or one-time state instead.
NO_CSRF = (email_links, nps)


def register(app):
    """Hook the web side into `app`: body limits (before CSRF reads a form), CSRF, languages,
    security headers, sessions, then every blueprint and /healthz."""
    limits.init_app(app)
    csrf = CSRFProtect(app)
    i18n.init_app(app)
    formatting.init_app(app)
    sync_words.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    auth.init_app(app)
    for module in NO_CSRF:
        csrf.exempt(module.bp)
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)

    @app.get("/healthz")
    def healthz():
        return jsonify(ok=True)

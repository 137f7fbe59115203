"""Security headers on every response, the session cookie's flags, and the client address behind a proxy.

A few lines of `after_request` instead of Flask-Talisman: Talisman also forces HTTPS redirects and its
own session-cookie settings, which a Winback serving plain http on 127.0.0.1 behind a TLS proxy (or in
development) must not get; the headers themselves are all this needs.
"""
from werkzeug.middleware.proxy_fix import ProxyFix

# The app's pages load only their own scripts and styles (app/static), and frame only their own email
# preview. No `form-action`: connecting a shop posts a form that redirects to Shopify or the store.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
       "object-src 'none'; base-uri 'self'; frame-ancestors 'none'")


def add_headers(response):
    """Set the security headers, keeping a page's own Content-Security-Policy (the email preview's).

    A page with its own policy is shown inside the app's own pages, so it may be framed by them and
    nobody else.
    """
    own = response.headers.get("Content-Security-Policy")
    if own is None:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
    else:
        if "frame-ancestors" not in own:
            response.headers["Content-Security-Policy"] = own + "; frame-ancestors 'self'"
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Links in emails carry tokens in their path: never send them on to other sites.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def init_app(app):
    """Cookie flags from WINBACK_APP_URL, WINBACK_PROXIES for the client address, and the headers."""
    https = app.config["APP_URL"].lower().startswith("https://")
    for prefix in ("SESSION", "REMEMBER"):
        app.config[f"{prefix}_COOKIE_HTTPONLY"] = True
        app.config[f"{prefix}_COOKIE_SAMESITE"] = "Lax"
        app.config[f"{prefix}_COOKIE_SECURE"] = https
    proxies = int(app.config.get("PROXIES") or 0)
    if proxies > 0:
        # Behind nginx/Caddy the peer is the proxy; login throttling needs the real client address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    app.after_request(add_headers)
    if https:
        app.after_request(_hsts)


def _hsts(response):
    response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response

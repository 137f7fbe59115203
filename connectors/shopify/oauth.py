"""OAuth for Shopify: request signatures, shop domains, state nonces, token grants and refreshes."""
from __future__ import annotations

import hmac
import re
import secrets
from datetime import timedelta
from urllib.parse import urlencode

import requests

from app.db import write_transaction
from app.timeutil import from_db, to_db, utcnow

from .. import signing
from .errors import AuthError

SCOPES = ("read_customers", "write_customers", "read_orders", "read_all_orders", "read_products",
          "write_discounts")
SHOP_DOMAIN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$")
STATE_TTL = timedelta(minutes=10)
# Shopify's own libraries allow 90 s; a little more tolerates a self-hosted server's clock drift.
TIMESTAMP_TOLERANCE = 300
TIMEOUT = 20


def valid_shop_domain(shop: str | None) -> str | None:
    """The lower-cased `*.myshopify.com` domain, or None when `shop` is not one."""
    shop = (shop or "").strip().lower()
    return shop if SHOP_DOMAIN.fullmatch(shop) else None


def _escape(text: str, key: bool) -> str:
    text = text.replace("%", "%25").replace("&", "%26")
    return text.replace("=", "%3D") if key else text


def query_hmac(params: dict, secret: str) -> str:
    """Hex HMAC-SHA256 of a request's decoded query parameters, as Shopify signs them."""
    message = "&".join(f"{_escape(k, True)}={_escape(str(v), False)}"
                       for k, v in sorted(params.items()) if k not in ("hmac", "signature"))
    return signing.sign_hex(secret, message.encode())


def client_secrets(app) -> list[str]:
    """The app's client secrets, newest first: during a rotation Shopify may still sign with the
    previous one (WINBACK_SHOPIFY_CLIENT_SECRET_PREVIOUS), as its own app libraries accept."""
    return signing.secrets_of([app.config.get("SHOPIFY_CLIENT_SECRET"),
                               app.config.get("SHOPIFY_CLIENT_SECRET_PREVIOUS")])


def verify_query(params: dict, secrets, *, max_age: int | None = TIMESTAMP_TOLERANCE) -> str:
    """Check a signed request from Shopify (HMAC, shop domain, timestamp); returns the shop domain.

    `secrets` is one secret or several (see `client_secrets`). Raises AuthError naming the first
    check that fails.
    """
    given = params.get("hmac") or ""
    if not signing.verify(secrets, b"", given, sign=lambda key, _: query_hmac(params, key)):
        raise AuthError("invalid HMAC signature")
    shop = valid_shop_domain(params.get("shop"))
    if shop is None:
        raise AuthError("invalid shop domain")
    if max_age is not None:
        try:
            stamp = int(params.get("timestamp", ""))
        except ValueError:
            raise AuthError("missing timestamp") from None
        if abs(utcnow().timestamp() - stamp) > max_age:
            raise AuthError("stale request timestamp")
    return shop


def create_state(db, shop: str, user_id=None) -> str:
    """A new single-use, expiring state nonce for an install of `shop`."""
    state = secrets.token_urlsafe(32)
    now = utcnow()
    with write_transaction(db):
        db.execute("DELETE FROM oauth_states WHERE expires_at < ?", [to_db(now)])
        db.execute("INSERT INTO oauth_states (state, platform, shop_handle, user_id, created_at, expires_at)"
                   " VALUES (?, 'shopify', ?, ?, ?, ?)",
                   [state, shop, user_id, to_db(now), to_db(now + STATE_TTL)])
    return state


def consume_state(db, state: str, session_state: str | None, shop: str) -> dict:
    """Use up a state nonce: it must exist, be unexpired, match the browser's and the shop."""
    if not state or not session_state or not hmac.compare_digest(state, session_state):
        raise AuthError("state does not match this browser session")
    with write_transaction(db):
        row = db.execute("DELETE FROM oauth_states WHERE state = ? AND platform = 'shopify'"
                         " RETURNING shop_handle, user_id, expires_at", [state]).fetchone()
    if row is None:
        raise AuthError("unknown or already used state")
    if from_db(row[2]) < utcnow():
        raise AuthError("expired state")
    if row[0] != shop:
        raise AuthError("state was issued for another shop")
    return {"shop": row[0], "user_id": row[1]}


def admin_base(app, shop: str) -> str:
    """The shop's admin base URL (a local fake in tests)."""
    return app.config["SHOPIFY_ADMIN_URL"].format(shop=shop).rstrip("/")


def authorize_url(app, shop: str, state: str) -> str:
    """Where to send the merchant to grant the app's scopes (offline access)."""
    query = urlencode({"client_id": app.config["SHOPIFY_CLIENT_ID"], "scope": ",".join(SCOPES),
                       "redirect_uri": f"{app.config['APP_URL']}/shopify/callback", "state": state})
    return f"{admin_base(app, shop)}/admin/oauth/authorize?{query}"


def _token_request(app, shop: str, body: dict) -> dict:
    secret = app.config.get("SHOPIFY_CLIENT_SECRET")
    client_id = app.config.get("SHOPIFY_CLIENT_ID")
    if not (secret and client_id):
        raise AuthError("WINBACK_SHOPIFY_CLIENT_ID and WINBACK_SHOPIFY_CLIENT_SECRET must be set")
    try:
        resp = requests.post(f"{admin_base(app, shop)}/admin/oauth/access_token", timeout=TIMEOUT,
                             json={"client_id": client_id, "client_secret": secret, **body})
    except requests.RequestException as exc:
        raise AuthError(f"cannot reach {shop}: {type(exc).__name__}") from None
    if resp.status_code != 200:
        raise AuthError(f"{shop} refused the token request (HTTP {resp.status_code})")
    data = resp.json()
    if not data.get("access_token"):
        raise AuthError(f"{shop} answered without an access token")
    return _credentials(data, body.get("grant_type") or "authorization_code")


def _credentials(data: dict, grant: str) -> dict:
    now = utcnow()
    creds = {"grant": grant, "access_token": data["access_token"], "scope": data.get("scope")}
    if data.get("expires_in"):
        creds["expires_at"] = to_db(now + timedelta(seconds=int(data["expires_in"])))
    if data.get("refresh_token"):
        creds["refresh_token"] = data["refresh_token"]
        if data.get("refresh_token_expires_in"):
            creds["refresh_token_expires_at"] = to_db(
                now + timedelta(seconds=int(data["refresh_token_expires_in"])))
    return creds


def exchange_code(app, shop: str, code: str) -> dict:
    """Trade an authorization code for an expiring offline token (with its refresh token)."""
    return _token_request(app, shop, {"code": code, "expiring": "1"})


def client_credentials(app, shop: str) -> dict:
    """A 24 h token by the client-credentials grant (an app on the merchant's own store)."""
    return _token_request(app, shop, {"grant_type": "client_credentials"})


def refresh(app, shop: str, creds: dict) -> dict:
    """New credentials for expiring ones: refresh-token rotation, or a new client-credentials token."""
    if creds.get("grant") == "client_credentials":
        return client_credentials(app, shop)
    if not creds.get("refresh_token"):
        raise AuthError(f"the token of {shop} expired and cannot be refreshed; reinstall the app")
    new = _token_request(app, shop, {"grant_type": "refresh_token", "refresh_token": creds["refresh_token"]})
    new["grant"] = creds.get("grant", "authorization_code")
    return new


def needs_refresh(creds: dict, margin: timedelta = timedelta(minutes=5)) -> bool:
    """True when the access token expires within `margin` (tokens without expiry never do)."""
    expires = creds.get("expires_at")
    return bool(expires) and from_db(expires) - margin <= utcnow()

"""HMAC-SHA256 signatures, as Shopify and WooCommerce use them: the one place that signs and checks.

Every check compares in constant time and accepts any of several secrets, so that a platform's
secret can be rotated (the new one first, the previous one still accepted until it is retired), as
Shopify's own app libraries do.
"""
import base64
import hashlib
import hmac


def sign_b64(secret: str, data: bytes) -> str:
    """Base64 HMAC-SHA256 of `data` (Shopify's and WooCommerce's webhook signature)."""
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


def sign_hex(secret: str, data: bytes) -> str:
    """Hex HMAC-SHA256 of `data` (Shopify's signed query strings)."""
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def secrets_of(value) -> list[str]:
    """The secrets in a setting: one, or several separated by commas (newest first)."""
    if not value:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [s.strip() for s in items if s and s.strip()]


def verify(secrets, data: bytes, given: str | None, sign=sign_b64) -> bool:
    """True when `given` is `data`'s signature under one of `secrets` (compared in constant time)."""
    if not given:
        return False
    ok = False
    for secret in secrets_of(secrets):
        ok |= hmac.compare_digest(sign(secret, data), given)  # no early exit: the same time either way
    return ok

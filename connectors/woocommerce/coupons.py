"""Single-use, personal, expiring coupons through `POST /coupons`."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from app.timeutil import UTC

from ..codes import new_code
from .client import WooClient, WooError


def coupon_body(code: str, email: str, percent: Decimal | None, free_shipping: bool,
                expires_at: datetime, amount: Decimal | None = None, min_order: Decimal | None = None) -> dict:
    """The coupon as WooCommerce expects it: bound to one email, one use, expiring at an instant.
    A fixed `amount` is off the cart ("fixed_cart"), else `percent` ("percent", 0 with free
    shipping alone); `min_order` is the cart's minimum ("minimum_amount")."""
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    if amount is not None and not Decimal(amount) > 0:
        raise ValueError("an amount off is more than 0")
    body = {
        "code": code.strip().lower(),
        "discount_type": "fixed_cart" if amount is not None else "percent",
        "amount": f"{Decimal(amount):f}" if amount is not None else str(percent if percent is not None else 0),
        "individual_use": True,
        "usage_limit": 1,
        "usage_limit_per_user": 1,
        "email_restrictions": [email.strip().lower()],
        # An explicit offset: without one WooCommerce reads the time in the store's zone.
        "date_expires": expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "free_shipping": bool(free_shipping),
        "description": f"Winback code for {email.strip().lower()}",
        "meta_data": [{"key": "_winback", "value": "1"}],
    }
    if min_order is not None:
        body["minimum_amount"] = f"{Decimal(min_order):f}"
    return body


def create_coupon(client: WooClient, *, code: str | None, email: str, percent: Decimal | None,
                  free_shipping: bool, expires_at: datetime, attempts: int = 3, amount: Decimal | None = None,
                  min_order: Decimal | None = None) -> str:
    """Create the coupon; returns the code as stored (lower-case).

    A generated code that collides with an existing one is replaced and tried again; a code the
    caller chose is not (the caller may have shown it already).
    """
    if not email:
        raise ValueError("a WooCommerce coupon needs the customer's email")
    chosen = code.strip().lower() if code else None
    for _ in range(attempts):
        try:
            body = client.post("coupons", coupon_body(chosen or new_code().lower(), email, percent,
                                                      free_shipping, expires_at, amount, min_order))
            return str(body["code"]).lower()
        except WooError as exc:
            if exc.code != "woocommerce_rest_coupon_code_already_exists" or chosen:
                raise
    raise WooError("could not find a free coupon code")

"""Signed tokens in email links (keep-subscribed now, unsubscribe later): unforgeable and not
enumerable, because they carry an HMAC made with the installation's secret key."""
from itsdangerous import BadSignature, URLSafeSerializer


def _serializer(app, kind):
    return URLSafeSerializer(app.config["SECRET_KEY"], salt=f"winback-{kind}")


def make(app, kind, shop_id, customer_id) -> str:
    """A token of `kind` for one customer of one shop."""
    return _serializer(app, kind).dumps([shop_id, customer_id])


def read(app, kind, token) -> tuple[int, int] | None:
    """(shop id, customer id) from a token of `kind`, or None when it is forged or malformed."""
    try:
        shop_id, customer_id = _serializer(app, kind).loads(token)
        return int(shop_id), int(customer_id)
    except (BadSignature, ValueError, TypeError):
        return None

"""Signed tokens in email links (keep-subscribed, unsubscribe, the journey's 0-10 answers): unforgeable
and not enumerable, because they carry an HMAC made with the installation's secret key."""
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer


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


def _timed(app, kind):
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=f"winback-{kind}")


def make_timed(app, kind, shop_id, customer_id, *extra) -> str:
    """A token of `kind` for one customer of one shop that expires (see `read_timed`), carrying
    `extra` values (e.g. a message id and an answer) under the same signature."""
    return _timed(app, kind).dumps([shop_id, customer_id, *extra])


def read_timed(app, kind, token, max_age_seconds) -> tuple[str, list | None]:
    """("ok", [shop id, customer id, *extra]) for a good token younger than `max_age_seconds`;
    ("expired", payload) for a genuine one that is older; ("forged", None) for anything else."""
    serializer = _timed(app, kind)
    try:
        payload = serializer.loads(token, max_age=max_age_seconds)
        state = "ok"
    except SignatureExpired as exc:  # the signature is good, only its age is over
        try:
            payload, state = serializer.load_payload(exc.payload), "expired"
        except BadSignature:
            return "forged", None
    except (BadSignature, ValueError, TypeError, UnicodeError):
        return "forged", None
    if not isinstance(payload, list) or len(payload) < 2:
        return "forged", None
    try:
        return state, [int(value) for value in payload]
    except (ValueError, TypeError):
        return "forged", None

"""Bounded input: every route has a body size limit, and a larger body is refused with 413 before
a byte of it is read (Flask's per-request `max_content_length` also caps bodies sent without a
Content-Length while they are read). Forms get FORM_BYTES unless a view says otherwise."""
from flask import abort, current_app, request
from werkzeug.routing import IntegerConverter

FORM_BYTES = 64 * 1024
WEBHOOK_BYTES = 5 * 1024 * 1024
LARGEST_BYTES = WEBHOOK_BYTES  # what the WSGI server itself lets through (`winback serve`)


def body_limit(max_bytes: int):
    """Decorator: the view accepts request bodies up to `max_bytes`."""
    def mark(view):
        view.max_body_bytes = max_bytes
        return view
    return mark


class SQLiteInteger(IntegerConverter):
    """`<int:…>` in URLs: a number SQLite cannot hold matches no route (404), instead of an
    OverflowError (500) when it reaches a query."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", 2 ** 63 - 1)
        super().__init__(map, *args, **kwargs)


def init_app(app):
    """Default the app-wide limit to FORM_BYTES, check each request against its route's limit, and
    bound `<int:…>` URL parts.

    Call before CSRFProtect(app) (its check reads the form, so the limit must be set first) and
    before registering blueprints (their rules take the converter in use then).
    """
    app.url_map.converters["int"] = SQLiteInteger
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = FORM_BYTES
    app.before_request(_limit_body)


def _limit_body():
    view = current_app.view_functions.get(request.endpoint)
    limit = getattr(view, "max_body_bytes", None) or current_app.config["MAX_CONTENT_LENGTH"]
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        abort(413, description=f"The request body is larger than this address accepts ({limit} bytes).")

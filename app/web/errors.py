"""Error pages of our own, in the viewer's language (not Werkzeug's English ones); the machine
endpoints (webhooks, feedback, health) answer errors in JSON as they always did."""
from flask import jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

MACHINE_PREFIXES = ("/webhooks/", "/feedback/", "/healthz", "/woocommerce/callback")


def _texts(code):
    """(title, explanation) of an error code, translated."""
    return {
        400: (_("Bad request"), _("The request could not be understood: a field is missing, malformed or the form "
                                  "has expired. Go back, reload the page and try again.")),
        401: (_("Not signed in"), _("This address needs a valid login or signature.")),
        403: (_("Not allowed"), _("You may not open this page.")),
        404: (_("Page not found"), _("There is no such page, or it belongs to another account. The link may be "
                                     "old or mistyped.")),
        405: (_("Not allowed"), _("This address does not accept this kind of request.")),
        413: (_("Too large"), _("What was sent is larger than this address accepts.")),
        429: (_("Too many attempts"), _("Wait a little, then try again.")),
        500: (_("Something went wrong"), _("The error has been logged. Try again in a moment.")),
        502: (_("The platform did not answer"), _("The shop's platform gave no usable answer. Try again later.")),
        503: (_("Not available"), _("This part of Winback is not set up on this installation.")),
    }.get(code, (_("Error %(code)s", code=code), _("The request could not be completed.")))


def wants_json() -> bool:
    """A machine endpoint, or a client that asks for JSON rather than a page."""
    if request.path.startswith(MACHINE_PREFIXES) or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def handle(error: HTTPException):
    """The error as a page in the viewer's language (or JSON for machines), with its status and headers."""
    code = error.code or 500
    if wants_json():
        response = jsonify(error=error.name, message=error.description)
    else:
        title, text = _texts(code)
        # A platform's or a configuration's own words help the owner fix it (technical, so as they are).
        detail = error.description if code in (502, 503) and error.description != type(error).description else None
        response = render_template("error.html", code=code, title=title, text=text, detail=detail)
    headers = [(k, v) for k, v in error.get_headers() if k.lower() not in ("content-type", "content-length")]
    return response, code, headers


def init_app(app):
    """Handle every HTTP error with `handle`."""
    app.register_error_handler(HTTPException, handle)

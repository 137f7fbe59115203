"""What the flow editor and the campaign pages share about one email: the preview frame, and
"send me a test" to the owner's own address through the shop's configured server."""
from flask import Response, current_app, flash, g
from flask_babel import gettext as _

from ..db import get_db
from ..mailer import build, smtp_url_for
from ..settings import get_settings
from ..users import set_email
from .quick_send import SendFailed, send_now


def html_response(email, origin: str) -> Response:
    """The email's HTML as the preview frame shows it, sandboxed: no script, pictures only from https,
    data: or this server (`origin`)."""
    response = Response(email.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (f"sandbox; default-src 'none'; img-src https: data: {origin};"
                                                   " style-src 'unsafe-inline'")
    return response


def text_response(email, *, with_subject=False) -> Response:
    """The email's plain-text part, for the preview's "text" tab."""
    return Response((email.subject + "\n\n" if with_subject else "") + email.text, mimetype="text/plain")


def send(shop, to: str, render) -> bool:
    """Send `render()` (the email for a real customer, or None when there is none yet) to `to`, the
    owner's address (remembered for next time), marked [TEST]; flash what happened. True when sent."""
    db = get_db()
    set_email(db, g.user["id"], to)
    settings = get_settings(db, shop["id"])
    try:
        url = smtp_url_for(current_app, settings)
    except ValueError:  # saved under another encryption key
        flash(_("The saved SMTP server cannot be read with this installation's key: enter it again under Rules."),
              "error")
        return False
    if not url:
        flash(_("No SMTP server is configured, so nothing was sent. Set one under Rules → SMTP server."), "error")
        return False
    email = render()
    if email is None:
        flash(_("No customer to show the email for yet."), "error")
        return False
    row = {"id": 0, "email": to, "subject": "[TEST] " + email.subject, "body_text": email.text,
           "body_html": email.html, "message_id": None, "is_marketing": 0, "customer_id": None}
    try:  # within quick_send.TIMEOUT seconds, through the configured server only
        send_now(url, build(current_app, shop, settings, row))
    except (SendFailed, ValueError) as exc:  # the owner sees why
        flash(_("The test email could not be sent: %(error)s", error=str(exc)), "error")
        return False
    flash(_("A test email was sent to %(to)s.", to=to))
    return True

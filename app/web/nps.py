"""The journey's 0-10 answer page, `/nps/<token>`: following a number's link in the email records the
answer (updated by a later click) and thanks the customer, in their language, with an optional
comment form.

No login and no CSRF token (the blueprint is in NO_CSRF): the signed token in the URL is the
authority. It names the shop, the customer, the email and the number, expires after
flows.nps.TOKEN_DAYS, and cannot be made without the installation's key, so a cross-site form can
only post what the holder of that email could post themselves; there is no session whose authority
a forged request could borrow. A forged token is 401, an expired one 401 with a page saying so.
"""
from flask import Blueprint, abort, current_app, render_template, request
from flask_babel import force_locale
from flask_login import current_user

from flows import nps
from flows.clicks import is_scanner
from flows.render import pick_locale

from ..db import get_db
from ..timeutil import utcnow
from .i18n import select_locale

bp = Blueprint("nps", __name__)


def _customer(answer):
    rows = list(get_db().query(
        "SELECT c.id, c.locale, s.name AS shop_name, s.locale AS shop_locale FROM customers c"
        " JOIN shops s ON s.id = c.shop_id WHERE c.id = ? AND c.shop_id = ?",
        [answer["customer_id"], answer["shop_id"]]))
    return rows[0] if rows else None


def _page(customer, status=200, **context):
    lang = pick_locale(customer["locale"], customer["shop_locale"]) if customer else select_locale()
    with force_locale(lang):
        return render_template("nps.html", customer=customer, lang=lang, scores=nps.SCORES,
                               comment_max=nps.COMMENT_MAX, **context), status


def _answer_or_refusal(token):
    """(answer, customer, None) for a good token, else (None, None, the 401 page)."""
    state, answer = nps.read_token(current_app, token)
    customer = _customer(answer) if answer else None
    if state == "expired" and customer is not None:
        return None, None, _page(customer, 401, problem="expired")
    if state != "ok" or customer is None:
        return None, None, _page(None, 401, problem="invalid")
    return answer, customer, None


@bp.get("/nps/<token>")
def answer(token):
    """One click on a number: record it (not for a mail scanner's prefetch or a Winback user, who
    get a button instead) and thank the customer."""
    found, customer, refusal = _answer_or_refusal(token)
    if refusal:
        return refusal
    if current_user.is_authenticated or is_scanner(request.method, request.user_agent.string):
        return _page(customer, score=found["score"], confirm=True)
    if nps.record(get_db(), found, utcnow()) is None:
        return _page(None, 401, problem="invalid")
    return _page(customer, score=found["score"], done=True)


@bp.post("/nps/<token>")
def comment(token):
    """The confirm button or the comment form: records the token's number (and the comment)."""
    found, customer, refusal = _answer_or_refusal(token)
    if refusal:
        return refusal
    try:
        text = nps.clean_comment(request.form.get("comment"))
    except ValueError:  # the number still counts; the comment is asked for again
        if nps.record(get_db(), found, utcnow()) is None:
            abort(401)
        return _page(customer, 400, score=found["score"], done=True, too_long=True)
    if nps.record(get_db(), found, utcnow(), comment=text) is None:
        abort(401)
    return _page(customer, score=found["score"], done=True, commented=bool(text))

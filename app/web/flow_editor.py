"""The flows page: each flow on/off, its holdout, steps (delay, discount or free shipping, code
validity), the subject and intro per language, a preview of each email rendered for a real customer
of the shop, and "send me a test" (to the owner, never to the customer)."""
import copy as _copy
import math
from datetime import timedelta

from flask import (Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _

from .auth import TokenForm, login_required, owned_shop_or_404
from ..db import get_db
from .i18n import LANGUAGES
from ..settings import email_address, get_settings
from ..timeutil import to_db, utcnow
from ..users import set_email

bp = Blueprint("flow_pages", __name__)
OFFER_KINDS = ("none", "percent", "free_shipping", "reuse")
MAX_PERCENT = 90  # as flows.definitions.validate_flow


def _posted_step_or_abort(flow, step):
    """404 for a step the flow does not have; 400 for a form without a valid CSRF token."""
    if step >= len(flow["steps"]):
        abort(404)
    if not TokenForm().validate_on_submit():
        abort(400)


def _flow(shop, name):
    from flows.definitions import load_flows
    flows = load_flows(get_db(), shop["id"])
    if name not in flows:
        abort(404)
    return flows[name]


def _lang():
    lang = request.values.get("lang")
    if lang not in LANGUAGES:
        from .i18n import select_locale
        lang = select_locale()
    return lang


def sample_customer(db, shop, flow) -> dict | None:
    """A real customer of the shop to render the emails for: one in the flow's segment when there is
    one, else any customer with an email address."""
    rows = list(db.query(
        "SELECT c.* FROM customers c WHERE c.shop_id = :s AND c.email IS NOT NULL"
        " ORDER BY c.id IN (SELECT customer_id FROM customer_segments WHERE shop_id = :s AND segment = :seg) DESC,"
        " c.first_name IS NULL, c.id LIMIT 1", {"s": shop["id"], "seg": flow["entry"]}))
    return rows[0] if rows else None


def _offer_for(flow, step_no):
    """The offer a step carries, following "reuse" back to the code it reuses."""
    for step in reversed(flow["steps"][:step_no + 1]):
        offer = step.get("offer")
        if not offer or not offer.get("reuse"):
            return offer
    return None


def render_step(db, shop, flow, step_no, lang, customer, copy_override=None):
    """The step's email as `customer` would get it, in `lang`, with a sample code and dead links
    (and, for a live preview, the subject/intro being typed instead of the saved ones)."""
    from flows.render import render
    step = flow["steps"][step_no]
    offer = _offer_for(flow, step_no)
    code = None
    if offer and flow["kind"] == "promotional":
        expires = utcnow() + timedelta(days=offer.get("valid_days", 3))
        code = {"id": None, "code": "WB-PREVIEW", "percent": None if offer.get("free_shipping") else offer.get("percent"),
                "expires_at": to_db(expires)}
    products = [r[0] for r in db.execute(
        "SELECT DISTINCT COALESCE(l.title, l.sku) FROM order_lines l JOIN orders o ON o.id = l.order_id"
        " WHERE o.customer_id = ? AND COALESCE(l.title, l.sku) IS NOT NULL LIMIT 2", [customer["id"]])]
    dead = current_app.config["APP_URL"] + "/#preview"
    return render(step["template"], shop=shop, customer={**customer, "locale": lang}, code=code,
                  products=products or None, links={"keep_url": dead, "unsubscribe_url": dead}, db=db,
                  copy_override=copy_override)


@bp.get("/shops/<handle>/flows")
@login_required
def index(handle):
    """All flows with their state; each links to its editor."""
    from flows.definitions import load_flows
    shop = owned_shop_or_404(handle)
    return render_template("flows.html", shop=shop, flows=load_flows(get_db(), shop["id"]), form=TokenForm())


def _number(raw, *, lo, hi, integer=True):
    text = (raw or "").strip().replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(_("enter a number")) from None
    if not math.isfinite(value):
        raise ValueError(_("enter a number"))
    if integer and value != int(value):
        raise ValueError(_("enter a whole number"))
    if value < lo or value > hi:
        raise ValueError(_("must be between %(lo)s and %(hi)s", lo=lo, hi=hi))
    return int(value) if integer else value


def parse_flow_form(flow, form) -> tuple[dict, dict]:
    """The flow as edited in the form, and {field: message} for what is refused."""
    errors = {}
    new = _copy.deepcopy(flow)
    new.pop("name", None)
    new["enabled"] = form.get("enabled") == "on"
    try:
        new["holdout"] = _number(form.get("holdout"), lo=0, hi=50, integer=False) / 100
    except ValueError as exc:
        errors["holdout"] = str(exc)
    last = 0
    for i, step in enumerate(new["steps"]):
        try:
            delay = _number(form.get(f"step{i}_delay"), lo=0, hi=365)
            if delay < last:
                raise ValueError(_("cannot come before the previous email (day %(day)s)", day=last))
            step["delay_days"] = last = delay
        except ValueError as exc:
            errors[f"step{i}_delay"] = str(exc)
        if flow["kind"] != "promotional":
            continue
        kind = form.get(f"step{i}_offer", "none")
        if kind not in OFFER_KINDS or (kind == "reuse" and i == 0):
            errors[f"step{i}_offer"] = _("choose an offer")
            continue
        if kind == "none":
            step["offer"] = None
        elif kind == "reuse":
            step["offer"] = {"reuse": True}
        else:
            offer = {}
            try:
                offer["valid_days"] = _number(form.get(f"step{i}_valid_days"), lo=1, hi=365)
            except ValueError as exc:
                errors[f"step{i}_valid_days"] = str(exc)
            if kind == "free_shipping":
                offer["free_shipping"] = True
            else:
                try:
                    pct = _number(form.get(f"step{i}_percent"), lo=float("-inf"), hi=float("inf"), integer=False)
                    if not 0 < pct <= MAX_PERCENT:
                        raise ValueError(_("a discount must be more than 0 %% and at most %(max)s %%", max=MAX_PERCENT))
                    offer["percent"] = int(pct) if pct == int(pct) else pct
                except ValueError as exc:
                    errors[f"step{i}_percent"] = str(exc)
            step["offer"] = offer
    return new, errors


def _editor(shop, flow, lang, errors=None, values=None, status=200):
    from flows.copy import get_copy
    db = get_db()
    customer = sample_customer(db, shop, flow)
    steps = []
    for i, step in enumerate(flow["steps"]):
        rendered = render_step(db, shop, flow, i, lang, customer) if customer else None
        steps.append({"no": i, "step": step, "copy": get_copy(db, shop["id"], step["template"], lang),
                      "subject": rendered.subject if rendered else None})
    user_email = db.execute("SELECT email FROM users WHERE id = ?", [g.user["id"]]).fetchone()[0]
    return render_template("flow.html", shop=shop, flow=flow, steps=steps, lang=lang, customer=customer,
                           errors=errors or {}, values=values, form=TokenForm(), user_email=user_email or ""), status


@bp.route("/shops/<handle>/flows/<name>", methods=["GET", "POST"])
@login_required
def edit(handle, name):
    """One flow: its settings form (all or nothing), and per step the copy, the preview and a test send."""
    from flows.definitions import FlowError, save_flow
    shop = owned_shop_or_404(handle)
    flow = _flow(shop, name)
    lang = _lang()
    if request.method == "GET":
        return _editor(shop, flow, lang)
    if not TokenForm().validate_on_submit():
        abort(400)
    new, errors = parse_flow_form(flow, request.form)
    if not errors:
        try:
            save_flow(get_db(), shop["id"], name, new)
        except FlowError as exc:
            errors["flow"] = str(exc)
    if errors:
        return _editor(shop, flow, lang, errors, request.form, 422)
    flash(_("Saved. The changes apply from the next run of the flows."))
    return redirect(url_for("flow_pages.edit", handle=handle, name=name, lang=lang))


@bp.post("/shops/<handle>/flows/<name>/toggle")
@login_required
def toggle(handle, name):
    """Turn a flow on or off from the list."""
    from flows.definitions import save_flow
    shop = owned_shop_or_404(handle)
    flow = _flow(shop, name)
    if not TokenForm().validate_on_submit():
        abort(400)
    flow = {k: v for k, v in flow.items() if k != "name"}
    flow["enabled"] = not flow["enabled"]
    save_flow(get_db(), shop["id"], name, flow)
    flash(_("Saved. The changes apply from the next run of the flows."))
    return redirect(url_for("flow_pages.index", handle=handle))


@bp.post("/shops/<handle>/flows/<name>/<int:step>/copy")
@login_required
def save_copy(handle, name, step):
    """The subject and intro of one step in one language (empty: the default text)."""
    from flows.copy import save_copy as store
    shop = owned_shop_or_404(handle)
    flow = _flow(shop, name)
    lang = _lang()
    _posted_step_or_abort(flow, step)
    subject = (request.form.get("subject") or "").strip() or None
    intro = request.form.get("intro") or None
    try:
        store(get_db(), shop["id"], flow["steps"][step]["template"], lang, subject=subject, intro=intro)
    except ValueError as exc:
        from .rules import translate_error
        field, _sep, message = str(exc).partition(": ")
        field = "intro" if field == "intro" else "subject"
        return _editor(shop, flow, lang, {f"copy{step}_{field}": translate_error(message or str(exc))},
                       request.form, 422)
    flash(_("Saved the text of email %(n)s (%(lang)s).", n=step + 1, lang=LANGUAGES[lang]))
    return redirect(url_for("flow_pages.edit", handle=handle, name=name, lang=lang) + f"#step{step}")


@bp.get("/shops/<handle>/flows/<name>/<int:step>/preview")
@login_required
def preview(handle, name, step):
    """The step's HTML email for a real customer of the shop (or its text part with ?part=text)."""
    shop = owned_shop_or_404(handle)
    flow = _flow(shop, name)
    if step >= len(flow["steps"]):
        abort(404)
    db = get_db()
    customer = sample_customer(db, shop, flow)
    if customer is None:
        return Response(_("No customer to show the email for yet."), mimetype="text/plain")
    override = None
    if "subject" in request.args or "intro" in request.args:  # live preview of text being typed
        from flows.copy import _clean_intro, _clean_subject
        try:
            override = {"subject": _clean_subject(request.args.get("subject", "").strip() or None),
                        "intro": _clean_intro(request.args.get("intro") or None)}
        except ValueError:
            override = None  # not valid yet: show the saved text
    email = render_step(db, shop, flow, step, _lang(), customer, override)
    if request.args.get("part") == "text":
        return Response(email.text, mimetype="text/plain")
    response = Response(email.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src https: data:; style-src 'unsafe-inline'"
    return response


@bp.post("/shops/<handle>/flows/<name>/<int:step>/test")
@login_required
def send_test(handle, name, step):
    """Send the step, rendered for a real customer, to the owner's address; never to the customer."""
    from ..mailer import build, smtp_url_for
    from .quick_send import SendFailed, send_now
    shop = owned_shop_or_404(handle)
    flow = _flow(shop, name)
    lang = _lang()
    back = url_for("flow_pages.edit", handle=handle, name=name, lang=lang) + f"#step{step}"
    _posted_step_or_abort(flow, step)
    db = get_db()
    try:
        to = email_address(optional=False)(request.form.get("email"))
    except ValueError as exc:
        return _editor(shop, flow, lang, {f"test{step}_email": str(exc)}, request.form, 422)
    set_email(db, g.user["id"], to)
    settings = get_settings(db, shop["id"])
    try:
        url = smtp_url_for(current_app, settings)
    except ValueError:  # saved under another encryption key
        flash(_("The saved SMTP server cannot be read with this installation's key: enter it again under Rules."), "error")
        return redirect(back)
    if not url:
        flash(_("No SMTP server is configured, so nothing was sent. Set one under Rules → SMTP server."), "error")
        return redirect(back)
    customer = sample_customer(db, shop, flow)
    if customer is None:
        flash(_("No customer to show the email for yet."), "error")
        return redirect(back)
    email = render_step(db, shop, flow, step, lang, customer)
    row = {"id": 0, "email": to, "subject": "[TEST] " + email.subject, "body_text": email.text,
           "body_html": email.html, "message_id": None, "is_marketing": 0, "customer_id": None}
    try:  # within quick_send.TIMEOUT seconds, through the configured server only
        send_now(url, build(current_app, shop, settings, row))
    except (SendFailed, ValueError) as exc:  # the owner sees why
        flash(_("The test email could not be sent: %(error)s", error=str(exc)), "error")
        return redirect(back)
    flash(_("A test email was sent to %(to)s.", to=to))
    return redirect(back)

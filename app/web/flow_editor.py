"""The flows page: each flow on/off, its holdout, steps (delay; offer: percent, amount off, free
shipping, the earlier code or none; code validity and minimum order), the copy per step and language
(subject, preheader, heading, intro, reason block, button label, product count; flows.copy), a
preview of each email rendered for a real customer of the shop that follows what is typed, and "send
me a test" (to the owner, never to the customer)."""
from datetime import timedelta
from decimal import Decimal

from flask import Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from flows.copy import PLACEHOLDERS, CopyError, get_copy, product_count, save_copy as store
from flows.definitions import FlowError, load_flows, offer_kind, save_flow
from flows.category_winback import sample_category
from flows.products import CATEGORY_TEMPLATES, blocks as product_blocks, picks_for
from flows.render import render
from flows.storefront import shop_target

from ..db import get_db
from ..money import to_minor
from ..settings import get_settings, refusal
from ..timeutil import to_db, utcnow
from . import guided_start, test_send
from .auth import TokenForm, login_required, owned_shop_or_404
from .forms import CopyForm, TestSendForm, flow_form, translated
from .i18n import LANGUAGES, select_locale

bp = Blueprint("flow_pages", __name__)
COPY_FIELDS = ("subject", "preheader", "heading", "intro", "reason", "button", "products")


def _posted_step_or_abort(flow, step):
    """404 for a step the flow does not have; 400 for a form without a valid CSRF token."""
    if step >= len(flow["steps"]):
        abort(404)
    if not TokenForm().validate_on_submit():
        abort(400)


def _flow(shop, name):
    flows = load_flows(get_db(), shop["id"])
    if name not in flows:
        abort(404)
    return flows[name]


def _lang():
    lang = request.values.get("lang")
    if lang not in LANGUAGES:
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


def sample_code(offer, currency, expires_at) -> dict:
    """A code as the step would make it (what an email quotes of it), for previews."""
    kind = offer_kind(offer)
    minor = lambda key: to_minor(Decimal(str(offer[key])), currency) if offer.get(key) else None  # noqa: E731
    return {"id": None, "code": "WB-PREVIEW", "kind": kind, "percent": offer.get("percent"),
            "amount_minor": minor("amount"), "min_order_minor": minor("min_order"), "currency": currency,
            "expires_at": expires_at}


def render_step(db, shop, flow, step_no, lang, customer, copy_override=None, app_url=None):
    """The step's email as `customer` would get it, in `lang`, with a sample code and dead links but
    the shop button's, which leads to the storefront untracked (and, for a live preview, the
    copy being typed instead of the saved one). `app_url`: where this installation's own
    pictures (the demo shop's) are served from, APP_URL unless given."""
    step = flow["steps"][step_no]
    offer = _offer_for(flow, step_no)
    code = None
    if offer and flow["kind"] == "promotional":
        expires = utcnow() + timedelta(days=offer.get("valid_days", 3))
        code = sample_code(offer, shop["currency"], to_db(expires))
    products = [r[0] for r in db.execute(
        "SELECT DISTINCT COALESCE(l.title, l.sku) FROM order_lines l JOIN orders o ON o.id = l.order_id"
        " WHERE o.customer_id = ? AND COALESCE(l.title, l.sku) IS NOT NULL LIMIT 2", [customer["id"]])]
    dead = current_app.config["APP_URL"] + "/#preview"
    store = shop_target(shop, get_settings(db, shop["id"]), code and code["code"],
                        app_url=current_app.config["APP_URL"])
    copy = copy_override if copy_override is not None else get_copy(db, shop["id"], step["template"], lang)
    category = (sample_category(db, shop["id"], customer.get("id")) if step["template"] in CATEGORY_TEMPLATES
                else None)
    items = product_blocks(picks_for(db, shop["id"], customer.get("id"), step["template"], product_count(copy),
                                     category=category), shop,
                           get_settings(db, shop["id"]), app_url or current_app.config["APP_URL"],
                           code and code["code"])
    return render(step["template"], shop=shop, customer={**customer, "locale": lang}, code=code,
                  products=products or None, items=items,
                  links={"keep_url": dead, "unsubscribe_url": dead, "shop_url": store},
                  db=db, copy_override=copy_override, category=category)


@bp.get("/shops/<handle>/flows")
@login_required
def index(handle):
    """All flows with their state; each links to its editor."""
    shop = owned_shop_or_404(handle)
    return render_template("flows.html", shop=shop, flows=load_flows(get_db(), shop["id"]), form=TokenForm())


def _editor(shop, flow, lang, errors=None, fform=None, typed=None, status=200):
    """The editor page. `fform` is the flow form as posted (else the saved flow fills it); `typed` is
    what was typed into a refused copy or test form, shown again; the other forms keep their values."""
    db = get_db()
    customer = sample_customer(db, shop, flow)
    steps = []
    for i, step in enumerate(flow["steps"]):
        rendered = render_step(db, shop, flow, i, lang, customer) if customer else None
        copy = get_copy(db, shop["id"], step["template"], lang)
        refused = any(key.startswith(f"copy{i}_") for key in (errors or {}))
        values = ({field: (typed or {}).get(field, "") for field in COPY_FIELDS} if refused
                  else {field: "" if copy[field] is None else copy[field] for field in COPY_FIELDS})
        steps.append({"no": i, "step": step, "copy": copy, "fields": values,
                      "subject": rendered.subject if rendered else None})
    user_email = db.execute("SELECT email FROM users WHERE id = ?", [g.user["id"]]).fetchone()[0]
    return render_template("flow.html", shop=shop, flow=flow, steps=steps, lang=lang, customer=customer,
                           errors=errors or {}, fform=fform or flow_form(flow, currency=shop["currency"]),
                           typed=typed or {}, placeholders=PLACEHOLDERS,
                           form=TokenForm(), user_email=user_email or ""), status


@bp.route("/shops/<handle>/flows/<name>", methods=["GET", "POST"])
@login_required
def edit(handle, name):
    """One flow: its settings form (all or nothing), and per step the copy, the preview and a test send."""
    shop = owned_shop_or_404(handle)
    flow = _flow(shop, name)
    lang = _lang()
    if request.method == "GET":
        guided_start.note_review(shop, name)
        return _editor(shop, flow, lang)
    fform = flow_form(flow, request.form, currency=shop["currency"])
    valid = fform.validate()
    if fform.csrf_token.errors:
        abort(400)
    errors = fform.errors_by_field()
    if valid:
        try:
            save_flow(get_db(), shop["id"], name, fform.to_flow(flow))
        except FlowError as exc:
            errors["flow"] = str(exc)
    if errors:
        return _editor(shop, flow, lang, errors, fform, status=422)
    flash(_("Saved. The changes apply from the next run of the flows."))
    return redirect(url_for("flow_pages.edit", handle=handle, name=name, lang=lang))


@bp.post("/shops/<handle>/flows/<name>/toggle")
@login_required
def toggle(handle, name):
    """Turn a flow on or off from the list."""
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
    """The copy of one step in one language (each field empty: the default)."""
    shop = owned_shop_or_404(handle)
    flow = _flow(shop, name)
    lang = _lang()
    _posted_step_or_abort(flow, step)
    form = CopyForm()
    typed = {field: form[field].data or "" for field in COPY_FIELDS}
    if not form.validate():
        return _editor(shop, flow, lang, {f"copy{step}_{name}": str(messages[0]) for name, messages
                                          in form.errors.items() if name != "csrf_token"}, typed=typed, status=422)
    try:
        store(get_db(), shop["id"], flow["steps"][step]["template"], lang, **form.copy())
    except CopyError as exc:  # a rule of flows.copy the form does not know
        return _editor(shop, flow, lang, {f"copy{step}_{exc.field}": translated(refusal(exc))}, typed=typed,
                       status=422)
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
    if any(field in request.args for field in COPY_FIELDS):  # live preview of text being typed
        typed = CopyForm(request.args, meta={"csrf": False})
        if typed.validate():  # else not valid yet: show the saved text
            override = typed.copy()
    # The demo shop's product pictures come from this server, as the browser reaches it.
    origin = request.host_url.rstrip("/")
    email = render_step(db, shop, flow, step, _lang(), customer, override, app_url=origin)
    if request.args.get("part") == "text":
        return test_send.text_response(email)
    return test_send.html_response(email, origin)


@bp.post("/shops/<handle>/flows/<name>/<int:step>/test")
@login_required
def send_test(handle, name, step):
    """Send the step, rendered for a real customer, to the owner's address; never to the customer."""
    shop = owned_shop_or_404(handle)
    flow = _flow(shop, name)
    lang = _lang()
    back = url_for("flow_pages.edit", handle=handle, name=name, lang=lang) + f"#step{step}"
    _posted_step_or_abort(flow, step)
    db = get_db()
    form = TestSendForm()
    if not form.validate():  # the flow form and the texts stay as saved: only this address was refused
        return _editor(shop, flow, lang, {f"test{step}_email": str(form.email.errors[0])},
                       typed={"email": form.email.data or ""}, status=422)

    def email():
        customer = sample_customer(db, shop, flow)
        return render_step(db, shop, flow, step, lang, customer) if customer else None

    if test_send.send(shop, form.email.parsed, email):
        guided_start.note_test_sent(shop)
    return redirect(back)

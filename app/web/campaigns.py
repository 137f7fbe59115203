"""The campaigns pages: the shop's one-off emails (flows/campaigns.py) listed with how each went, a
form to schedule one (segment, template, subject, offer, time in the shop's time zone, holdout), and
per campaign its preview for a real customer, "send me a test" (to the owner, never the customer),
its report with the lift against its holdout, and cancel."""
from flask import Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from wtforms.fields.choices import SelectChoice

from flows.campaigns import (
    CampaignError,
    cancel as cancel_campaign,
    create as create_campaign,
    get as get_campaign,
    render_preview,
    report as campaign_report,
    sample_member,
    segment_choices,
)
from flows.storefront import shop_target

from ..db import get_db
from ..settings import get_settings
from ..timeutil import from_db, utcnow, zone
from . import test_send
from .auth import TokenForm, login_required, owned_shop_or_404
from .forms import CampaignForm, TestSendForm
from .i18n import LANGUAGES, select_locale

bp = Blueprint("campaign_pages", __name__)


def _lang():
    lang = request.values.get("lang")
    return lang if lang in LANGUAGES else select_locale()


def _campaign(shop, campaign_id):
    campaign = get_campaign(get_db(), shop["id"], campaign_id)
    if campaign is None:
        abort(404)
    return campaign


def local_time(value, shop) -> str:
    """A stored UTC time as the shop's clock reads it (YYYY-MM-DD HH:MM)."""
    return from_db(value).astimezone(zone(shop["timezone"] or "UTC")).strftime("%Y-%m-%d %H:%M") if value else ""


def _rows(shop):
    return {row["id"]: row for row in campaign_report(get_db(), shop, utcnow())}


@bp.get("/shops/<handle>/campaigns")
@login_required
def index(handle):
    """Every campaign of the shop: what goes out when, and how each went."""
    shop = owned_shop_or_404(handle)
    return render_template("campaigns.html", shop=shop, rows=list(_rows(shop).values()), local_time=local_time)


def _form_page(shop, form, status=200):
    return render_template("campaign_new.html", shop=shop, form=form), status


@bp.route("/shops/<handle>/campaigns/new", methods=["GET", "POST"])
@login_required
def new(handle):
    """Schedule a campaign; a refused value is shown next to its field and nothing is saved."""
    shop = owned_shop_or_404(handle)
    db = get_db()
    counts = segment_choices(db, shop["id"])
    form = CampaignForm()
    form.segment.choices = [SelectChoice(name, str(n)) for name, n in counts.items()]
    if request.method == "GET":
        return _form_page(shop, form)
    now = utcnow()
    if not form.validate(timezone=shop["timezone"] or "UTC", now=now):
        if form.csrf_token.errors:
            abort(400)
        return _form_page(shop, form, 422)
    try:
        campaign = create_campaign(db, shop, segment=form.segment.data, template=form.template.data,
                                   subject=form.subject.parsed, offer=form.offer_text(), at=form.at.parsed,
                                   holdout=form.holdout.parsed, now=now)
    except CampaignError as exc:  # the core's last word (the form checks the same)
        flash(_("The campaign was not saved: %(error)s", error=str(exc)), "error")
        return _form_page(shop, form, 422)
    flash(_("Campaign %(id)s is scheduled for %(at)s.", id=campaign["id"],
            at=local_time(campaign["scheduled_for"], shop)))
    return redirect(url_for("campaign_pages.show", handle=handle, campaign_id=campaign["id"]))


@bp.get("/shops/<handle>/campaigns/<int:campaign_id>")
@login_required
def show(handle, campaign_id):
    """One campaign: what, to whom, when; its preview, a test send, its report, and cancel."""
    shop = owned_shop_or_404(handle)
    campaign = _campaign(shop, campaign_id)
    db = get_db()
    row = _rows(shop).get(campaign_id)
    return render_template("campaign.html", shop=shop, c=campaign, row=row, lang=_lang(), LANGUAGES=LANGUAGES,
                           customer=sample_member(db, shop, campaign), form=TokenForm(), test_form=TestSendForm(),
                           user_email=_user_email(db), local_time=local_time)


def _user_email(db) -> str:
    return db.execute("SELECT email FROM users WHERE id = ?", [g.user["id"]]).fetchone()[0] or ""


def _render(shop, campaign, lang, customer, app_url):
    db = get_db()
    dead = current_app.config["APP_URL"] + "/#preview"
    store = shop_target(shop, get_settings(db, shop["id"]), "WB-PREVIEW" if campaign["offer"] else None,
                        app_url=current_app.config["APP_URL"])
    return render_preview(db, shop, campaign, customer, lang, app_url=app_url,
                          links={"unsubscribe_url": dead, "shop_url": store})


@bp.get("/shops/<handle>/campaigns/<int:campaign_id>/preview")
@login_required
def preview(handle, campaign_id):
    """The campaign's HTML email for a real customer of the shop (its text part with ?part=text)."""
    shop = owned_shop_or_404(handle)
    campaign = _campaign(shop, campaign_id)
    customer = sample_member(get_db(), shop, campaign)
    if customer is None:
        return Response(_("No customer to show the email for yet."), mimetype="text/plain")
    origin = request.host_url.rstrip("/")  # the demo shop's pictures, as the browser reaches this server
    email = _render(shop, campaign, _lang(), customer, origin)
    if request.args.get("part") == "text":
        return test_send.text_response(email, with_subject=True)
    return test_send.html_response(email, origin)


@bp.post("/shops/<handle>/campaigns/<int:campaign_id>/test")
@login_required
def send_test(handle, campaign_id):
    """Send the campaign's email, rendered for a real customer, to the owner's address only."""
    shop = owned_shop_or_404(handle)
    campaign = _campaign(shop, campaign_id)
    lang = _lang()
    back = url_for("campaign_pages.show", handle=handle, campaign_id=campaign_id, lang=lang)
    form = TestSendForm()
    if not form.validate():
        if form.csrf_token.errors:
            abort(400)
        flash(_("The test email could not be sent: %(error)s", error=str(form.email.errors[0])), "error")
        return redirect(back)
    db = get_db()

    def email():
        customer = sample_member(db, shop, campaign)
        return _render(shop, campaign, lang, customer, current_app.config["APP_URL"]) if customer else None

    test_send.send(shop, form.email.parsed, email)
    return redirect(back)


@bp.post("/shops/<handle>/campaigns/<int:campaign_id>/cancel")
@login_required
def cancel(handle, campaign_id):
    """Cancel the campaign (one that is sending stops; what it has not delivered is withheld)."""
    shop = owned_shop_or_404(handle)
    _campaign(shop, campaign_id)
    if not TokenForm().validate_on_submit():
        abort(400)
    try:
        cancel_campaign(get_db(), shop, campaign_id, utcnow())
    except CampaignError:
        flash(_("This campaign is done: there is nothing left to cancel."), "error")
    else:
        flash(_("Campaign %(id)s is cancelled; nothing more of it will be sent.", id=campaign_id))
    return redirect(url_for("campaign_pages.show", handle=handle, campaign_id=campaign_id))

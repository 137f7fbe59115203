"""The thresholds and rules page: segment thresholds, VIP, frequency caps, send window, time zone,
sender, postal address and (WooCommerce) consent source. Saved values take effect on the next tick,
which reads the settings afresh."""
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import available_timezones

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l

from connectors.store import change_timezone

from .. import dkim, mail_dns
from ..db import get_db
from ..settings import get_settings, save_settings
from .auth import login_required, owned_shop_or_404
from .forms import rules_form, translated

bp = Blueprint("settings_pages", __name__)

# (section, [(key, label, help)]) in page order; "timezone" is the shops column, not a setting.
SECTIONS = [
    (_l("Who counts as lapsed, lost and VIP"), [
        ("lapse_factor", _l("Lapse factor"), _l("A repeat buyer lapses after this many times their usual gap between orders (1 to 10).")),
        ("lapse_min_days", _l("Lapse at the earliest after (days)"), _l("Never call anyone lapsed before this many days.")),
        ("lost_days", _l("Lost after (days)"), _l("A customer without an order for this long is lost.")),
        ("one_time_return_days", _l("One-time buyers lapse after (days)"), _l("Leave empty to learn it from the shop.")),
        ("vip_percentile", _l("VIP percentile"), _l("VIP: lifetime value at or above this percentile (50 to 99.9).")),
        ("vip_min_amount", _l("VIP amount"), _l("VIP: lifetime value at or above this amount; replaces the percentile when set.")),
        ("new_days", _l("New for (days)"), _l("A customer is new for this many days after their first order.")),
        ("one_time_return_min_returners", _l("Learn the one-time threshold from at least (customers)"), None),
        ("one_time_return_fallback_days", _l("Otherwise one-time buyers lapse after (days)"), None),
        ("category_lapse_factor", _l("Category lapse factor"), _l("A category lapses after this many times the customer's usual gap for it.")),
        ("replenish_lead_days", _l("Reorder reminder: days before the due date"), None),
    ]),
    (_l("How often and when emails go out"), [
        ("cap_per_day", _l("Emails per customer per day"), None),
        ("cap_per_week", _l("Emails per customer per week"), None),
        ("window_start", _l("Send from (hour)"), _l("Shop time, 0 to 23.")),
        ("window_end", _l("Send until (hour)"), _l("Shop time, 1 to 24; after the start.")),
        ("timezone", _l("Time zone"), _l("For example Europe/Amsterdam.")),
        ("discount_cooldown_days", _l("Days between discounts"), _l("At most one discounted flow per customer in this many days.")),
        ("conversion_days", _l("Days an email gets credit for an order"), None),
        ("max_lateness_hours", _l("Never send later than (hours after the plan)"),
         _l("An email that could not leave within this many hours of its planned time is withheld, not sent late.")),
        ("send_rate_per_minute", _l("Emails per minute"), _l("Empty: as fast as the mail server takes them.")),
        ("offer_test_auto_promote", _l("Make a better tested offer the default by itself"),
         _l("When an offer test finds an offer that earns more than the others with confidence, "
            "Winback makes it the email's offer at its next run.")),
    ]),
    (_l("Sender"), [
        ("sender_name", _l("Sender name"), _l("Empty: the shop's name.")),
        ("sender_email", _l("Sender address"), None),
        ("postal_address", _l("Postal address"), _l("Shown in every email footer; the law requires it.")),
        ("smtp_url", _l("SMTP server"), _l("smtps://user:password@mail.example.com:465. Kept encrypted and never shown again: leave the field empty to keep the saved one. Without one, the installation's server sends.")),
        ("brand_logo_url", _l("Logo"), _l("An https:// image URL shown at the top of emails.")),
        ("brand_color", _l("Brand colour"), _l("Like #2f7d5b.")),
        ("store_url", _l("Storefront address"),
         _l("Where the button in every email leads, like https://shop.example.com. Empty: the store's address on its platform.")),
    ]),
    (_l("Marketing consent"), [
        ("woo_consent_source", _l("Consent source"),
         _l('WooCommerce: "none" (nobody), "meta:<key>" (a customer meta key such as mailchimp_woocommerce_is_subscribed) or "soft_opt_in" (everyone who bought).')),
    ]),
]

# Issue #15: the model's say in who is lapsed, and the discount guardrails (README "Who is worth winning back").
SECTIONS.append((_l("Who is worth winning back, and with what"), [
    ("lapse_horizon_days", _l("Lapse horizon (days)"),
     _l("An overdue repeat buyer lapses only when an order within this many days is unlikely.")),
    ("lapse_max_probability", _l("Unlikely means a chance below"), _l("0.01 to 0.99; 0.1 means one in ten.")),
    ("one_time_lapse_share", _l("One-time buyers lapse when fewer returning customers came back later than"),
     _l("A share, 0.01 to 0.99: 0.2 lapses them once four in five of your returning customers would have been back.")),
    ("discount_skip_probability", _l("No discount for customers this likely to order anyway"),
     _l("Their chance of an order within 30 days, 0.01 to 1; they still get the email, without a code.")),
    ("discount_min_worth", _l("No discount for customers worth less than"),
     _l("What the customer is worth if won back, in the shop's currency. Empty: no floor.")),
    ("discount_max_percent", _l("Largest discount (%)"),
     _l("For the most valuable customers; less valuable ones get less. Empty: the flows' percentages, for everyone.")),
    ("discount_min_percent", _l("Smallest discount (%)"),
     _l("For the less valuable half, when a largest discount is set.")),
]))


def _fields(shop) -> list[str]:
    keys = [row[0] for _title, rows in SECTIONS for row in rows]
    if shop["platform"] != "woocommerce":
        keys.remove("woo_consent_source")
    return keys


def masked_smtp_url(secret) -> str | None:
    """The saved SMTP URL with its password replaced by dots, for showing; None when none is saved.

    The password is never shown back, not even to the owner who typed it.
    """
    if secret is None:
        return None
    try:
        url = secret.reveal(current_app) if hasattr(secret, "reveal") else secret
    except ValueError:
        return _("saved, but this installation's key cannot read it: enter it again")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username:
        host = f"{parts.username}{':••••' if parts.password is not None else ''}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _shown(value):
    if isinstance(value, bool):  # a checkbox: checked when "on"
        return "on" if value else ""
    return "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


def mail_authentication(shop, stored) -> dict:
    """The DKIM record to publish (or why there is none) and the sender domain's SPF, DKIM and DMARC
    checks, advice translated. DNS is asked here, outside any transaction, within mail_dns.TIMEOUT."""
    record, problem = None, None
    try:
        key = dkim.stored_key(current_app, shop)
        record = dkim.record(key) if key else None
    except dkim.DkimError:
        problem = _("A DKIM key is saved, but this installation's key cannot read it: "
                    "run winback dkim --shop %(handle)s --rotate and publish the new record.", handle=shop["handle"])
    result = mail_dns.check(current_app, dkim.sender_domain(current_app, stored), record, handle=shop["handle"])
    for item in result["checks"]:
        item["advice"] = translated(item["advice"])
    return {**result, "record": record, "problem": problem}


@bp.route("/shops/<handle>/settings", methods=["GET", "POST"])
@login_required
def edit(handle):
    """Show the rules; on POST validate everything, save all or nothing, and say what was refused."""
    db = get_db()
    shop = owned_shop_or_404(handle)
    keys = _fields(shop)
    stored = get_settings(db, shop["id"])
    current = {k: _shown(stored.get(k)) for k in keys if k != "timezone"} | {"timezone": shop["timezone"]}
    current["smtp_url"] = ""  # a secret: the field starts empty, and empty keeps the saved one
    labels = {key: label for _title, rows in SECTIONS for key, label, _help in rows}
    form = rules_form(keys, labels)(data=current if request.method == "GET" else None)
    errors = {}
    if request.method == "POST":
        valid = form.validate()
        if form.csrf_token.errors:
            abort(400)
        if valid:
            submitted = {k: getattr(form, k).data for k in keys}
            tz = (submitted.pop("timezone") or "").strip()
            if not (submitted.get("smtp_url") or "").strip():
                if form.smtp_url_clear.data:
                    submitted["smtp_url"] = None
                else:
                    submitted.pop("smtp_url", None)
            # Each value passed its own check; the rules that tie values together are judged on saving.
            errors = {k: translated(v) for k, v in save_settings(db, shop["id"], submitted, app=current_app)[1].items()}
            if not errors:
                if tz != shop["timezone"]:
                    change_timezone(db, shop["id"], tz)  # with its orders' days
                flash(_("Saved. The changes apply from the next run of the flows."))
                return redirect(url_for("settings_pages.edit", handle=handle))
        else:
            errors = {name: str(messages[0]) for name, messages in form.errors.items() if name != "csrf_token"}
    sections = [(title, [row for row in rows if row[0] in keys]) for title, rows in SECTIONS]
    auth = mail_authentication(shop, stored)
    form.smtp_url.data = ""  # what was typed is not sent back either
    return render_template("settings.html", shop=shop, form=form, sections=sections, errors=errors,
                           current=current, smtp_saved=masked_smtp_url(stored.get("smtp_url")),
                           zones=sorted(available_timezones()), auth=auth), (422 if errors else 200)

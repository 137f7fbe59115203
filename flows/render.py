"""Rendering a flow step into the email a customer receives: subject, text part and HTML part.

Templates live in templates/emails/:

    base.html, base.txt          the two layouts (HTML with the shop's branding and CSS, plain text)
    <locale>/_base.jinja         the language's shared words (greeting, footer, button labels)
    <locale>/<template>.jinja    one file per flow step and language, made of blocks
                                 (subject, intro, body, after_code, cta_label, signoff)

Each step file is rendered twice from the same source: once through the HTML layout with
autoescaping on (every customer, product and owner value is escaped) and once through the text
layout with autoescaping off. Paragraphs are separated by blank lines in the step files. The CSS
of the HTML layout is inlined into style attributes (css-inline) for mail clients.

The language is the customer's, then the shop's, then English ("nl_NL", "nl-BE" count as "nl").
The expiry shown is the stored one, in the shop's time zone and in the email's language. The
shop's branding, sender and postal address come from its settings (app.settings) and the owner's
subject/intro per step and language from flows.copy, when a database handle is given.
"""
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import css_inline
from babel.dates import format_datetime
from babel.lists import format_list
from babel.numbers import format_percent
from babel.units import format_unit
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from app.money import format_money, format_money_short
from app.settings import DEFAULT_BRAND_COLOR, get_settings
from app.timeutil import from_db, utcnow, zone

from .copy import (  # noqa: F401 - re-exported
    DEFAULT_LOCALE,
    LOCALES,
    SERVICE_TEMPLATES,
    TEMPLATES,
    TEXT_FIELDS,
    fill,
    get_copy,
    layout_of,
    owner_template,
    product_count,
)
from .reason import default_reason
from .storefront import applies_code, shop_target

EMAIL_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "emails"

# The expiry as it reads in running text after "until" / "tot" / "do" (Polish: genitive month).
_EXPIRY_PATTERNS = {
    "en": "EEEE d MMMM y, HH:mm",             # Thursday 16 April 2026, 10:00
    "nl": "EEEE d MMMM y 'om' HH:mm",         # donderdag 16 april 2026 om 10:00
    "pl": "d MMMM y, 'godz.' HH:mm (EEEE)",   # 16 kwietnia 2026, godz. 10:00 (czwartek)
}
# The offer in words, per kind of code ({v}: the percentage or the amount; {m}: the minimum order).
# `offer` names it (subjects), `offer_next` names it for the next order (or, with a minimum, for
# orders from it), `terms` is the sentence a reminder adds about the minimum.
# Polish: "rabat 15%" never inflects the number; the free-shipping forms are given per case
# (`offer` nominative, `offer_next` accusative, as the templates use them).
_OFFER = {
    "en": {"offer": {"percent": "{v} off", "amount": "{v} off", "free_shipping": "free shipping"},
           "offer_next": {"percent": "{v} off your next order", "amount": "{v} off your next order",
                          "free_shipping": "free shipping on your next order"},
           "offer_min": {"percent": "{v} off on orders from {m}", "amount": "{v} off on orders from {m}",
                         "free_shipping": "free shipping on orders from {m}"},
           "terms": "It applies to orders from {m}."},
    "nl": {"offer": {"percent": "{v} korting", "amount": "{v} korting", "free_shipping": "gratis verzending"},
           "offer_next": {"percent": "{v} korting op je volgende bestelling",
                          "amount": "{v} korting op je volgende bestelling",
                          "free_shipping": "gratis verzending op je volgende bestelling"},
           "offer_min": {"percent": "{v} korting bij bestellingen vanaf {m}",
                         "amount": "{v} korting bij bestellingen vanaf {m}",
                         "free_shipping": "gratis verzending bij bestellingen vanaf {m}"},
           "terms": "De code geldt bij bestellingen vanaf {m}."},
    "pl": {"offer": {"percent": "rabat {v}", "amount": "rabat {v}", "free_shipping": "darmowa dostawa"},
           "offer_next": {"percent": "rabat {v} na kolejne zamówienie", "amount": "rabat {v} na kolejne zamówienie",
                          "free_shipping": "darmową dostawę przy kolejnym zamówieniu"},
           "offer_min": {"percent": "rabat {v} przy zamówieniu od {m}", "amount": "rabat {v} przy zamówieniu od {m}",
                         "free_shipping": "darmową dostawę przy zamówieniu od {m}"},
           "terms": "Kod obowiązuje przy zamówieniu od {m}."},
}


def code_kind(code) -> str:
    """percent, amount or free_shipping (rows from before 0017_offers: by their percent)."""
    kind = code.get("kind")
    if kind in ("percent", "amount", "free_shipping"):
        return kind
    return "percent" if code.get("percent") is not None else "free_shipping"


def offer_words(code, locale) -> dict:
    """The code's offer in words of `locale`: {"offer", "offer_next", "offer_terms", "percent",
    "amount", "min_order"}; amounts in the code's currency as the locale writes them (`€10`,
    `10 zł`)."""
    words = _OFFER[locale]
    kind = code_kind(code)
    percent = format_percent_value(code["percent"], locale) if kind == "percent" else None
    amount = (format_money_short(code["amount_minor"], code["currency"], locale)
              if kind == "amount" else None)
    minimum = (format_money_short(code["min_order_minor"], code["currency"], locale)
               if code.get("min_order_minor") else None)
    value = percent or amount
    return {"offer": words["offer"][kind].format(v=value),
            "offer_next": (words["offer_min"][kind].format(v=value, m=minimum) if minimum
                           else words["offer_next"][kind].format(v=value)),
            "offer_terms": words["terms"].format(m=minimum) if minimum else None,
            "percent": percent, "amount": amount, "min_order": minimum}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    locale: str


def normalise_locale(value) -> str | None:
    """"nl_NL", "nl-BE", "NL" -> "nl"; None when empty or not one of ours."""
    if not value:
        return None
    lang = re.split(r"[-_.@]", str(value).strip().lower(), maxsplit=1)[0]
    return lang if lang in LOCALES else None


def pick_locale(customer_locale, shop_locale) -> str:
    """The email's language: the customer's, then the shop's, then English."""
    return normalise_locale(customer_locale) or normalise_locale(shop_locale) or DEFAULT_LOCALE


@lru_cache(maxsize=4096)  # the codes of one tick mostly share an expiry
def format_expiry(expires_at: str, tz: str, locale: str = DEFAULT_LOCALE) -> str:
    """The stored UTC expiry in the shop's time zone, in words of `locale`
    (en: `Friday 27 November 2026, 14:05`)."""
    locale = normalise_locale(locale) or DEFAULT_LOCALE
    return format_datetime(from_db(expires_at), _EXPIRY_PATTERNS[locale], tzinfo=zone(tz or "UTC"),
                           locale=locale)


@lru_cache(maxsize=256)
def format_percent_value(percent, locale) -> str:
    """15 -> "15%", 12.5 -> "12.5%" (en) / "12,5%" (nl, pl)."""
    return format_percent(float(percent) / 100, format="#,##0.##%", locale=locale)


def _paras(value):
    """HTML filter: blank-line separated paragraphs -> <p>, single newlines -> <br>."""
    if not isinstance(value, Markup):
        value = escape(value)
    out = []
    for block in re.split(r"\n\s*\n", str(value).strip()):
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        if lines:
            out.append("<p>" + "<br>\n".join(lines) + "</p>")
    return Markup("\n".join(out))


def _oneline(value):
    joined = " ".join(str(value).split())
    return Markup(joined) if isinstance(value, Markup) else joined


def _nl2br(value):
    lines = [line.strip() for line in str(value or "").strip().splitlines() if line.strip()]
    return Markup("<br>\n").join(escape(line) for line in lines)


def _make_env(html: bool) -> Environment:
    # auto_reload off: templates do not change while Winback runs, and checking their files on
    # every email cost a quarter of a tick.
    env = Environment(loader=FileSystemLoader(str(EMAIL_TEMPLATES)), autoescape=html,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.globals["layout"] = "base.html" if html else "base.txt"
    env.filters["paras"] = _paras
    env.filters["nl2br"] = _nl2br
    env.filters["oneline"] = _oneline
    return env


@lru_cache(maxsize=2)
def _env(html: bool) -> Environment:
    return _make_env(html)


@lru_cache(maxsize=1)
def _inliner():
    return css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def _clean_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _brand(shop, settings):
    return {
        "shop_name": shop["name"],
        "sender_name": (settings.get("sender_name") or shop["name"]),
        "logo_url": settings.get("brand_logo_url") or None,
        "brand_color": settings.get("brand_color") or DEFAULT_BRAND_COLOR,
        "postal_address": (settings.get("postal_address") or "").strip(),
    }


def format_time_left(expires_at: str, now, locale: str = DEFAULT_LOCALE) -> str:
    """How long a code is still valid, rounded down so that the copy never promises more than is
    left: hours below two days ("24 hours", "5 godzin"), whole days from then on ("3 dagen")."""
    locale = normalise_locale(locale) or DEFAULT_LOCALE
    seconds = max(0, (from_db(expires_at) - now).total_seconds())
    hours = int(seconds // 3600)
    if hours < 48:
        return format_unit(max(hours, 1), "duration-hour", length="long", locale=locale)
    return format_unit(hours // 24, "duration-day", length="long", locale=locale)


def product_items(items, links, locale) -> list[dict]:
    """The product blocks as the templates show them: {"title", "url", "image", "price",
    "reorder_url"}, the price in the locale's words for the currency, the links the tracked ones of
    `links` (product_<i>, reorder_<i>) where the email has them."""
    return [{"title": item["title"], "image": item["image"],
             "url": links.get(f"product_{i}") or item["url"],
             "reorder_url": links.get(f"reorder_{i}") or item.get("reorder_url"),
             "price": (format_money(item["price_minor"], item["currency"], locale)
                       if item.get("price_minor") is not None and item.get("currency") else None)}
            for i, item in enumerate(items or ())]


def step_copy(db, shop, template, locale, cache=None) -> dict:
    """The owner's copy (flows.copy.get_copy) of `template` in `locale`; empty without a database or a
    stored shop. `cache` (a dict kept for one batch) keeps it between emails."""
    if db is None or shop.get("id") is None:
        return {}
    if cache is None:
        return get_copy(db, shop["id"], template, locale)
    if (template, locale) not in cache:
        cache[(template, locale)] = get_copy(db, shop["id"], template, locale)
    return cache[(template, locale)]


def products_wanted(db, shop, customer, template, cache=None) -> int:
    """How many products the email of `template` to `customer` shows (the owner's count for the
    email's language, else the default; 0: no product block)."""
    return product_count(step_copy(db, shop, template, pick_locale(customer.get("locale"), shop.get("locale")),
                                   cache))


def _display_url(url) -> str | None:
    """A storefront address as a reader sees it: no scheme, no trailing slash."""
    return re.sub(r"^https?://", "", url).rstrip("/") if url else None


def render(template, *, shop, customer, code=None, products=None, items=None, links=None, db=None,
           copy_override=None, cache=None, now=None, campaign=None, category=None) -> Rendered:
    """One email of a flow step. `links` are the email's personal URLs (shop_url: the button's tracked
    link, keep_url, unsubscribe_url, product_<i> and reorder_<i>); `products` the titles the reminder's
    words name; `items` the product blocks (flows.products.blocks);
    `db` (optional) supplies the shop's branding settings, the owner's copy (flows.copy: its
    placeholders filled in, shown escaped) and the win-back reason from the data (flows.reason) for
    `customer["id"]`; at most the copy's product count of `items` is shown.
    `copy_override` (the fields of flows.copy.get_copy, None = the default) replaces the stored copy:
    the UI's preview of text not saved yet. `cache` (a dict kept for one batch) saves reading the
    settings and copy again for every email. `now` is the moment of delivery: copy that speaks of
    the time left counts it from then. `campaign` ({"subject", "brand"}, flows.campaigns) gives a
    campaign email its own subject and the brand it launches. `category` is the category a category
    win-back email is about; the links nps_0 ... nps_10 (the 0-10 question's answers) are shown where
    the template asks."""
    if template not in TEMPLATES and not owner_template(template):
        raise ValueError(f"unknown email template {template!r}")
    locale = pick_locale(customer.get("locale"), shop.get("locale"))
    settings = {}
    copy = step_copy(db, shop, template, locale, cache)
    if db is not None and shop.get("id") is not None:
        settings = cache["settings"] if cache is not None and "settings" in cache else get_settings(db, shop["id"])
        if cache is not None:
            cache["settings"] = settings
    if copy_override is not None:
        copy = {**{name: copy_override.get(name) or None for name in TEXT_FIELDS},
                "products": copy_override.get("products")}
    links = links or {}
    marketing = template not in SERVICE_TEMPLATES
    if code and not marketing:
        raise ValueError(f"{template} is a service email and carries no offer")
    offer = offer_words(code, locale) if code else {}
    # The tracked link made at delivery; without one (a page's preview) the plain storefront link.
    shop_url = links.get("shop_url") or shop_target(shop, settings, code["code"] if code else None)
    expires = format_expiry(code["expires_at"], shop.get("timezone") or "UTC", locale) if code else None
    first_name = (customer.get("first_name") or "").strip() or None
    values = {"first_name": first_name, "shop_name": shop["name"], "code": code["code"] if code else None,
              "expires": expires}
    owner = {name: fill(copy.get(name), values) for name in TEXT_FIELDS}
    if campaign and campaign.get("subject"):
        owner["subject"] = fill(campaign["subject"], values)
    reason = owner["reason"]
    if reason is None and db is not None and shop.get("id") is not None:
        reason = default_reason(db, shop["id"], customer.get("id"), template, locale, cache)
    context = {
        **_brand(shop, settings),
        "locale": locale,
        "marketing": marketing,
        "first_name": first_name,
        "code": code["code"] if code else None,
        "percent": offer.get("percent"),
        "amount": offer.get("amount"),
        "min_order": offer.get("min_order"),
        "offer": offer.get("offer"),
        "offer_next": offer.get("offer_next"),
        "offer_terms": offer.get("offer_terms"),
        "expires": expires,
        "time_left": format_time_left(code["expires_at"], now or utcnow(), locale) if code else None,
        "products": format_list(list(products), locale=locale) if products else None,
        "items": product_items(list(items or ())[:product_count(copy)], links, locale),
        "shop_url": shop_url,
        "keep_url": links.get("keep_url"),
        "cta_url": (links.get("keep_url") if template == "sunset"
                    else None if template in SERVICE_TEMPLATES else shop_url),
        # A service email sells nothing: no button, but a plain link to the shop (the order, the
        # product pages and their instructions), so that it too leads somewhere.
        "service_link": shop_url if template in SERVICE_TEMPLATES else None,
        "service_link_text": (_display_url(shop_target(shop, settings, None) or shop_url)
                              if template in SERVICE_TEMPLATES else None),
        "code_applies": bool(code and shop_url and applies_code(shop)),
        "unsubscribe_url": links.get("unsubscribe_url"),
        "subject_override": owner["subject"],
        "intro_override": owner["intro"],
        "preheader_override": owner["preheader"],
        "heading": owner["heading"],
        "button_override": owner["button"],
        "reason": reason,
        "brand": (campaign or {}).get("brand"),
        "category": category,
        "nps_links": ([(score, links[f"nps_{score}"]) for score in range(11) if links.get(f"nps_{score}")]
                      if template == "second_order" else []),  # the journey's "how was it" asks
    }
    name = f"{locale}/{layout_of(template)}.jinja"
    text = _clean_text(_env(False).get_template(name).render(context))
    subject, _, body = text.partition("\n")
    subject = " ".join(subject.split())
    html = _env(True).get_template(name).render({**context, "subject": subject})
    html = _inliner().inline(html)
    return Rendered(subject=subject, text=body.lstrip("\n"), html=html, locale=locale)

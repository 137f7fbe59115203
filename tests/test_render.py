"""Email rendering: every step in en/nl/pl, HTML and text, branding, escaping, the owner's copy."""
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from app.settings import get_settings, save_setting
from app.shops import create_shop
from app.timeutil import from_db
from flows.copy import get_copy, save_copy
from flows.render import (
    LOCALES,
    SERVICE_TEMPLATES,
    TEMPLATES,
    Rendered,
    format_expiry,
    normalise_locale,
    pick_locale,
    render,
)

CODE_TEMPLATES = ("winback_1", "winback_2", "winback_3", "vip_winback_1", "vip_winback_2", "vip_winback_3")
MARKETING = tuple(t for t in TEMPLATES if t not in SERVICE_TEMPLATES)
LINKS = {"keep_url": "https://app.example/k/KEEP", "unsubscribe_url": "https://app.example/u/UNSUB"}
EXPIRES = "2026-04-16T10:00:00Z"


def shop_dict(locale="en", tz="UTC", name="Bean & Leaf", **extra):
    return {"id": None, "name": name, "locale": locale, "timezone": tz, "currency": "EUR", **extra}


def customer(locale=None, first_name="Anna", **extra):
    return {"first_name": first_name, "last_name": "K", "locale": locale, "email": "anna@example.com",
            "customer_id": 1, **extra}


def a_code(percent=15):
    return {"code": "WB-7Q2X9K", "percent": percent, "expires_at": EXPIRES}


class _Text(HTMLParser):
    """The visible text of an HTML document, and the elements seen."""

    def __init__(self):
        super().__init__()
        self.parts, self.tags, self.links, self.imgs = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs.get("href"))
        if tag == "img":
            self.imgs.append(attrs)

    def handle_data(self, data):
        self.parts.append(data)


def parse(html):
    p = _Text()
    p.feed(html)
    p.text = " ".join(" ".join(p.parts).split())
    return p


def inputs(template, locale, with_code=True):
    return dict(shop=shop_dict(locale="en"), customer=customer(locale=locale),
                code=a_code() if with_code and template in CODE_TEMPLATES else None,
                products=["Coffee beans", "Green tea"] if template == "replenish_reminder" else None,
                links=LINKS)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("with_code", [True, False])
def test_every_template_renders_in_every_language(template, locale, with_code):
    email = render(template, **inputs(template, locale, with_code))
    assert isinstance(email, Rendered) and email.locale == locale
    assert email.subject and "\n" not in email.subject and len(email.subject) < 150
    for part in (email.subject, email.text, email.html):
        assert "{{" not in part and "{%" not in part and "None" not in part
    assert email.text.strip() and "<p" not in email.text
    assert f'<html lang="{locale}"' in email.html
    doc = parse(email.html)
    assert "Anna" in doc.text and "Anna" in email.text
    assert "Bean & Leaf" in doc.text and "Bean & Leaf" in email.text
    if template in CODE_TEMPLATES and with_code:
        assert "WB-7Q2X9K" in email.text and "WB-7Q2X9K" in doc.text
        expiry = format_expiry(EXPIRES, "UTC", locale)
        assert expiry in email.text and expiry in doc.text
        assert "15%" in email.subject + email.text
    else:
        assert "WB-7Q2X9K" not in email.text + email.html
    if template == "sunset":
        assert LINKS["keep_url"] in email.text and LINKS["keep_url"] in doc.links
    if template == "replenish_reminder":
        assert "Coffee beans" in email.text and "Green tea" in doc.text


def test_the_same_email_in_three_languages_differs():
    subjects = {loc: render("winback_1", **inputs("winback_1", loc)).subject for loc in LOCALES}
    assert subjects == {"en": "We miss you at Bean & Leaf", "nl": "We missen je bij Bean & Leaf",
                        "pl": "Tęsknimy za Tobą – Bean & Leaf"}


def test_english_copy_the_flow_tests_rely_on():
    shop = shop_dict(name="s")
    assert render("winback_1", shop=shop, customer=customer(), code=a_code()).subject == "We miss you at s"
    second = render("winback_2", shop=shop, customer=customer(), code=a_code(), now=from_db(EXPIRES) - timedelta(days=1))
    assert second.subject.startswith("24 hours left")
    assert "Thursday 16 April 2026, 10:00" in second.text and "WB-7Q2X9K" in second.text
    rep = render("replenish_reminder", shop=shop, customer=customer(), products=["Coffee beans"])
    assert rep.subject == "Running low on Coffee beans?"
    assert render("replenish_reminder", shop=shop, customer=customer()).subject == "Running low on your favourites?"


@pytest.mark.parametrize("locale", LOCALES)
def test_free_shipping_codes_read_well(locale):
    email = render("winback_1", **{**inputs("winback_1", locale), "code": a_code(percent=None)})
    assert "%" not in email.subject + email.text
    assert {"en": "free shipping", "nl": "gratis verzending", "pl": "darmową dostawę"}[locale] in email.text


def test_fractional_percent_in_the_language_of_the_email():
    assert "12.5% off" in render("winback_2", **{**inputs("winback_2", "en"), "code": a_code(12.5)}).subject
    assert "12,5% korting" in render("winback_2", **{**inputs("winback_2", "nl"), "code": a_code(12.5)}).subject


@pytest.mark.parametrize("raw, norm", [("nl_NL", "nl"), ("nl-BE", "nl"), ("NL", "nl"), ("pl_PL.UTF-8", "pl"),
                                       ("en-GB", "en"), ("de", None), ("", None), (None, None)])
def test_locales_are_normalised(raw, norm):
    assert normalise_locale(raw) == norm


def test_language_fallback_customer_then_shop_then_english():
    assert render("winback_1", shop=shop_dict(locale="nl"), customer=customer("pl"), code=a_code()).locale == "pl"
    assert render("winback_1", shop=shop_dict(locale="nl_NL"), customer=customer("de"), code=a_code()).locale == "nl"
    assert render("winback_1", shop=shop_dict(locale="de"), customer=customer("fr_FR"), code=a_code()).locale == "en"
    assert render("winback_1", shop=shop_dict(locale="pl"), customer=customer(None), code=a_code()).locale == "pl"
    assert render("winback_1", shop=shop_dict(locale="en"), customer=customer("nl-BE"), code=a_code()).locale == "nl"
    assert pick_locale(None, None) == "en"
    nl = render("winback_1", shop=shop_dict(locale="nl"), customer=customer("de"), code=a_code())
    assert nl.subject.startswith("We missen je") and 'lang="nl"' in nl.html


@pytest.mark.parametrize("locale, expected", [
    ("en", "Thursday 16 April 2026, 12:00"),
    ("nl", "donderdag 16 april 2026 om 12:00"),
    ("pl", "16 kwietnia 2026, godz. 12:00 (czwartek)"),
])
def test_expiry_is_the_stored_one_in_shop_time_and_the_email_language(locale, expected):
    # Stored 10:00 UTC is 12:00 in Amsterdam (summer time); a Warsaw shop reads the same.
    assert format_expiry(EXPIRES, "Europe/Amsterdam", locale) == expected
    for template in ("winback_1", "winback_2", "vip_winback_2"):
        email = render(template, shop=shop_dict(tz="Europe/Amsterdam"), customer=customer(locale), code=a_code())
        assert expected in email.text and expected in parse(email.html).text
    assert expected in render("winback_3", shop=shop_dict(tz="Europe/Amsterdam"), customer=customer(locale),
                              code=a_code(20)).subject


def test_expiry_in_another_zone_moves_the_day():
    assert format_expiry("2026-04-16T23:30:00Z", "Europe/Warsaw", "pl") == "17 kwietnia 2026, godz. 01:30 (piątek)"
    assert format_expiry("2026-04-16T23:30:00Z", "America/New_York", "en") == "Thursday 16 April 2026, 19:30"


NASTY = 'Zoë <script>alert("x")</script> O\'Brien & "Co"'


@pytest.mark.parametrize("template", TEMPLATES)
def test_customer_data_is_escaped_in_html_and_untouched_in_text(template):
    email = render(template, shop=shop_dict(name='Tom & "Jerry" <Shop>', brand_logo_url=None),
                   customer=customer(first_name=NASTY),
                   code=a_code() if template in CODE_TEMPLATES else None,
                   products=['Beans "Extra" <b>dark</b>'] if template == "replenish_reminder" else None, links=LINKS)
    assert "<script" not in email.html and "<b>dark" not in email.html and "<Shop>" not in email.html
    doc = parse(email.html)
    assert "script" not in doc.tags and "b" not in doc.tags
    assert NASTY in doc.text  # shown as the very same text
    assert NASTY in email.text
    assert 'Tom & "Jerry" <Shop>' in email.text and 'Tom & "Jerry" <Shop>' in doc.text
    assert "&lt;" not in email.text and "&amp;" not in email.text and "&#34;" not in email.text
    if template == "replenish_reminder":
        assert 'Beans "Extra" <b>dark</b>' in email.text and 'Beans "Extra" <b>dark</b>' in doc.text


@pytest.mark.parametrize("template", TEMPLATES)
def test_css_is_inlined(template):
    email = render(template, **inputs(template, "en"))
    assert "<style" not in email.html
    assert re.search(r'<body style="[^"]*background-color', email.html)
    assert re.search(r'<p style="[^"]*margin', email.html)
    assert "#2f7d5b" in email.html  # the default brand colour, inlined


@pytest.fixture
def shop(db):
    return create_shop(db, "bean", "import", name="Bean & Leaf", locale="en", timezone="Europe/Amsterdam",
                       base_url="https://bean.example")


@pytest.fixture
def branded(db, shop):
    save_setting(db, shop["id"], "postal_address", "Koffiestraat 1\n1011 AB Amsterdam\nNetherlands")
    save_setting(db, shop["id"], "brand_color", "#AA3355")
    save_setting(db, shop["id"], "brand_logo_url", "https://cdn.example/logo.png?v=1&x=2")
    save_setting(db, shop["id"], "sender_name", "Anna from Bean & Leaf")
    return shop


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_footer_has_the_postal_address_and_unsubscribe_in_marketing(db, branded, template, locale):
    email = render(template, **{**inputs(template, locale), "shop": branded}, db=db)
    doc = parse(email.html)
    for line in ("Koffiestraat 1", "1011 AB Amsterdam", "Netherlands"):
        assert line in email.text and line in doc.text
    assert "Anna from Bean & Leaf" in email.text and "Anna from Bean & Leaf" in doc.text
    assert "#aa3355" in email.html
    assert doc.imgs and doc.imgs[0]["src"] == "https://cdn.example/logo.png?v=1&x=2"
    assert doc.imgs[0]["alt"] == "Bean & Leaf"
    unsubscribe = {"en": "Unsubscribe", "nl": "Afmelden", "pl": "Wypisz się"}[locale]
    if template in MARKETING:
        assert LINKS["unsubscribe_url"] in doc.links and f"{unsubscribe}: {LINKS['unsubscribe_url']}" in email.text
        assert unsubscribe in doc.text
    else:
        assert unsubscribe not in email.text and unsubscribe not in doc.text
    if template != "sunset":
        assert "https://bean.example" in doc.links or template in SERVICE_TEMPLATES
    assert email.text.rstrip().endswith(LINKS["unsubscribe_url"])


def test_marketing_footer_without_links_still_has_the_address(db, branded):
    email = render("winback_1", shop=branded, customer=customer(), code=a_code(), db=db)
    assert "Koffiestraat 1" in email.text and "Koffiestraat 1" in email.html
    assert "/u/" not in email.text


PROMO_WORDS = {"en": ("off", "discount", "offer", "sale", "deal", "code"),
               "nl": ("korting", "aanbieding", "actie", "code", "uitverkoop"),
               "pl": ("rabat", "promocj", "ofert", "kod", "wyprzedaż", "zniżk")}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", sorted(SERVICE_TEMPLATES))
def test_second_order_is_a_service_email(db, branded, locale, template):
    """Every email of the after-purchase journey (second_order is its day-14 step) sells nothing."""
    email = render(template, shop=branded, customer=customer(locale), links=LINKS, db=db)
    body = (email.subject + " " + email.text).lower()
    assert "%" not in body and "%" not in parse(email.html).text
    for word in PROMO_WORDS[locale]:
        assert not re.search(rf"\b{word}", body), word
    assert "WB-" not in email.html
    # nothing to sell here: no button, but a plain link to the shop (issue 14: a way to the shop in every email)
    assert 'class="button"' not in email.html and "https://bean.example" in parse(email.html).links
    assert "https://bean.example" in email.text
    assert LINKS["unsubscribe_url"] in parse(email.html).links  # a discreet preferences link
    with pytest.raises(ValueError, match="service"):
        render(template, shop=branded, customer=customer(locale), code=a_code(), db=db)


def test_unknown_template_is_refused():
    with pytest.raises(ValueError, match="unknown email template"):
        render("nope", shop=shop_dict(), customer=customer())


NO_COPY = {"subject": None, "preheader": None, "heading": None, "intro": None, "reason": None, "button": None,
           "products": None}


def test_owner_subject_and_intro_replace_the_defaults(db, shop):
    save_copy(db, shop["id"], "winback_1", "nl", subject="Kom terug, <we> missen je & \"meer\"",
              intro="Eerste regel <b>vet</b>?\n\nTweede alinea.")
    email = render("winback_1", shop=shop, customer=customer("nl"), code=a_code(), links=LINKS, db=db)
    assert email.subject == 'Kom terug, <we> missen je & "meer"'
    assert "Eerste regel <b>vet</b>?" in email.text and "Tweede alinea." in email.text
    assert "Het is alweer een tijdje geleden" not in email.text
    assert "<b>vet" not in email.html and "&lt;b&gt;vet" in email.html
    assert "<title>Kom terug, &lt;we&gt; missen je &amp;" in email.html
    assert "WB-7Q2X9K" in email.text  # the rest of the email is as before
    # Another language and another step keep their defaults.
    assert render("winback_1", shop=shop, customer=customer("en"), code=a_code(), db=db).subject == \
        "We miss you at Bean & Leaf"
    assert render("winback_2", shop=shop, customer=customer("nl"), code=a_code(), db=db,
                  now=from_db(EXPIRES) - timedelta(days=1)).subject.startswith("Nog 24 uur")
    # Only the intro: the default subject stays.
    save_copy(db, shop["id"], "sunset", "en", intro="Still with us?")
    sunset = render("sunset", shop=shop, customer=customer(), links=LINKS, db=db)
    assert sunset.subject == "Do you still want to hear from Bean & Leaf?" and "Still with us?" in sunset.text
    assert get_copy(db, shop["id"], "sunset", "en") == {**NO_COPY, "intro": "Still with us?"}
    # Both None: back to the defaults.
    save_copy(db, shop["id"], "sunset", "en")
    assert get_copy(db, shop["id"], "sunset", "en") == NO_COPY


@pytest.mark.parametrize("kwargs, message", [
    ({"subject": ""}, "1 to 150"),
    ({"subject": "   "}, "1 to 150"),
    ({"subject": "x" * 151}, "1 to 150"),
    ({"subject": "two\nlines"}, "single line"),
    ({"intro": "x" * 2001}, "at most 2000"),
    ({"template": "winback_9"}, "unknown email template"),
    ({"locale": "de"}, "unknown language"),
])
def test_bad_copy_is_refused_and_the_old_text_kept(db, shop, kwargs, message):
    save_copy(db, shop["id"], "winback_1", "en", subject="Come back to us", intro="Hello again.")
    args = {"template": "winback_1", "locale": "en", **kwargs}
    template, locale = args.pop("template"), args.pop("locale")
    with pytest.raises(ValueError, match=message):
        save_copy(db, shop["id"], template, locale, **args)
    assert get_copy(db, shop["id"], "winback_1", "en") == {**NO_COPY, "subject": "Come back to us",
                                                                "intro": "Hello again."}
    assert render("winback_1", shop=shop, customer=customer(), code=a_code(), db=db).subject == "Come back to us"


def test_copy_does_not_leak_into_the_settings(db, shop):
    save_copy(db, shop["id"], "winback_1", "en", subject="Hi")
    assert not any(k.startswith("copy:") for k in get_settings(db, shop["id"]))


@pytest.mark.parametrize("key, value, message", [
    ("brand_color", "green", "is not a colour"),
    ("brand_color", "#12345", "is not a colour"),
    ("brand_logo_url", "http://cdn.example/logo.png", "https://"),
    ("brand_logo_url", "javascript:alert(1)", "https://"),
    ("brand_logo_url", 'https://cdn.example/a"onerror=x.png', "not a valid URL"),
    ("sender_email", "not-an-address", "not an email address"),
    ("sender_email", "a@b", "not an email address"),
    ("sender_name", "Bean\nBcc: x@example.com", "single line"),
    ("sender_name", "x" * 101, "at most 100"),
    ("postal_address", "x" * 501, "at most 500"),
    ("smtp_url", "http://mail.example.com", "smtp:// or smtps://"),
    ("smtp_url", "smtps://user:pw@:465", "server name"),
    ("smtp_url", "smtp://mail.example.com:99999", "port"),
])
def test_bad_brand_settings_are_refused_with_a_message(db, branded, key, value, message):
    before = get_settings(db, branded["id"])[key]
    with pytest.raises(ValueError, match=message) as info:
        save_setting(db, branded["id"], key, value)
    assert str(info.value).startswith(f"{key}:")
    assert get_settings(db, branded["id"])[key] == before


def test_good_brand_settings_and_defaults(app, db, shop):
    values = get_settings(db, shop["id"])
    assert values["brand_color"] == "#2f7d5b" and values["postal_address"] == ""
    assert values["brand_logo_url"] is None and values["sender_name"] is None and values["smtp_url"] is None
    assert save_setting(db, shop["id"], "brand_color", "#A1B2C3") == "#a1b2c3"
    assert save_setting(db, shop["id"], "sender_email", "hello@bean.example") == "hello@bean.example"
    assert save_setting(db, shop["id"], "smtp_url", "smtps://u:p@mail.example.com:465", app=app) == \
        "smtps://u:p@mail.example.com:465"
    assert save_setting(db, shop["id"], "sender_email", "") is None
    # Without a logo, the shop's name heads the email; without a sender name, the shop's name signs it.
    email = render("winback_1", shop=shop, customer=customer(), code=a_code(), links=LINKS, db=db)
    assert "<img" not in email.html and "#a1b2c3" in email.html
    assert email.text.count("Bean & Leaf") >= 3


def test_the_engine_stores_html_and_the_email_language(app, db, smtp):
    from tests.builders import at, lapsed_shop
    from flows.engine import tick
    shop = lapsed_shop(db)
    db.execute("UPDATE customers SET locale = 'pl_PL' WHERE shop_id = ? AND external_id = 'A'", [shop["id"]])
    save_setting(db, shop["id"], "postal_address", "ul. Kawowa 5, 00-001 Warszawa")
    tick(app, db, shop, at(101))
    row = db.execute("SELECT m.subject, m.body_text, m.body_html, m.locale FROM messages m"
                     " JOIN customers c ON c.id = m.customer_id WHERE c.external_id = 'A'").fetchone()
    subject, text, html, locale = row
    assert locale == "pl" and subject.startswith("Tęsknimy za Tobą")
    assert html and 'lang="pl"' in html and "ul. Kawowa 5" in html and "ul. Kawowa 5" in text
    assert "/u/" in text and "Wypisz się" in html


@pytest.mark.parametrize("locale, left, words", [
    ("en", timedelta(hours=48), "2 days left"), ("en", timedelta(hours=30, minutes=59), "30 hours left"),
    ("en", timedelta(hours=24), "24 hours left"), ("nl", timedelta(days=3, hours=5), "Nog 3 dagen"),
    ("pl", timedelta(hours=5, minutes=30), "Jeszcze 5 godzin"), ("pl", timedelta(hours=22), "Jeszcze 22 godziny"),
])
def test_reminder_states_the_real_time_left_rounded_down(locale, left, words):
    """Email 2 moved to day 2 with a 4-day code says two days, not "24 hours"."""
    email = render("winback_2", **{**inputs("winback_2", locale), "now": from_db(EXPIRES) - left})
    assert words in email.subject

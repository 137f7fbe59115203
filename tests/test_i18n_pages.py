"""Every page in the owner's language (issue 17, point 4): a crawl of every page reachable from the
navigation, in Dutch and in Polish, fails on any English left on it.

A visible text fragment (text nodes and the attributes a user reads: title, aria-label, placeholder,
alt, button values) fails when, once the shop's data is taken out of it (names, emails, ids, product
titles, categories, subjects, numbers, the brand "Winback"), it
- contains an English msgid of the catalogue whose translation differs ("Customers", "Sent"), or
- contains a common English word ("the", "days", "since", ...), or
- shows an internal name (`vip_at_risk`, `winback_1`).
"""
import re
import sqlite3
from contextlib import closing
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from app import tokens
from app.shops import get_shop
from app.timeutil import parse_now
from app.web.i18n import TRANSLATIONS
from tests.builders import seeded_demo_file
from tests.conftest import ADMIN_PASSWORD, CHEAP_HASH

NOW = parse_now("2026-06-01T12:00:00Z")
ROOT = TRANSLATIONS.parent.parent

# English words a Dutch or Polish page never shows (words that are also Dutch or Polish, such as
# "in", "is", "of", "was", "to", "on", "no", "by", "last", "per", "been", are left out).
ENGLISH_WORDS = frozenset("""
the and your you with since days day not from this that will would have has for after before what when
which who why customers customer orders emails sent lapsed failed running waiting until than more new
none yes unknown never their they them there here every each off due settings report shops
connect password users logout language refresh save saved
subscribed unsubscribe unsubscribed keep thank please page found error sorry requested allowed
about above again any because being both could did does doing down during few how into its just most my now
only other our out own should some such then these those through too under very were where while whom yours
can cannot must shown see get got once still yet already ago today yesterday weeks month months year years
hour hours minutes synced enough yet emailed held spent bought expects likely would enter
""".split())
ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")
PER_ENDPOINT = 4  # pages per kind of page (one customer's page is like another's) ...
MORE = {"pages.customer": 16, "pages.customers": 12}  # ... but customers differ in their reasons


class _Text(HTMLParser):
    """The visible text fragments of a page and its links (href of <a>)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.fragments, self.links, self.lang, self._skip = [], [], None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.lang = attrs.get("lang")
        if tag in ("script", "style", "svg") and tag != "svg":
            self._skip += 1
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for name in ATTRIBUTES:
            if attrs.get(name):
                self.fragments.append(attrs[name])
        if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.fragments.append(attrs["value"])

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.fragments.append(" ".join(data.split()))


def page_text(html):
    """(fragments, links, lang attribute) of an HTML page."""
    parser = _Text()
    parser.feed(html)
    return parser.fragments, parser.links, parser.lang


def data_values(db) -> list[str]:
    """The shop's own data as pages show it (longest first, so that a title goes before a word of it)."""
    queries = [f"SELECT {column} FROM {table}" for table, columns in (
        ("customers", "first_name last_name email external_id"), ("products", "title brand category sku"),
        ("order_lines", "title sku"), ("orders", "name external_id"),
        ("shops", "name handle platform currency timezone base_url"), ("messages", "subject discount_code email"),
        ("users", "username email"), ("discount_codes", "code")) for column in columns.split()]
    values = {"Winback", "English", "Nederlands", "Polski", "EN", "NL", "PL", "EUR", "SMTP", "DKIM", "SPF", "DMARC",
              "CSV", "JSON", "URL", "Shopify", "WooCommerce", "RFM", "BG/NBD", "HTML", "VIP", "CSRF"}
    for query in queries:
        try:
            rows = db.execute(query).fetchall()
        except sqlite3.OperationalError:
            continue
        for row in rows:
            for value in row:
                if isinstance(value, str) and value.strip():
                    values.add(value.strip())
    return sorted(values, key=len, reverse=True)


def english_msgids(lang) -> list[str]:
    """The literal pieces (between placeholders) of each msgid whose `lang` translation differs from it."""
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalog = read_po(fh)
    pieces = set()
    for m in catalog:
        if not m.id or isinstance(m.id, tuple) or not m.string or m.string == m.id:
            continue
        for piece in re.split(r"%\(\w+\)s|%%|[.:;,()·→←]", m.id):
            piece = piece.strip()
            if piece in m.string:  # the same in the translation ("In WordPress")
                continue
            words = re.findall(r"[A-Za-z]+", piece)
            # One short word ("off", "ok") is left to the word list: it may be data or the same in Dutch.
            if len(words) >= 2 or (len(words) == 1 and len(words[0]) >= 6 and words[0] == piece):
                pieces.add(piece)
    return sorted(pieces, key=len, reverse=True)


def _alternation(strings, boundaries=False):
    body = "|".join(re.escape(x) for x in sorted(set(strings), key=len, reverse=True) if x)
    return re.compile(r"(?<![\w-])(?:" + body + r")(?![\w-])" if boundaries else body or r"(?!x)x")


def english_in(fragment, data, pieces) -> str | None:
    """Why `fragment` is English (the msgid piece, word or internal name found), or None. `data` and
    `pieces` are lists of strings (or the patterns `_alternation` made of them)."""
    data = data if isinstance(data, re.Pattern) else _alternation(data)
    pieces = pieces if isinstance(pieces, re.Pattern) else _alternation(pieces, boundaries=True)
    text = data.sub(" ¤ ", fragment)
    # addresses, links, {placeholders}, codes (WB-XNHM-L8MY)
    text = re.sub(r"\S+@\S+|https?://\S+|\{\w+\}|\b[A-Z0-9]+(?:-[A-Z0-9]+)+\b", " ¤ ", text)
    internal = re.search(r"\b[a-z]+(?:_[a-z0-9]+)+\b", text)
    if internal:
        return f"internal name {internal.group(0)!r}"
    found = pieces.search(text)
    if found:
        return f"msgid {found.group(0)!r}"
    for word in re.findall(r"[^\W\d_]+", text):  # whole words, also Polish ones ("hasło" is not "has")
        if word.lower() in ENGLISH_WORDS:
            return f"word {word!r}"
    return None


def check_page(path, html, lang, data, pieces) -> list[str]:
    """The English found on one page, as 'path: fragment (why)'."""
    fragments, _, page_lang = page_text(html)
    data = data if isinstance(data, re.Pattern) else _alternation(data)
    pieces = pieces if isinstance(pieces, re.Pattern) else _alternation(pieces, boundaries=True)
    found = [] if page_lang == lang else [f"{path}: <html lang={page_lang!r}>"]
    for fragment in fragments:
        why = english_in(fragment, data, pieces)
        if why:
            found.append(f"{path}: {fragment!r} ({why})")
    return found


@pytest.fixture(scope="module")
def shop_template(tmp_path_factory):
    """The demo shop (120 customers, refreshed), seeded once into a database file."""
    return seeded_demo_file(tmp_path_factory.mktemp("i18n") / "demo.db", ADMIN_PASSWORD, CHEAP_HASH, NOW)


@pytest.fixture
def shop(app, db, shop_template, smtp):
    """The demo shop in the app's database, after one tick of the flows (so there are emails to list)."""
    from app.db import get_db
    from flows.engine import tick
    with closing(sqlite3.connect(shop_template)) as template:
        template.backup(db.conn)
    with app.app_context():
        tick(app, get_db(), get_shop(get_db(), "demo"), NOW)
    return get_shop(db, "demo")


def _token(html):
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _endpoint(app, path):
    adapter = app.url_map.bind("localhost")
    try:
        return adapter.match(urlsplit(path).path, method="GET")[0]
    except Exception:  # noqa: BLE001 - not a page of ours (a static file, a 404)
        return None


def crawl(app, client, start) -> dict[str, str]:
    """Every page reachable by links from `start` (a few of each kind): {path: html}."""
    pages, queue, per_endpoint = {}, list(start), {}
    while queue:
        path = queue.pop(0)
        endpoint = _endpoint(app, path)
        if path in pages or endpoint in (None, "static", "links.click", "shopify.install", "shopify.callback",
                                         "woocommerce.returned"):
            continue
        if per_endpoint.get(endpoint, 0) >= MORE.get(endpoint, PER_ENDPOINT):
            continue
        per_endpoint[endpoint] = per_endpoint.get(endpoint, 0) + 1
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200, (path, response.status_code)
        if not response.mimetype == "text/html":
            response.close()  # a CSV download streams: close it, or its request context outlives this one
            continue
        html = response.get_data(as_text=True)
        pages[path] = html
        for link in page_text(html)[1]:
            url = urlsplit(urljoin("http://localhost" + path, link))
            if url.netloc == "localhost":
                queue.append(url.path + (f"?{url.query}" if url.query else ""))
    return pages


def _posted_pages(client, shop):
    """Pages after an action: a flash message, refused forms (errors next to the fields)."""
    page = client.get("/shops/demo").get_data(as_text=True)
    out = {"refresh (flash)": client.post("/shops/demo/refresh", data={"csrf_token": _token(page)},
                                          follow_redirects=True).get_data(as_text=True)}
    page = client.get("/shops/demo/settings").get_data(as_text=True)
    out["settings refused"] = client.post("/shops/demo/settings", data={
        "csrf_token": _token(page), "lapse_factor": "abc", "max_per_day": "-3"}).get_data(as_text=True)
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    out["flow refused"] = client.post("/shops/demo/flows/winback", data={
        "csrf_token": _token(page), "holdout": "250", "step0_delay": "x", "step0_offer": "percent",
        "step0_percent": "150"}).get_data(as_text=True)
    page = client.get("/account/password").get_data(as_text=True)
    out["password refused"] = client.post("/account/password", data={
        "csrf_token": _token(page), "current": "", "new": "x"}).get_data(as_text=True)
    return out


@pytest.mark.parametrize("lang", ["nl", "pl"])
def test_no_english_on_any_page(app, client, login, db, shop, lang):
    login()
    page = client.get("/shops/demo").get_data(as_text=True)
    client.post("/language", data={"lang": lang, "next": "/", "csrf_token": _token(page)})
    pages = crawl(app, client, ["/", "/shops/demo", "/connect", "/users", "/account/password",
                                "/woocommerce/connect"])
    endpoints = {_endpoint(app, p) for p in pages}
    assert {"pages.shop", "pages.customers", "pages.customer", "pages.report", "flow_pages.index",
            "flow_pages.edit", "settings_pages.edit", "product_pages.index", "outbox_pages.index",
            "dashboard.connect", "user_pages.index", "auth.password"} <= endpoints, endpoints
    pages.update(_posted_pages(client, shop))
    for path in ("/shops/nope", "/shops/demo/customers/nobody"):
        pages[f"{path} (404)"] = client.get(path).get_data(as_text=True)
    # Before logging in: the browser's language.
    pages["/login"] = app.test_client().get("/login", headers={"Accept-Language": lang}).get_data(as_text=True)
    data, pieces = _alternation(data_values(db)), _alternation(english_msgids(lang), boundaries=True)
    found = [line for path, html in pages.items() for line in check_page(path, html, lang, data, pieces)]
    unique = list(dict.fromkeys(line.split(": ", 1)[1] for line in found))
    assert not found, (f"{len(found)} English fragments ({len(unique)} different) on {len(pages)} {lang} pages:\n"
                       + "\n".join(unique[:80]))


@pytest.mark.parametrize("lang", ["nl", "pl"])
def test_customer_pages_in_the_customers_language(app, client, db, shop, lang):
    """The pages behind the email links speak the customer's language, whatever the owner's."""
    cust = db.execute("SELECT id, shop_id FROM customers WHERE email IS NOT NULL ORDER BY id LIMIT 1").fetchone()
    db.execute("UPDATE customers SET locale = ? WHERE id = ?", [lang, cust[0]])
    db.conn.commit()
    data, pieces = data_values(db), english_msgids(lang)
    found = []
    for kind, prefix in (("unsubscribe", "/u/"), ("keep", "/k/")):
        path = prefix + tokens.make(app, kind, cust[1], cust[0])
        for html in (client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True),
                     client.post(path, headers={"Accept-Language": "en"}).get_data(as_text=True)):
            found += check_page(path, html, lang, data, pieces)
    assert not found, "\n".join(found)


def test_the_check_finds_english():
    """The checker is no test that cannot fail: an English sentence, an untranslated msgid and an
    internal name are caught; data and translated text are not."""
    data, pieces = ["Ethiopia Yirgacheffe", "anna@example.com", "Winback"], english_msgids("nl")
    assert english_in("Segments refreshed for 12 customers in 0.2 s.", data, pieces)
    assert english_in("Klanten: 12, lapsed", data, pieces)
    assert english_in("Why: vip_at_risk", data, pieces)
    assert english_in("What the flows earned", data, pieces)
    assert not english_in("Winback · Ethiopia Yirgacheffe · anna@example.com", data, pieces)
    assert not english_in("Klanten per dagen sinds hun laatste bestelling", data, pieces)
    html = '<html lang="nl"><body><p>Klanten</p><button title="Save the flow">Opslaan</button></body></html>'
    found = check_page("/x", html, "nl", data, pieces)
    assert len(found) == 1 and "Save the flow" in found[0]


def test_every_marked_string_has_a_dutch_and_polish_translation():
    """Extracted afresh from the code (not from the .pot, which may be stale): every _() / _l() msgid."""
    method_map = [("app/**.py", "python"), ("flows/**.py", "python"), ("templates/*.html", "jinja2"),
                  ("templates/**.html", "jinja2")]
    ids = set()
    for _, _, message, *_ in extract_from_dir(str(ROOT), method_map=method_map,
                                              keywords={"_": None, "_l": None, "gettext": None,
                                                        "lazy_gettext": None, "ngettext": (1, 2)}):
        if message:
            ids.add(message if isinstance(message, str) else message[0])
    for lang in ("nl", "pl"):
        with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
            translated = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh)
                          if m.id and (m.string if isinstance(m.string, str) else all(m.string))}
        missing = sorted(ids - translated)
        assert not missing, f"{lang}: {len(missing)} untranslated, e.g. {missing[:8]}"


def _switch(client, lang):
    page = client.get("/shops/demo").get_data(as_text=True)
    client.post("/language", data={"lang": lang, "next": "/", "csrf_token": _token(page)})


def test_money_and_dates_in_the_owners_format_and_the_shops_time_zone(client, login, db, shop):
    """A Dutch page writes € 1.234,50 and 1 jun 2026; a message sent at 12:00 UTC shows 14:00 in Amsterdam."""
    assert shop["timezone"] == "Europe/Amsterdam"
    ext, order = db.execute("SELECT c.external_id, o.id FROM messages m JOIN customers c ON c.id = m.customer_id"
                            " JOIN orders o ON o.customer_id = c.id WHERE m.sent_at = '2026-06-01T12:00:00Z'"
                            " ORDER BY o.id LIMIT 1").fetchone()
    db.execute("UPDATE orders SET total_minor = 123450, order_date = '2026-03-07' WHERE id = ?", [order])
    db.conn.commit()
    login()
    _switch(client, "nl")
    page = client.get(f"/shops/demo/customers/{ext}").get_data(as_text=True)
    assert "€\xa01.234,50" in page and "7 mrt 2026" in page
    assert "1 jun 2026 14:00" in page and "12:00" not in page
    _switch(client, "pl")
    page = client.get(f"/shops/demo/customers/{ext}").get_data(as_text=True)
    assert "1234,50\xa0€" in page or "1\xa0234,50\xa0€" in page
    assert "7 mar 2026" in page and "14:00" in page
    _switch(client, "en")
    page = client.get(f"/shops/demo/customers/{ext}").get_data(as_text=True)
    assert "€1,234.50" in page and "Mar 7, 2026" in page and "14:00" in page
    outbox = client.get("/shops/demo/outbox").get_data(as_text=True)
    assert "14:00" in outbox and "2026-06-01 12:00" not in outbox


def test_the_sync_summary_is_a_sentence(client, login, shop):
    login()
    _switch(client, "nl")
    page = client.get("/shops/demo").get_data(as_text=True)
    assert "Bestellingen: 327 (327 nieuw, 0 gewijzigd); klanten: 120 (120 nieuw, 0 gewijzigd)" in page
    assert "customers_new" not in page and "orders_unchanged" not in page


def test_unsubscribe_page_speaks_the_customers_language_not_the_owners(app, client, db, shop):
    """A Polish customer of an English-speaking shop, whose browser says English, reads Polish."""
    assert shop["locale"] == "en"
    cust = db.execute("SELECT id, shop_id, email FROM customers WHERE email IS NOT NULL ORDER BY id LIMIT 1").fetchone()
    db.execute("UPDATE customers SET locale = 'pl' WHERE id = ?", [cust[0]])
    db.conn.commit()
    path = "/u/" + tokens.make(app, "unsubscribe", cust[1], cust[0])
    page = client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="pl">' in page and "Wypisz się" in page and cust[2] in page and "Unsubscribe" not in page
    done = client.post(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Wypisano Cię" in done
    one_click = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200 and one_click.get_data(as_text=True) == "Wypisano.\n"
    # An English customer of the same shop reads English; a customer without a language, the shop's.
    db.execute("UPDATE customers SET locale = NULL WHERE id = ?", [cust[0]])
    db.conn.commit()
    assert "Unsubscribe" in client.get(path, headers={"Accept-Language": "nl"}).get_data(as_text=True)


def test_error_pages_are_ours_and_translated(app, client, login, shop):
    login()
    _switch(client, "nl")
    missing = client.get("/shops/nope")
    assert missing.status_code == 404 and "Pagina niet gevonden" in missing.get_data(as_text=True)
    assert "Not Found" not in missing.get_data(as_text=True)
    refused = client.post("/shops/demo/settings", data={"lapse_factor": "2"})  # no CSRF token
    assert refused.status_code == 400 and "Ongeldig verzoek" in refused.get_data(as_text=True)
    _switch(client, "pl")
    page = client.get("/shops/demo/customers/nobody").get_data(as_text=True)
    assert '<html lang="pl">' in page and "Nie znaleziono strony" in page
    app.config["MAX_CONTENT_LENGTH"] = 100
    big = client.post("/shops/demo/refresh", data={"x": "y" * 5000})
    assert big.status_code == 413 and "Za duże" in big.get_data(as_text=True)
    unset = client.get("/shopify/install").get_data(as_text=True)  # the configuration's words stay as a detail
    assert "Niedostępne" in unset and "WINBACK_SHOPIFY_CLIENT_ID is not set" in unset
    # Machine endpoints keep answering in JSON.
    hook = client.post("/feedback/postmark", json={})
    assert hook.status_code in (401, 404) and hook.is_json


def test_reasons_and_stored_names_are_said_in_the_language_with_its_numbers(app):
    """What the flows say (English for the CLI) is said again in Dutch/Polish, numbers and money the
    language's way; internal names become labels."""
    from flask_babel import force_locale

    from app.web.formatting import say
    from app.words import N_, Money, Num
    from flows.labels import segment_label, stored_reason
    rule = N_("%(factor)s × their usual %(gap)s days is %(limit)s", factor=Num(1.5), gap=Num(52.4), limit=Num(78.6))
    reason = N_("lapsed: %(days)s days since the last order, %(rule)s", days=Num(1234), rule=rule)
    vip = N_("%(label)s: spent %(clv)s in total, at least %(vip)s (%(how)s)", label=N_("VIP at risk"),
             clv=Money(123450, "EUR"), vip=Money(28421, "EUR"), how=N_("the amount you set"))
    assert reason == "lapsed: 1234 days since the last order, 1.5 × their usual 52.4 days is 78.6"  # the CLI's
    with app.test_request_context(), force_locale("nl"):
        assert say(reason) == "afgehaakt: 1.234 dagen sinds de laatste bestelling, 1,5 × hun gebruikelijke 52,4 " \
                              "dagen is 78,6"
        assert say(vip) == ("VIP in gevaar: besteedde in totaal €\xa01.234,50, minstens €\xa0284,21 "
                            "(het bedrag dat je instelde)")
        assert say(segment_label("category_lapsed:Tea")) == "koopt geen Tea meer"
        assert say(stored_reason("vip_at_risk: 96 days since the last order")) == \
            "VIP in gevaar: 96 dagen sinds de laatste bestelling"
    with app.test_request_context(), force_locale("pl"):
        assert say(stored_reason("not enough history: only 12 customers (need at least 30)")) == \
            "za mało historii: tylko klienci w liczbie 12 (potrzeba co najmniej 30)"
        assert say(stored_reason("frequency cap")) == "limit częstotliwości"
        assert "1234,50\xa0€" in say(vip).replace("\u202f", "") or "1\xa0234,50\xa0€" in say(vip)

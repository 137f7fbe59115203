"""The page forms (issue 13 point 4, issue 17 point 7): fields built from the settings declarations,
refusals in the owner's language from the start, and a refused form that keeps what was typed."""
import html
import re

import pytest

from app.settings import SETTINGS, get_settings, save_setting
from app.shops import get_shop
from app.timeutil import parse_now

NOW = parse_now("2026-06-01T12:00:00Z")


@pytest.fixture
def demo(app, db):
    from connectors.demo import seed_demo
    from flows.refresh import refresh
    seed_demo(db, customers=60, seed=1, now=NOW)
    shop = get_shop(db, "demo")
    refresh(db, shop, NOW)
    return shop


def _token(page):
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)


def _rules(client):
    page = client.get("/shops/demo/settings").get_data(as_text=True)
    values = dict(re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', page))
    values.pop("smtp_url_clear", None)
    values["postal_address"] = "Main street 1"
    values["csrf_token"] = _token(page)
    return page, values


def _speak(client, lang, page):
    client.post("/language", data={"lang": lang, "next": "/", "csrf_token": _token(page)})


def _error(page, key):
    match = re.search(rf'class="field-error" role="alert" id="error-{key}">([^<]*)<', page)
    return html.unescape(match.group(1)) if match else None


def test_the_rules_form_has_a_field_for_every_declared_setting(client, login, demo):
    login()
    page, _values = _rules(client)
    for key, setting in SETTINGS.items():
        if key == "woo_consent_source":  # a WooCommerce shop's only
            assert 'name="woo_consent_source"' not in page
            continue
        assert f'name="{key}"' in page, key
    assert re.search(r'<textarea[^>]*name="postal_address"', page)  # multiline
    assert re.search(r'<input[^>]*name="smtp_url"[^>]*type="password"', page)  # secret
    assert re.search(r'<input[^>]*inputmode="numeric"[^>]*name="window_start"', page)  # integer
    assert re.search(r'<input[^>]*name="sender_email"[^>]*type="email"', page)  # email


@pytest.mark.parametrize("lang, expected", [("nl", "is geen getal"), ("pl", "nie jest liczbą")])
def test_a_refused_number_is_explained_in_the_owners_language(client, login, db, demo, lang, expected):
    login()
    page, values = _rules(client)
    _speak(client, lang, page)
    response = client.post("/shops/demo/settings", data={**values, "lapse_factor": "abc", "lost_days": "400"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert expected in _error(page, "lapse_factor")
    assert "not a number" not in page
    # What the owner typed stays in the form, the refused value and the others alike; nothing is saved.
    assert re.search(r'name="lapse_factor"[^>]*value="abc"', page)
    assert re.search(r'name="lost_days"[^>]*value="400"', page)
    assert "Main street 1" in page
    saved = get_settings(db, demo["id"])
    assert saved["lapse_factor"] == 1.5 and saved["lost_days"] == 365


@pytest.mark.parametrize("lang, expected", [
    ("nl", ("het weekmaximum mag niet lager zijn dan het dagmaximum", "is geen e-mailadres")),
    ("pl", ("limit tygodniowy nie może być niższy niż dzienny", "nie jest adresem e-mail"))])
def test_cross_field_and_text_refusals_are_translated(client, login, db, demo, lang, expected):
    login()
    page, values = _rules(client)
    _speak(client, lang, page)
    page = client.post("/shops/demo/settings", data={**values, "cap_per_day": "5", "cap_per_week": "4"}
                       ).get_data(as_text=True)
    assert _error(page, "cap_per_week") == expected[0]
    page = client.post("/shops/demo/settings", data={**values, "sender_email": "not an address"}
                       ).get_data(as_text=True)
    assert expected[1] in _error(page, "sender_email")
    assert get_settings(db, demo["id"])["cap_per_week"] == 3


def test_the_command_line_still_gets_english(db, demo):
    with pytest.raises(ValueError, match="is not a number"):
        save_setting(db, demo["id"], "lapse_factor", "abc")
    with pytest.raises(ValueError, match="must be at most 10"):
        save_setting(db, demo["id"], "lapse_factor", "11")


def test_an_invalid_test_address_keeps_the_flow_form(client, login, db, demo):
    from flows.definitions import load_flows, save_flow
    flow = {k: v for k, v in load_flows(db, demo["id"])["winback"].items() if k != "name"}
    flow["holdout"] = 0.15
    flow["steps"][1]["delay_days"] = 9
    save_flow(db, demo["id"], "winback", flow)
    login()
    page = client.get("/shops/demo/flows/winback?lang=nl").get_data(as_text=True)
    _speak(client, "nl", page)
    response = client.post("/shops/demo/flows/winback/0/test?lang=nl",
                           data={"email": "not-an-address", "csrf_token": _token(page)})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "is geen e-mailadres" in _error(page, "test0_email")
    assert 'value="not-an-address"' in page  # what was typed, shown again
    # The flow form is as saved: on, its holdout and its days; not blanked.
    assert re.search(r'<input type="checkbox" name="enabled" checked>', page)
    assert 'id="holdout" name="holdout" inputmode="decimal" value="15"' in page
    assert 'name="step1_delay"' in page and re.search(r'name="step1_delay"[^>]*value="9"', page)
    assert re.search(r'name="step0_percent"[^>]*value="\d+"', page)


def test_a_refused_flow_form_keeps_what_was_typed_in_the_owners_language(client, login, db, demo):
    from flows.definitions import load_flows
    before = load_flows(db, demo["id"])["winback"]
    login()
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    _speak(client, "pl", page)
    data = {"csrf_token": _token(page), "holdout": "70", "enabled": "on"}
    for i, step in enumerate(before["steps"]):
        data[f"step{i}_delay"] = str(step["delay_days"])
        data[f"step{i}_offer"] = "percent"
        data[f"step{i}_percent"] = "12"
        data[f"step{i}_valid_days"] = "4"
    page = client.post("/shops/demo/flows/winback", data=data).get_data(as_text=True)
    assert _error(page, "holdout") == "musi być między 0 a 50"
    assert 'value="70"' in page and page.count('value="12"') == len(before["steps"])
    assert load_flows(db, demo["id"])["winback"] == before


def test_a_refused_email_text_is_explained_in_dutch_and_kept(client, login, demo):
    login()
    page = client.get("/shops/demo/flows/winback?lang=nl").get_data(as_text=True)
    _speak(client, "nl", page)
    response = client.post("/shops/demo/flows/winback/0/copy?lang=nl",
                           data={"subject": "x" * 151, "intro": "Hallo daar", "csrf_token": _token(page)})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert _error(page, "copy0_subject") == "mag hoogstens 150 tekens lang zijn"
    assert "x" * 151 in page and "Hallo daar" in page


def test_a_refused_product_cycle_is_translated(client, login, db, demo):
    product = db.execute("SELECT id FROM products WHERE shop_id = ? LIMIT 1", [demo["id"]]).fetchone()[0]
    login()
    page = client.get("/shops/demo/products").get_data(as_text=True)
    _speak(client, "nl", page)
    response = client.post(f"/shops/demo/products/{product}",
                           data={"replenishable": "on", "days": "0", "csrf_token": _token(page)})
    assert response.status_code == 422
    assert "vul een geheel aantal dagen in van 1 tot 3650" in response.get_data(as_text=True)


def test_the_editor_saves_every_field_of_a_step(client, login, db, demo):
    from flows.copy import get_copy
    login()
    page = client.get("/shops/demo/flows/winback?lang=pl").get_data(as_text=True)
    for p in ("{first_name}", "{shop_name}", "{code}", "{expires}"):  # listed next to the fields
        assert f"<code>{p}</code>" in page
    fields = {"subject": "Wróć, {first_name}", "preheader": "Kod {code} czeka", "heading": "Tęsknimy",
              "intro": "Dawno Cię nie było.\n\nZajrzyj do {shop_name}.", "reason": "Nowa palarnia!",
              "button": "Do sklepu", "products": "2"}
    response = client.post("/shops/demo/flows/winback/0/copy?lang=pl", data={**fields, "csrf_token": _token(page)})
    assert response.status_code == 302
    assert get_copy(db, demo["id"], "winback_1", "pl") == {**fields, "products": 2}
    page = client.get("/shops/demo/flows/winback?lang=pl").get_data(as_text=True)
    assert 'value="Tęsknimy"' in page and 'value="2"' in page and ">Nowa palarnia!</textarea>" in page
    preview = client.get("/shops/demo/flows/winback/0/preview?lang=pl").get_data(as_text=True)
    assert "Tęsknimy" in preview and "Nowa palarnia!" in preview and "Do sklepu" in preview
    assert preview.count('class="product"') <= 2


@pytest.mark.parametrize("lang, field, value, message", [
    ("nl", "heading", "x" * 151, "mag hoogstens 150 tekens lang zijn"),
    ("nl", "preheader", "Hallo {naam}", "{naam} is geen placeholder (gebruik {first_name}, {shop_name}, {code},"
                                        " {expires})"),
    ("nl", "products", "7", "vul een heel getal van 0 tot 6 in"),
    ("pl", "reason", "x" * 1001, "może mieć najwyżej 1000 znaków"),
    ("pl", "button", "Kup {teraz}", "{teraz} to nie jest symbol zastępczy (użyj {first_name}, {shop_name}, {code},"
                                    " {expires})"),
    ("pl", "products", "-1", "wpisz liczbę całkowitą od 0 do 6"),
])
def test_a_refused_field_is_explained_next_to_it_in_the_owners_language(client, login, db, demo, lang, field,
                                                                        value, message):
    from flows.copy import get_copy
    login()
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    _speak(client, lang, page)
    data = {"subject": "Keep me", "intro": "Typed intro", field: value, "csrf_token": _token(page)}
    response = client.post(f"/shops/demo/flows/winback/0/copy?lang={lang}", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert _error(page, f"copy0_{field}") == message
    assert html.escape(value, quote=True) in page and "Typed intro" in page  # what was typed is kept
    assert get_copy(db, demo["id"], "winback_1", lang)["subject"] is None  # nothing saved

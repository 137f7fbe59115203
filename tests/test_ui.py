"""The shop owner's UI (issue #8): dashboard, flows editor, rules, connect page, languages, access."""
import re
from contextlib import closing

import pytest

from app.shops import get_shop
from app.timeutil import parse_now
from tests.builders import seeded_demo_file
from tests.conftest import ADMIN_PASSWORD, CHEAP_HASH

NOW = parse_now("2026-06-01T12:00:00Z")


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    """The admin and the demo shop (120 customers, refreshed), seeded once into a database file."""
    return seeded_demo_file(tmp_path_factory.mktemp("demo") / "demo.db", ADMIN_PASSWORD, CHEAP_HASH, NOW)


@pytest.fixture
def demo(app, db, demo_template):
    """The demo shop in the app's database: a copy of the template (seeding it costs more than the test)."""
    import sqlite3
    with closing(sqlite3.connect(demo_template)) as template:
        template.backup(db.conn)
    return get_shop(db, "demo")


def _token(html):
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _errors(html):
    return re.findall(r'class="field-error"[^>]*>([^<]*)<', html)


def _flow_form(flow, **changes):
    """The flow form as the page would post it, with `changes` (e.g. step0_percent="150")."""
    data = {"holdout": f"{flow['holdout'] * 100:g}"}
    if flow["enabled"]:
        data["enabled"] = "on"
    for i, step in enumerate(flow["steps"]):
        data[f"step{i}_delay"] = str(step["delay_days"])
        offer = step.get("offer") or {}
        kind = ("reuse" if offer.get("reuse") else "free_shipping" if offer.get("free_shipping")
                else "percent" if offer.get("percent") else "amount" if offer.get("amount") else "none")
        data[f"step{i}_offer"] = kind
        for name in ("percent", "amount", "valid_days", "min_order"):
            data[f"step{i}_{name}"] = str(offer.get(name, ""))
    data.update(changes)
    return data


def test_dashboard_shows_chart_warnings_flows_and_sync(client, login, demo, db):
    from app.settings import save_setting
    save_setting(db, demo["id"], "postal_address", "")
    login()
    page = client.get("/shops/demo").get_data(as_text=True)
    assert '<svg class="chart"' in page and page.count('class="bar"') == 25
    assert 'data-lapse="repeat_lapse"' in page and "repeat buyers lapse:" in page
    assert 'data-warning="postal_address"' in page and 'data-warning="no_smtp"' in page
    assert 'data-flow="winback"' in page and "not enough data yet" in page
    assert 'data-test="sync"' in page
    assert 'data-segment="lapsed"' in page


def test_dashboard_warns_about_failing_smtp_webhooks_sync_and_consent(app, client, login, db, demo):
    from app.runs import finish_run, start_run
    from app.shops import create_shop
    db.execute("INSERT INTO messages (shop_id, flow, step, idempotency_key, is_marketing, subject, body_text, status,"
               " created_at, scheduled_for, error) VALUES (?, 'winback', 0, 'k1', 1, 's', 't', 'failed', ?, ?, 'boom')",
               [demo["id"], "2026-06-01T00:00:00Z", "2026-06-01T00:00:00Z"])
    db.execute("INSERT INTO webhook_events (shop_id, platform, topic, delivery_id, payload, status, attempts, received_at,"
               " next_attempt_at, last_error) VALUES (?, 'demo', 'orders/create', 'd1', '{}', 'failed', 5, ?, ?,"
               " 'bad payload')", [demo["id"], "2026-06-01T00:00:00Z", "2026-06-01T00:00:00Z"])
    run = start_run(db, demo["id"], "sync", "test")
    finish_run(db, run, error="store unreachable")
    woo = create_shop(db, "woo", "woocommerce", name="Woo")
    login()
    page = client.get("/shops/demo").get_data(as_text=True)
    assert 'data-warning="smtp"' in page and "boom" in page
    assert 'data-warning="sync"' in page and "store unreachable" in page
    assert 'data-warning="webhooks"' in page and "bad payload" in page
    page = client.get(f"/shops/{woo['handle']}").get_data(as_text=True)
    assert 'data-warning="consent"' in page


def test_shopify_token_expiring_is_a_warning(app, client, login, db):
    from app.shops import create_shop, store_credentials
    shop = create_shop(db, "sp.myshopify.com", "shopify", name="SP")
    store_credentials(app, db, shop["id"], {"access_token": "x", "expires_at": "2000-01-01T00:00:00Z"})
    login()
    page = client.get("/shops/sp.myshopify.com").get_data(as_text=True)
    assert 'data-warning="token"' in page


def test_discount_change_is_saved_and_used_by_the_next_tick(app, client, login, db, demo, smtp):
    from flows.definitions import load_flows
    from flows.engine import tick
    login()
    flow = load_flows(db, demo["id"])["winback"]
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    response = client.post("/shops/demo/flows/winback",
                           data={**_flow_form(flow, step0_percent="33"), "csrf_token": _token(page)})
    assert response.status_code == 302
    assert load_flows(db, demo["id"])["winback"]["steps"][0]["offer"]["percent"] == 33
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Saved." in page and 'value="33"' in page
    with app.app_context():
        from app.db import get_db
        tick(app, get_db(), get_shop(get_db(), "demo"), NOW)
    percents = {r[0] for r in db.execute(
        "SELECT d.percent FROM discount_codes d JOIN messages m ON m.discount_code_id = d.id"
        " WHERE m.flow = 'winback' AND m.step = 0")}
    assert percents == {33}


def test_an_amount_off_with_a_minimum_is_saved_and_previewed(client, login, db, demo):
    from flows.definitions import load_flows
    login()
    flow = load_flows(db, demo["id"])["winback"]
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    assert '<option value="amount"' in page and 'name="step0_min_order"' in page
    response = client.post("/shops/demo/flows/winback", data={**_flow_form(
        flow, step0_offer="amount", step0_amount="10", step0_min_order="50", step0_percent="",
        step2_min_order="40,5"), "csrf_token": _token(page)})
    assert response.status_code == 302
    steps = load_flows(db, demo["id"])["winback"]["steps"]
    assert steps[0]["offer"] == {"amount": 10, "min_order": 50, "valid_days": 4}
    assert steps[1]["offer"] == {"reuse": True} and steps[2]["offer"] == {"percent": 20, "valid_days": 3, "min_order": 40.5}
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'name="step0_amount" aria-label="Amount off of email 1" inputmode="decimal" size="6" value="10"' in page
    listing = client.get("/shops/demo/flows").get_data(as_text=True)
    assert "day 0: 10 EUR off from 50 EUR" in listing and "day 10: 20 % from 40.5 EUR" in listing
    preview = client.get("/shops/demo/flows/winback/0/preview?part=text&lang=en").get_data(as_text=True)
    assert "€10 off on orders from €50" in preview
    preview = client.get("/shops/demo/flows/winback/1/preview?part=text&lang=nl").get_data(as_text=True)
    assert "De code geldt bij bestellingen vanaf €\xa050." in preview  # the reminder quotes the earlier code


@pytest.mark.parametrize("changes, field, message", [
    ({"step0_amount": "0"}, "step0_amount", "more than 0"),
    ({"step0_amount": "ten"}, "step0_amount", "enter a number"),
    ({"step0_amount": "250000"}, "step0_amount", "at most 100,000"),
    ({"step0_amount": "9.999"}, "step0_amount", "at most 2 decimals in EUR"),
    ({"step0_amount": "10", "step0_min_order": "10"}, "step0_min_order", "more than the amount off"),
    ({"step0_amount": "10", "step0_min_order": "-1"}, "step0_min_order", "more than 0"),
    ({"step0_amount": ""}, "step0_amount", "enter a number"),
])
def test_a_bad_amount_step_is_refused_next_to_its_field(client, login, db, demo, changes, field, message):
    from flows.definitions import load_flows
    login()
    before = load_flows(db, demo["id"])["winback"]
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    response = client.post("/shops/demo/flows/winback", data={
        **_flow_form(before, step0_offer="amount", **changes), "csrf_token": _token(page)})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="error-{field}"' in html and any(message in e for e in _errors(html)), _errors(html)
    assert load_flows(db, demo["id"])["winback"] == before
    assert f'value="{changes[field]}"' in html


def test_a_bad_amount_is_refused_in_the_owners_language(client, login, db, demo):
    from flows.definitions import load_flows
    login()
    page = client.get("/shops/demo").get_data(as_text=True)
    client.post("/language", data={"lang": "pl", "next": "/shops/demo", "csrf_token": _token(page)})
    before = load_flows(db, demo["id"])["winback"]
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    assert "rabat kwotowy" in page and "Minimalne zamówienie (EUR)" in page
    html = client.post("/shops/demo/flows/winback", data={**_flow_form(
        before, step0_offer="amount", step0_amount="10", step0_min_order="5"), "csrf_token": _token(page)}).get_data(as_text=True)
    assert "musi być większe niż rabat kwotowy" in _errors(html)


@pytest.mark.parametrize("changes, field, message", [
    ({"step0_percent": "150"}, "step0_percent", "at most 90 %"),
    ({"step0_delay": "-2"}, "step0_delay", "between 0 and 365"),
    ({"step1_delay": "abc"}, "step1_delay", "enter a number"),
    ({"step2_delay": "1"}, "step2_delay", "cannot come before the previous email"),
    ({"step0_valid_days": "0"}, "step0_valid_days", "between 1 and 365"),
    ({"holdout": "80"}, "holdout", "between 0 and 50"),
    ({"step0_percent": "inf"}, "step0_percent", "enter a number"),
    ({"step0_delay": "nan"}, "step0_delay", "enter a number"),
    ({"step0_percent": "0"}, "step0_percent", "more than 0 %"),
])
def test_bad_flow_values_are_refused_next_to_the_field_and_nothing_changes(client, login, db, demo, changes, field,
                                                                            message):
    from flows.definitions import load_flows
    login()
    before = load_flows(db, demo["id"])["winback"]
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    response = client.post("/shops/demo/flows/winback", data={**_flow_form(before, **changes), "csrf_token": _token(page)})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="error-{field}"' in html and any(message in e for e in _errors(html))
    assert load_flows(db, demo["id"])["winback"] == before
    # The refused value is shown again for correcting.
    assert f'value="{changes[field]}"' in html


def test_rules_page_saves_and_refuses(client, login, db, demo):
    from app.settings import get_settings
    login()
    page = client.get("/shops/demo/settings").get_data(as_text=True)
    values = dict(re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', page))
    values.pop("csrf_token", None)
    values["postal_address"] = "1 Main St, Springfield"
    bad = {**values, "window_start": "21", "window_end": "20", "csrf_token": _token(page)}
    response = client.post("/shops/demo/settings", data=bad)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "the send window must end after it starts" in html and 'id="error-window_end"' in html
    assert get_settings(db, demo["id"])["window_start"] == 9  # the old value is kept
    response = client.post("/shops/demo/settings", data={**values, "lapse_factor": "11", "csrf_token": _token(page)})
    assert response.status_code == 422 and 'id="error-lapse_factor"' in response.get_data(as_text=True)
    response = client.post("/shops/demo/settings", data={**values, "timezone": "Mars/Olympus", "csrf_token": _token(page)})
    assert response.status_code == 422 and 'id="error-timezone"' in response.get_data(as_text=True)
    good = {**values, "window_start": "10", "window_end": "18", "vip_min_amount": "250", "timezone": "Europe/Warsaw",
            "csrf_token": _token(page)}
    assert client.post("/shops/demo/settings", data=good).status_code == 302
    saved = get_settings(db, demo["id"])
    assert (saved["window_start"], saved["window_end"], saved["vip_min_amount"]) == (10, 18, 250.0)
    assert saved["postal_address"] == "1 Main St, Springfield"
    assert get_shop(db, "demo")["timezone"] == "Europe/Warsaw"


def test_forms_need_the_csrf_token(client, login, demo):
    login()
    assert client.post("/shops/demo/settings", data={"lapse_factor": "2"}).status_code == 400
    assert client.post("/shops/demo/flows/winback", data={"holdout": "10"}).status_code == 400


def test_preview_renders_for_a_real_customer_in_each_language(client, login, db, demo):
    login()
    en = client.get("/shops/demo/flows/winback/0/preview?lang=en")
    nl = client.get("/shops/demo/flows/winback/0/preview?lang=nl").get_data(as_text=True)
    assert en.status_code == 200 and "WB-PREVIEW" in en.get_data(as_text=True)
    assert "sandbox" in en.headers["Content-Security-Policy"]
    assert en.get_data(as_text=True) != nl and 'lang="nl"' in nl
    text = client.get("/shops/demo/flows/vip_winback/2/preview?lang=pl&part=text").get_data(as_text=True)
    assert "25" in text


def test_copy_is_saved_per_language_and_shown_in_the_preview(client, login, db, demo):
    login()
    page = client.get("/shops/demo/flows/winback?lang=nl").get_data(as_text=True)
    response = client.post("/shops/demo/flows/winback/0/copy?lang=nl",
                           data={"subject": "Kom terug, {first_name}!", "intro": "Hallo daar", "csrf_token": _token(page)})
    assert response.status_code == 302
    assert "Kom terug, {first_name}!" in client.get("/shops/demo/flows/winback?lang=nl").get_data(as_text=True)
    assert "Hallo daar" in client.get("/shops/demo/flows/winback/0/preview?lang=nl").get_data(as_text=True)
    assert "Hallo daar" not in client.get("/shops/demo/flows/winback/0/preview?lang=en").get_data(as_text=True)
    response = client.post("/shops/demo/flows/winback/0/copy?lang=nl",
                           data={"subject": "x" * 151, "intro": "", "csrf_token": _token(page)})
    assert response.status_code == 422 and 'id="error-copy0_subject"' in response.get_data(as_text=True)


def test_send_me_a_test_without_smtp_says_so(client, login, db, demo):
    login()
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    response = client.post("/shops/demo/flows/winback/0/test", data={"email": "owner@example.com",
                                                                     "csrf_token": _token(page)},
                           follow_redirects=True)
    assert "No SMTP server is configured" in response.get_data(as_text=True)
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


def test_send_me_a_test_goes_to_the_owner_not_the_customer(app, client, login, db, demo):
    from app.web.flow_editor import sample_customer
    from app.settings import save_setting
    from flows.definitions import load_flows
    from smtp_server import SmtpServer
    with SmtpServer() as smtp:
        save_setting(db, demo["id"], "smtp_url", smtp.url, app=app)
        login()
        page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
        response = client.post("/shops/demo/flows/winback/0/test", data={"email": "owner@example.com",
                                                                         "csrf_token": _token(page)},
                               follow_redirects=True)
        assert "A test email was sent to owner@example.com" in response.get_data(as_text=True)
        assert len(smtp.messages) == 1
        message = smtp.messages[0]
    customer = sample_customer(db, demo, load_flows(db, demo["id"])["winback"])
    assert message["To"] == "owner@example.com" and customer["email"] not in str(message)
    assert message["Subject"].startswith("[TEST]") and "List-Unsubscribe" not in message
    assert db.execute("SELECT email FROM users WHERE username = 'admin'").fetchone()[0] == "owner@example.com"
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    # The address is remembered for next time.
    assert 'value="owner@example.com"' in client.get("/shops/demo/flows/winback").get_data(as_text=True)


def test_customer_page_shows_the_why_flow_and_messages(app, client, login, db, demo, smtp):
    from flows.engine import tick
    with app.app_context():
        from app.db import get_db
        tick(app, get_db(), get_shop(get_db(), "demo"), NOW)
    ext = db.execute("SELECT c.external_id FROM messages m JOIN customers c ON c.id = m.customer_id LIMIT 1").fetchone()[0]
    login()
    page = client.get(f"/shops/demo/customers/{ext}").get_data(as_text=True)
    assert 'data-test="p_alive"' in page and 'data-test="flow"' in page and 'class="messages"' in page


def test_language_switcher_and_accept_language(client, login, demo):
    login()
    page = client.get("/shops/demo", headers={"Accept-Language": "pl,en;q=0.5"}).get_data(as_text=True)
    assert 'lang="pl"' in page and "Klienci" in page and "Przepływy" in page
    client.post("/language", data={"lang": "nl", "next": "/shops/demo", "csrf_token": _token(page)})
    page = client.get("/shops/demo", headers={"Accept-Language": "pl"}).get_data(as_text=True)
    assert 'lang="nl"' in page and "Klanten" in page and "Drempels" not in page
    assert "Drempels en regels" in client.get("/shops/demo/settings").get_data(as_text=True)
    assert client.post("/language", data={"lang": "xx", "csrf_token": _token(page)}).status_code == 400
    response = client.post("/language", data={"lang": "en", "next": "https://evil.example/", "csrf_token": _token(page)})
    assert response.headers["Location"] == "/"


def test_every_ui_string_is_translated():
    from babel.messages.pofile import read_po
    from app.web.i18n import TRANSLATIONS
    template = {m.id for m in read_po(open(TRANSLATIONS / "messages.pot", "rb")) if m.id}
    for lang in ("nl", "pl"):
        catalog = read_po(open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb"))
        translated = {m.id for m in catalog if m.id and m.string}
        assert template <= translated, f"{lang} lacks {sorted(template - translated)[:5]}"
        for m in catalog:
            if m.id and m.string:
                assert set(re.findall(r"%\((\w+)\)s", m.id)) == set(re.findall(r"%\((\w+)\)s", m.string)), m.id


def test_catalogues_compile_from_a_fresh_clone(tmp_path):
    import shutil
    from app.web.i18n import TRANSLATIONS, compile_catalogues
    copy = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, copy, ignore=shutil.ignore_patterns("*.mo"))
    compiled = compile_catalogues(copy)
    assert {p.parent.parent.name for p in compiled} == {"nl", "pl"} and all(p.stat().st_size > 1000 for p in compiled)
    assert compile_catalogues(copy) == []  # up to date: nothing to do


NEW_PAGES = ["/shops/{h}/flows", "/shops/{h}/flows/winback", "/shops/{h}/flows/winback/0/preview",
             "/shops/{h}/settings", "/shops/{h}/products"]


def test_new_pages_need_a_login(client, demo):
    for url in NEW_PAGES + ["/connect"]:
        response = client.get(url.format(h="demo"))
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_another_users_shop_is_404_everywhere(client, login, make_user, db, demo):
    from app.shops import create_shop
    mine = create_shop(db, "mine", "import", name="Mine")
    make_user("carol", "carol password 1", shop_ids=[mine["id"]])
    login("carol", "carol password 1")
    page = client.get("/shops/mine/settings")
    assert page.status_code == 200
    token = _token(page.get_data(as_text=True))
    for url in ["/shops/{h}", "/shops/{h}/customers", "/shops/{h}/report"] + NEW_PAGES:
        assert client.get(url.format(h="demo")).status_code == 404, url
    for url in ["/shops/{h}/settings", "/shops/{h}/flows/winback", "/shops/{h}/flows/winback/0/copy", "/shops/{h}/flows/winback/toggle",
                "/shops/{h}/flows/winback/0/test", "/shops/{h}/refresh"]:
        assert client.post(url.format(h="demo"), data={"csrf_token": token}).status_code == 404, url


def test_connect_page_offers_shopify_and_woocommerce(app, client, login):
    login()
    page = client.get("/connect").get_data(as_text=True)
    assert "/shopify/install" in page and "/woocommerce/connect" in page


def test_refusals_are_in_the_owners_language(client, login, demo):
    login()
    page = client.get("/shops/demo/settings").get_data(as_text=True)
    client.post("/language", data={"lang": "nl", "next": "/", "csrf_token": _token(page)})
    values = dict(re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', page))
    response = client.post("/shops/demo/settings", data={**values, "window_start": "21", "window_end": "20",
                                                          "csrf_token": _token(page)})
    assert "het verzendvenster moet eindigen na het begin" in response.get_data(as_text=True)
    response = client.post("/shops/demo/settings", data={**values, "lapse_factor": "11", "csrf_token": _token(page)})
    assert "mag hoogstens 10 zijn" in response.get_data(as_text=True)


def test_products_page_marks_replenishable_products(client, login, db, demo):
    login()
    page = client.get("/shops/demo/products")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "data-product=" in html  # the demo marks its replenishables
    pid = db.execute("SELECT id FROM products WHERE shop_id = ? AND replenishable = 0 LIMIT 1", [demo["id"]]).fetchone()[0]
    token = _token(html)
    response = client.post(f"/shops/demo/products/{pid}", data={"replenishable": "on", "days": "-3", "csrf_token": token})
    assert response.status_code == 422 and "1 to 3650" in response.get_data(as_text=True)
    assert db.execute("SELECT replenishable FROM products WHERE id = ?", [pid]).fetchone()[0] == 0
    response = client.post(f"/shops/demo/products/{pid}", data={"replenishable": "on", "days": "28", "csrf_token": token})
    assert response.status_code == 302
    assert db.execute("SELECT replenishable, replenish_days FROM products WHERE id = ?", [pid]).fetchone() == (1, 28)
    client.post(f"/shops/demo/products/{pid}", data={"csrf_token": token})
    assert db.execute("SELECT replenishable FROM products WHERE id = ?", [pid]).fetchone()[0] == 0


PUBLIC = {"static", "i18n.switch", "auth.login", "auth.logout", "healthz", "links.keep", "links.keep_confirm",
          "links.unsubscribe_page", "links.unsubscribe", "shopify.install", "shopify.callback", "shopify.webhook",
          "woocommerce.callback", "woocommerce.webhook", "links.click", "links.demo_store",
          "nps.answer", "nps.comment",  # the journey's 0-10 answer page: its signed link is the key
          "feedback.postmark", "feedback.ses"}  # the mail services' webhooks: a secret or an SNS signature


def test_every_other_route_needs_a_login(app, client, demo):
    """Login required everywhere but webhooks, OAuth callbacks, the email links (unsubscribe, keep, the
    click redirect, the demo storefront), login and health."""
    app.config["WTF_CSRF_ENABLED"] = False  # so that a POST reaches the login check
    values = {"handle": "demo", "customer_id": "1", "name": "winback", "step": 0, "product_id": 1, "message_id": 1,
              "campaign_id": 1}
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        url = rule.build({k: values[k] for k in rule.arguments}, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            assert response.status_code == 302 and "/login" in response.headers["Location"], (method, url)
            checked += 1
    assert checked >= 20


def test_live_preview_shows_unsaved_text_without_saving_it(client, login, db, demo):
    login()
    html = client.get("/shops/demo/flows/winback/0/preview?lang=en&subject=&intro=Typed+just+now").get_data(as_text=True)
    assert "Typed just now" in html
    assert db.execute("SELECT COUNT(*) FROM shop_settings WHERE key LIKE 'copy:%'").fetchone()[0] == 0
    # Text that would be refused shows the saved text instead of failing.
    assert "WB-PREVIEW" in client.get("/shops/demo/flows/winback/0/preview?subject=" + "x" * 200).get_data(as_text=True)


def test_woocommerce_consent_source_on_the_rules_page(client, login, db):
    from app.settings import get_settings
    from app.shops import create_shop
    woo = create_shop(db, "woo", "woocommerce", name="Woo")
    login()
    assert 'data-warning="consent"' in client.get("/shops/woo").get_data(as_text=True)
    page = client.get("/shops/woo/settings").get_data(as_text=True)
    assert 'name="woo_consent_source"' in page
    values = dict(re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', page))
    response = client.post("/shops/woo/settings", data={**values, "woo_consent_source": "maybe", "csrf_token": _token(page)})
    assert response.status_code == 422 and 'id="error-woo_consent_source"' in response.get_data(as_text=True)
    response = client.post("/shops/woo/settings", data={**values, "woo_consent_source": "soft_opt_in",
                                                         "csrf_token": _token(page)})
    assert response.status_code == 302
    assert get_settings(db, woo["id"])["woo_consent_source"] == "soft_opt_in"
    assert 'data-warning="consent"' not in client.get("/shops/woo").get_data(as_text=True)


def test_a_flow_is_turned_off_and_on_from_the_list(client, login, db, demo):
    from flows.definitions import load_flows
    login()
    page = client.get("/shops/demo/flows").get_data(as_text=True)
    assert client.post("/shops/demo/flows/sunset/toggle", data={"csrf_token": _token(page)}).status_code == 302
    assert load_flows(db, demo["id"])["sunset"]["enabled"] is False
    assert "Turn on" in client.get("/shops/demo/flows").get_data(as_text=True)
    client.post("/shops/demo/flows/sunset/toggle", data={"csrf_token": _token(page)})
    assert load_flows(db, demo["id"])["sunset"]["enabled"] is True


def test_language_switch_from_a_refused_form_goes_back_to_a_page_that_exists(client, login, demo):
    login()
    page = client.get("/shops/demo/flows/winback").get_data(as_text=True)
    refused = client.post("/shops/demo/flows/winback/0/copy", data={"subject": "x" * 200, "csrf_token": _token(page)},
                          headers={"Referer": "http://localhost/shops/demo/flows/winback"}).get_data(as_text=True)
    target = re.search(r'name="next" value="([^"]*)"', refused).group(1)
    assert target == "/shops/demo/flows/winback"
    response = client.post("/language", data={"lang": "pl", "next": target, "csrf_token": _token(page)})
    assert response.headers["Location"] == "/shops/demo/flows/winback"
    assert client.get(target).status_code == 200

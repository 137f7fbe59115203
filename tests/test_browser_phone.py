"""Every page on a 390 px phone, in English, Dutch and Polish (issue 17): nothing is wider than the screen.

The owner's pages are opened logged in; the login page, the customer-facing unsubscribe and keep
pages and an error page without a session. Screenshots go to test-artifacts/phone-<lang>-<name>.png.
"""
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from app import tokens
from test_browser import PASSWORD, scroll_width, shot

WIDTH, HEIGHT = 390, 844
OWNER_PAGES = {
    "dashboard": "/shops/demo",
    "customers": "/shops/demo/customers",
    "customers-sorted": "/shops/demo/customers?sort=clv&dir=desc",
    "customer": "/shops/demo/customers/{customer}",
    "products": "/shops/demo/products",
    "flows": "/shops/demo/flows",
    "flow-editor": "/shops/demo/flows/winback",
    "flow-editor-service": "/shops/demo/flows/second_order",
    "rules": "/shops/demo/settings",
    "outbox": "/shops/demo/outbox",
    "report": "/shops/demo/report",
    "report-range": "/shops/demo/report?from=2026-01-01&to=2026-12-31",
    "flow-editor-category": "/shops/demo/flows/category_winback",
    "segments": "/shops/demo/segments",
    "segment-editor": "/shops/demo/segments/new",
    "campaigns": "/shops/demo/campaigns",
    "campaign-new": "/shops/demo/campaigns/new",
    "demo-store": "/demo-store",
    "shops": "/",
    "connect": "/connect",
    "woocommerce-connect": "/woocommerce/connect?store_url=https://a-very-long-store-name.example.com",
    "users": "/users",
    "password": "/account/password",
    "not-found": "/shops/demo/customers/nobody-has-this-id",
}


def _phone(browser, lang):
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, locale=lang,
                                  extra_http_headers={"Accept-Language": lang})
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def _login(page, server, lang):
    page.goto(server["url"] + "/login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(server["url"] + "/shops/demo")
    # The language the owner chose with the switcher (the session's) wins over the browser's.
    page.goto(server["url"] + "/shops/demo")
    page.click(f'button[data-lang="{lang}"]')
    page.wait_for_selector(f'html[lang="{lang}"]')


def _width(page, server, lang, name, path):
    page.goto(server["url"] + path)
    page.wait_for_load_state("load")
    shot(page, f"phone-{lang}-{name}")
    return scroll_width(page)


def _customer_links(server):
    """A customer id with the longest email (the hardest to fit), and signed unsubscribe and keep
    links for that customer, made with the installation's secret like the emails' links."""
    with sqlite3.connect(server["db"]) as db:
        shop_id, customer_id, external_id = db.execute(
            "SELECT c.shop_id, c.id, c.external_id FROM customers c JOIN shops s ON s.id = c.shop_id"
            " WHERE s.handle = 'demo' AND c.email IS NOT NULL ORDER BY length(c.email) DESC LIMIT 1").fetchone()
    secret = (Path(server["env"]["WINBACK_INSTANCE_PATH"]) / "secret_key").read_text().strip()
    app = SimpleNamespace(config={"SECRET_KEY": secret})
    return external_id, {"unsubscribe": "/u/" + tokens.make(app, "unsubscribe", shop_id, customer_id),
                         "keep": "/k/" + tokens.make(app, "keep", shop_id, customer_id),
                         "bad-token": "/u/not-a-token"}


@pytest.mark.parametrize("lang", ["en", "nl", "pl"])
def test_no_page_is_wider_than_a_phone(browser, server, lang):
    external_id, public = _customer_links(server)
    too_wide = {}
    page = _phone(browser, lang)
    _width(page, server, lang, "login", "/login")  # the login page itself, before logging in
    width = scroll_width(page)
    if width > WIDTH:
        too_wide["login"] = width
    for name, path in public.items():
        width = _width(page, server, lang, name, path)
        if width > WIDTH:
            too_wide[name] = width
    _login(page, server, lang)
    for name, path in OWNER_PAGES.items():
        width = _width(page, server, lang, name, path.format(customer=external_id))
        if width > WIDTH:
            too_wide[name] = width
    page.context.close()
    assert not too_wide, f"pages wider than {WIDTH} px in {lang}: {too_wide}"


def test_the_dashboard_chart_is_readable_on_a_phone(browser, server):
    """The chart's labels are drawn at 11 px or more on the phone's screen, not shrunk with the picture."""
    page = _phone(browser, "en")
    _login(page, server, "en")
    page.goto(server["url"] + "/shops/demo")
    sizes = page.eval_on_selector_all(
        "svg.chart text", "els => els.map(e => e.getBoundingClientRect().height)")
    assert sizes and min(sizes) >= 11, f"chart labels as small as {min(sizes):.1f} px on a phone"
    box = page.locator("svg.chart").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH
    page.context.close()

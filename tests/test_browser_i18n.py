"""Browser test (issue 17, point 4): a Dutch and a Polish browser see no English on the owner's pages.

Chromium's own language (its Accept-Language) chooses the page's; the visible text of each page in the
navigation, a customer's page and the report goes through the same check as tests/test_i18n_pages.py.
"""
import sqlite3
from contextlib import closing

import pytest
from test_browser import PASSWORD, shot
from test_i18n_pages import _alternation, data_values, english_in, english_msgids

NAV = ["/shops/demo", "/shops/demo/customers", "/shops/demo/report", "/shops/demo/flows",
       "/shops/demo/flows/winback", "/shops/demo/settings", "/shops/demo/products", "/shops/demo/outbox",
       "/connect", "/users", "/account/password", "/shops/demo/customers?segment=lapsed"]


@pytest.mark.parametrize("lang, browser_locale", [("nl", "nl-NL"), ("pl", "pl-PL")])
def test_a_dutch_and_a_polish_browser_see_no_english(browser, server, lang, browser_locale):
    with closing(sqlite3.connect(server["db"])) as db:
        data = _alternation(data_values(db))
        lapsed = db.execute("SELECT c.external_id FROM customers c JOIN customer_segments s ON s.customer_id = c.id"
                            " WHERE s.segment = 'lapsed' ORDER BY c.id LIMIT 1").fetchone()[0]
    pieces = _alternation(english_msgids(lang), boundaries=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=browser_locale)
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(server["url"] + "/shops/demo")
        assert page.locator("html").get_attribute("lang") == lang  # the login page already speaks it
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(server["url"] + "/shops/demo")
        found = []
        for path in NAV + [f"/shops/demo/customers/{lapsed}", "/shops/demo/no-such-page"]:
            page.goto(server["url"] + path)
            assert page.locator("html").get_attribute("lang") == lang, path
            if path.startswith("/shops/demo/customers/"):
                shot(page, f"customer-{lang}")
            for line in page.locator("body").inner_text().splitlines():
                why = english_in(" ".join(line.split()), data, pieces) if line.strip() else None
                if why:
                    found.append(f"{path}: {line.strip()!r} ({why})")
        shot(page, f"not-found-{lang}")
        assert not found, "\n".join(found[:40])
    finally:
        context.close()

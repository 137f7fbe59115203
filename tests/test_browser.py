"""Browser tests (issue #8): a real Chromium (Debian's, driven by Playwright) against a live
`winback serve` seeded with the demo shop. Screenshots of each page go to test-artifacts/.

`make test` installs chromium when it is missing; without it these tests fail (never skip), saying so.
"""
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError, expect

from test_serving import free_port, wait_for
from tests.conftest import CHEAP_HASH

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("WINBACK_CHROMIUM", "/usr/bin/chromium")
NOW = "2026-06-01T12:00:00Z"
PASSWORD = "browser test password"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
        "--disable-sync"]


def live_demo_server(tmp_path_factory):
    """A live server on a free port over a fresh instance with the demo shop (300 customers).

    The `server` fixture (tests/conftest.py): one for the whole run, shared by the browser tests."""
    instance = tmp_path_factory.mktemp("browser") / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINBACK_")}
    env.update(WINBACK_INSTANCE_PATH=str(instance), WINBACK_ADMIN_PASSWORD=PASSWORD,
               WINBACK_PASSWORD_HASH_METHOD=CHEAP_HASH)
    winback = str(BIN / "winback")
    for cmd in (["init-db"], ["demo", "--customers", "300", "--now", NOW, "--history-days", "0"], ["refresh", "--shop", "demo", "--now", NOW]):
        subprocess.run([winback, *cmd], env=env, check=True, capture_output=True, cwd=ROOT)
    port = free_port()
    proc = subprocess.Popen([winback, "serve", "--no-scheduler", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        yield {"url": f"http://127.0.0.1:{port}", "env": env, "db": instance / "winback.db"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def chromium_browser():
    """Debian's chromium under Playwright (the `browser` fixture in tests/conftest.py)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                    "(`make test` installs it; or `apt-get install -y chromium`)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def logged_in(browser, server, width=1280, height=900):
    """A new browser context (its own session) logged in as admin, on the demo shop's dashboard."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(server["url"] + "/shops/demo")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(server["url"] + "/shops/demo")
    return page


@pytest.fixture
def page(browser, server):
    page = logged_in(browser, server)
    yield page
    page.context.close()


def scroll_width(page):
    """How wide the page's document is, in CSS px, once it has loaded. Polled rather than evaluated once:
    right after a click the old document may be going away and the new one not yet there."""
    page.wait_for_load_state("load")
    return page.wait_for_function(
        "document.readyState === 'complete' && document.documentElement ? document.documentElement.scrollWidth : 0"
    ).json_value()


def shot(page, name):
    """Saves a full-page screenshot for people to look at. Chromium now and then cannot capture one on a
    busy machine; a picture is evidence, not the test's assertion, so it is tried again before failing."""
    ARTIFACTS.mkdir(exist_ok=True)
    for attempt in range(3):
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            return
        except PlaywrightError:
            if attempt == 2:
                raise
            page.wait_for_timeout(250)


def test_dashboard_and_pages(page, server):
    assert page.locator('[data-test="customers"]').inner_text() == "300"
    assert page.locator("svg.chart rect.bar").count() == 25
    assert page.locator('svg.chart [data-lapse="repeat_lapse"]').count() == 1
    assert page.locator('[data-warning="no_smtp"]').is_visible()  # preview mode until email is set up
    assert page.locator('tr[data-flow="winback"]').is_visible()
    shot(page, "dashboard")
    page.click("text=Customers")
    page.fill("input[name=q]", "@")
    page.select_option("select[name=segment]", "lapsed")
    page.click("form.search button")
    page.locator("table.customers tbody tr a").first.click()
    assert page.locator("ul.reasons li").first.inner_text().startswith("lapsed")
    shot(page, "customer")
    page.goto(server["url"] + "/shops/demo/customers")
    shot(page, "customers")
    page.click("header >> text=Rules")
    shot(page, "rules")
    page.click("header >> text=Products")
    expect(page.locator("tr[data-product]").first).to_be_visible()  # waits for the page the click opens
    shot(page, "products")
    page.click("header >> text=Connect")
    expect(page.locator("body")).to_contain_text("/shopify/install")
    shot(page, "connect")
    page.goto(server["url"] + "/shops/demo/report")
    shot(page, "report")
    page.click("header >> text=Outbox")
    expect(page.locator('[data-mode="preview"]')).to_have_count(1)  # the demo has no email delivery configured
    shot(page, "outbox")


def test_change_a_discount_is_saved_and_used_by_the_next_tick(page, server, smtp_server):
    page.goto(server["url"] + "/shops/demo/flows")
    shot(page, "flows")
    page.click('[data-flow="winback"] h2 a')
    page.fill('input[name="step0_percent"]', "150")
    page.click("text=Save the flow")
    error = page.locator("#error-step0_percent")
    expect(error).to_contain_text("at most 90 %")
    shot(page, "flow-refused")
    page.fill('input[name="step0_percent"]', "35")
    page.click("text=Save the flow")
    expect(page.locator(".flash")).to_contain_text("Saved.")
    assert page.input_value('input[name="step0_percent"]') == "35"
    smtp_server.reset()  # the tick runs live: email delivery is configured for it
    subprocess.run([str(BIN / "winback"), "run-flows", "--shop", "demo", "--now", NOW],
                   env={**server["env"], "WINBACK_SMTP_URL": smtp_server.url}, check=True, capture_output=True, cwd=ROOT)
    with sqlite3.connect(server["db"]) as db:
        percents = {r[0] for r in db.execute(
            "SELECT d.percent FROM discount_codes d JOIN messages m ON m.discount_code_id = d.id"
            " WHERE m.flow = 'winback' AND m.step = 0")}
    assert percents == {35}


def test_bad_rules_are_refused(page, server):
    page.goto(server["url"] + "/shops/demo/settings")
    page.fill("#f-window_start", "21")
    page.fill("#f-window_end", "20")
    page.click("form.rules button[type=submit]")
    expect(page.locator("#error-window_end")).to_contain_text("must end after it starts")
    assert "Still saved: 20" in page.content()
    shot(page, "rules-refused")


def test_preview_and_switch_language(page, server):
    page.goto(server["url"] + "/shops/demo/flows/winback")
    frame = page.frame_locator("#step0 iframe.preview")
    assert "WB-PREVIEW" in frame.locator("body").inner_text()
    subject_en = page.locator('#step0 [data-test="subject"]').inner_text()
    page.fill("#intro0", "Typed just now, not saved")  # the preview follows the typing
    expect(page.frame_locator("#step0 iframe.preview").locator("body")).to_contain_text("Typed just now, not saved")
    page.fill("#heading0", "Back in stock, {first_name}")  # and the heading, its placeholder filled in
    heading = page.frame_locator("#step0 iframe.preview").locator("h1.heading")
    expect(heading).to_contain_text("Back in stock, ")
    assert "{first_name}" not in heading.inner_text()
    shot(page, "flow-preview")
    page.click('button[data-lang="nl"]')
    page.wait_for_selector('html[lang="nl"]')
    assert page.locator("header nav").get_by_text("Klanten").is_visible()
    page.click("nav.tabs >> text=Nederlands")
    expect(page.locator('#step0 [data-test="subject"]')).not_to_have_text(subject_en)
    assert "WB-PREVIEW" in page.frame_locator("#step0 iframe.preview").locator("body").inner_text()
    shot(page, "flow-nl")
    page.click('button[data-lang="pl"]')
    page.wait_for_selector('html[lang="pl"]')
    assert page.locator("header nav").get_by_text("Przepływy").is_visible()


def test_phone_width(browser, server):
    page = logged_in(browser, server, 390, 844)
    width = scroll_width(page)
    assert width <= 400, f"the dashboard scrolls sideways on a phone ({width} px)"
    shot(page, "dashboard-phone")
    page.goto(server["url"] + "/shops/demo/flows/winback")
    for step in range(3):
        assert "WB-PREVIEW" in page.frame_locator(f"#step{step} iframe.preview").locator("body").inner_text()
    shot(page, "flow-phone")
    page.locator("#step0").screenshot(path=str(ARTIFACTS / "flow-phone-preview.png"))
    page.context.close()


@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)])
def test_a_winback_email_leads_to_the_shop(browser, server, width, height):
    """The win-back email as it is sent (`winback preview`, links made by this installation), opened
    at desktop and phone width: its button is visible, fits the screen and takes the reader through
    the tracked redirect to the demo shop's storefront."""
    command = ["preview", "--shop", "demo", "--flow", "winback", "--step", "1", "--json"]
    out = subprocess.run([str(BIN / "winback"), *command],
                         env={**server["env"], "WINBACK_APP_URL": server["url"]}, check=True, capture_output=True,
                         text=True, cwd=ROOT)
    email = json.loads(out.stdout)
    [shop_link] = [link for link in email["links"] if link["kind"] == "shop"]
    assert shop_link["url"].startswith(server["url"] + "/c/") and shop_link["target"] == server["url"] + "/demo-store"
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.set_content(email["html"])
    button = page.locator("a.button")
    expect(button).to_be_visible()
    assert button.get_attribute("href") == shop_link["url"]
    assert "WB-PREVIEW" in page.locator("body").inner_text()
    box = button.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    scroll = scroll_width(page)
    assert scroll <= width, f"the email scrolls sideways at {width} px ({scroll} px)"
    shot(page, f"email-winback-{width}")
    button.click()
    page.wait_for_url(server["url"] + "/demo-store")
    expect(page.locator("h1")).to_have_text("Demo shop")
    context.close()


@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)])
@pytest.mark.parametrize("flow, kinds", [("winback", {"product"}), ("replenish", {"product", "reorder"})])
def test_product_blocks_show_pictures_and_lead_to_the_product(browser, server, width, height, flow, kinds):
    """The win-back and the reorder email with their product blocks (`winback preview`), at desktop
    and phone width: each product's picture loads (served by this installation for the demo shop),
    its title, price and links are there, nothing scrolls sideways, and a product's link takes the
    reader through the tracked redirect to that product on the demo storefront."""
    command = ["preview", "--shop", "demo", "--flow", flow, "--step", "1", "--json"]
    out = subprocess.run([str(BIN / "winback"), *command],
                         env={**server["env"], "WINBACK_APP_URL": server["url"]}, check=True, capture_output=True,
                         text=True, cwd=ROOT)
    email = json.loads(out.stdout)
    assert email["products"], f"the {flow} email of the demo shop shows no products"
    assert {link["kind"] for link in email["links"]} >= kinds
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.set_content(email["html"], wait_until="load")  # the pictures load from this installation
    rows = page.locator("tr.product")
    expect(rows).to_have_count(len(email["products"]))
    for i, product in enumerate(email["products"]):
        row = rows.nth(i)
        expect(row.locator("a.product-title")).to_have_text(product["title"])
        expect(row.locator(".product-price")).to_have_text(product["price"])
        image = row.locator("img")
        expect(image).to_be_visible()
        assert image.get_attribute("src") == product["image"]
        assert image.evaluate("img => img.complete && img.naturalWidth > 0"), f"{product['image']} did not load"
        box = row.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
    if "reorder" in kinds:
        expect(rows.first.locator("a.product-reorder")).to_be_visible()
    scroll = scroll_width(page)
    assert scroll <= width, f"the email scrolls sideways at {width} px ({scroll} px)"
    shot(page, f"email-{flow}-products-{width}")
    [target] = [link["target"] for link in email["links"] if link["url"] == email["products"][0]["url"]]
    rows.first.locator("a.product-title").click()
    page.wait_for_url(target)
    anchor = target.rsplit("#", 1)[1]
    expect(page.locator(f"li#{anchor}")).to_be_visible()
    expect(page.locator(f"li#{anchor} strong")).to_have_text(email["products"][0]["title"])
    context.close()


def test_an_offer_test_is_set_up_on_the_flow_page_and_shown_everywhere(page, server):
    """The owner gives VIP win-back's first email three offers to test: a refused value is shown next to
    its field with what was typed, the saved test appears on the page, in `flow list --json` and on
    the report (with "not enough data yet"); emptying the rows ends it."""
    page.goto(server["url"] + "/shops/demo/flows/vip_winback")
    form = page.locator("#offers0")
    form.locator('select[name="arm0_kind"]').select_option("percent")
    form.locator('input[name="arm0_value"]').fill("95")
    form.locator('input[name="arm0_valid_days"]').fill("4")
    form.locator('select[name="arm1_kind"]').select_option("free_shipping")
    form.locator('input[name="arm1_valid_days"]').fill("7")
    form.locator('select[name="arm2_kind"]').select_option("none")
    form.locator("button[type=submit]").click()
    expect(page.locator("#error-arms0_arm0_value")).to_contain_text("at most 90 %")
    expect(page.locator('#offers0 input[name="arm0_value"]')).to_have_value("95")
    shot(page, "offer-test-refused")
    page.locator('#offers0 input[name="arm0_value"]').fill("10")
    page.locator("#offers0 button[type=submit]").click()
    expect(page.locator(".flash")).to_contain_text("Saved the offer test of email 1.")
    expect(page.locator('#offers0 [data-test="testing"]')).to_have_text("(testing 3 offers)")
    shot(page, "offer-test")
    listed = subprocess.run([str(BIN / "winback"), "flow", "list", "--shop", "demo", "--json"], env=server["env"],
                            check=True, capture_output=True, text=True, cwd=ROOT).stdout
    vip = next(f for f in json.loads(listed) if f["name"] == "vip_winback")
    assert vip["steps"][0]["offers"] == [{"percent": 10, "valid_days": 4}, {"free_shipping": True, "valid_days": 7},
                                         None]
    page.goto(server["url"] + "/shops/demo/report")
    arms = page.locator('[data-flow="vip_winback"] .offer-arms[data-step="1"] tr.arm')
    expect(arms).to_have_count(3)
    expect(arms.nth(0)).to_contain_text("10 % off, valid 4 days")
    expect(page.locator('[data-flow="vip_winback"] [data-test="offer-test-note"]')).to_contain_text(
        "Not enough data yet")
    expect(page.locator('[data-test="make-default"]')).to_have_count(0)
    shot(page, "report-offer-test")
    page.goto(server["url"] + "/shops/demo/flows/vip_winback")
    for j in range(3):
        page.locator(f'#offers0 select[name="arm{j}_kind"]').select_option("")
    page.locator("#offers0 button[type=submit]").click()
    expect(page.locator(".flash")).to_contain_text("Email 1 tests no offers.")
    expect(page.locator('#offers0 [data-test="testing"]')).to_have_count(0)

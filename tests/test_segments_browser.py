"""The segment editor in a real Chromium against the shared live demo server: the live count and
sample follow the rule as it is typed, saving keeps it, and the page fits a phone."""
import json
import subprocess

from playwright.sync_api import expect

from test_browser import BIN, ROOT, logged_in, scroll_width, shot


def _cli(server, *args):
    done = subprocess.run([str(BIN / "winback"), *args], env=server["env"], check=True, capture_output=True,
                          text=True, cwd=ROOT)
    return json.loads(done.stdout)


def test_the_editor_counts_while_typing_and_saves(browser, server):
    page = logged_in(browser, server)
    try:
        page.click("header >> text=Segments")
        page.click("text=New segment")
        page.fill("#name", "Browser big spenders")
        page.select_option('select[name="conditions-0-field"]', "clv")
        page.select_option('select[name="conditions-0-op"]', ">=")
        page.fill('input[name="conditions-0-value"]', "1000000")
        expect(page.locator("#segment-count")).to_have_text("0")
        page.fill('input[name="conditions-0-value"]', "150")
        expect(page.locator("#segment-count")).not_to_have_text("0")
        typed = int(page.locator("#segment-count").inner_text())
        assert typed > 0
        expect(page.locator("#segment-sample li")).to_have_count(min(typed, 10))
        page.select_option('select[name="conditions-1-field"]', "orders")
        page.select_option('select[name="conditions-1-op"]', ">=")
        page.fill('input[name="conditions-1-value"]', "lots")
        expect(page.locator("#segment-problem")).to_have_text("Condition 2: enter a number")
        page.fill('input[name="conditions-1-value"]', "2")
        expect(page.locator("#segment-problem")).to_have_text("")
        narrowed = int(page.locator("#segment-count").inner_text())
        assert narrowed <= typed
        shot(page, "segment-editor")
        page.click("text=Save the segment")
        expect(page.locator(".flash")).to_contain_text("Saved the segment Browser big spenders.")
        shown = _cli(server, "segment", "show", "--shop", "demo", "Browser big spenders", "--members", "--json")
        assert shown["count"] == narrowed == len(shown["members"])
        assert shown["rule"] == {"all": [{"field": "clv", "op": ">=", "value": 150},
                                         {"field": "orders", "op": ">=", "value": 2}]}
        expect(page.locator("#segment-count")).to_have_text(str(narrowed))  # the saved segment counts the same
        page.goto(server["url"] + "/shops/demo/segments")
        expect(page.locator('tr[data-segment="Browser big spenders"] td.num')).to_have_text(str(narrowed))
    finally:
        page.context.close()


def test_the_editor_fits_a_phone(browser, server):
    page = logged_in(browser, server, 390, 844)
    try:
        page.goto(server["url"] + "/shops/demo/segments/new")
        page.select_option('select[name="conditions-0-field"]', "days_since_last")
        page.select_option('select[name="conditions-0-op"]', "<")
        page.fill('input[name="conditions-0-value"]', "60")
        expect(page.locator("#segment-sample li").first).to_be_visible()
        width = scroll_width(page)
        assert width <= 400, f"the segment editor scrolls sideways on a phone ({width} px)"
        shot(page, "segment-editor-phone")
    finally:
        page.context.close()

"""The campaign pages in a real Chromium (issue 16, point 3): schedule a campaign for a segment,
see its preview for a real customer, and cancel it; the pages fit a 390 px phone and break no
Content-Security-Policy."""
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from test_browser import logged_in, scroll_width, shot


def test_create_preview_and_cancel_a_campaign(browser, server):
    for width, height in ((1280, 900), (390, 844)):
        page = logged_in(browser, server, width, height)
        violations = []
        page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
        page.click("header >> text=Campaigns")
        page.click('[data-test="new-campaign"]')
        page.select_option("#segment", "vip")
        page.select_option("#template", "brand_launch")
        page.fill("#subject", "Something new for you, {first_name}")
        page.select_option("#offer", "percent")
        page.fill("#value", "15")
        when = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
        page.fill("#at", when)
        page.fill("#holdout", "20")
        page.click("text=Schedule the campaign")
        expect(page.locator('[data-test="status"]')).to_have_text("scheduled")
        expect(page.locator('[data-test="when"]')).to_contain_text(when.replace("T", " "))
        preview = page.frame_locator("#campaign-preview").locator("body")
        expect(preview).to_contain_text("WB-PREVIEW")
        expect(preview).to_contain_text("15% off")
        assert scroll_width(page) <= width
        shot(page, f"campaign-{width}")
        page.fill("#test-email", "owner@example.com")
        page.click("form.test-send button")  # the demo server has no SMTP server: it says so, sends nothing
        expect(page.locator("body")).to_contain_text("No SMTP server is configured")
        page.click('[data-test="cancel"]')
        expect(page.locator('[data-test="status"]')).to_have_text("cancelled")
        expect(page.locator('[data-test="cancel"]')).to_have_count(0)
        page.click("header >> text=Campaigns")
        page.wait_for_url("**/shops/demo/campaigns")
        assert scroll_width(page) <= width
        shot(page, f"campaigns-{width}")
        page.click('[data-test="new-campaign"]')
        page.select_option("#template", "thank_you")
        page.select_option("#offer", "percent")
        page.fill("#value", "10")
        page.click("text=Schedule the campaign")
        expect(page.locator("#error-offer")).to_have_text("a thank-you carries no offer")
        assert scroll_width(page) <= width
        shot(page, f"campaign-new-{width}")
        assert violations == []
        page.context.close()

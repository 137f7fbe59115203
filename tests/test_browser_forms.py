"""Forms that keep what you typed (issue 17), in a real browser: a refused value re-renders the form
with everything typed and the error next to its field; nothing is saved, nothing is blanked."""
import pytest
from playwright.sync_api import expect

from test_browser import logged_in, shot

FLOW_FORM = "form.flow-form"


@pytest.fixture
def page(browser, server):
    page = logged_in(browser, server)
    yield page
    page.context.close()


def _flow_values(page):
    """Every field of the flow form: name -> value (a checkbox: checked or not)."""
    return page.eval_on_selector(FLOW_FORM, """form => Object.fromEntries(
        [...form.elements].filter(e => e.name && e.name !== 'csrf_token')
          .map(e => [e.name, e.type === 'checkbox' ? e.checked : e.value]))""")


def test_an_invalid_test_address_keeps_the_flow_as_it_is(page, server):
    page.goto(server["url"] + "/shops/demo/flows/winback")
    before = _flow_values(page)
    assert before["step0_delay"] != "" and before["holdout"] != ""
    page.fill("#test0", "not-an-address")
    page.click("#step0 form.test-send button[type=submit]")
    error = page.locator("#error-test0_email")
    expect(error).to_contain_text("is not an email address")  # waits for the page the click opens
    assert page.input_value("#test0") == "not-an-address"  # what was typed, next to its error
    assert _flow_values(page) == before  # every step, the holdout and the real on/off state
    assert page.frame_locator("#step0 iframe.preview").locator("body").inner_text().strip()
    shot(page, "forms-test-address-refused")


def test_a_refused_flow_keeps_every_typed_value(page, server):
    page.goto(server["url"] + "/shops/demo/flows/winback")
    saved = _flow_values(page)
    page.fill('input[name="holdout"]', "12")
    page.fill('input[name="step1_delay"]', "5")
    page.fill('input[name="step0_percent"]', "150")
    page.set_checked('input[name="enabled"]', not saved["enabled"])
    typed = _flow_values(page)
    page.click(f"{FLOW_FORM} button[type=submit]")
    expect(page.locator("#error-step0_percent")).to_contain_text("at most 90 %")
    assert _flow_values(page) == typed  # the toggled switch too
    page.goto(server["url"] + "/shops/demo/flows/winback")
    assert _flow_values(page) == saved  # and nothing was saved
    shot(page, "forms-flow-refused")


def test_a_refused_setting_keeps_every_typed_value(page, server):
    page.goto(server["url"] + "/shops/demo/settings")
    saved_name = page.input_value("#f-sender_name")
    page.fill("#f-sender_name", "Typed, not saved")
    page.fill("#f-lapse_factor", "abc")
    page.fill("#f-cap_per_week", "2")
    page.click("form.rules button[type=submit]")
    expect(page.locator("#error-lapse_factor")).to_contain_text("is not a number")
    assert page.get_attribute("#f-lapse_factor", "aria-invalid") == "true"
    assert page.input_value("#f-lapse_factor") == "abc"
    assert page.input_value("#f-sender_name") == "Typed, not saved"
    assert page.input_value("#f-cap_per_week") == "2"
    shot(page, "forms-setting-refused")
    page.goto(server["url"] + "/shops/demo/settings")
    assert page.input_value("#f-sender_name") == saved_name

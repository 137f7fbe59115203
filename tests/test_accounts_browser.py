"""The users page and the Content-Security-Policy in a real Chromium (issue 12, point 7): the policy
blocks nothing the app itself needs, and an admin adds a user who then sees only their shop."""
import re

from playwright.sync_api import expect

from test_browser import logged_in, shot


def test_no_page_breaks_the_policy_and_an_admin_adds_a_user(browser, server):
    page = logged_in(browser, server)
    violations = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    for path in ["/shops/demo", "/shops/demo/settings", "/shops/demo/customers", "/account/password",
                 "/shops/demo/flows/winback"]:
        page.goto(server["url"] + path)
    page.fill("#intro0", "Typed in the editor")  # preview.js runs under the policy and reloads the frame
    expect(page.frame_locator("#step0 iframe.preview").locator("body")).to_contain_text("Typed in the editor")
    page.click("header >> text=Users")
    page.fill("#new-username", "anna")
    page.check("fieldset.plain input[value=demo]")
    page.click("text=Add user")
    password = re.search(r"Password of anna:\s*(\S+)", page.locator("#new-password").inner_text()).group(1)
    shot(page, "users")
    assert violations == []
    page.context.close()

    anna = browser.new_context().new_page()
    anna.goto(server["url"] + "/login")
    anna.fill("#username", "anna")
    anna.fill("#password", password)
    anna.click("main button[type=submit]")
    anna.wait_for_url(server["url"] + "/shops/demo")
    assert anna.locator("header >> text=Users").count() == 0
    assert anna.goto(server["url"] + "/users").status == 404
    anna.context.close()

"""A way to the shop in every email, and its clicks counted honestly: the storefront button (with
Shopify's discount link, WooCommerce's copy hint), the signed redirect `/c/<token>`, scanners left
out, the report's clicks and click rate, and `winback preview`."""
import json
from datetime import timedelta

import pytest

from app.settings import save_setting
from app.timeutil import from_db, utcnow
from flows import clicks
from flows.attribution import report
from flows.engine import tick
from flows.render import render
from flows.storefront import shop_target
from tests.builders import History, at, lapsed_shop, make_shop, ready_to_send
from tests.test_render import parse
from tests.test_ui import demo, demo_template  # noqa: F401 - fixtures

STORE = "https://bean.example"
APP = "http://127.0.0.1:5000"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def sent_email(app, db, smtp, store=STORE):
    """Deliver the win-back email of the standard lapsed shop; (shop, message row, html, text)."""
    shop = lapsed_shop(db)
    if store:
        save_setting(db, shop["id"], "store_url", store)
    tick(app, db, shop, at(101))
    [mail] = [m for m in smtp.messages if m["To"] == "a@example.com"]
    row = db.execute("SELECT * FROM messages WHERE email = 'a@example.com'").fetchone()
    columns = [d[0] for d in db.execute("SELECT * FROM messages").description]
    return (shop, dict(zip(columns, row)), mail.get_body(preferencelist=("html",)).get_content(),
            mail.get_body(preferencelist=("plain",)).get_content())


def tracked(html):
    return [link for link in parse(html).links if link.startswith(APP + "/c/")]


def counted(db):
    return db.execute("SELECT link, suspect FROM clicks ORDER BY id").fetchall()


def test_the_button_leads_to_the_store_and_a_click_counts_once(app, db, smtp, client):
    shop, message, html, text = sent_email(app, db, smtp)
    [button] = tracked(html)
    assert button in text  # the text part carries the same link
    assert "Copy the code and paste it at checkout." in text  # an import shop cannot apply it by link
    path = button[len(APP):]
    first = client.get(path, headers={"User-Agent": BROWSER})
    assert first.status_code == 302 and first.headers["Location"] == STORE
    again = client.get(path, headers={"User-Agent": BROWSER})
    assert again.status_code == 302 and again.headers["Location"] == STORE
    assert counted(db) == [("shop", 0)]  # once per message and link
    doc = report(db, shop, utcnow() + timedelta(minutes=1))
    [step] = [s for f in doc["flows"] if f["flow"] == "winback" for s in f["steps"] if s["step"] == 1]
    assert step["sent"] == 1 and step["clicks"] == 1 and step["click_rate"] == 1.0
    [later] = [s for f in doc["flows"] if f["flow"] == "winback" for s in f["steps"] if s["step"] == 2]
    assert later["clicks"] == 0 and later["click_rate"] is None


def test_scanners_are_not_counted(app, db, smtp, client):
    _shop, _message, html, _text = sent_email(app, db, smtp)
    path = tracked(html)[0][len(APP):]
    head = client.head(path, headers={"User-Agent": BROWSER})
    assert head.status_code == 302 and head.headers["Location"] == STORE
    for agent in ("Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", "Microsoft Office Existence Discovery",
                  "python-requests/2.32", "Mozilla/5.0 (compatible; Googlebot/2.1)", ""):
        assert client.get(path, headers={"User-Agent": agent}).status_code == 302
    assert counted(db) == []
    client.get(path, headers={"User-Agent": BROWSER})
    assert counted(db) == [("shop", 0)]


def test_the_owner_opening_a_sent_email_is_no_click(app, db, smtp, client, login):
    _shop, _message, html, _text = sent_email(app, db, smtp)
    login()
    response = client.get(tracked(html)[0][len(APP):], headers={"User-Agent": BROWSER})
    assert response.status_code == 302 and response.headers["Location"] == STORE
    assert counted(db) == []


def test_instant_clicks_on_every_link_are_suspect_and_a_later_one_counts(app, db, smtp):
    _shop, message, _html, _text = sent_email(app, db, smtp)
    sent = from_db(message["sent_at"])
    assert clicks.record(db, message["id"], "shop", sent + timedelta(seconds=3)) == "suspect"  # at delivery
    later = sent + timedelta(hours=2)
    assert clicks.record(db, message["id"], "keep", later) == "counted"
    assert clicks.record(db, message["id"], "shop", later + timedelta(seconds=1)) == "suspect"  # both at once
    assert counted(db) == [("shop", 1), ("keep", 1), ("shop", 1)]  # the burst's first click too
    assert clicks.record(db, message["id"], "shop", later + timedelta(minutes=5)) == "counted"
    assert clicks.record(db, message["id"], "shop", later + timedelta(minutes=9)) == "repeat"
    assert [r for r in counted(db) if r[1] == 0] == [("shop", 0)]


def test_forged_altered_and_redirected_tokens(app, db, smtp, client):
    _shop, message, html, _text = sent_email(app, db, smtp)
    token = tracked(html)[0][len(APP) + 3:]
    assert client.get(f"/c/{token[:-2]}xx").status_code == 404              # forged signature
    payload, rest = token.split(".", 1)
    assert client.get(f"/c/{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{rest}").status_code == 404  # altered
    other = clicks.URLSafeTimedSerializer("another secret", salt="winback-click").dumps(
        [message["id"], "shop", "https://evil.example"])
    assert client.get(f"/c/{other}").status_code == 404                     # not our key
    assert client.get("/c/not-a-token").status_code == 404
    response = client.get(f"/c/{token}?next=https://evil.example&url=https://evil.example",
                          headers={"User-Agent": BROWSER})
    assert response.headers["Location"] == STORE  # the target comes from the token only
    assert counted(db) == [("shop", 0)]


def test_an_expired_token_still_redirects_and_records_nothing(app, db, smtp, client, monkeypatch):
    _shop, _message, html, _text = sent_email(app, db, smtp)
    monkeypatch.setattr(clicks, "TOKEN_DAYS", -1)
    response = client.get(tracked(html)[0][len(APP):], headers={"User-Agent": BROWSER})
    assert response.status_code == 302 and response.headers["Location"] == STORE
    assert counted(db) == []


def test_an_import_shop_without_a_store_url_has_no_button(app, db, smtp):
    _shop, _message, html, text = sent_email(app, db, smtp, store=None)
    assert tracked(html) == [] and "/c/" not in text


def test_store_url_setting_is_checked(db):
    shop = make_shop(db)
    for bad in ("ftp://bean.example", "http://bean.example", "https://bean.example/<x>", "bean"):
        with pytest.raises(ValueError):
            save_setting(db, shop["id"], "store_url", bad)
    assert save_setting(db, shop["id"], "store_url", "http://localhost:8000/") == "http://localhost:8000"
    assert save_setting(db, shop["id"], "store_url", "https://bean.example/") == "https://bean.example"


def test_shopify_discount_link_url_encodes_the_code():
    shop = {"platform": "shopify", "handle": "bean.myshopify.com"}
    assert shop_target(shop, {}, "WB-AB CD/1") == "https://bean.myshopify.com/discount/WB-AB%20CD%2F1?redirect=%2F"
    assert shop_target(shop, {"store_url": STORE}, "WB-1") == f"{STORE}/discount/WB-1?redirect=%2F"
    assert shop_target(shop, {}, None) == "https://bean.myshopify.com"
    woo = {"platform": "woocommerce", "handle": "woo", "base_url": "https://woo.example/"}
    assert shop_target(woo, {}, "WB-1") == "https://woo.example"  # no apply-by-link in WooCommerce core


def preview_json(runner, *args):
    result = runner.invoke(args=["preview", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_shopify_email_button_applies_the_code(app, db, runner, client):
    shop = make_shop(db, "bean.myshopify.com", platform="shopify")
    History(db, shop=shop).repeat("A", [0, 40], total="20").write()
    ready_to_send(db, shop)
    doc = preview_json(runner, "--shop", "bean.myshopify.com", "--flow", "winback", "--step", "1")
    [button] = [link for link in doc["links"] if link["kind"] == "shop"]
    assert button["url"].startswith(APP + "/c/") and button["url"] in parse(doc["html"]).links
    assert "The button below applies it for you." in doc["text"]
    response = client.get(button["url"][len(APP):], headers={"User-Agent": BROWSER})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://bean.myshopify.com/discount/WB-PREVIEW?redirect=%2F"
    assert counted(db) == []  # a preview's link belongs to no message: nothing recorded


def test_woocommerce_email_shows_the_code_with_a_copy_hint_and_links_to_the_store():
    shop = {"id": None, "name": "Woo", "handle": "woo", "platform": "woocommerce", "base_url": "https://woo.example",
            "locale": "nl", "timezone": "Europe/Amsterdam"}
    code = {"code": "WB-AAAA-BBBB-CC", "percent": 15, "expires_at": "2026-05-01T10:00:00Z"}
    email = render("winback_1", shop=shop, customer={"first_name": "Eva"}, code=code)
    assert "WB-AAAA-BBBB-CC" in email.html and "Kopieer de code en plak hem bij het afrekenen." in email.text
    assert "https://woo.example" in parse(email.html).links and "https://woo.example" in email.text
    assert "/discount/" not in email.html


def test_preview_json_shape(app, db, runner, client):
    shop = lapsed_shop(db)
    save_setting(db, shop["id"], "store_url", STORE)
    doc = preview_json(runner, "--shop", "s", "--flow", "winback", "--step", "1", "--customer", "A", "--lang", "pl")
    assert set(doc) == {"subject", "preheader", "text", "html", "links", "products"}
    assert doc["subject"] and doc["preheader"] and doc["products"] == []
    assert "WB-PREVIEW" in doc["text"] and "Cześć" in doc["text"]
    kinds = {link["kind"]: link for link in doc["links"]}
    assert set(kinds) == {"shop", "unsubscribe"}
    assert kinds["shop"]["target"] == STORE and kinds["unsubscribe"]["url"].startswith(APP + "/u/")
    assert all(set(link) == {"url", "kind", "target"} for link in doc["links"])
    sunset = preview_json(runner, "--shop", "s", "--flow", "sunset", "--step", "1")
    assert {link["kind"] for link in sunset["links"]} == {"keep", "unsubscribe"}
    [keep] = [link for link in sunset["links"] if link["kind"] == "keep"]
    followed = client.get(keep["url"][len(APP):], headers={"User-Agent": BROWSER})
    assert followed.status_code == 302 and followed.headers["Location"] == keep["target"]
    assert keep["target"].startswith(APP + "/k/") and client.get(keep["target"][len(APP):]).status_code == 200
    bad = runner.invoke(args=["preview", "--shop", "s", "--flow", "winback", "--step", "9"])
    assert bad.exit_code != 0 and "steps 1 to 3" in bad.output
    unknown = runner.invoke(args=["preview", "--shop", "s", "--flow", "winback", "--step", "1", "--customer", "nobody"])
    assert unknown.exit_code != 0 and "no customer" in unknown.output


def test_the_report_page_shows_clicks(app, db, smtp, client, login):
    _shop, _message, html, _text = sent_email(app, db, smtp)
    client.get(tracked(html)[0][len(APP):], headers={"User-Agent": BROWSER})
    login()
    page = client.get("/shops/s/report").get_data(as_text=True)
    # Babel writes English percentages without a space.
    assert "Click rate" in page and '<td class="num clicks">1</td>' in page and "100.0%" in page



def test_the_flow_editors_preview_has_the_demo_shops_storefront_button(client, login, demo):
    login()
    html = client.get("/shops/demo/flows/winback/0/preview?lang=en").get_data(as_text=True)
    assert f"{APP}/demo-store" in parse(html).links  # untracked: a preview is no message
    page = client.get("/demo-store")
    assert page.status_code == 200 and "Demo shop" in page.get_data(as_text=True)

"""Campaigns: a one-off email to a segment, from `campaign create` to the lift in `report --json`,
through the real engine (flows.engine.tick) and a real SMTP server on loopback."""
import json
from datetime import timedelta

from app.timeutil import utcnow
from connectors.base import CustomerRecord
from connectors.store import ShopWriter
from flows.engine import tick
from tests.builders import History, at, lapsed_shop, ready_to_send

TREATED_BUYERS = 10
HELD_BUYERS = 2


def active_shop(db, n=60):
    """n customers C00.. who ordered on day 0 and 40 (active on day 50), and two without consent."""
    h = History(db)
    for i in range(n):
        h.repeat(f"C{i:02d}", [0, 40], total="50", first_name=f"Cust{i}")
    h.repeat("N1", [0, 40], consent=False).repeat("N2", [0, 40], consent=False)
    return ready_to_send(db, h.write())


def cli(runner, *args):
    result = runner.invoke(args=list(args))
    return result


def create(runner, *args, **opts):
    args = ["campaign", "create", "--shop", "s", *args, "--json"]
    result = cli(runner, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def members(db, campaign_id):
    """{customer external id: held_out} of the campaign's recorded members."""
    return {r["external_id"]: r["held_out"] for r in db.query(
        "SELECT c.external_id, e.held_out FROM enrolments e JOIN customers c ON c.id = e.customer_id"
        " WHERE e.flow = ?", [f"campaign:{campaign_id}"])}


def recipients(smtp):
    return [m["To"] for m in smtp.messages]


def test_a_campaign_from_creation_to_its_lift(app, db, smtp, runner):
    shop = active_shop(db)
    doc = create(runner, "--segment", "active", "--template", "vip_early_access", "--offer", "percent:15",
                 "--holdout", "50", "--at", "2026-02-20T10:00", "--subject", "{first_name}, our VIP evening",
                 "--now", "2026-02-19T12:00")
    assert doc["status"] == "scheduled" and doc["scheduled_for"] == "2026-02-20T10:00:00Z"
    assert doc["offer"] == {"percent": 15, "valid_days": 7} and doc["holdout"] == 0.5

    assert tick(app, db, shop, at(50, 9, 30))["sent"] == 0  # not due yet: nothing taken, nothing sent
    assert members(db, doc["id"]) == {} and smtp.messages == []

    result = tick(app, db, shop, at(50, 10, 5))
    taken = members(db, doc["id"])
    treated = sorted(c for c, out in taken.items() if not out)
    held = sorted(c for c, out in taken.items() if out)
    assert set(taken) == {f"C{i:02d}" for i in range(60)}  # the segment at start; N1, N2 have no consent
    assert 15 <= len(held) <= 45 and treated  # a stable hash splits them
    assert result["sent"] == len(treated)
    assert sorted(recipients(smtp)) == sorted(f"{c.lower()}@example.com" for c in treated)
    mail = smtp.messages[0]
    name = next(r["first_name"] for r in db.query("SELECT first_name FROM customers WHERE email = ?", [mail["To"]]))
    assert mail["Subject"] == f"{name}, our VIP evening"
    assert mail["List-Unsubscribe"]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "15% off" in text and "WB-" in text
    codes = list(db.query("SELECT d.kind, d.percent, d.expires_at, c.external_id FROM discount_codes d"
                          " JOIN customers c ON c.id = d.customer_id"))
    assert sorted(c["external_id"] for c in codes) == treated  # a personal code each, none for the held out
    assert {(c["kind"], c["percent"], c["expires_at"]) for c in codes} == {("percent", 15.0, "2026-02-27T10:05:00Z")}

    # Run again: nobody gets it twice, and the campaign is done.
    assert tick(app, db, shop, at(50, 11))["sent"] == 0
    assert len(smtp.messages) == len(treated)
    listed = json.loads(cli(runner, "campaign", "list", "--shop", "s", "--json").output)
    assert [c["status"] for c in listed] == ["sent"]

    # Some of each group buy two days later; the report counts them against each other.
    h = History(db, shop=shop)
    for c in treated[:TREATED_BUYERS] + held[:HELD_BUYERS]:
        h.order(c, 52, total="80")
    h.write()
    report = json.loads(cli(runner, "report", "--shop", "s", "--now", "2026-03-02", "--json").output)
    assert [f["flow"] for f in report["flows"]]  # the flows are still there, the campaign beside them
    [c] = report["campaigns"]
    assert {k: c[k] for k in ("id", "name", "template", "segment", "status", "scheduled_for", "recipients",
                              "held_out", "sent", "converted", "revenue")} == {
        "id": doc["id"], "name": "{first_name}, our VIP evening", "template": "vip_early_access",
        "segment": "active", "status": "sent", "scheduled_for": "2026-02-20T10:00:00Z",
        "recipients": len(treated), "held_out": len(held), "sent": len(treated), "converted": TREATED_BUYERS,
        "revenue": TREATED_BUYERS * 80.0}
    lift = c["lift"]
    assert (lift["treated"], lift["treated_converted"]) == (len(treated), TREATED_BUYERS)
    assert (lift["holdout"], lift["holdout_converted"]) == (len(held), HELD_BUYERS)
    assert lift["lift"] == round(TREATED_BUYERS / len(treated) - HELD_BUYERS / len(held), 4)
    assert lift["ci_low"] < lift["lift"] < lift["ci_high"]


def test_consent_is_checked_again_when_it_leaves_and_the_window_defers(app, db, smtp, runner, client, login):
    shop = active_shop(db, n=3)
    doc = create(runner, "--segment", "active", "--template", "thank_you", "--holdout", "0",
                 "--at", "2026-02-20T06:00", "--now", "2026-02-20T05:00")
    result = tick(app, db, shop, at(50, 6, 0))
    assert result["sent"] == 0 and result["deferred"] == 3  # before the 09:00 window: deferred, not dropped
    assert set(members(db, doc["id"])) == {"C00", "C01", "C02"}
    # C01 withdraws consent (a sync) before the window opens.
    ShopWriter(db, shop).upsert_customers([CustomerRecord("C01", email="c01@example.com", accepts_marketing=False,
                                                          marketing_updated_at=at(50, 7))])
    result = tick(app, db, shop, at(50, 9, 0))
    assert sorted(recipients(smtp)) == ["c00@example.com", "c02@example.com"]
    assert smtp.messages[0]["Subject"] == "Thank you from s"
    text = smtp.messages[0].get_body(preferencelist=("plain",)).get_content()
    assert "WB-" not in text and "%" not in text
    [withheld] = db.query("SELECT m.withheld_reason FROM messages m JOIN customers c ON c.id = m.customer_id"
                          " WHERE c.external_id = 'C01'")
    assert withheld["withheld_reason"] == "no marketing consent"
    login()
    page = client.get(f"/shops/s/campaigns/{doc['id']}").get_data(as_text=True)
    assert "1 withheld (the Outbox says why)" in page


def test_the_frequency_cap_defers_a_campaign_to_the_next_day(app, db, smtp, runner):
    shop = lapsed_shop(db)  # A is lapsed on day 101 and gets the win-back email at 10:00
    tick(app, db, shop, at(101, 10))
    assert recipients(smtp) == ["a@example.com"]
    create(runner, "--segment", "lapsed", "--template", "thank_you", "--holdout", "0",
           "--at", "2026-04-12T11:00", "--now", "2026-04-12T10:30")
    result = tick(app, db, shop, at(101, 11))
    assert result["deferred"] == 1 and len(smtp.messages) == 1  # one marketing email a day
    tick(app, db, shop, at(102, 10, 5))
    assert [m["Subject"] for m in smtp.messages] == ["We miss you at s", "Thank you from s"]


def test_cancelled_before_it_goes_nothing_is_sent(app, db, smtp, runner):
    shop = active_shop(db, n=3)
    doc = create(runner, "--segment", "active", "--template", "brand_launch", "--at", "2026-02-20T10:00",
                 "--now", "2026-02-19T10:00")
    cancelled = cli(runner, "campaign", "cancel", "--shop", "s", str(doc["id"]), "--now", "2026-02-19T11:00")
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    tick(app, db, shop, at(50, 10, 5))
    assert smtp.messages == [] and members(db, doc["id"]) == {}
    again = cli(runner, "campaign", "cancel", "--shop", "s", str(doc["id"]))
    assert again.exit_code != 0 and "nothing left to cancel" in again.output


def test_a_campaign_past_its_lateness_is_missed_not_sent_late(app, db, smtp, runner):
    shop = active_shop(db, n=2)
    doc = create(runner, "--segment", "active", "--template", "thank_you", "--at", "2026-02-20T10:00",
                 "--now", "2026-02-20T09:00")
    smtp_url = app.config.pop("SMTP_URL")
    assert tick(app, db, shop, at(50, 10))["mode"] == "preview"  # no email delivery: nothing starts
    app.config["SMTP_URL"] = smtp_url
    tick(app, db, shop, at(51, 10, 30))  # more than 24 h after its time
    listed = json.loads(cli(runner, "campaign", "list", "--shop", "s", "--json").output)
    assert listed[0]["status"] == "missed" and "24 h" in listed[0]["note"]
    assert smtp.messages == [] and members(db, doc["id"]) == {}


def test_bad_campaigns_are_refused_with_the_reason(app, db, runner):
    active_shop(db, n=2)
    base = ["campaign", "create", "--shop", "s", "--now", "2026-02-20T09:00"]
    cases = {
        ("--segment", "nope", "--template", "thank_you"): "segment 'nope': no such segment",
        ("--segment", "vip", "--template", "newsletter"): "template 'newsletter': one of vip_early_access",
        ("--segment", "vip", "--template", "thank_you", "--offer", "percent:15"): "a thank-you carries no offer",
        ("--segment", "vip", "--template", "brand_launch", "--offer", "percent:95"): "at most 90 %",
        ("--segment", "vip", "--template", "brand_launch", "--offer", "gift"): "use percent:15, amount:10",
        ("--segment", "vip", "--template", "brand_launch", "--offer", "amount:10.001"): "EUR has 2 decimals",
        ("--segment", "vip", "--template", "brand_launch", "--at", "2026-02-19T09:00"): "already past",
        ("--segment", "vip", "--template", "brand_launch", "--at", "tomorrow"): "--at: 'tomorrow' is not",
        ("--segment", "vip", "--template", "brand_launch", "--holdout", "80"): "a percentage from 0 to 50",
        ("--segment", "vip", "--template", "brand_launch", "--subject", "Hi {name}"): "{name} is not a placeholder",
    }
    for args, reason in cases.items():
        result = cli(runner, *base, *args)
        assert result.exit_code != 0 and reason in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert json.loads(cli(runner, "campaign", "list", "--shop", "s", "--json").output) == []


def test_a_campaign_runs_beside_a_flow(app, db, smtp, runner, client, login):
    """A customer in the win-back flow is also a campaign member, and the flow goes on after it."""
    shop = lapsed_shop(db)
    tick(app, db, shop, at(101, 10))
    create(runner, "--segment", "lapsed", "--template", "vip_early_access", "--holdout", "0",
           "--at", "2026-04-13T12:00", "--now", "2026-04-12T10:30")
    tick(app, db, shop, at(102, 12))
    states = {r["flow"]: r["status"] for r in db.query("SELECT flow, status FROM enrolments WHERE customer_id ="
                                                        " (SELECT id FROM customers WHERE external_id = 'A')")}
    assert states == {"winback": "active", "campaign:1": "completed"}
    login()
    page = client.get("/shops/s/customers/A").get_data(as_text=True)
    assert "Campaign #1 1" in page and "Win-back" in page  # its message log names the campaign
    tick(app, db, shop, at(104, 10) + timedelta(minutes=5))
    assert len([m for m in smtp.messages if m["To"] == "a@example.com"]) == 3


# ---- the pages ------------------------------------------------------------------------------
def _token(client, url):
    import re
    html = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


def test_the_campaign_pages_create_preview_test_and_cancel(app, db, smtp, client, login):
    shop = active_shop(db, n=3)
    from flows.refresh import refresh
    refresh(db, shop, at(50))
    login()
    page = client.get("/shops/s/campaigns/new").get_data(as_text=True)
    assert 'value="active"' in page and 'value="brand_launch"' in page
    token = _token(client, "/shops/s/campaigns/new")
    later = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")  # shop time: the shop is in UTC
    bad = client.post("/shops/s/campaigns/new", data={
        "csrf_token": token, "segment": "active", "template": "thank_you", "offer": "percent", "value": "15",
        "at": "2020-01-01T10:00", "holdout": "70"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert "a thank-you carries no offer" in text and "this moment has passed" in text and "from 0 to 50" in text
    assert client.post("/shops/s/campaigns/new", data={"segment": "active", "template": "thank_you"}).status_code == 400
    ok = client.post("/shops/s/campaigns/new", data={
        "csrf_token": token, "segment": "active", "template": "vip_early_access", "offer": "amount", "value": "10",
        "at": later, "holdout": "10", "subject": "VIP night at {shop_name}"})
    assert ok.status_code == 302
    [campaign] = json.loads(app.test_cli_runner().invoke(args=["campaign", "list", "--shop", "s", "--json"]).output)
    assert campaign["scheduled_for"] == later + ":00Z" and campaign["offer"]["amount"] == 10
    url = f"/shops/s/campaigns/{campaign['id']}"
    assert later.replace("T", " ") in client.get(url).get_data(as_text=True)
    assert f"#{campaign['id']}" in client.get("/shops/s/campaigns").get_data(as_text=True)
    preview = client.get(url + "/preview?lang=nl&part=text").get_data(as_text=True)
    assert preview.startswith("VIP night at s") and "WB-PREVIEW" in preview and "€\xa010 korting" in preview
    assert "sandbox" in client.get(url + "/preview").headers["Content-Security-Policy"]
    sent = client.post(url + "/test", data={"csrf_token": token, "email": "owner@example.com"})
    assert sent.status_code == 302
    [mail] = smtp.messages
    assert mail["To"] == "owner@example.com" and mail["Subject"] == "[TEST] VIP night at s"
    assert client.post(url + "/cancel", data={}).status_code == 400  # no CSRF token
    client.post(url + "/cancel", data={"csrf_token": token})
    assert "cancelled" in client.get(url).get_data(as_text=True)
    assert client.get("/shops/s/campaigns/999").status_code == 404


def test_campaign_pages_are_the_shop_owners_only(app, db, client, login, make_user):
    active_shop(db, n=1)
    from app.shops import create_shop
    create_shop(db, "other", "import")
    make_user("anna", "a long password 1", shop_ids=[])
    login("anna", "a long password 1")
    assert client.get("/shops/s/campaigns").status_code == 404
    assert client.get("/shops/s/campaigns/new").status_code == 404


def test_a_brand_launch_shows_that_brands_newest_products(app, db, smtp, runner):
    from decimal import Decimal

    from connectors.base import ProductRecord
    from flows.refresh import refresh
    h = History(db)
    wella = [{"product": "W1", "title": "Wella Oil", "brand": "Wella", "category": "Hair"}]
    for c in ("A", "B"):
        h.repeat(c, [0, 40], lines=wella)
    h.repeat("O", [0, 40], lines=[{"product": "K1", "title": "Kiehl's Cream", "brand": "Kiehls"}])
    shop = ready_to_send(db, h.write())
    store = "https://shop.example"
    ShopWriter(db, shop).upsert_products([
        ProductRecord(external_id=pid, title=title, brand=brand, price=Decimal(12), url=f"{store}/{pid}",
                      image_url=f"{store}/{pid}.jpg", published=published, in_stock=True, created_at=at(day))
        for pid, title, brand, published, day in [
            ("W1", "Wella Oil", "Wella", True, 1), ("W2", "Wella Ultimate Repair", "Wella", True, 48),
            ("W3", "Wella Hidden Draft", "Wella", False, 49), ("K1", "Kiehl's Cream", "Kiehls", True, 49)]])
    refresh(db, shop, at(50))
    create(runner, "--segment", "brand_loyal:Wella", "--template", "brand_launch", "--holdout", "0",
           "--at", "2026-02-20T10:00", "--now", "2026-02-20T09:00")
    run = cli(runner, "run-flows", "--shop", "s", "--now", "2026-02-20T10:00", "--json")  # as the scheduler would
    assert run.exit_code == 0 and json.loads(run.output)["sent"] == 2
    assert sorted(recipients(smtp)) == ["a@example.com", "b@example.com"]  # O buys another brand
    mail = smtp.messages[0]
    assert mail["Subject"] == "New from Wella, and you see it first"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert text.index("Wella Ultimate Repair") < text.index("Wella Oil")  # the newest first
    assert "Hidden Draft" not in text and "Kiehl" not in text  # unpublished, another brand


def test_an_offer_campaign_leaves_out_who_got_a_discount_lately(app, db, smtp, runner):
    shop = lapsed_shop(db)  # A gets the win-back code on day 101; R0..R8 bought on day 90
    tick(app, db, shop, at(101, 10))
    offer = create(runner, "--segment", "lapsed", "--template", "vip_early_access", "--offer", "free_shipping",
                   "--holdout", "0", "--at", "2026-04-14T12:00", "--now", "2026-04-12T11:00")
    plain = create(runner, "--segment", "lapsed", "--template", "thank_you", "--holdout", "0",
                   "--at", "2026-04-14T12:00", "--now", "2026-04-12T11:00")
    tick(app, db, shop, at(103, 12))
    assert members(db, offer["id"]) == {}  # one discount per customer per 90 days
    assert members(db, plain["id"]) == {"A": 0}


def test_cancelling_a_campaign_that_is_sending_withholds_the_rest(app, db, smtp, runner):
    shop = active_shop(db, n=3)
    doc = create(runner, "--segment", "active", "--template", "thank_you", "--holdout", "0",
                 "--at", "2026-02-20T07:00", "--now", "2026-02-20T06:00")
    assert tick(app, db, shop, at(50, 7))["deferred"] == 3  # started, waiting for the sending hours
    listed = json.loads(cli(runner, "campaign", "list", "--shop", "s", "--json").output)
    assert listed[0]["status"] == "sending"
    assert cli(runner, "campaign", "cancel", "--shop", "s", str(doc["id"]), "--now", "2026-02-20T08:00").exit_code == 0
    tick(app, db, shop, at(50, 9, 30))
    assert smtp.messages == []
    states = {r["status"] for r in db.query("SELECT status FROM enrolments WHERE flow = ?", [f"campaign:{doc['id']}"])}
    assert states == {"exited"}


def test_an_owner_segment_empty_today_can_be_the_campaign_s_segment(app, db, smtp, runner):
    """Members are taken when the campaign starts: a saved segment without members now is still a segment."""
    active_shop(db, n=2)
    cli(runner, "refresh", "--shop", "s", "--now", "2026-02-20")
    saved = cli(runner, "segment", "add", "--shop", "s", "Big spenders", "--rule",
                '{"all": [{"field": "clv", "op": ">=", "value": 5000}]}')
    assert saved.exit_code == 0 and "0 customers" in saved.output
    doc = create(runner, "--segment", "Big spenders", "--template", "vip_early_access", "--now", "2026-02-20T09:00")
    assert doc["segment"] == "Big spenders" and doc["status"] == "scheduled"


def test_run_flows_counts_the_members_a_campaign_takes_and_holds_out(app, db, smtp, runner):
    active_shop(db)
    doc = create(runner, "--segment", "active", "--template", "thank_you", "--holdout", "50",
                 "--now", "2026-02-20T09:00")
    result = cli(runner, "run-flows", "--shop", "s", "--now", "2026-02-20T10:00", "--json")
    counts = json.loads(result.output)
    taken = members(db, doc["id"])
    held = sum(1 for out in taken.values() if out)
    assert held and counts["held_out"] >= held
    assert counts["enrolled"] >= len(taken) - held and counts["sent"] >= len(taken) - held


def test_an_amount_finer_than_the_currency_is_refused_on_the_page_too(app, db, client, login):
    shop = active_shop(db, n=3)
    from flows.refresh import refresh
    refresh(db, shop, at(50))
    login()
    token = _token(client, "/shops/s/campaigns/new")
    bad = client.post("/shops/s/campaigns/new", data={
        "csrf_token": token, "segment": "active", "template": "vip_early_access", "offer": "amount", "value": "10.001",
        "holdout": "10"})
    assert bad.status_code == 422 and "EUR has 2 decimals" in bad.get_data(as_text=True)
    assert db.execute("SELECT COUNT(*) FROM campaigns").fetchone()[0] == 0


def test_a_campaign_deferred_by_the_caps_past_its_lateness_is_withheld_not_sent_late(app, db, smtp, runner):
    """The campaign's moment holds (a VIP evening is on a date): a member the caps keep waiting past
    max_lateness_hours after the campaign's time does not get it days later."""
    from app.settings import save_settings
    shop = lapsed_shop(db)  # A is lapsed on day 101 and gets the win-back email at 10:00
    tick(app, db, shop, at(101, 10))
    save_settings(db, shop["id"], {"max_lateness_hours": 2})
    doc = create(runner, "--segment", "lapsed", "--template", "thank_you", "--holdout", "0",
                 "--at", "2026-04-12T11:00", "--now", "2026-04-12T10:30")
    assert tick(app, db, shop, at(101, 11))["deferred"] == 1  # one marketing email a day: to tomorrow 10:00
    tick(app, db, shop, at(102, 10, 5))  # 23 h after the campaign's time, 21 h past its lateness
    assert [m["Subject"] for m in smtp.messages] == ["We miss you at s"]
    [reason] = [r[0] for r in db.execute("SELECT withheld_reason FROM messages WHERE flow = ?", [f"campaign:{doc['id']}"])]
    assert "within 2 h" in reason

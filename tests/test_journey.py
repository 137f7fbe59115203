"""The after-purchase journey (issue 16, point 5): `second_order` as service emails on day 3 (how to
use it), day 14 (how was it, with the one-click 0-10 question) and day 45 (care tips naming what they
bought), through the real engine and a real SMTP server; no offers; stopped by a second purchase and
180 days after the order; no marketing consent needed, but never to an unsubscribed or undeliverable
address. The answers are recorded once per email (a later click updates it), shown on the customer
page and in `report --json`."""
import copy
import json
import re
import time

import pytest

from app.db import write_transaction
from app.timeutil import to_db
from connectors import store
from flows import nps
from flows.consent import unsubscribe
from flows.definitions import DEFAULT_FLOWS, FlowError, save_flow, validate_flow
from flows.engine import tick
from tests.builders import History, at, now_at, ready_to_send

KNIFE = [{"product": "K1", "title": "Chef's knife", "category": "Knives"}]
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"}
NPS_LINK = re.compile(r"^(\d+): http://127\.0\.0\.1:5000(/nps/\S+)$", re.M)


def first_buyer_shop(db, **customer):
    """N bought a chef's knife on day 0 and gave no marketing consent; three others bought twice."""
    h = History(db).order("N", 0, lines=KNIFE, consent=False, **customer)
    for i in range(3):
        h.repeat(f"R{i}", [0, 5])
    return ready_to_send(db, h.write())


def mails(smtp, to="n@example.com"):
    return [m for m in smtp.messages if m["To"] == to]


def text_of(mail):
    return mail.get_body(preferencelist=("plain",)).get_content()


def enrolment(db, customer="N"):
    return dict(next(db.query("SELECT e.* FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                              " WHERE c.external_id = ? ORDER BY e.id DESC LIMIT 1", [customer])))


def answer_links(mail) -> dict:
    return {int(score): path for score, path in NPS_LINK.findall(text_of(mail))}


def test_three_service_emails_on_days_3_14_and_45(app, db, smtp):
    shop = first_buyer_shop(db)
    tick(app, db, shop, at(2))
    assert mails(smtp) == []  # 2 days after the order: too early
    tick(app, db, shop, at(3))
    [how_to] = mails(smtp)
    assert how_to["Subject"] == "Getting the most out of your order from s"
    assert "instructions for use" in text_of(how_to)
    tick(app, db, shop, at(13))
    assert len(mails(smtp)) == 1
    tick(app, db, shop, at(14))
    how_was_it = mails(smtp)[1]
    assert how_was_it["Subject"] == "How is your order from s?"
    text = text_of(how_was_it)
    assert "How likely are you to recommend s to a friend?" in text
    assert sorted(answer_links(how_was_it)) == list(range(11))
    html = how_was_it.get_body(preferencelist=("html",)).get_content()
    assert len(set(re.findall(r'href="http://127\.0\.0\.1:5000/nps/[^"]+"', html))) == 11
    tick(app, db, shop, at(44))
    assert len(mails(smtp)) == 2
    tick(app, db, shop, at(45))
    care = mails(smtp)[2]
    assert care["Subject"] == "Care tips for your Chef's knife"
    assert "You have had your Chef's knife for a few weeks now" in text_of(care)
    assert enrolment(db)["status"] == "completed"
    for mail in mails(smtp):  # service mail: no code, no percentage, no one-click unsubscribe header
        assert "%" not in mail["Subject"] + text_of(mail) and "WB-" not in text_of(mail)
        assert mail["List-Unsubscribe-Post"] is None
    rows = db.execute("SELECT step, is_marketing, discount_code_id FROM messages WHERE email = 'n@example.com'"
                      " ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [(0, 0, None), (1, 0, None), (2, 0, None)]
    tick(app, db, shop, at(90))
    assert len(mails(smtp)) == 3


def test_the_second_purchase_stops_it(app, db, smtp):
    shop = first_buyer_shop(db)
    tick(app, db, shop, at(3))
    History(db, shop=shop).order("N", 8, lines=KNIFE, consent=False).write()
    tick(app, db, shop, at(14))
    tick(app, db, shop, at(45))
    assert len(mails(smtp)) == 1
    e = enrolment(db)
    assert e["status"] == "converted" and e["exit_reason"] == "purchased"


def test_it_stops_180_days_after_the_order(app, db, smtp):
    shop = first_buyer_shop(db)
    long = copy.deepcopy(DEFAULT_FLOWS["second_order"])
    long["holdout"] = 0
    long["steps"][2]["delay_days"] = 200  # an owner's late step: the journey ends before it
    save_flow(db, shop["id"], "second_order", long)
    tick(app, db, shop, at(3))
    tick(app, db, shop, at(14))
    assert len(mails(smtp)) == 2
    tick(app, db, shop, at(180))
    assert enrolment(db)["status"] == "active"  # 177 days after the order: still running
    tick(app, db, shop, at(181, 11))
    e = enrolment(db)
    assert e["status"] == "exited" and e["exit_reason"] == "journey over"
    tick(app, db, shop, at(203))
    assert len(mails(smtp)) == 2


def test_no_offer_on_any_step_of_the_journey():
    for step in range(3):
        for offer in ({"percent": 10, "valid_days": 3}, {"free_shipping": True, "valid_days": 3}, {"reuse": True}):
            journey = copy.deepcopy(DEFAULT_FLOWS["second_order"])
            journey["steps"][step]["offer"] = offer
            with pytest.raises(FlowError, match="service flow carries no offer"):
                validate_flow("second_order", journey)


def test_no_consent_needed_but_never_to_the_unsubscribed_or_undeliverable(app, db, smtp):
    h = History(db).order("N", 0, lines=KNIFE, consent=False).order("U", 0, consent=False)
    h.order("F", 0, consent=True).order("L", 0, consent=False)
    for i in range(3):
        h.repeat(f"R{i}", [0, 5])
    shop = ready_to_send(db, h.write())
    ids = dict(db.execute("SELECT external_id, id FROM customers").fetchall())
    unsubscribe(db, shop["id"], ids["U"], at(1))
    with write_transaction(db):
        store.mark_undeliverable(db, ids["F"], to_db(at(1)), "550 no such user")
    tick(app, db, shop, at(3))
    assert len(mails(smtp, "n@example.com")) == 1 and len(mails(smtp, "l@example.com")) == 1
    assert mails(smtp, "u@example.com") == [] and mails(smtp, "f@example.com") == []
    unsubscribe(db, shop["id"], ids["L"], at(5))  # mid-journey: the rest is not sent
    tick(app, db, shop, at(14))
    assert len(mails(smtp, "l@example.com")) == 1 and len(mails(smtp, "n@example.com")) == 2
    assert enrolment(db, "L")["exit_reason"] == "unsubscribed"


@pytest.fixture(autouse=True)
def _answered_on_day_20(monkeypatch):
    """The answer page records at the wall clock; here that is day 20 of the test calendar."""
    monkeypatch.setattr("app.web.nps.utcnow", lambda: at(20))


@pytest.fixture
def asked(app, db, smtp):
    """N got the day-14 email with the 0-10 question; returns (shop, its answer links)."""
    shop = first_buyer_shop(db)
    tick(app, db, shop, at(3))
    tick(app, db, shop, at(14))
    return shop, answer_links(mails(smtp)[1])


def answers(db):
    return [tuple(r) for r in db.execute("SELECT score, comment FROM nps_answers ORDER BY id")]


def test_one_click_records_the_answer_and_a_second_click_updates_it(client, db, asked):
    shop, links = asked
    page = client.get(links[7], headers=BROWSER)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Thank you! We recorded your answer: 7 out of 10." in html and 'name="comment"' in html
    assert answers(db) == [(7, None)]
    client.get(links[9], headers=BROWSER)
    assert answers(db) == [(9, None)]  # one answer per email: the later click counts
    done = client.post(links[9], data={"comment": "Sharp & <b>fast</b> delivery"}, headers=BROWSER)
    assert done.status_code == 200 and "Thank you for your comment!" in done.get_data(as_text=True)
    assert answers(db) == [(9, "Sharp & <b>fast</b> delivery")]
    row = db.execute("SELECT a.shop_id, c.external_id, a.flow FROM nps_answers a"
                     " JOIN customers c ON c.id = a.customer_id").fetchone()
    assert tuple(row) == (shop["id"], "N", "second_order")


def test_a_scanner_records_nothing_and_a_too_long_comment_is_refused(client, db, asked):
    _, links = asked
    scanned = client.get(links[0], headers={"User-Agent": "Barracuda Sentinel (EE)"})
    assert scanned.status_code == 200 and "Send my answer" in scanned.get_data(as_text=True)
    assert answers(db) == []
    refused = client.post(links[8], data={"comment": "x" * (nps.COMMENT_MAX + 1)}, headers=BROWSER)
    assert refused.status_code == 400 and "under 2000 characters" in refused.get_data(as_text=True)
    assert answers(db) == [(8, None)]  # the number counts, the comment is asked for again


def test_forged_altered_and_expired_links_are_refused(app, client, db, asked, monkeypatch):
    shop, links = asked
    forged = client.get("/nps/not-a-token", headers=BROWSER)
    assert forged.status_code == 401 and "This link is not valid" in forged.get_data(as_text=True)
    head, _, tail = links[10].rpartition(".")
    altered = client.get(f"{head}.{'A' if tail[0] != 'A' else 'B'}{tail[1:]}", headers=BROWSER)
    assert altered.status_code == 401
    assert client.post("/nps/not-a-token", data={"comment": "hi"}).status_code == 401
    message_id = db.execute("SELECT id FROM messages WHERE step = 1").fetchone()[0]
    customer_id = db.execute("SELECT id FROM customers WHERE external_id = 'N'").fetchone()[0]
    real = time.time()
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: real - (nps.TOKEN_DAYS + 1) * 86400)
        old = nps.answer_links(app, shop["id"], customer_id, message_id)["nps_6"]
    expired = client.get(old.replace("http://127.0.0.1:5000", ""), headers=BROWSER)
    assert expired.status_code == 401 and "This link has expired" in expired.get_data(as_text=True)
    other = nps.answer_links(app, shop["id"], customer_id + 1, message_id)["nps_6"]  # not that customer's email
    assert client.get(other.replace("http://127.0.0.1:5000", ""), headers=BROWSER).status_code == 401
    assert answers(db) == []


def test_the_page_speaks_the_customers_language(app, db, client, smtp):
    shop = first_buyer_shop(db, locale="nl")
    tick(app, db, shop, at(3))
    tick(app, db, shop, at(14))
    how_was_it = mails(smtp)[1]
    assert how_was_it["Subject"] == "Hoe bevalt je bestelling bij s?"
    links = answer_links(how_was_it)
    html = client.get(links[3], headers={**BROWSER, "Accept-Language": "en"}).get_data(as_text=True)
    assert "Bedankt! We hebben je antwoord genoteerd: 3 van de 10." in html and 'lang="nl"' in html


def test_the_report_and_the_customer_page_show_the_answers(app, db, client, login, runner, smtp):
    h = History(db)
    for name in ("N", "P", "Q", "D"):
        h.order(name, 0, lines=KNIFE, consent=False)
    for i in range(3):
        h.repeat(f"R{i}", [0, 5])
    shop = ready_to_send(db, h.write())
    tick(app, db, shop, at(3))
    tick(app, db, shop, at(14))
    for name, score in (("N", 10), ("P", 9), ("Q", 8), ("D", 3)):
        [mail] = [m for m in mails(smtp, f"{name.lower()}@example.com") if "nps" in text_of(m)]
        assert client.get(answer_links(mail)[score], headers=BROWSER).status_code == 200
    client.post(answer_links(mail)[3], data={"comment": "Too blunt"}, headers=BROWSER)
    result = runner.invoke(args=["report", "--shop", "s", "--now", "2026-03-01", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    [journey] = [f for f in doc["flows"] if f["flow"] == "second_order"]
    assert journey["nps"] == {"responses": 4, "promoters": 2, "passives": 1, "detractors": 1, "score": 25}
    assert [s["template"] for s in journey["steps"]] == ["journey_how_to", "second_order", "journey_care"]
    assert all("nps" not in f for f in doc["flows"] if f["flow"] != "second_order")
    text = runner.invoke(args=["report", "--shop", "s", "--now", now_at(59)]).output
    assert "recommendation (0-10): 4 answers, 2 promoters, 1 passives, 1 detractors, NPS 25" in text
    login()
    page = client.get("/shops/s/customers/D").get_data(as_text=True)
    assert "3 out of 10" in page and "Too blunt" in page
    report = client.get("/shops/s/report").get_data(as_text=True)
    assert "4 answers, 2 promoters, 1 passives, 1 detractors" in report and "NPS +25" in report


def test_the_flow_page_and_the_preview_show_the_three_steps(app, db, client, login, runner):
    first_buyer_shop(db)
    login()
    page = client.get("/shops/s/flows/second_order")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for subject in ("Getting the most out of your order from s", "How is your order from s?",
                    "Care tips for your Chef"):
        assert subject in html
    result = runner.invoke(args=["preview", "--shop", "s", "--flow", "second_order", "--step", "2", "--customer",
                                 "N", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [link["kind"] for link in doc["links"]].count("nps") == 11
    assert "How likely are you to recommend s to a friend?" in doc["text"]


def test_a_saved_one_email_second_order_becomes_the_journey(tmp_path):
    """A shop that saved the old flow (toggled it, changed its control group) keeps those choices and
    gets the three emails; a definition the owner changed in its steps is left as it is."""
    from app.db import connect
    from app.migrations import init_db, migrations
    from flows.definitions import load_flows
    db = connect(tmp_path / "old.db")
    migrations.apply(db, stop_before="0022_journey")
    old = {"entry": "one_time", "kind": "service", "enabled": False, "holdout": 0.2, "min_days_since_order": 14,
           "max_days_since_order": 180, "steps": [{"delay_days": 0, "template": "second_order", "offer": None}]}
    mine = {**old, "steps": [{"delay_days": 0, "template": "second_order", "offer": None},
                             {"delay_days": 20, "template": "second_order", "offer": None}]}
    for handle, flow in (("a", old), ("b", mine)):
        shop = db.execute("INSERT INTO shops (handle, platform, name, created_at) VALUES (?, 'import', 'S',"
                          " '2026-01-01T00:00:00Z')", [handle]).lastrowid
        db.execute("INSERT INTO shop_settings (shop_id, key, value, updated_at) VALUES (?, 'flow:second_order', ?,"
                   " '2026-01-01T00:00:00Z')", [shop, json.dumps(flow)])
    assert init_db(db)[0] == "0022_journey"
    a, b = (load_flows(db, shop_id)["second_order"] for shop_id in (1, 2))
    assert [s["template"] for s in a["steps"]] == ["journey_how_to", "second_order", "journey_care"]
    assert [s["delay_days"] for s in a["steps"]] == [0, 11, 42]
    assert (a["enabled"], a["holdout"], a["min_days_since_order"], a["stop_after_days"]) == (False, 0.2, 3, 180)
    assert b["steps"] == mine["steps"] and b["min_days_since_order"] == 14
    db.close()

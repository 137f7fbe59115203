"""Delivery over a real SMTP server on loopback, and the unsubscribe that stops it."""
import re

import pytest

from flows.engine import deliver_due, tick
from tests.builders import History, at, lapsed_shop, ready_to_send
from tests.test_flows import enrolment


def deliver(app, db, shop, now):
    """A delivery run between ticks, as of `now`."""
    return deliver_due(app, db, shop, now, realtime=False)


def stored(db, customer="A"):
    return list(db.query("SELECT m.* FROM messages m JOIN customers c ON c.id = m.customer_id"
                         " WHERE c.external_id = ? ORDER BY m.id", [customer]))


def test_delivered_with_headers_and_parts(app, db, smtp):
    shop = lapsed_shop(db)
    result = tick(app, db, shop, at(101))
    assert result["mode"] == "live" and result["sent"] >= 1
    [mail] = [m for m in smtp.messages if m["To"] == "a@example.com"]
    assert mail["Subject"] == "We miss you at s"
    assert mail["From"].addresses[0].addr_spec == "noreply@localhost"
    assert re.fullmatch(r"<wb\d+\.[^>]+@localhost>", mail["Message-ID"].strip()) or "@localhost>" in mail["Message-ID"]
    assert mail["List-Unsubscribe"].startswith("<http://127.0.0.1:5000/u/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    row = stored(db)[0]
    assert row["code"] if "code" in row else True
    assert row["status"] == "sent" and row["sent_at"] and row["message_id"] == mail["Message-ID"]
    assert "WB-" in text
    if row["body_html"]:
        assert mail.get_body(preferencelist=("html",)) is not None


def test_service_mail_has_no_one_click_header(app, db, smtp):
    h = History(db).order("N", 0, consent=False)
    for i in range(3):
        h.repeat(f"R{i}", [0, 5])
    shop = h.write()
    ready_to_send(db, shop)
    tick(app, db, shop, at(3))  # the after-purchase journey's first email: day 3
    [mail] = [m for m in smtp.messages if m["To"] == "n@example.com"]
    assert mail["List-Unsubscribe-Post"] is None


def test_temporary_failure_is_retried_later_then_sent(app, db, smtp):
    shop = lapsed_shop(db)
    smtp.recorder.fail_next_data = ["451 4.3.0 Mailbox busy, try later"] * 20
    result = tick(app, db, shop, at(101))
    assert result["sent"] == 0 and result["retry"] >= 1
    row = stored(db)[0]
    assert row["status"] == "outbox" and "451" in row["error"] and row["scheduled_for"] > "2026-04-12T10:00:00Z"
    smtp.recorder.fail_next_data = []
    from datetime import timedelta
    assert deliver(app, db, shop, now=at(101) + timedelta(seconds=30)).get("sent", 0) == 0  # backoff: not due yet
    again = deliver(app, db, shop, now=at(101, 10, 2))
    assert again["sent"] >= 1 and stored(db)[0]["status"] == "sent"
    assert len([m for m in smtp.messages if m["To"] == "a@example.com"]) == 1


def test_unreachable_server_keeps_the_outbox(app, db):
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{port}"  # nobody listens there
    shop = lapsed_shop(db)
    result = tick(app, db, shop, at(101))
    assert result["retry"] == 1 and result["sent"] == 0  # one try, then it waits
    assert {r["status"] for r in stored(db)} == {"outbox"}


def test_permanent_failure_is_recorded_and_never_retried(app, db, smtp):
    shop = lapsed_shop(db)
    smtp.recorder.refuse["a@example.com"] = "550 5.1.1 No such user"
    tick(app, db, shop, at(101))
    row = stored(db)[0]
    assert row["status"] == "failed" and "550" in row["error"]
    customer = db.execute("SELECT email_failed_at, email_failure FROM customers WHERE external_id = 'A'").fetchone()
    assert customer[0] and "550" in customer[1]
    smtp.recorder.refuse.clear()
    deliver(app, db, shop, now=at(105))
    assert stored(db)[0]["status"] == "failed" and not [m for m in smtp.messages if m["To"] == "a@example.com"]


def test_one_click_unsubscribe_then_nothing_more(app, db, smtp, client):
    shop = lapsed_shop(db)
    tick(app, db, shop, at(101))
    [mail] = [m for m in smtp.messages if m["To"] == "a@example.com"]
    path = mail["List-Unsubscribe"].strip("<>").replace("http://127.0.0.1:5000", "")
    assert client.get(path).status_code == 200  # a GET never unsubscribes
    assert db.execute("SELECT unsubscribed_at FROM customers WHERE external_id = 'A'").fetchone()[0] is None
    response = client.post(path, data="List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and "Location" not in response.headers
    assert db.execute("SELECT unsubscribed_at FROM customers WHERE external_id = 'A'").fetchone()[0]
    assert enrolment(db)["exit_reason"] == "unsubscribed"
    for day in (104, 111, 200):
        tick(app, db, shop, at(day))
    assert len([m for m in smtp.messages if m["To"] == "a@example.com"]) == 1


def test_unsubscribe_button_and_forged_tokens(app, db, client):
    from app import tokens
    shop = lapsed_shop(db)
    cid = db.execute("SELECT id FROM customers WHERE external_id = 'A'").fetchone()[0]
    token = tokens.make(app, "unsubscribe", shop["id"], cid)
    page = client.get(f"/u/{token}").get_data(as_text=True)
    assert "Unsubscribe</button>" in page
    done = client.post(f"/u/{token}")
    assert done.status_code == 200 and "You are unsubscribed" in done.get_data(as_text=True)
    assert client.post(f"/u/{token[:-2]}xx").status_code == 404           # forged signature
    assert client.post(f"/u/{tokens.make(app, 'keep', shop['id'], cid)}").status_code == 404  # other purpose
    other = tokens.make(app, "unsubscribe", shop["id"], cid + 1000)       # a customer who does not exist
    assert client.post(f"/u/{other}").status_code == 404


def test_without_smtp_flows_only_preview(app, db):
    shop = lapsed_shop(db)
    result = tick(app, db, shop, at(101))
    assert result["mode"] == "preview" and result["enrolled"] == 0 and result["sent"] == 0
    assert stored(db) == []  # nothing queued
    assert db.execute("SELECT COUNT(*) FROM enrolments").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM discount_codes").fetchone()[0] == 0


def test_shop_smtp_setting_overrides(app, db):
    from app.mailer import smtp_url_for
    assert smtp_url_for(app, {"smtp_url": "smtp://shop:25"}) == "smtp://shop:25"
    app.config["SMTP_URL"] = "smtp://global:25"
    assert smtp_url_for(app, {}) == "smtp://global:25"


def test_a_session_the_server_closed_is_reopened_once(smtp):
    from email.message import EmailMessage

    from app.mailer import Connection, SmtpConfig

    def message(to):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "shop@example.com", to, "hello"
        msg.set_content("hi")
        return msg

    connection = Connection(SmtpConfig.parse(smtp.url))
    connection.send(message("first@example.com"))
    first = connection.smtp
    first.docmd("QUIT")  # the server ends the idle session; the client does not know yet
    connection.send(message("second@example.com"))
    assert connection.smtp is not first
    assert [m["To"] for m in smtp.messages] == ["first@example.com", "second@example.com"]
    connection.close()

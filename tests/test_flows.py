"""The flow engine, walked through whole timelines with --now."""
import json
import threading

import pytest

from app.db import connect
from app.settings import save_setting
from flows.definitions import DEFAULT_FLOWS, FlowError, save_flow, validate_flow
from flows.engine import TickBusy, holdout_bucket, tick
from tests.builders import POSTAL, History, at, lapsed_shop, lost_shop, ready_to_send


@pytest.fixture(autouse=True)
def _delivery(smtp):
    """The flows here run live: email delivery is configured (without it they only preview)."""


def messages(db, customer="A"):
    return list(db.query(
        "SELECT m.flow, m.step, m.subject, m.body_text, d.code, d.percent, d.expires_at, m.status"
        " FROM messages m JOIN customers c ON c.id = m.customer_id LEFT JOIN discount_codes d ON d.id = m.discount_code_id"
        " WHERE c.external_id = ? ORDER BY m.id", [customer]))


def enrolment(db, customer="A"):
    return list(db.query("SELECT e.* FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                         " WHERE c.external_id = ? ORDER BY e.id DESC LIMIT 1", [customer]))[0]


def test_three_step_winback(app, db):
    shop = lapsed_shop(db)
    assert tick(app, db, shop, at(100))["enrolled"] == 0  # 60 days: not lapsed yet
    first = tick(app, db, shop, at(101))
    assert first["enrolled"] >= 1 and first["sent"] >= 1
    [m1] = messages(db)
    assert m1["flow"] == "winback" and m1["step"] == 0 and m1["percent"] == 15
    assert m1["subject"] == "We miss you at s"
    assert m1["expires_at"] == "2026-04-16T10:00:00Z"  # 4 days after the first email
    assert "Thursday 16 April 2026, 10:00" in m1["body_text"] and m1["code"] in m1["body_text"]

    assert tick(app, db, shop, at(102))["sent"] == 0
    tick(app, db, shop, at(104))  # day 3 of the flow
    m2 = messages(db)[1]
    assert m2["step"] == 1 and m2["code"] == m1["code"] and m2["subject"].startswith("24 hours left")
    assert "Thursday 16 April 2026, 10:00" in m2["body_text"]  # the stored expiry, not "24 h"

    tick(app, db, shop, at(111))  # day 10
    m3 = messages(db)[2]
    assert m3["step"] == 2 and m3["percent"] == 20 and m3["code"] != m1["code"]
    assert m3["expires_at"] == "2026-04-25T10:00:00Z"  # day 111 is 22 April, valid 3 days
    assert enrolment(db)["status"] == "completed"
    assert tick(app, db, shop, at(120))["sent"] == 0 and len(messages(db)) == 3


def test_running_the_same_tick_twice_sends_nothing_twice(app, db):
    shop = lapsed_shop(db)
    first = tick(app, db, shop, at(101))
    again = tick(app, db, shop, at(101))
    assert first["sent"] >= 1 and again["sent"] == 0 and again["enrolled"] == 0
    assert len(messages(db)) == 1


def test_purchase_between_steps_stops_the_flow(app, db):
    shop = lapsed_shop(db)
    tick(app, db, shop, at(101))
    h = History(db, shop=shop)
    h.order("A", 102, total="30").write()
    result = tick(app, db, shop, at(104))
    assert result["exited"] >= 1
    e = enrolment(db)
    assert e["status"] == "converted" and e["exit_reason"] == "purchased" and e["converted_order_id"]
    assert len(messages(db)) == 1


def test_using_the_code_stops_the_flow_and_marks_the_code(app, db):
    shop = lapsed_shop(db)
    tick(app, db, shop, at(101))
    code = messages(db)[0]["code"]
    h = History(db, shop=shop)
    h.order("A", 102, total="30")
    h.records[-1].discount_codes = [code.lower()]
    h.write()
    tick(app, db, shop, at(104))
    e = enrolment(db)
    assert e["status"] == "converted" and e["exit_reason"] == "code_used"
    used = db.execute("SELECT used_order_id FROM discount_codes WHERE code = ?", [code]).fetchone()[0]
    assert used == e["converted_order_id"]


def test_no_consent_no_promotional_flow(app, db):
    shop = lapsed_shop(db, consent=False)
    tick(app, db, shop, at(101))
    assert messages(db) == []
    assert not list(db.query("SELECT 1 FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                             " WHERE c.external_id = 'A'"))


def test_service_flow_reaches_unconsented_customer_without_offer(app, db):
    h = History(db).order("N", 0, consent=False)
    for i in range(3):
        h.repeat(f"R{i}", [0, 5])
    shop = h.write()
    ready_to_send(db, shop)
    # The after-purchase journey starts 3 days after the first order (it was one email on day 14).
    assert tick(app, db, shop, at(2))["sent"] == 0  # 2 days after the first order: too early
    tick(app, db, shop, at(3))
    [m] = messages(db, "N")
    assert m["flow"] == "second_order" and m["code"] is None
    assert "%" not in m["subject"] + m["body_text"]


def test_send_window_defers_to_the_next_morning(app, db):
    shop = lapsed_shop(db)
    late = tick(app, db, shop, at(101, 21))
    assert late["enrolled"] >= 1 and late["sent"] == 0 and late["deferred"] >= 1
    assert enrolment(db)["next_due_at"] == "2026-04-13T09:00:00Z"  # day 101 is 12 April
    assert tick(app, db, shop, at(102, 8, 59))["sent"] == 0
    assert tick(app, db, shop, at(102, 9, 0))["sent"] >= 1
    assert len(messages(db)) == 1


def test_window_follows_the_shop_time_zone(app, db):
    h = History(db, tz="Europe/Warsaw").repeat("A", [0, 40])
    for i in range(9):
        h.repeat(f"R{i}", [0, 40, 90], total="100")
    shop = h.write()
    ready_to_send(db, shop)
    # In April Warsaw is UTC+2: 06:30 UTC is 08:30 there, before the window opens at 09:00.
    assert tick(app, db, shop, at(101, 6, 30))["sent"] == 0
    assert enrolment(db)["next_due_at"] == "2026-04-12T07:00:00Z"
    assert tick(app, db, shop, at(101, 7, 0))["sent"] >= 1


def test_window_closes_at_20_shop_time(app, db):
    h = History(db, tz="Europe/Warsaw").repeat("A", [0, 40])
    for i in range(9):
        h.repeat(f"R{i}", [0, 40, 90], total="100")
    shop = h.write()
    ready_to_send(db, shop)
    assert tick(app, db, shop, at(101, 18, 30))["sent"] == 0  # 20:30 in Warsaw
    assert enrolment(db)["next_due_at"] == "2026-04-13T07:00:00Z"


def test_frequency_cap_defers_and_never_drops(app, db):
    shop = lapsed_shop(db)
    flow = json.loads(json.dumps(DEFAULT_FLOWS["winback"]))
    flow["holdout"] = 0
    for step in flow["steps"]:
        step["delay_days"] = 0  # three emails at once: the caps must spread them
    save_flow(db, shop["id"], "winback", flow)
    first = tick(app, db, shop, at(101))
    assert len(messages(db)) == 1 and first["deferred"] >= 1
    assert enrolment(db)["deferred_reason"] == "frequency cap"
    assert tick(app, db, shop, at(101, 15))["sent"] == 0
    tick(app, db, shop, at(102, 10, 1))
    assert len(messages(db)) == 2
    tick(app, db, shop, at(103, 10, 2))
    assert [m["step"] for m in messages(db)] == [0, 1, 2]


def test_unsubscribe_exits_at_once(app, db):
    shop = lapsed_shop(db)
    tick(app, db, shop, at(101))
    db.execute("UPDATE customers SET unsubscribed_at = '2026-04-12T12:00:00Z' WHERE external_id = 'A'")
    tick(app, db, shop, at(104))
    assert enrolment(db)["exit_reason"] == "unsubscribed"
    assert len(messages(db)) == 1


def test_sunset_marks_silent_customers_inactive(app, db):
    shop = lost_shop(db)
    tick(app, db, shop, at(400))  # 370 days since L's last order: lost
    [m] = messages(db, "L")
    assert m["flow"] == "sunset" and m["code"] is None
    assert tick(app, db, shop, at(413))["exited"] == 0
    tick(app, db, shop, at(414))
    e = enrolment(db, "L")
    assert e["status"] == "exited" and e["exit_reason"] == "no_response"
    assert db.execute("SELECT marketing_inactive_at FROM customers WHERE external_id = 'L'").fetchone()[0]
    tick(app, db, shop, at(500))
    assert len(messages(db, "L")) == 1  # no more marketing


def test_holdout_is_about_ten_percent_and_never_messaged(app, db):
    h = History(db)
    for i in range(2000):
        h.repeat(f"C{i}", [0, 40], total=str(20 + i % 7))
    shop = h.write()
    save_setting(db, shop["id"], "vip_min_amount", "100000")  # nobody is a VIP here
    save_setting(db, shop["id"], "postal_address", POSTAL)
    result = tick(app, db, shop, at(101))
    held = db.execute("SELECT COUNT(*) FROM enrolments WHERE held_out = 1").fetchone()[0]
    total = db.execute("SELECT COUNT(*) FROM enrolments").fetchone()[0]
    assert total == 2000 and result["held_out"] == held
    assert 0.08 <= held / total <= 0.12
    assert db.execute("SELECT COUNT(*) FROM messages m JOIN enrolments e ON e.id = m.enrolment_id"
                      " WHERE e.held_out = 1").fetchone()[0] == 0
    # stable: the same customers are held out whenever asked
    sample = db.execute("SELECT c.external_id FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                        " WHERE e.held_out = 1 LIMIT 5").fetchall()
    assert all(holdout_bucket(shop["id"], "winback", ext) < 0.10 for (ext,) in sample)


def test_replenishable_last_purchase_goes_to_replenish_not_winback(app, db):
    beans = {"product": "BEANS", "title": "Coffee beans", "qty": 1}
    h = History(db).order("B", 0, lines=[beans]).order("B", 40, lines=[beans])
    for i in range(9):
        h.repeat(f"R{i}", [0, 40, 90], total="100")
    shop = h.write()
    ready_to_send(db, shop)
    db.execute("UPDATE products SET replenishable = 1, replenish_days = 60 WHERE external_id = 'BEANS'")
    tick(app, db, shop, at(101))  # lapsed by rhythm, but the beans run out on day 100
    [m] = messages(db, "B")
    assert m["flow"] == "replenish" and "Coffee beans" in m["subject"] and m["code"] is None


def test_one_discount_per_customer_per_90_days(app, db):
    h = History(db).repeat("A", [0, 10], total="20")  # usual gap 10: lapsed after 30 days
    for i in range(9):
        h.repeat(f"R{i}", [0, 10, 20], total="100")
    shop = h.write()
    ready_to_send(db, shop)
    for day in (41, 44, 51):  # the three-step win-back, entered on day 41
        tick(app, db, shop, at(day))
    assert enrolment(db)["status"] == "completed"
    more = History(db, shop=shop)
    more.order("A", 52, total="20").write()  # back once; gaps now 10 and 42: lapsed again after 39 days
    tick(app, db, shop, at(53))
    assert tick(app, db, shop, at(92))["enrolled"] == 0  # lapsed again, but the last offer was 51 days ago
    from flows.explain import find_customer
    assert find_customer(db, shop["id"], "A")
    segments = {r[0] for r in db.execute(
        "SELECT segment FROM customer_segments s JOIN customers c ON c.id = s.customer_id WHERE c.external_id = 'A'")}
    assert "lapsed" in segments
    tick(app, db, shop, at(132))  # 91 days after the first offer
    winbacks = list(db.query("SELECT entered_at FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                             " WHERE c.external_id = 'A' AND flow = 'winback' ORDER BY e.id"))
    assert [w["entered_at"][:10] for w in winbacks] == ["2026-02-11", "2026-05-13"]


def test_two_schedulers_at_once_never_both_send(app, tmp_path):
    db = connect(app.config["DATABASE"])
    shop = lapsed_shop(db)
    results, errors = [], []

    def run():
        own = connect(app.config["DATABASE"])
        try:
            results.append(tick(app, own, shop, at(101)))
        except TickBusy as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["sent"] for r in results) == db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert len(messages(db)) == 1
    assert len(results) + len(errors) == 2


def test_flow_definitions_are_validated():
    bad = json.loads(json.dumps(DEFAULT_FLOWS["winback"]))
    bad["steps"][0]["offer"]["percent"] = 150
    with pytest.raises(FlowError, match="at most 90"):
        validate_flow("winback", bad)
    bad = json.loads(json.dumps(DEFAULT_FLOWS["winback"]))
    bad["steps"][1]["delay_days"] = -1
    with pytest.raises(FlowError, match="zero or more"):
        validate_flow("winback", bad)
    service = json.loads(json.dumps(DEFAULT_FLOWS["second_order"]))
    service["steps"][0]["offer"] = {"percent": 10, "valid_days": 3}
    with pytest.raises(FlowError, match="service flow carries no offer"):
        validate_flow("second_order", service)


def test_invalid_settings_keep_the_old_value(db):
    from app.settings import get_settings
    from app.shops import create_shop
    shop = create_shop(db, "s", "import")
    with pytest.raises(ValueError, match="end after it starts"):
        save_setting(db, shop["id"], "window_end", "8")
    assert get_settings(db, shop["id"])["window_end"] == 20


def test_scheduler_round_ticks_every_shop_and_a_second_scheduler_stands_by(app, db):
    from app.scheduler import tick_all
    shop = lapsed_shop(db)
    first = tick_all(app, now=at(101), holder="scheduler-one")
    assert first["s"]["sent"] >= 1
    assert tick_all(app, now=at(101, 11), holder="scheduler-two") is None  # the lease is taken
    again = tick_all(app, now=at(101, 11), holder="scheduler-one")  # the holder renews it
    assert again["s"]["sent"] == 0
    assert len(messages(db)) == 1


def test_one_shop_that_fails_does_not_stop_the_round(app, db, client, login):
    """A shop whose credentials cannot be decrypted (another key) is recorded and shown on its
    dashboard; the shops after it are ticked as usual."""
    from cryptography.fernet import Fernet

    from app.scheduler import tick_all
    from app.shops import create_shop
    broken = create_shop(db, "broken.example", "woocommerce")
    db.execute("UPDATE shops SET credentials = ? WHERE id = ?",
               [Fernet(Fernet.generate_key()).encrypt(b'{"key": "ck"}').decode(), broken["id"]])
    shop = lapsed_shop(db)  # created after it: ticked after it
    assert shop["id"] > broken["id"]
    result = tick_all(app, now=at(101), holder="scheduler-one")
    assert "error" in result["broken.example"] and "decrypt" in result["broken.example"]["error"]
    assert result["s"]["sent"] >= 1
    login()
    page = client.get("/shops/broken.example").get_data(as_text=True)
    assert 'data-warning="sync"' in page and "decrypt" in page


def test_cli_run_flows_messages_and_explain(app, db, runner):
    shop = lapsed_shop(db)
    preview = runner.invoke(args=["run-flows", "--shop", "s", "--now", "2026-04-12T10:00:00+00:00",
                                  "--dry-run", "--json"])
    rows = json.loads(preview.output)
    assert {"customer": "A", "email": "a@example.com", "flow": "winback", "held_out": False,
            "reason": "lapsed: 61 days since the last order"} in rows
    assert db.execute("SELECT COUNT(*) FROM enrolments").fetchone()[0] == 0  # a dry run writes nothing
    explained = json.loads(runner.invoke(args=["explain", "--shop", "s", "--customer", "A", "--now",
                                               "2026-04-12T10:00:00+00:00", "--json"]).output)
    assert "would enter winback on the next tick (lapsed: 61 days since the last order)" in explained["reasons"]

    result = runner.invoke(args=["run-flows", "--shop", "s", "--now", "2026-04-12T10:00:00+00:00", "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)) >= {"enrolled", "sent", "held_out", "exited", "deferred"}
    log = json.loads(runner.invoke(args=["messages", "--shop", "s", "--json"]).output)
    mine = [m for m in log if m["customer"] == "A"]
    assert len(mine) == 1
    assert set(mine[0]) >= {"id", "customer", "email", "flow", "step", "subject", "discount_code",
                            "code_expires_at", "status", "scheduled_for", "sent_at"}
    assert mine[0]["status"] == "sent" and mine[0]["discount_code"].startswith("WB-")
    assert mine[0]["sent_at"] == "2026-04-12T10:00:00Z"  # the run's --now, not the wall clock
    explained = json.loads(runner.invoke(args=["explain", "--shop", "s", "--customer", "A", "--now",
                                               "2026-04-13T10:00:00+00:00", "--json"]).output)
    assert explained["flow"]["flow"] == "winback"
    assert any(r.startswith("in winback since 2026-04-12 (lapsed: 61 days since the last order): email 2 of 3 "
                            "is due 2026-04-15T10:00:00Z") for r in explained["reasons"])


def test_explain_says_why_no_flow_for_unconsented(app, db, runner):
    lapsed_shop(db, consent=False)
    explained = json.loads(runner.invoke(args=["explain", "--shop", "s", "--customer", "A", "--now",
                                               "2026-04-12T10:00:00+00:00", "--json"]).output)
    assert "enters no flow now: no marketing consent (only service emails may reach them)" in explained["reasons"]


def test_sunset_keep_link_confirms_and_ends_the_sunset(app, db, client):
    import re
    shop = lost_shop(db)
    tick(app, db, shop, at(400))
    [m] = messages(db, "L")
    tracked = re.search(r"http://127\.0\.0\.1:5000(/c/\S+)", m["body_text"]).group(1)
    followed = client.get(tracked)  # the email's link goes through the click redirect to the keep page
    assert followed.status_code == 302 and followed.headers["Location"].startswith("http://127.0.0.1:5000/k/")
    url = followed.headers["Location"].replace("http://127.0.0.1:5000", "")
    assert client.get(url).status_code == 200  # a GET (a link prefetcher) changes nothing
    assert db.execute("SELECT marketing_confirmed_at FROM customers WHERE external_id = 'L'").fetchone()[0] is None
    assert client.get(url[:-3] + "abc").status_code == 404  # forged
    page = client.post(url)
    assert page.status_code == 200 and "keep hearing from us" in page.get_data(as_text=True)
    assert enrolment(db, "L")["exit_reason"] == "confirmed"
    tick(app, db, shop, at(420))
    assert db.execute("SELECT marketing_inactive_at FROM customers WHERE external_id = 'L'").fetchone()[0] is None


def test_a_crash_between_claim_and_hand_over_sends_the_email_once_later(app, db, monkeypatch, smtp):
    import flows.delivery as delivery
    shop = lapsed_shop(db)
    real = delivery.deliver_one

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(delivery, "deliver_one", crash)
    with pytest.raises(RuntimeError):
        tick(app, db, shop, at(101))
    assert [m["status"] for m in messages(db)] == ["outbox"] and smtp.messages == []  # claimed, not sent
    monkeypatch.setattr(delivery, "deliver_one", real)
    tick(app, db, shop, at(101, 11))
    tick(app, db, shop, at(101, 12))
    assert [m["status"] for m in messages(db)] == ["sent"]
    assert [m["To"] for m in smtp.messages] == ["a@example.com"]


def test_live_check_right_before_sending(app, db):
    from decimal import Decimal

    from connectors.base import Connector, CustomerRecord, OrderRecord
    shop = lapsed_shop(db)
    tick(app, db, shop, at(101))

    class LiveShop(Connector):
        platform = "import"
        customers = products = orders = lambda self, since=None: iter(())

        def recent_orders(self, customer, since):
            if customer["external_id"] != "A":
                return []
            return [OrderRecord("LIVE-1", at(104, 9), Decimal("30"), "EUR",
                                customer=CustomerRecord("A", email="a@example.com"))]

    tick(app, db, shop, at(104, 10, 30), connector=LiveShop({}))  # email 2 due at 10:00; bought at 09:00, not synced yet
    assert enrolment(db)["exit_reason"] == "purchased"
    assert len(messages(db)) == 1

"""What leaves is decided when it leaves (issue "Safe sending"): each numbered promise as an owner
would meet it, with a real SMTP server on loopback and the real engine on simulated time."""
import json
import sqlite3
import threading
from datetime import timedelta

import pytest

from app.settings import save_setting
from app.timeutil import from_db
from flows.definitions import DEFAULT_FLOWS, save_flow
from flows.engine import deliver_due, tick
from tests.builders import History, at, lapsed_shop, lost_shop, ready_to_send
from tests.test_flows import enrolment, messages


def sent_to(smtp, address):
    return [m for m in smtp.messages if m["To"] == address]


def claimed_but_not_sent(app, db, shop, monkeypatch, when):
    """A tick that claims the due step and dies before handing it to the mail server."""
    import flows.delivery as delivery

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(delivery, "deliver_one", crash)
        with pytest.raises(RuntimeError):
            tick(app, db, shop, when)
    assert [m["status"] for m in messages(db)] == ["outbox"]


def log(db, shop, status=None):
    from flows.messages import message_log
    return message_log(db, shop, status=status)


# ---- 1. the decision is made at delivery -------------------------------------------------------
@pytest.mark.parametrize("change, reason", [
    ("UPDATE customers SET unsubscribed_at = '2026-04-12T09:00:00Z' WHERE external_id = 'A'",
     "the customer unsubscribed"),
    ("UPDATE customers SET accepts_marketing = 0 WHERE external_id = 'A'", "no marketing consent"),
    ("UPDATE customers SET marketing_inactive_at = '2026-04-12T09:00:00Z' WHERE external_id = 'A'",
     "marked inactive by the sunset flow"),
    ("DELETE FROM shop_settings WHERE key = 'postal_address'", "no postal address"),
])
def test_state_changed_after_the_claim_withholds_at_hand_over(app, db, smtp, monkeypatch, change, reason):
    shop = lapsed_shop(db)
    claimed_but_not_sent(app, db, shop, monkeypatch, at(101))
    db.execute(change)  # behind the engine's back: only the final check can catch it
    result = deliver_due(app, db, shop, at(101, 11), realtime=False)
    assert result["withheld"] == 1 and smtp.messages == []
    [m] = log(db, shop)
    assert m["status"] == "withheld" and m["withheld_reason"].startswith(reason)
    assert enrolment(db)["status"] == "exited"


def test_an_order_after_the_claim_withholds_and_converts(app, db, smtp, monkeypatch):
    shop = lapsed_shop(db)
    claimed_but_not_sent(app, db, shop, monkeypatch, at(101))
    h = History(db, shop=shop)
    h.order("A", 101, at=at(101, 10, 30).timetz().replace(tzinfo=None)).write()
    deliver_due(app, db, shop, at(101, 11), realtime=False)
    assert smtp.messages == [] and log(db, shop)[0]["status"] == "withheld"
    assert enrolment(db)["status"] == "converted"


def test_the_cap_counts_delivered_mail_only(app, db, smtp):
    shop = lapsed_shop(db)
    flow = json.loads(json.dumps(DEFAULT_FLOWS["winback"]))
    flow["holdout"] = 0
    save_flow(db, shop["id"], "winback", flow)
    cid = db.execute("SELECT id FROM customers WHERE external_id = 'A'").fetchone()[0]
    # Yesterday a marketing email was withheld and another one failed: neither reached A.
    for key, status in (("x:1", "withheld"), ("x:2", "failed")):
        db.execute("INSERT INTO messages (shop_id, customer_id, flow, step, idempotency_key, is_marketing, status,"
                   " created_at, scheduled_for, sent_at) VALUES (?, ?, 'winback', 0, ?, 1, ?, ?, ?, NULL)",
                   [shop["id"], cid, key, status, "2026-04-11T12:00:00Z", "2026-04-11T12:00:00Z"])
    assert tick(app, db, shop, at(101))["sent"] == 1 and len(sent_to(smtp, "a@example.com")) == 1


# ---- 2. nothing stale, nothing expired -------------------------------------------------------------
def test_a_server_down_past_the_lateness_limit_withholds_instead_of_sending_late(app, db, smtp):
    shop = lapsed_shop(db)
    good = app.config["SMTP_URL"]
    app.config["SMTP_URL"] = "smtp://127.0.0.1:9"  # nobody listens: unreachable for a day and a half
    for hour in (0, 6, 12, 24, 30):
        tick(app, db, shop, at(101) + timedelta(hours=hour) if hour < 10 else at(101, 10) + timedelta(hours=hour))
    app.config["SMTP_URL"] = good
    tick(app, db, shop, at(102, 12))
    assert smtp.messages == []
    [m] = log(db, shop)
    assert m["status"] == "withheld" and m["withheld_reason"] == "could not leave within 24 h of its planned time"
    assert enrolment(db)["status"] == "exited"  # nothing of it was delivered: it ends


def test_code_expiry_counts_from_delivery_and_the_reminder_says_the_real_time_left(app, db, smtp):
    shop = lapsed_shop(db)
    flow = json.loads(json.dumps(DEFAULT_FLOWS["winback"]))
    flow["holdout"] = 0
    flow["steps"][1]["delay_days"] = 2  # email 2 on day 2 of a 4-day code
    save_flow(db, shop["id"], "winback", flow)
    tick(app, db, shop, at(101, 15, 20))
    first = messages(db)[0]
    assert first["expires_at"] == "2026-04-16T15:20:00Z"  # four days from the moment it left
    tick(app, db, shop, at(103, 15, 20))
    second = messages(db)[1]
    assert second["subject"].startswith("2 days left") and second["code"] == first["code"]
    [mail] = [m for m in smtp.messages if m["Subject"].startswith("2 days left")]
    assert "Thursday 16 April 2026, 15:20" in mail.get_body(preferencelist=("plain",)).get_content()


def test_a_reminder_whose_code_ran_out_is_withheld(app, db, smtp):
    shop = lapsed_shop(db)
    flow = json.loads(json.dumps(DEFAULT_FLOWS["winback"]))
    flow["holdout"] = 0
    flow["steps"][0]["offer"]["valid_days"] = 1
    flow["steps"][1]["delay_days"] = 2  # the code is gone by then
    save_flow(db, shop["id"], "winback", flow)
    tick(app, db, shop, at(101))
    tick(app, db, shop, at(103))
    assert [m["status"] for m in messages(db)] == ["sent", "withheld"]
    assert "expired" in log(db, shop)[0]["withheld_reason"]
    tick(app, db, shop, at(111))  # the last chance still comes, with its own new code
    assert [m["status"] for m in messages(db)][-1] == "sent" and len(sent_to(smtp, "a@example.com")) == 2


# ---- 3. no channel, no side effects; then no backlog ---------------------------------------------
def test_three_weeks_without_smtp_then_smtp_configured(app, db, smtp):
    """The scenario from the issue, at a small scale: lapsed and lost customers, no SMTP for three
    weeks of daily ticks, then SMTP: nothing expired, nobody over the cap, nobody marked inactive
    for an email they never got, no burst of old mail."""
    h = History(db)
    for i in range(12):
        h.repeat(f"L{i}", [300, 340], total="20")    # lapsed from day 401
    for i in range(6):
        h.repeat(f"S{i}", [0, 30], total="20")       # lost (over 365 days) from day 396
    for i in range(9):
        h.repeat(f"R{i}", [0, 40, 380], total="100")  # recent buyers
    shop = h.write()
    ready_to_send(db, shop)
    url = app.config.pop("SMTP_URL")
    for d in range(390, 411):  # three weeks, one tick a day at 10:00
        assert tick(app, db, shop, at(d))["mode"] == "preview"
    assert db.execute("SELECT COUNT(*) FROM enrolments").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM discount_codes").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM customers WHERE marketing_inactive_at IS NOT NULL").fetchone()[0] == 0

    app.config["SMTP_URL"] = url
    first_day = tick(app, db, shop, at(411))
    assert first_day["mode"] == "live" and first_day["sent"] == 18  # one email each, due from now on
    for d in range(412, 440):
        tick(app, db, shop, at(d))
    rows = list(db.query(
        "SELECT m.customer_id, m.sent_at, m.subject, d.expires_at, d.created_at FROM messages m"
        " LEFT JOIN discount_codes d ON d.id = m.discount_code_id WHERE m.status = 'sent' ORDER BY m.sent_at"))
    for row in rows:
        if row["expires_at"]:
            assert from_db(row["expires_at"]) >= from_db(row["sent_at"]) + timedelta(hours=2)
    by_customer = {}
    for row in rows:
        by_customer.setdefault(row["customer_id"], []).append(from_db(row["sent_at"]))
    for times in by_customer.values():
        assert all(b - a >= timedelta(hours=24) for a, b in zip(times, times[1:]))
    # Sunset answers were awaited from the delivered email (day 411): inactive after 14 days, not before.
    inactive = [from_db(r[0]) for r in db.execute(
        "SELECT marketing_inactive_at FROM customers WHERE marketing_inactive_at IS NOT NULL")]
    assert len(inactive) == 6 and min(inactive) >= at(425)
    codes = db.execute("SELECT COUNT(*) FROM discount_codes").fetchone()[0]
    assert codes == 24  # 12 win-backs: a first code, and the last chance's
    assert len(smtp.messages) == len(rows)


def test_the_dry_run_still_shows_who_would_get_what_without_smtp(app, db, runner):
    lapsed_shop(db)
    app.config.pop("SMTP_URL", None)
    rows = json.loads(runner.invoke(args=["run-flows", "--shop", "s", "--now", "2026-04-12T10:00:00+00:00",
                                          "--dry-run", "--json"]).output)
    assert any(r["customer"] == "A" and r["flow"] == "winback" for r in rows)
    out = runner.invoke(args=["run-flows", "--shop", "s", "--now", "2026-04-12T10:00:00+00:00"]).output
    assert "preview only" in out


# ---- 4. off means off ------------------------------------------------------------------------------
def test_turning_a_flow_off_withdraws_it_and_on_does_not_resurrect(app, db, smtp, runner, monkeypatch):
    shop = lapsed_shop(db)
    tick(app, db, shop, at(101))
    assert len(sent_to(smtp, "a@example.com")) == 1
    out = runner.invoke(args=["flow", "disable", "--shop", "s", "winback"])
    assert out.exit_code == 0, out.output
    e = enrolment(db)
    assert e["status"] == "exited" and e["exit_reason"] == "flow turned off"
    listed = json.loads(runner.invoke(args=["flow", "list", "--shop", "s", "--json"]).output)
    assert {"name": "winback", "enabled": False} == {k: v for k, v in listed[2].items() if k in ("name", "enabled")}
    tick(app, db, shop, at(104))
    assert runner.invoke(args=["flow", "enable", "--shop", "s", "winback"]).exit_code == 0
    for d in (104, 111, 120):
        tick(app, db, shop, at(d))
    assert len(sent_to(smtp, "a@example.com")) == 1 and enrolment(db)["exit_reason"] == "flow turned off"
    assert runner.invoke(args=["flow", "disable", "--shop", "s", "nope"]).exit_code != 0


def test_turning_off_withholds_what_was_claimed(app, db, smtp, monkeypatch):
    from flows.definitions import set_enabled
    shop = lapsed_shop(db)
    claimed_but_not_sent(app, db, shop, monkeypatch, at(101))
    set_enabled(db, shop["id"], "winback", False)
    tick(app, db, shop, at(101, 11))
    assert smtp.messages == [] and log(db, shop)[0]["withheld_reason"] == "flow turned off"


# ---- 5. consent changes follow delivered mail ---------------------------------------------------
def test_sunset_counts_from_the_delivered_email(app, db, smtp):
    shop = lost_shop(db)
    smtp.recorder.fail_next_data = ["451 4.3.0 try later"]
    tick(app, db, shop, at(400))                      # claimed, refused for now
    deliver_due(app, db, shop, at(400, 16), realtime=False)  # delivered six hours later
    [m] = log(db, shop)
    assert m["status"] == "sent" and m["sent_at"] == "2027-02-05T16:00:00Z"
    tick(app, db, shop, at(414, 12))                  # 14 days after the plan, not after delivery
    assert db.execute("SELECT marketing_inactive_at FROM customers WHERE external_id = 'L'").fetchone()[0] is None
    tick(app, db, shop, at(414, 16, 5))
    assert db.execute("SELECT marketing_inactive_at FROM customers WHERE external_id = 'L'").fetchone()[0]


def test_a_withheld_sunset_changes_no_consent(app, db, smtp):
    shop = lost_shop(db)
    db.execute("UPDATE customers SET email_failed_at = '2026-01-01T00:00:00Z', email_failure = 'bounced'"
               " WHERE external_id = 'L'")
    for d in (400, 420, 450):
        tick(app, db, shop, at(d))
    assert db.execute("SELECT marketing_inactive_at FROM customers WHERE external_id = 'L'").fetchone()[0] is None


# ---- 6. no network I/O while holding the write lock ---------------------------------------------
def woo_shop_with_lapsed(app, db, store, lapsed):
    """A WooCommerce shop (time zone UTC) on the fake `store` whose `lapsed` customers lapse on day 101;
    nine richer ones keep them off VIP. Ready to send."""
    from app.shops import get_shop
    from connectors.woocommerce.connect import add_store
    shop = add_store(app, db, store.url, store.key, store.secret, offline=True)
    h = History(db, shop=shop, tz="UTC")
    for name in lapsed:
        h.repeat(name, [0, 40], total="20")
    for i in range(9):
        h.repeat(f"R{i}", [0, 40, 90], total="100")
    h.write()
    db.execute("UPDATE shops SET timezone = 'UTC' WHERE id = ?", [shop["id"]])
    return ready_to_send(db, get_shop(db, shop["handle"]))


def test_codes_are_created_on_the_platform_outside_the_write_lock(app, db, smtp):
    """While the (slow) store creates each coupon, another writer takes the write lock at once:
    webhook intake never waits for the platform."""
    from connectors.registry import live_connector
    from tests.fake_woo import FakeStore
    app.config["WOOCOMMERCE_BACKOFF"] = 0
    store = FakeStore().start()
    locked_out, one_probe_at_a_time = [], threading.Lock()

    def while_creating(body):
        with one_probe_at_a_time:  # coupons are created a few at a time: probes must not lock each other out
            probe = sqlite3.connect(app.config["DATABASE"], timeout=0)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                locked_out.append(str(exc))
            finally:
                probe.close()

    store.on_coupon = while_creating
    store.coupon_delay = 0.05
    try:
        shop = woo_shop_with_lapsed(app, db, store, [f"W{i}" for i in range(8)])
        result = tick(app, db, shop, at(101), connector=live_connector(app, shop))
    finally:
        store.stop()
    assert result["sent"] == 8 and len(store.coupons) == 8
    assert locked_out == []
    codes = {c["code"] for c in store.coupons.values()}
    assert {r[0].lower() for r in db.execute("SELECT code FROM discount_codes")} == codes


def test_a_failed_code_creation_is_retried_with_the_same_code(app, db, smtp):
    from connectors.registry import live_connector
    from tests.fake_woo import FakeStore
    app.config["WOOCOMMERCE_BACKOFF"] = 0
    store = FakeStore().start()
    try:
        shop = woo_shop_with_lapsed(app, db, store, ["A"])
        store.fail_queue = [("/coupons", 500)] * 50  # the store is down for this whole run
        tick(app, db, shop, at(101), connector=live_connector(app, shop))
        [code] = db.execute("SELECT code, platform_state FROM discount_codes").fetchall()
        assert code[1] == "reserved" and smtp.messages == [] and log(db, shop)[0]["status"] == "outbox"
        store.fail_queue = []
        deliver_due(app, db, shop, at(101, 10, 10), live_connector(app, shop), realtime=False)
    finally:
        store.stop()
    assert [c["code"] for c in store.coupons.values()] == [code[0].lower()]
    assert len(sent_to(smtp, "a@example.com")) == 1


# ---- 7. crashes heal ----------------------------------------------------------------------------
def test_a_message_caught_mid_send_becomes_unknown_and_is_never_resent(app, db, smtp, monkeypatch, client, login):
    import flows.delivery as delivery
    from flows.delivery import deliver_one
    shop = lapsed_shop(db)

    def dies_in_smtp(app_, db_, shop_, message_id, *args):
        class Dead:
            def send(self, message):
                raise SystemExit("kill -9")  # the process dies while the server may have the mail
        return deliver_one(app_, db_, shop_, message_id, args[0], args[1], Dead(), *args[3:])

    with monkeypatch.context() as patch:
        patch.setattr(delivery, "deliver_one", dies_in_smtp)
        with pytest.raises(SystemExit):
            tick(app, db, shop, at(101))
    assert log(db, shop)[0]["status"] == "sending"
    # the lease of the dead tick is released by nobody; a short one lets the next run in quickly
    db.execute("UPDATE leases SET expires_at = '2000-01-01T00:00:00Z'")
    tick(app, db, shop, at(101, 11))
    [m] = log(db, shop)
    assert m["status"] == "unknown" and "Message-ID" in m["error"] and m["message_id"]
    for d in (102, 104, 111):
        tick(app, db, shop, at(d))
    assert smtp.messages == [] and enrolment(db)["exit_reason"] == "delivery unknown"
    # the owner sees it and settles it
    login()
    page = client.get("/shops/s/outbox?status=unknown").get_data(as_text=True)
    assert 'data-status="unknown"' in page and m["message_id"].strip("<>") in page


def test_kill_9_mid_send_heals_after_a_short_heartbeat(app, db, smtp, tmp_path):
    """A real `winback run-flows` process killed with SIGKILL while the mail server holds its email:
    the shop is free again after the (here 2 s) lease, and the message is `unknown`, never resent."""
    import os
    import signal
    import subprocess
    import sys
    import time
    shop = lapsed_shop(db)
    smtp.recorder.stall = 30
    env = {**os.environ, "WINBACK_DATABASE": app.config["DATABASE"], "WINBACK_INSTANCE_PATH": app.instance_path,
           "WINBACK_SMTP_URL": smtp.url, "WINBACK_FLOW_LEASE_SECONDS": "2"}
    cmd = [os.path.join(os.path.dirname(sys.executable), "winback"), "run-flows", "--shop", "s", "--now", "2026-04-12T10:00:00+00:00"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not db.execute(
                "SELECT COUNT(*) FROM messages WHERE status = 'sending'").fetchone()[0]:
            time.sleep(0.1)
        assert db.execute("SELECT COUNT(*) FROM messages WHERE status = 'sending'").fetchone()[0] == 1
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    smtp.recorder.stall = 0
    # The dead tick still holds the shop, but only until its short lease runs out (2 s here, 60 s by default).
    [(expires,)] = db.execute("SELECT expires_at FROM leases WHERE name LIKE 'flows:%'").fetchall()
    from app.timeutil import from_db, utcnow
    assert from_db(expires) - utcnow() <= timedelta(seconds=3)
    time.sleep(max(0.0, (from_db(expires) - utcnow()).total_seconds()) + 1.1)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    [m] = log(db, shop)
    assert m["status"] == "unknown" and "not sent again" in m["error"]
    assert [x["To"] for x in smtp.messages] == []  # the stalled one was never accepted, and not resent


def test_a_killed_tick_blocks_the_shop_only_for_its_short_lease(app, db, smtp):
    from app.timeutil import utcnow
    from flows import lease
    from flows.engine import LEASE_SECONDS, TickBusy, lease_name
    shop = lapsed_shop(db)
    assert LEASE_SECONDS <= 60
    assert lease.acquire(db, lease_name(shop), "dead-process", LEASE_SECONDS)
    with pytest.raises(TickBusy):
        tick(app, db, shop, at(101))
    # The dead holder renews nothing: once its lease runs out, the shop ticks again.
    later = utcnow() + timedelta(seconds=LEASE_SECONDS + 1)
    assert lease.acquire(db, lease_name(shop), "next-process", LEASE_SECONDS, now=later)


# ---- 8. bad addresses never stop a run ------------------------------------------------------------
def test_a_bad_address_is_refused_at_intake_and_the_run_goes_on(app, db, smtp):
    from connectors.base import CustomerRecord
    from connectors.store import ShopWriter
    shop = lapsed_shop(db)
    h = History(db, shop=shop)
    h.repeat("B", [0, 40], total="20").write()
    ShopWriter(db, shop).upsert_customers([CustomerRecord("B", email="b@example.com\r\nBcc: all@example.com")])
    row = db.execute("SELECT email_failed_at, email_failure FROM customers WHERE external_id = 'B'").fetchone()
    assert row[0] and row[1].startswith("invalid address")
    # and one that slipped past intake (an old row) is withheld at the hand-over, not a crash
    h.repeat("C", [0, 40], total="20").write()
    db.execute("UPDATE customers SET email = 'c@example.com' || char(10) || 'Bcc: x@example.com'"
               " WHERE external_id = 'C'")
    result = tick(app, db, shop, at(101))
    assert len(sent_to(smtp, "a@example.com")) == 1 and result["sent"] == 1
    assert not [m for m in smtp.messages if "example.com" in str(m["To"]) and m["To"] != "a@example.com"]
    withheld = {m["customer"]: m["withheld_reason"] for m in log(db, shop, "withheld")}
    assert list(withheld) == ["C"] and withheld["C"].startswith("invalid address")
    assert not db.execute("SELECT COUNT(*) FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                          " WHERE c.external_id = 'B'").fetchone()[0]  # undeliverable: never enrolled
    ShopWriter(db, shop).upsert_customers([CustomerRecord("B", email="b@example.org")])
    assert db.execute("SELECT email_failed_at FROM customers WHERE external_id = 'B'").fetchone()[0] is None


# ---- 9. throughput without a per-tick ceiling -------------------------------------------------------
def test_everything_due_leaves_in_one_run_unless_the_owner_sets_a_rate(app, db, smtp):
    h = History(db)
    for i in range(700):
        h.repeat(f"C{i}", [0, 40], total=str(20 + i % 7))
    shop = h.write()
    ready_to_send(db, shop)
    save_setting(db, shop["id"], "vip_min_amount", "100000")
    assert tick(app, db, shop, at(101))["sent"] == 700  # no ceiling of 500 per tick

    h2 = History(db, handle="paced")
    for i in range(250):
        h2.repeat(f"P{i}", [0, 40], total="20")
    paced = h2.write()
    ready_to_send(db, paced)
    save_setting(db, paced["id"], "vip_min_amount", "100000")
    save_setting(db, paced["id"], "send_rate_per_minute", "100")
    assert tick(app, db, paced, at(101))["sent"] == 100
    assert deliver_due(app, db, paced, at(101, 10, 0) + timedelta(seconds=30), realtime=False)["sent"] == 0
    assert deliver_due(app, db, paced, at(101, 10, 1), realtime=False)["sent"] == 100
    assert deliver_due(app, db, paced, at(101, 10, 2), realtime=False)["sent"] == 50


# ---- 10. the owner sees it; --now is recorded --------------------------------------------------------
def test_outbox_page_shows_next_sent_withheld_and_search(app, db, smtp, client, login):
    shop = lapsed_shop(db)
    h = History(db, shop=shop)
    h.repeat("B", [0, 40], total="20").write()
    db.execute("UPDATE customers SET accepts_marketing = 0 WHERE external_id = 'B'")
    tick(app, db, shop, at(101))
    db.execute("UPDATE customers SET accepts_marketing = 1 WHERE external_id = 'B'")
    login()
    page = client.get("/shops/s/outbox").get_data(as_text=True)
    assert 'data-test="upcoming"' in page and "2026-04-15" in page  # email 2 of A is due on day 104
    assert 'data-status="sent"' in page and "a@example.com" in page
    found = client.get("/shops/s/outbox?q=A@EXAMPLE").get_data(as_text=True)
    assert "a@example.com" in found
    assert client.get("/shops/s/outbox?page=99999999999999999999").status_code in (200, 400)


def test_messages_cli_filters_and_records_the_run_time(app, db, smtp, runner):
    lapsed_shop(db)
    out = runner.invoke(args=["run-flows", "--shop", "s", "--now", "2026-04-12T10:00:00+00:00", "--json"])
    assert json.loads(out.output)["sent"] >= 1
    rows = json.loads(runner.invoke(args=["messages", "--shop", "s", "--status", "sent", "--json"]).output)
    assert rows and all(r["sent_at"] == "2026-04-12T10:00:00Z" for r in rows)
    assert set(rows[0]) >= {"customer", "email", "flow", "step", "status", "withheld_reason", "discount_code",
                            "code_expires_at", "scheduled_for", "sent_at"}
    assert json.loads(runner.invoke(args=["messages", "--shop", "s", "--status", "withheld", "--json"]).output) == []
    explained = json.loads(runner.invoke(args=["explain", "--shop", "s", "--customer", "A", "--json"]).output)
    assert explained["marketing_inactive"] is False

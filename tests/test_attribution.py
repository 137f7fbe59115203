"""Attribution per step and lift against the holdout, on histories with known answers."""
import json

import pytest

from app.timeutil import parse_now
from flows.attribution import newcombe, report, wilson
from tests.builders import make_shop


def test_newcombe_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80, difference 0.20,
    # method 10 interval (0.0524, 0.3339); the Wilson intervals behind it are (0.6918, 0.8770) and
    # (0.4905, 0.7004)
    low, high = newcombe(56, 70, 48, 80)
    assert low == pytest.approx(0.0524, abs=5e-4) and high == pytest.approx(0.3339, abs=5e-4)
    assert wilson(56, 70) == pytest.approx((0.6918, 0.8770), abs=5e-4)
    low, high = wilson(0, 10)  # Wilson stays inside [0, 1] where Wald collapses
    assert low == 0 and high == pytest.approx(0.2775, abs=5e-4)


class Shop:
    """Direct inserts: enrolments, messages, codes and orders with exact times."""

    def __init__(self, db):
        self.db = db
        self.shop = make_shop(db)
        self.n = 0

    def customer(self):
        self.n += 1
        return self.db.execute("INSERT INTO customers (shop_id, external_id, email) VALUES (?, ?, ?)",
                               [self.shop["id"], f"C{self.n}", f"c{self.n}@example.com"]).lastrowid

    def enrol(self, flow="winback", day=0, held_out=False):
        cid = self.customer()
        eid = self.db.execute(
            "INSERT INTO enrolments (shop_id, customer_id, flow, anchor_order_at, held_out, entered_at, status)"
            " VALUES (?, ?, ?, '2025-01-01T00:00:00Z', ?, ?, ?)",
            [self.shop["id"], cid, flow, int(held_out), self.at(day), "held_out" if held_out else "active"]).lastrowid
        return cid, eid

    def at(self, day, hour=10):
        return f"2026-03-{1 + day:02d}T{hour:02d}:00:00Z"

    def message(self, cid, eid, step, day, flow="winback", code_id=None):
        self.db.execute(
            "INSERT INTO messages (shop_id, customer_id, enrolment_id, flow, step, idempotency_key, is_marketing,"
            " email, subject, body_text, discount_code_id, status, created_at, scheduled_for, sent_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 1, 'x@example.com', 's', 'b', ?, 'sent', ?, ?, ?)",
            [self.shop["id"], cid, eid, flow, step, f"{eid}:{step}", code_id, self.at(day), self.at(day), self.at(day)])

    def code(self, cid, eid, percent, day):
        return self.db.execute(
            "INSERT INTO discount_codes (shop_id, customer_id, enrolment_id, code, kind, percent, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, 'percent', ?, ?, ?)",
            [self.shop["id"], cid, eid, f"WB-{eid}", percent, self.at(day), self.at(day + 4)]).lastrowid

    def order(self, cid, day, total_minor, code_id=None, hour=12):
        oid = self.db.execute(
            "INSERT INTO orders (shop_id, external_id, customer_id, created_at, order_date, currency, total_minor, status)"
            " VALUES (?, ?, ?, ?, ?, 'EUR', ?, 'paid')",
            [self.shop["id"], f"O{cid}-{day}-{hour}", cid, self.at(day, hour), self.at(day)[:10], total_minor]).lastrowid
        if code_id:
            self.db.execute("UPDATE discount_codes SET used_order_id = ? WHERE id = ?", [oid, code_id])


def flow_doc(doc, name="winback"):
    return next(f for f in doc["flows"] if f["flow"] == name)


def test_last_touch_attribution_per_step(db):
    s = Shop(db)
    c1, e1 = s.enrol()                      # buys 2 days after email 1: step 1
    s.message(c1, e1, 0, 0)
    s.order(c1, 2, 5000)
    c2, e2 = s.enrol()                      # buys with the code after email 2: step 2, with discount
    code = s.code(c2, e2, 15, 0)
    s.message(c2, e2, 0, 0, code_id=code)
    s.message(c2, e2, 1, 3, code_id=code)
    s.order(c2, 4, 8500, code_id=code)
    c3, e3 = s.enrol()                      # buys 6 days after email 2, no code: not attributed
    s.message(c3, e3, 0, 0)
    s.message(c3, e3, 1, 3)
    s.order(c3, 9, 7000)
    c4, e4 = s.enrol()                      # never buys
    s.message(c4, e4, 0, 0)
    doc = report(db, s.shop, parse_now("2026-04-01", "UTC"))
    f = flow_doc(doc)
    step1, step2 = f["steps"][0], f["steps"][1]
    assert (step1["sent"], step1["converted"], step1["revenue"]) == (4, 1, 50.0)
    assert (step2["sent"], step2["converted"], step2["revenue"], step2["discount_cost"]) == (2, 1, 85.0, 15.0)
    assert f["recipients"] == 4 and f["converted"] == 2 and f["conversion_rate"] == 0.5
    assert f["revenue"] == 135.0 and f["revenue_per_recipient"] == 33.75 and f["discount_cost"] == 15.0


def test_lift_against_the_holdout_with_interval_and_incremental_revenue(db):
    s = Shop(db)
    # 100 emailed: 30 buy for 40.00 within the window; 100 held out: 20 buy for 40.00.
    for i in range(100):
        cid, eid = s.enrol(day=0)
        s.message(cid, eid, 0, 0)
        if i < 30:
            s.order(cid, 5, 4000)
    for i in range(100):
        cid, _ = s.enrol(day=0, held_out=True)
        if i < 20:
            s.order(cid, 5, 4000)
    late, _ = s.enrol(day=0)
    s.order(late, 20, 9900)                  # outside the 15-day window (10 + 5): counts for neither
    doc = report(db, s.shop, parse_now("2026-04-01", "UTC"))
    lift = flow_doc(doc)["lift"]
    assert lift["treated"] == 101 and lift["holdout"] == 100
    assert lift["treated_converted"] == 30 and lift["holdout_converted"] == 20
    assert lift["lift"] == pytest.approx(30 / 101 - 0.20, abs=1e-4)
    low, high = newcombe(30, 101, 20, 100)
    assert (lift["ci_low"], lift["ci_high"]) == (round(low, 4), round(high, 4))
    assert lift["ci_low"] < 0 < lift["ci_high"] and lift["enough_data"]
    assert "no difference that the data can tell apart from chance" in lift["note"]
    assert lift["incremental_revenue"] == pytest.approx((30 * 40 / 101 - 20 * 40 / 100) * 101, abs=0.01)


def test_small_samples_say_not_enough_data_yet(db):
    s = Shop(db)
    for i in range(5):
        cid, eid = s.enrol(day=0)
        s.message(cid, eid, 0, 0)
        s.order(cid, 1, 1000)
    s.enrol(day=0, held_out=True)
    lift = flow_doc(report(db, s.shop, parse_now("2026-04-01", "UTC")))["lift"]
    assert not lift["enough_data"] and lift["note"].startswith("not enough data yet: 5 emailed and 1 held-out")


def test_windows_still_open_are_left_out(db):
    s = Shop(db)
    for _ in range(40):
        s.enrol(day=20)                      # entered 2026-03-21: the 15-day window ends 2026-04-05
        s.enrol(day=20, held_out=True)
    lift = flow_doc(report(db, s.shop, parse_now("2026-04-01", "UTC")))["lift"]
    assert lift["treated"] == 0 and lift["holdout"] == 0 and lift["lift"] is None
    lift = flow_doc(report(db, s.shop, parse_now("2026-04-06", "UTC")))["lift"]
    assert lift["treated"] == 40 and lift["holdout"] == 40 and lift["enough_data"]


def test_report_cli_json(runner, db):
    s = Shop(db)
    cid, eid = s.enrol()
    s.message(cid, eid, 0, 0)
    result = runner.invoke(args=["report", "--shop", "s", "--now", "2026-04-01", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    f = flow_doc(doc)
    assert set(f) >= {"flow", "enrolled", "sent", "held_out", "converted", "revenue", "discount_cost", "lift", "steps"}
    text = runner.invoke(args=["report", "--shop", "s", "--now", "2026-04-01"]).output
    assert "winback: 1 enrolled (0 held out), 1 sent" in text and "not enough data yet" in text


def test_report_page(client, login, db):
    s = Shop(db)
    for i in range(40):
        cid, eid = s.enrol()
        s.message(cid, eid, 0, 0)
        if i < 10:
            s.order(cid, 2, 2000)
        s.enrol(held_out=True)
    login()
    page = client.get("/shops/s/report").get_data(as_text=True)
    assert 'data-flow="winback"' in page and "Lift vs control: +25.0 points" in page
    assert "€200.00" in page  # ten orders of 20.00 attributed to email 1

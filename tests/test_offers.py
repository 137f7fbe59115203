"""Offers beyond percent: an amount off, free shipping or no code per step, with an optional minimum
order; validated, stored, created on the platform, put into words and counted in the report."""
import copy
import json

import pytest

from app.migrations import init_db, migrations
from app.settings import save_setting
from app.shops import get_shop
from app.timeutil import parse_now
from connectors.registry import live_connector
from connectors.woocommerce.connect import add_store
from flows.attribution import report
from flows.definitions import DEFAULT_FLOWS, FlowError, save_flow, validate_flow
from flows.engine import tick
from flows.render import render
from tests.builders import POSTAL, History, at, lapsed_shop, make_shop
from tests.fake_woo import FakeStore


@pytest.fixture(autouse=True)
def _delivery(smtp):
    """The flows here run live: email delivery is configured."""


def winback(*offers):
    """The winback flow with its steps' offers replaced (None keeps a step's offer)."""
    flow = copy.deepcopy(DEFAULT_FLOWS["winback"])
    flow["holdout"] = 0
    for step, offer in zip(flow["steps"], offers):
        if offer is not None:
            step["offer"] = offer
    return flow


@pytest.mark.parametrize("offer", [
    {"percent": 15, "valid_days": 4},
    {"percent": 12.5, "valid_days": 4, "min_order": 40},
    {"amount": 10, "valid_days": 4},
    {"amount": 7.5, "valid_days": 1, "min_order": 50},
    {"free_shipping": True, "valid_days": 7},
    {"free_shipping": True, "valid_days": 7, "min_order": 30},
    "none",
])
def test_every_kind_of_offer_is_accepted(offer):
    flow = winback("none" if offer == "none" else offer)
    if offer == "none":
        flow["steps"][0]["offer"] = None
        flow["steps"][1]["offer"] = None  # nothing earlier to reuse
    checked = validate_flow("winback", flow)
    assert checked["steps"][0]["offer"] == (None if offer == "none" else offer)


@pytest.mark.parametrize("offer, message", [
    ({"amount": 0, "valid_days": 4}, "an amount off must be more than 0"),
    ({"amount": -5, "valid_days": 4}, "an amount off must be more than 0"),
    ({"amount": 1_000_000, "valid_days": 4}, "at most 100,000 in the shop's currency"),
    ({"amount": "10", "valid_days": 4}, "an amount off must be more than 0"),
    ({"amount": float("nan"), "valid_days": 4}, "an amount off must be more than 0"),
    ({"amount": 10, "valid_days": 0}, "valid between 1 and 365 days"),
    ({"amount": 10}, "valid between 1 and 365 days"),
    ({"amount": 10, "valid_days": 4, "min_order": 10}, "minimum order must be more than the amount off"),
    ({"amount": 10, "valid_days": 4, "min_order": 0}, "a minimum order must be more than 0"),
    ({"percent": 10, "valid_days": 4, "min_order": "50"}, "a minimum order must be more than 0"),
    ({"percent": 10, "amount": 5, "valid_days": 4}, "one of a percentage, an amount off or free shipping"),
    ({"valid_days": 4}, "one of a percentage, an amount off or free shipping"),
    ({"percent": 95, "valid_days": 4}, "at most 90 %"),
    ({"free_shipping": "yes", "valid_days": 4}, "free shipping is true or absent"),
    ({"amount": 10, "valid_days": 4, "gift": "mug"}, "an offer has no gift"),
    ("10 %", "an offer is an object"),
])
def test_bad_offers_are_refused_with_the_reason(offer, message):
    with pytest.raises(FlowError, match="^winback step 1: ") as refused:
        validate_flow("winback", winback(offer))
    assert message in str(refused.value)


def test_a_reminder_reuses_the_code_and_takes_no_terms_of_its_own():
    with pytest.raises(FlowError, match="takes its terms from the earlier step"):
        validate_flow("winback", winback(None, {"reuse": True, "min_order": 50}))
    with pytest.raises(FlowError, match="no earlier code to reuse"):
        validate_flow("winback", winback({"reuse": True}))


def test_a_service_flow_carries_no_offer_of_any_kind():
    for offer in ({"amount": 10, "valid_days": 3}, {"free_shipping": True, "valid_days": 3}):
        service = copy.deepcopy(DEFAULT_FLOWS["second_order"])
        service["steps"][0]["offer"] = offer
        with pytest.raises(FlowError, match="a service flow carries no offer"):
            validate_flow("second_order", service)


def _code(kind="amount", amount=1000, minimum=5000, currency="EUR", percent=None):
    return {"id": 1, "code": "WB-7Q2X-9KMN-RT", "kind": kind, "percent": percent, "amount_minor": amount,
            "min_order_minor": minimum, "currency": currency, "expires_at": "2026-04-16T10:00:00Z"}


@pytest.mark.parametrize("locale, currency, offer_next, terms", [
    ("en", "EUR", "€10 off on orders from €50", "It applies to orders from €50."),
    ("nl", "EUR", "€\xa010 korting bij bestellingen vanaf €\xa050", "De code geldt bij bestellingen vanaf €\xa050."),
    ("pl", "PLN", "rabat 10\xa0zł przy zamówieniu od 50\xa0zł", "Kod obowiązuje przy zamówieniu od 50\xa0zł."),
])
def test_the_email_states_the_amount_and_the_minimum_in_the_customers_language(locale, currency, offer_next, terms):
    shop = {"id": None, "name": "Bean & Leaf", "locale": locale, "timezone": "UTC", "currency": currency}
    who = {"first_name": "Anna", "locale": locale, "email": "anna@example.com"}
    first = render("winback_1", shop=shop, customer=who, code=_code(currency=currency))
    assert offer_next in first.text and offer_next in first.html.replace("&nbsp;", "\xa0")
    reminder = render("winback_2", shop=shop, customer=who, code=_code(currency=currency))
    assert terms in reminder.text  # the reminder repeats the condition of the code it reuses
    without = render("winback_1", shop=shop, customer=who, code=_code(minimum=None, currency=currency))
    assert offer_next.split(" ")[0] in without.text and "50" not in without.text.split("WB-")[0]


def test_whole_and_fractional_amounts_and_free_shipping_with_a_minimum():
    shop = {"id": None, "name": "S", "locale": "en", "timezone": "UTC", "currency": "EUR"}
    who = {"first_name": "Anna", "locale": "en"}
    text = render("vip_winback_1", shop=shop, customer=who, code=_code(amount=1250, minimum=None)).text
    assert "€12.50 off your next order" in text
    text = render("winback_3", shop=shop, customer=who, code=_code(kind="free_shipping", amount=None)).text
    assert "free shipping on orders from €50" in text
    subject = render("winback_2", shop=shop, customer=who, code=_code(kind="percent", percent=15, amount=None)).subject
    assert "15% off" in subject


def _with_winback(db, shop, offer):
    save_flow(db, shop["id"], "winback", winback(offer))
    return shop


def test_an_amount_code_with_a_minimum_runs_through_the_flow(app, db):
    shop = _with_winback(db, lapsed_shop(db), {"amount": 10, "valid_days": 4, "min_order": 50})
    tick(app, db, shop, at(101))
    row = next(db.query("SELECT m.body_text, m.subject, d.* FROM messages m JOIN customers c ON c.id = m.customer_id"
                        " JOIN discount_codes d ON d.id = m.discount_code_id WHERE c.external_id = 'A'"))
    assert (row["kind"], row["amount_minor"], row["min_order_minor"], row["currency"]) == ("amount", 1000, 5000, "EUR")
    assert row["percent"] is None and "€10 off on orders from €50" in row["body_text"]
    assert row["code"] in row["body_text"]
    tick(app, db, shop, at(104))  # the reminder reuses the amount code and repeats its terms
    reminder = list(db.query("SELECT m.subject, m.body_text, m.discount_code_id FROM messages m JOIN customers c"
                             " ON c.id = m.customer_id WHERE c.external_id = 'A' ORDER BY m.id"))[1]
    assert reminder["subject"].endswith("your €10 off at s")
    assert "It applies to orders from €50." in reminder["body_text"] and reminder["discount_code_id"] == row["id"]


def test_a_step_without_an_offer_sends_the_reason_to_come_back_without_a_code(app, db):
    shop = lapsed_shop(db)
    flow = winback()
    flow["steps"][0]["offer"] = None
    save_flow(db, shop["id"], "winback", flow)
    tick(app, db, shop, at(101))
    [m] = list(db.query("SELECT m.body_text, m.discount_code_id FROM messages m JOIN customers c"
                        " ON c.id = m.customer_id WHERE c.external_id = 'A'"))
    assert m["discount_code_id"] is None and "what is new" in m["body_text"]
    assert db.execute("SELECT COUNT(*) FROM discount_codes").fetchone()[0] == 0


def test_woocommerce_gets_a_fixed_cart_coupon_with_its_minimum(app, db):
    app.config["WOOCOMMERCE_BACKOFF"] = 0
    store = FakeStore().start()
    try:
        shop = add_store(app, db, store.url, store.key, store.secret, offline=True)
        h = History(db, shop=shop, tz="UTC").repeat("W", [0, 40], total="20")
        for i in range(9):
            h.repeat(f"R{i}", [0, 40, 90], total="100")
        h.write()
        db.execute("UPDATE shops SET timezone = 'UTC' WHERE id = ?", [shop["id"]])
        shop = get_shop(db, shop["handle"])
        save_setting(db, shop["id"], "postal_address", POSTAL)
        save_flow(db, shop["id"], "winback", winback({"amount": 10, "valid_days": 4, "min_order": 50}))
        result = tick(app, db, shop, at(101), connector=live_connector(app, shop))
    finally:
        store.stop()
    assert result["sent"] == 1
    [coupon] = store.coupons.values()
    assert coupon["discount_type"] == "fixed_cart" and coupon["amount"] == "10.00"
    assert coupon["minimum_amount"] == "50.00" and coupon["free_shipping"] is False
    assert coupon["usage_limit"] == 1 and coupon["email_restrictions"] == ["w@example.com"]
    assert coupon["date_expires"] == "2026-04-16T10:00:00+00:00"
    state, code = db.execute("SELECT platform_state, lower(code) FROM discount_codes").fetchone()
    assert state == "created" and code == coupon["code"]


def test_attribution_counts_an_amount_code_at_its_amount_capped_at_the_order(db):
    shop = make_shop(db)
    ids = []
    for n, (amount, total) in enumerate([(1000, 8000), (1500, 1200)]):
        cid = db.execute("INSERT INTO customers (shop_id, external_id, email) VALUES (?, ?, ?)",
                         [shop["id"], f"C{n}", f"c{n}@example.com"]).lastrowid
        eid = db.execute("INSERT INTO enrolments (shop_id, customer_id, flow, anchor_order_at, held_out, entered_at,"
                         " status) VALUES (?, ?, 'winback', '2025-01-01T00:00:00Z', 0, '2026-03-01T10:00:00Z', 'active')",
                         [shop["id"], cid]).lastrowid
        code = db.execute("INSERT INTO discount_codes (shop_id, customer_id, enrolment_id, code, kind, amount_minor,"
                          " min_order_minor, currency, created_at, expires_at) VALUES (?, ?, ?, ?, 'amount', ?, NULL,"
                          " 'EUR', '2026-03-01T10:00:00Z', '2026-03-05T10:00:00Z')",
                          [shop["id"], cid, eid, f"WB-{n}", amount]).lastrowid
        db.execute("INSERT INTO messages (shop_id, customer_id, enrolment_id, flow, step, idempotency_key, is_marketing,"
                   " email, subject, body_text, discount_code_id, status, created_at, scheduled_for, sent_at)"
                   " VALUES (?, ?, ?, 'winback', 0, ?, 1, 'x@example.com', 's', 'b', ?, 'sent', ?, ?, ?)",
                   [shop["id"], cid, eid, f"{eid}:0", code, *["2026-03-01T10:00:00Z"] * 3])
        oid = db.execute("INSERT INTO orders (shop_id, external_id, customer_id, created_at, order_date, currency,"
                         " total_minor, status) VALUES (?, ?, ?, '2026-03-02T12:00:00Z', '2026-03-02', 'EUR', ?, 'paid')",
                         [shop["id"], f"O{n}", cid, total]).lastrowid
        db.execute("UPDATE discount_codes SET used_order_id = ? WHERE id = ?", [oid, code])
        ids.append(code)
    doc = report(db, shop, parse_now("2026-04-01", "UTC"))
    flow = next(f for f in doc["flows"] if f["flow"] == "winback")
    # 10.00 off the 80.00 order; 15.00 off a 12.00 order cost the 12.00 it could take
    assert flow["steps"][0]["converted"] == 2 and flow["steps"][0]["discount_cost"] == 22.0
    assert flow["discount_cost"] == 22.0 and "note" not in flow
    db.execute("UPDATE discount_codes SET kind = 'free_shipping', amount_minor = NULL WHERE id = ?", [ids[0]])
    flow = next(f for f in report(db, shop, parse_now("2026-04-01", "UTC"))["flows"] if f["flow"] == "winback")
    assert flow["discount_cost"] == 12.0 and flow["free_shipping_orders"] == 1
    assert "free-shipping code" in flow["note"] and "counts it as 0" in flow["note"]


def test_the_migration_keeps_existing_codes_their_ids_and_the_emails_that_quote_them(tmp_path):
    from app.db import connect
    db = connect(tmp_path / "old.db")
    migrations.apply(db, stop_before="0017_offers")
    shop = db.execute("INSERT INTO shops (handle, platform, name, created_at) VALUES ('s', 'import', 'S',"
                      " '2026-01-01T00:00:00Z')").lastrowid
    cid = db.execute("INSERT INTO customers (shop_id, external_id, email) VALUES (?, 'A', 'a@example.com')",
                     [shop]).lastrowid
    db.execute("INSERT INTO discount_codes (id, shop_id, customer_id, code, kind, percent, created_at, expires_at, step,"
               " platform_state, platform_error) VALUES (41, ?, ?, 'WB-OLD1', 'percent', 15, '2026-01-01T00:00:00Z',"
               " '2026-01-05T00:00:00Z', 0, 'reserved', 'HTTP 500')", [shop, cid])
    db.execute("INSERT INTO discount_codes (id, shop_id, customer_id, code, kind, created_at, expires_at)"
               " VALUES (57, ?, ?, 'WB-OLD2', 'free_shipping', '2026-01-01T00:00:00Z', '2026-01-05T00:00:00Z')",
               [shop, cid])
    for n, code in enumerate((41, 57)):
        db.execute("INSERT INTO messages (shop_id, customer_id, flow, step, idempotency_key, is_marketing, subject,"
                   " body_text, discount_code_id, status, created_at, scheduled_for) VALUES (?, ?, 'winback', ?, ?, 1,"
                   " 's', 'b', ?, 'sent', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')", [shop, cid, n, f"k{n}", code])
    before = [dict(r) for r in db.query("SELECT * FROM discount_codes ORDER BY id")]

    assert init_db(db)[0] == "0017_offers"  # later migrations follow it
    after = [dict(r) for r in db.query("SELECT * FROM discount_codes ORDER BY id")]
    assert [{k: r[k] for k in before[0]} for r in after] == before
    assert [r[0] for r in db.execute("SELECT discount_code_id FROM messages ORDER BY id")] == [41, 57]
    indexes = {r[1] for r in db.execute("PRAGMA index_list(discount_codes)")}
    assert {"discount_codes_step", "discount_codes_enrolment"} <= indexes
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.execute("INSERT INTO discount_codes (shop_id, code, kind, amount_minor, min_order_minor, currency, created_at,"
               " expires_at) VALUES (?, 'WB-NEW', 'amount', 1000, 5000, 'EUR', '2026-01-01T00:00:00Z',"
               " '2026-01-05T00:00:00Z')", [shop])
    with pytest.raises(Exception, match="CHECK"):
        db.execute("INSERT INTO discount_codes (shop_id, code, kind, created_at, expires_at) VALUES (?, 'WB-BAD',"
                   " 'amount', '2026-01-01T00:00:00Z', '2026-01-05T00:00:00Z')", [shop])
    with pytest.raises(Exception, match="CHECK"):
        db.execute("INSERT INTO discount_codes (shop_id, code, kind, created_at, expires_at) VALUES (?, 'WB-GIFT',"
                   " 'gift', '2026-01-01T00:00:00Z', '2026-01-05T00:00:00Z')", [shop])
    db.close()


def test_flow_list_shows_every_kind(runner, db):
    shop = make_shop(db, "listed")
    flow = winback({"amount": 10, "valid_days": 4, "min_order": 50}, None,
                   {"free_shipping": True, "valid_days": 3})
    save_flow(db, shop["id"], "winback", flow)
    out = runner.invoke(args=["flow", "list", "--shop", "listed"]).output
    line = next(line for line in out.splitlines() if line.startswith("winback "))
    assert "day 0 10 EUR off from 50 EUR (4 days)" in line and "day 3 same code" in line
    assert "day 10 free shipping (3 days)" in line
    doc = json.loads(runner.invoke(args=["flow", "list", "--shop", "listed", "--json"]).output)
    steps = next(f for f in doc if f["name"] == "winback")["steps"]
    assert steps[0]["offer"] == {"amount": 10, "valid_days": 4, "min_order": 50}

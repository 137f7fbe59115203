"""`winback scores` (JSON and CSV), `explain`'s score keys from the same stored values, and delivery
applying the stored offer decision (a likely buyer or a customer under the floor gets no code)."""
import csv
import io
import json

import numpy as np

from app.settings import save_setting
from flows.engine import tick
from flows.score_table import CSV_COLUMNS
from tests.builders import History, at, lapsed_shop

KEYS = {"customer", "status", "segments", "p_alive", "p_purchase_30d", "expected_purchases_90d",
        "expected_next_order", "predicted_clv_12m", "worth", "offer"}


def crowd(h, n=120, seed=1):
    """n customers with random rhythms (1-6 purchase days over the first 200 days)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        days = sorted({int(d) for d in rng.integers(0, 200, rng.integers(1, 7))})
        h.repeat(f"C{i:03d}", days, total=str(int(rng.integers(10, 120))))
    return h


def run(runner, *args):
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_scores_json_and_csv_one_row_per_customer_from_the_snapshot(runner, db):
    crowd(History(db)).write()
    doc = json.loads(run(runner, "scores", "--shop", "s", "--now", "2026-09-01", "--json"))
    assert len(doc) == 120 and all(set(row) == KEYS for row in doc)
    assert all(set(row["offer"]) == {"kind", "percent", "reason"} for row in doc)
    assert {row["status"] for row in doc} >= {"active", "lapsed"}
    assert any(row["offer"]["kind"] == "percent" for row in doc) and any(row["offer"]["kind"] == "none" for row in doc)
    for row in doc:  # never an expected next order for someone the model rates as gone
        if row["p_alive"] is not None and row["p_alive"] < 0.2:
            assert row["expected_next_order"] is None
        assert row["predicted_clv_12m"] is not None and row["worth"] >= row["predicted_clv_12m"] * 0
    table = list(csv.reader(io.StringIO(run(runner, "scores", "--shop", "s", "--now", "2026-09-01", "--csv"))))
    assert tuple(table[0]) == CSV_COLUMNS and len(table) == 121
    first = dict(zip(table[0], table[1]))
    assert first["customer"] == doc[0]["customer"] and first["offer_kind"] == doc[0]["offer"]["kind"]
    assert first["offer_reason"] == doc[0]["offer"]["reason"] and first["segments"] == ";".join(doc[0]["segments"])


def test_scores_needs_one_format(runner, db):
    History(db).order("A", 0).write()
    result = runner.invoke(args=["scores", "--shop", "s", "--now", "2026-02-01"])
    assert result.exit_code != 0 and "--json" in result.output


def test_explain_reads_the_same_stored_scores(runner, db):
    crowd(History(db)).write()
    doc = {r["customer"]: r for r in json.loads(run(runner, "scores", "--shop", "s", "--now", "2026-09-01", "--json"))}
    lapsed = next(c for c, r in doc.items() if r["status"] == "lapsed" and r["segments"])
    explained = json.loads(run(runner, "explain", "--shop", "s", "--customer", lapsed, "--now", "2026-09-01", "--json"))
    for key in ("p_purchase_30d", "predicted_clv_12m", "worth", "offer", "p_alive", "expected_next_order"):
        assert explained[key] == doc[lapsed][key]
    assert explained["offer"]["reason"] in explained["reasons"]
    assert any("chance of an order in the next 30 days" in r for r in explained["reasons"])


def _message(db, customer):
    return next(db.query("SELECT m.body_text, m.discount_code_id, m.offer_note FROM messages m"
                         " JOIN customers c ON c.id = m.customer_id WHERE c.external_id = ? ORDER BY m.id", [customer]))


def test_a_customer_under_the_floor_gets_the_email_without_a_code(app, db, smtp):
    shop = lapsed_shop(db)
    save_setting(db, shop["id"], "discount_min_worth", "100000")
    tick(app, db, shop, at(101))
    m = _message(db, "A")
    assert m["discount_code_id"] is None and "what is new" in m["body_text"] and "%" not in m["body_text"]
    assert "below your floor" in json.loads(m["offer_note"])["reason"]
    tick(app, db, shop, at(104))  # the reminder of a code that was never given goes without one, too
    reminder = list(db.query("SELECT m.status, m.discount_code_id, m.subject FROM messages m JOIN customers c"
                             " ON c.id = m.customer_id WHERE c.external_id = 'A' ORDER BY m.id"))[1]
    assert reminder["status"] == "sent" and reminder["discount_code_id"] is None
    assert reminder["subject"].startswith("Still thinking about")


def test_without_a_floor_the_flow_s_code_goes_out(app, db, smtp):
    shop = lapsed_shop(db)
    tick(app, db, shop, at(101))
    m = _message(db, "A")
    assert m["discount_code_id"] is not None and m["offer_note"] is None and "15" in m["body_text"]


def test_a_likely_buyer_gets_the_email_without_a_code(app, db, smtp):
    shop = lapsed_shop(db, extra=crowd)
    save_setting(db, shop["id"], "lapse_max_probability", "0.99")  # the rule decides who is lapsed
    save_setting(db, shop["id"], "discount_skip_probability", "0.01")  # and nearly everyone would buy anyway
    tick(app, db, shop, at(101))
    m = _message(db, "A")
    assert m["discount_code_id"] is None and "what is new" in m["body_text"]
    assert json.loads(m["offer_note"])["kind"] == "none" and "anyway" in json.loads(m["offer_note"])["reason"]


def test_customer_page_shows_the_numbers_and_the_offer_decision_in_the_owner_s_language(app, client, login, db):
    from app.timeutil import parse_now
    from app.users import ensure_admin
    from flows.refresh import refresh
    from tests.conftest import ADMIN_PASSWORD, CHEAP_HASH
    ensure_admin(db, ADMIN_PASSWORD, method=CHEAP_HASH)
    shop = crowd(History(db)).write()
    save_setting(db, shop["id"], "discount_max_percent", "20")  # discounts sized by value, 5 to 20 %
    refresh(db, shop, parse_now("2026-09-01", "UTC"))
    doc = {r["customer"]: r for r in json.loads(run(app.test_cli_runner(), "scores", "--shop", "s", "--json"))}
    tiered = next(c for c, r in doc.items() if r["status"] == "lapsed" and r["offer"]["kind"] == "percent")
    login()
    page = client.get(f"/shops/s/customers/{tiered}").get_data(as_text=True)
    assert 'data-test="worth"' in page and 'data-test="predicted_clv_12m"' in page
    assert f"up to {doc[tiered]['offer']['percent']:g} % off: worth about" in page
    page = client.get(f"/shops/s/customers/{tiered}", headers={"Accept-Language": "nl"}).get_data(as_text=True)
    assert f"tot {doc[tiered]['offer']['percent']:g} % korting: teruggewonnen ongeveer" in page
    assert "kans op een bestelling in de komende 30 dagen" in page


def test_an_overdue_repeat_buyer_the_model_expects_back_is_not_lapsed(runner, db):
    h = crowd(History(db), n=150)
    for i in range(5):  # steady monthly buyers, 50 days since the last: overdue by the rule (45), but coming back
        h.repeat(f"W{i}", list(range(0, 181, 30)))
    h.write()
    doc = {r["customer"]: r for r in json.loads(run(runner, "scores", "--shop", "s", "--now", "2026-08-19", "--json"))}
    w = doc["W0"]
    assert w["status"] == "active" and "lapsed" not in w["segments"] and w["p_purchase_30d"] > 0.1, w
    explained = json.loads(run(runner, "explain", "--shop", "s", "--customer", "W0", "--now", "2026-08-19", "--json"))
    assert any(r.startswith("overdue but not lapsed: 50 days since the last order") for r in explained["reasons"])
    assert any(r.startswith("usually orders every 30 days; 50 days now;") for r in explained["reasons"])


def test_one_time_buyers_are_graded_against_the_shop_s_return_curve(runner, db):
    h = History(db)
    for i in range(40):  # 40 returners, second purchase 1..40 days after the first
        h.repeat(f"R{i}", [0, i + 1])
    for name, day in (("O10", 90), ("O30", 70), ("O35", 65), ("O100", 0)):  # one-time buyers, days before day 100
        h.order(name, day)
    h.write()
    doc = {r["customer"]: r for r in json.loads(run(runner, "scores", "--shop", "s", "--now", "2026-04-11", "--json"))}
    alive = [doc[c]["p_alive"] for c in ("O10", "O30", "O35", "O100")]
    assert alive == sorted(alive, reverse=True) and alive[-1] < 0.05 < alive[0]
    assert [doc[c]["status"] for c in ("O10", "O30", "O35", "O100")] == ["active", "active", "lapsed", "lapsed"]
    explained = json.loads(run(runner, "explain", "--shop", "s", "--customer", "O30", "--now", "2026-04-11", "--json"))
    assert any(r.startswith("bought once, 30 days ago; 25 % of returning customers came back later than that;")
               for r in explained["reasons"])

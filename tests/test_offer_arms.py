"""Offers that learn from the holdout (issue 15, point 4): a step tests offers, entrants get a fixed
arm by a stable hash, the report compares each arm's profit with the control group, and the better
arm becomes the default with one click (or by itself)."""
import copy
import dataclasses
import json
import random
import re

import pytest

from app.settings import save_setting
from flows.attribution import report
from flows.definitions import DEFAULT_FLOWS, FlowError, load_flows, save_flow, validate_flow
from flows.engine import tick
from flows.offer_arms import arm_index, arms_key
from flows.offer_tests import Z, better_arm, incremental_profit
from tests.builders import POSTAL, History, at
from tests.test_ui import _flow_form

ARM_KEYS = {"offer", "entrants", "converted", "revenue", "discount_cost", "incremental_profit", "ci_low", "ci_high"}
TEN = {"percent": 10, "valid_days": 4}


@pytest.fixture(autouse=True)
def _delivery(smtp):
    """The flows here run live: email delivery is configured."""


def winback_testing(offers, holdout=0.25):
    """The win-back flow as one email whose offer is tested with `offers`."""
    flow = copy.deepcopy(DEFAULT_FLOWS["winback"])
    flow["holdout"] = holdout
    flow["steps"] = [{"delay_days": 0, "template": "winback_1", "offer": {"percent": 15, "valid_days": 4},
                      "offers": offers}]
    return flow


def simulated_shop(db, customers, offers, holdout=0.25):
    """`customers` alike (orders on day 0 and 40: lapsed from day 101), nobody a VIP, the win-back
    flow testing `offers`, the other flows off."""
    h = History(db)
    for i in range(customers):
        h.repeat(f"C{i:04d}", [0, 40], total="40")
    shop = h.write()
    save_setting(db, shop["id"], "postal_address", POSTAL)
    save_setting(db, shop["id"], "vip_min_amount", 100_000)
    for name, flow in DEFAULT_FLOWS.items():
        if name != "winback":
            save_flow(db, shop["id"], name, {**copy.deepcopy(flow), "enabled": False})
    save_flow(db, shop["id"], "winback", winback_testing(offers, holdout))
    return shop


def entrants(db, shop):
    """{customer: (held out, arm or None, code or None)} of the win-back flow."""
    rows = db.query(
        "SELECT c.external_id, e.held_out, a.arm, d.code FROM enrolments e JOIN customers c ON c.id = e.customer_id"
        " LEFT JOIN offer_arms a ON a.enrolment_id = e.id LEFT JOIN discount_codes d ON d.enrolment_id = e.id"
        " WHERE e.shop_id = ? AND e.flow = 'winback'", [shop["id"]])
    return {r["external_id"]: (bool(r["held_out"]), r["arm"], r["code"]) for r in rows}


def buy_as_the_truth_says(db, shop, chance, seed=7):
    """Orders on day 103 (two days after the email): the held out buy with chance["holdout"], the
    others with chance[arm], carrying their code when they have one."""
    rng = random.Random(seed)
    h = History(db, shop=shop)
    for customer, (held_out, arm, code) in sorted(entrants(db, shop).items()):
        if rng.random() < chance["holdout" if held_out else arm]:
            h.order(customer, 103, total="45")
            if code:
                h.records[-1] = dataclasses.replace(h.records[-1], discount_codes=[code])
    h.write()


def winback_step(doc):
    return next(f for f in doc["flows"] if f["flow"] == "winback")["steps"][0]


# ---- the statistics, against hand-computed cases ----------------------------------------------
def test_incremental_profit_and_its_interval_match_a_hand_computed_case():
    # Arm profits per customer 10, 0, 20, 0: mean 7.5, sample variance 275/3. Holdout revenues 0, 10, 0:
    # mean 10/3, variance 100/3. Difference 25/6 = 4.1667; standard error √(275/12 + 100/9) = √34.0278
    # = 5.8333; interval 4.1667 ± 1.96 × 5.8333 = (−7.2664, 15.5998); × 4 entrants:
    # 16.667 (−29.066 … 62.399).
    arm = {"n": 4, "profit": 30, "profit_sq": 10 ** 2 + 20 ** 2}
    holdout = {"n": 3, "revenue": 10, "revenue_sq": 100}
    inc, low, high = incremental_profit(arm, holdout)
    assert inc == pytest.approx(16.667, abs=1e-3)
    assert low == pytest.approx(-29.066, abs=1e-3) and high == pytest.approx(62.399, abs=1e-3)
    assert Z == pytest.approx(1.959964, abs=1e-6)
    assert incremental_profit({"n": 1, "profit": 5, "profit_sq": 25}, holdout) is None  # no variance from one


def test_an_arm_is_better_only_when_its_interval_against_every_other_arm_excludes_zero():
    # 40 customers each: arm A profits 10 for 20 of them (mean 5, variance 25·40/39), arm B 10 for
    # 4 (mean 1, variance 9·40/39). d = 4, se = √((25 + 9)/39) = 0.9337; 4 − 1.96 × 0.9337 = 2.17 > 0.
    a = {"n": 40, "profit": 200, "profit_sq": 2000}
    b = {"n": 40, "profit": 40, "profit_sq": 400}
    assert better_arm([a, b]) == 0 and better_arm([b, a]) == 1
    close = {"n": 40, "profit": 180, "profit_sq": 1800}  # 18 of 40: not told apart from A
    assert better_arm([a, close, b]) is None
    small = {"n": 29, "profit": 0, "profit_sq": 0}  # below 30 per arm nothing is named
    assert better_arm([a, small]) is None


# ---- definitions -------------------------------------------------------------------------------
def test_a_step_can_test_offers_and_bad_tests_are_refused_with_the_reason():
    offers = [TEN, {"percent": 15, "valid_days": 4}, {"free_shipping": True, "valid_days": 4}, None]
    assert validate_flow("winback", winback_testing(offers))["steps"][0]["offers"] == offers
    for bad, message in [([TEN], "2 to 6 offers"), ([TEN, TEN], "must differ"), ("10 %", "2 to 6 offers"),
                         ([TEN, {"percent": 95, "valid_days": 4}], "offer 2 of the test: a discount must be"),
                         ([TEN, {"reuse": True}], "offer 2 of the test is a new code or none")]:
        with pytest.raises(FlowError, match=message):
            validate_flow("winback", winback_testing(bad))
    service = copy.deepcopy(DEFAULT_FLOWS["second_order"])
    service["steps"][0]["offers"] = [TEN, None]
    with pytest.raises(FlowError, match="a service flow tests no offers"):
        validate_flow("second_order", service)


# ---- the engine ---------------------------------------------------------------------------------
def test_entrants_keep_their_arm_drawn_by_a_stable_hash(app, db):
    offers = [TEN, None]
    shop = simulated_shop(db, 40, offers)
    tick(app, db, shop, at(101, 22))  # after the send window: they enter and draw, the emails wait
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    drawn = entrants(db, shop)
    treated = {c: arm for c, (held, arm, _code) in drawn.items() if not held}
    assert treated and all(arm is None for held, arm, _c in drawn.values() if held)  # the held out draw none
    assert all(arm == arm_index(shop["id"], "winback", 0, c, 2) for c, arm in treated.items())
    assert set(treated.values()) == {0, 1}
    # The owner changes the test before the emails leave: who had an arm keeps it.
    save_flow(db, shop["id"], "winback", winback_testing([None, TEN, {"percent": 20, "valid_days": 4}]))
    tick(app, db, shop, at(102))
    drawn = entrants(db, shop)
    assert {c: a for c, (h, a, _) in drawn.items() if not h} == treated
    for customer, (held, arm, code) in drawn.items():  # the 10 % arm has a code, the other none
        assert held or (code is not None) == (arm == 0)
    rows = list(db.query("SELECT m.body_text, a.arm FROM messages m"
                         " JOIN offer_arms a ON a.enrolment_id = m.enrolment_id WHERE m.status = 'sent'"))
    assert len(rows) == len(treated) and all(("10% off" in r["body_text"]) == (r["arm"] == 0) for r in rows)
    assert arm_index(shop["id"], "winback", 0, "C0001", 3) == arm_index(shop["id"], "winback", 0, "C0001", 3)


def test_the_report_finds_the_better_arm_and_one_click_makes_it_the_default(app, db, client, login):
    shop = simulated_shop(db, 400, [TEN, None])
    tick(app, db, shop, at(101))
    # The truth: the 10 % code brings half of them back, the email without a code as few as no email.
    buy_as_the_truth_says(db, shop, {0: 0.5, 1: 0.12, "holdout": 0.12})
    tick(app, db, shop, at(104))  # codes used, enrolments exit
    doc = report(db, shop, at(107))
    step = winback_step(doc)
    assert [set(arm) for arm in step["arms"]] == [ARM_KEYS, ARM_KEYS]
    ten, none = step["arms"]
    assert ten["offer"] == TEN and none["offer"] is None
    assert ten["entrants"] >= 30 and none["entrants"] >= 30 and step["offer_test"]["holdout"] >= 30
    assert ten["discount_cost"] == pytest.approx(ten["converted"] * 5.0)  # 10 % of 50 before the code: 5 each
    assert none["discount_cost"] == 0
    assert ten["ci_low"] > 0 and ten["ci_low"] < ten["incremental_profit"] < ten["ci_high"]
    assert none["ci_low"] < 0 < none["ci_high"]  # no code is no better than no email
    test = step["offer_test"]
    assert test["enough_data"] and test["best"] == 0

    login()
    page = client.get(f"/shops/{shop['handle']}/report").get_data(as_text=True)
    assert "Make this the default" in page and "Offer 1 earns more than the others with confidence." in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    url = f"/shops/{shop['handle']}/flows/winback/0/offers/promote"
    assert client.post(url, data={"arm": "0", "test": test["test"]}).status_code == 400  # no CSRF token
    assert client.post(url, data={"arm": "x", "test": test["test"], "csrf_token": token}).status_code == 400
    stale = client.post(url, data={"arm": "1", "test": test["test"], "csrf_token": token}, follow_redirects=True)
    assert "no longer better with confidence" in stale.get_data(as_text=True)
    assert load_flows(db, shop["id"])["winback"]["steps"][0].get("offers") == [TEN, None]
    done = client.post(url, data={"arm": "0", "test": test["test"], "csrf_token": token}, follow_redirects=True)
    assert "Offer 1 is now the offer of email 1" in done.get_data(as_text=True)
    step0 = load_flows(db, shop["id"])["winback"]["steps"][0]
    assert step0["offer"] == TEN and "offers" not in step0
    decided = next(db.query("SELECT * FROM offer_test_history WHERE shop_id = ?", [shop["id"]]))
    assert decided["decided_by"] == "owner" and json.loads(decided["chosen"]) == TEN
    assert "chosen by you" in client.get(f"/shops/{shop['handle']}/report").get_data(as_text=True)


def test_winback_makes_the_better_arm_the_default_itself_only_when_the_owner_lets_it(app, db):
    shop = simulated_shop(db, 400, [TEN, None])
    tick(app, db, shop, at(101))
    buy_as_the_truth_says(db, shop, {0: 0.5, 1: 0.12, "holdout": 0.12})
    tick(app, db, shop, at(104))
    tick(app, db, shop, at(107))  # off by default: the test goes on
    assert load_flows(db, shop["id"])["winback"]["steps"][0]["offers"] == [TEN, None]
    save_setting(db, shop["id"], "offer_test_auto_promote", "yes")
    tick(app, db, shop, at(107, 11))
    step0 = load_flows(db, shop["id"])["winback"]["steps"][0]
    assert step0["offer"] == TEN and "offers" not in step0
    decided = next(db.query("SELECT decided_by, chosen, summary FROM offer_test_history"))
    assert decided["decided_by"] == "auto" and json.loads(decided["chosen"]) == TEN
    assert json.loads(decided["summary"])["arms"][0]["entrants"] >= 30
    with pytest.raises(ValueError):
        save_setting(db, shop["id"], "offer_test_auto_promote", "maybe")


def test_small_samples_say_so_and_name_no_arm(app, db, client, login):
    shop = simulated_shop(db, 24, [TEN, None])
    tick(app, db, shop, at(101))
    buy_as_the_truth_says(db, shop, {0: 1.0, 1: 0.0, "holdout": 0.0})  # a huge effect, but too few to tell
    tick(app, db, shop, at(104))
    step = winback_step(report(db, shop, at(107)))
    assert step["offer_test"]["enough_data"] is False and step["offer_test"]["best"] is None
    assert step["offer_test"]["note"].startswith("not enough data yet")
    assert all(set(arm) == ARM_KEYS for arm in step["arms"])
    login()
    page = client.get(f"/shops/{shop['handle']}/report").get_data(as_text=True)
    assert "Not enough data yet: each offer needs 30 customers" in page and "Make this the default" not in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post(f"/shops/{shop['handle']}/flows/winback/0/offers/promote",
                data={"arm": "0", "test": step["offer_test"]["test"], "csrf_token": token})
    assert load_flows(db, shop["id"])["winback"]["steps"][0]["offers"] == [TEN, None]


def test_a_step_without_a_test_has_no_arms_and_the_test_key_follows_the_arms():
    assert arms_key([TEN, None]) == arms_key([dict(TEN), None]) != arms_key([None, TEN])


def test_the_report_json_and_flow_list_show_the_arms(app, db, runner):
    shop = simulated_shop(db, 12, [TEN, None])
    tick(app, db, shop, at(101))
    result = runner.invoke(args=["report", "--shop", shop["handle"], "--now", "2026-04-20", "--json"])
    assert result.exit_code == 0, result.output
    step = winback_step(json.loads(result.output))
    assert [set(arm) for arm in step["arms"]] == [ARM_KEYS, ARM_KEYS] and step["offer_test"]["enough_data"] is False
    text = runner.invoke(args=["report", "--shop", shop["handle"], "--now", "2026-04-20"]).output
    assert "email 1, offer 1 (10 %, 4 days): " in text and "email 1, offer 2 (no code): " in text
    assert "email 1: not enough data yet" in text
    others = [s for f in json.loads(result.output)["flows"] if f["flow"] != "winback" for s in f["steps"]]
    assert others and all("arms" not in s for s in others)
    listed = json.loads(runner.invoke(args=["flow", "list", "--shop", shop["handle"], "--json"]).output)
    assert next(f for f in listed if f["name"] == "winback")["steps"][0]["offers"] == [TEN, None]
    text = runner.invoke(args=["flow", "list", "--shop", shop["handle"]]).output
    assert "testing 10 % (4 days) | no offer" in text


# ---- the flow page -------------------------------------------------------------------------------
def test_the_owner_sets_up_and_ends_an_offer_test_on_the_flow_page(app, db, client, login):
    shop = simulated_shop(db, 3, [TEN, None])
    save_flow(db, shop["id"], "winback", copy.deepcopy(DEFAULT_FLOWS["winback"]))  # no test yet
    login()
    page = client.get(f"/shops/{shop['handle']}/flows/winback").get_data(as_text=True)
    assert 'id="offers0"' in page and 'id="offers2"' in page and "testing" not in page
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    url = f"/shops/{shop['handle']}/flows/winback/2/offers"
    rows = {"arm0_kind": "percent", "arm0_value": "10", "arm0_valid_days": "4",
            "arm1_kind": "free_shipping", "arm1_valid_days": "7", "arm1_min_order": "30", "arm2_kind": "none"}
    assert client.post(url, data=rows).status_code == 400  # no CSRF token
    one = client.post(url, data={"arm0_kind": "percent", "arm0_value": "10", "arm0_valid_days": "4",
                                 "csrf_token": token})
    assert one.status_code == 422 and "a test needs at least two offers" in one.get_data(as_text=True)
    bad = client.post(url, data={**rows, "arm0_value": "150", "csrf_token": token})
    assert bad.status_code == 422 and "at most 90 %" in bad.get_data(as_text=True)
    assert 'value="150"' in bad.get_data(as_text=True)  # what was typed is shown again
    same = client.post(url, data={**rows, "arm2_kind": "percent", "arm2_value": "10", "arm2_valid_days": "4",
                                  "csrf_token": token})
    assert same.status_code == 422 and "must differ" in same.get_data(as_text=True)
    assert "offers" not in load_flows(db, shop["id"])["winback"]["steps"][2]
    saved = client.post(url, data={**rows, "csrf_token": token}, follow_redirects=True)
    assert "Saved the offer test of email 3." in saved.get_data(as_text=True)
    step = load_flows(db, shop["id"])["winback"]["steps"][2]
    assert step["offers"] == [TEN, {"free_shipping": True, "valid_days": 7, "min_order": 30}, None]
    assert step["offer"] == {"percent": 20, "valid_days": 3}  # the default stays until a test ends
    assert "(testing 3 offers)" in saved.get_data(as_text=True)
    flow_page = client.get(f"/shops/{shop['handle']}/flows/winback").get_data(as_text=True)
    assert 'name="arm1_min_order"' in flow_page and 'value="30"' in flow_page
    # Saving the flow's own form (a new discount in email 1) keeps the test of email 3.
    form = _flow_form(load_flows(db, shop["id"])["winback"], step0_percent="12", csrf_token=token)
    assert client.post(f"/shops/{shop['handle']}/flows/winback", data=form).status_code == 302
    steps = load_flows(db, shop["id"])["winback"]["steps"]
    assert steps[0]["offer"]["percent"] == 12 and steps[2]["offers"][0] == TEN
    ended = client.post(url, data={"csrf_token": token}, follow_redirects=True)
    assert "Email 3 tests no offers." in ended.get_data(as_text=True)
    assert "offers" not in load_flows(db, shop["id"])["winback"]["steps"][2]
    assert client.post(f"/shops/{shop['handle']}/flows/second_order/0/offers",
                       data={**rows, "csrf_token": token}).status_code == 404  # a service flow tests nothing


def test_offer_tests_of_another_users_shop_are_404(app, db, client, login, make_user):
    shop = simulated_shop(db, 3, [TEN, None])
    from app.shops import create_shop
    mine = create_shop(db, "mine", "import", name="Mine")
    make_user("carol", "carol password 1", shop_ids=[mine["id"]])
    login("carol", "carol password 1")
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"',
                      client.get("/shops/mine/settings").get_data(as_text=True)).group(1)
    for url in ("/flows/winback/0/offers", "/flows/winback/0/offers/promote", "/offer-tests/auto"):
        response = client.post(f"/shops/{shop['handle']}{url}", data={"csrf_token": token, "arm": "0", "test": "x",
                                                                       "auto": "on"})
        assert response.status_code == 404, url
    assert load_flows(db, shop["id"])["winback"]["steps"][0]["offers"] == [TEN, None]


def test_the_owner_lets_winback_decide_on_the_report_page(app, db, client, login):
    from app.settings import get_settings
    shop = simulated_shop(db, 3, [TEN, None])
    login()
    page = client.get(f"/shops/{shop['handle']}/report").get_data(as_text=True)
    assert "make it the default by itself" in page and 'name="auto" checked' not in page  # off by default
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    url = f"/shops/{shop['handle']}/offer-tests/auto"
    assert client.post(url, data={"auto": "on"}).status_code == 400  # no CSRF token
    assert get_settings(db, shop["id"])["offer_test_auto_promote"] is False
    client.post(url, data={"auto": "on", "csrf_token": token})
    assert get_settings(db, shop["id"])["offer_test_auto_promote"] is True
    assert 'name="auto" checked' in client.get(f"/shops/{shop['handle']}/report").get_data(as_text=True)
    client.post(url, data={"csrf_token": token})
    assert get_settings(db, shop["id"])["offer_test_auto_promote"] is False


def test_the_rules_page_has_the_auto_setting_as_a_checkbox(app, db, client, login):
    from app.settings import get_settings
    shop = simulated_shop(db, 3, [TEN, None])
    login()
    url = f"/shops/{shop['handle']}/settings"
    page = client.get(url).get_data(as_text=True)
    box = re.search(r'<input[^>]*name="offer_test_auto_promote"[^>]*>', page).group(0)
    assert 'type="checkbox"' in box and "checked" not in box
    values = dict(re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', page))
    values = {k: v for k, v in values.items() if k not in ("offer_test_auto_promote", "smtp_url_clear")}
    values["postal_address"] = POSTAL
    assert client.post(url, data=values).status_code == 302  # unticked: off
    assert get_settings(db, shop["id"])["offer_test_auto_promote"] is False
    assert client.post(url, data={**values, "offer_test_auto_promote": "y"}).status_code == 302
    assert get_settings(db, shop["id"])["offer_test_auto_promote"] is True
    box = re.search(r'<input[^>]*name="offer_test_auto_promote"[^>]*>', client.get(url).get_data(as_text=True)).group(0)
    assert "checked" in box

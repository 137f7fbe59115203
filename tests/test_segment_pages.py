"""The segment pages: the list, the editor's live count (a CSRF-protected JSON endpoint), save with the
reason for a refusal and nothing saved, remove, a flow created from a segment, and other users' shops."""
import json
import re

from flows import owner_segments
from flows.definitions import load_flows
from flows.refresh import refresh
from tests.builders import History, at, ready_to_send
from tests.conftest import _csrf


def shop_with_history(db):
    h = History(db, handle="corner")
    h.repeat("A", [0, 40], total="20", first_name="Anna")
    h.order("B", 10, total="500", first_name="Bram")
    shop = ready_to_send(db, h.write(), "winback")
    refresh(db, shop, at(60))
    return shop


def rows(**conditions):
    """The editor's form fields for condition rows given as {index: (field, op, value)}."""
    data = {"match": "all"}
    for i, (field, op, value) in conditions.items():
        data.update({f"conditions-{i}-field": field, f"conditions-{i}-op": op, f"conditions-{i}-value": value})
    return data


def test_the_live_count_follows_the_rule_and_saves_nothing(client, login, db):
    shop_with_history(db)
    login()
    page = client.get("/shops/corner/segments/new").get_data(as_text=True)
    assert 'id="segment-count"' in page and "segments.js" in page
    token = _csrf(page)
    doc = client.post("/shops/corner/segments/count", data={**rows(**{"0": ("clv", ">=", "100")}),
                                                               "csrf_token": token}).get_json()
    assert doc["count"] == 1 and doc["sample"][0]["customer"] == "B" and doc["sample"][0]["clv"] == "€500.00"
    doc = client.post("/shops/corner/segments/count", data={**rows(**{"0": ("orders", ">=", "1")}), "csrf_token": token,
                                                            "match": "any"}).get_json()
    assert doc["count"] == 2 and doc["error"] is None
    bad = client.post("/shops/corner/segments/count", data={**rows(**{"0": ("clv", ">=", "lots")}),
                                                            "csrf_token": token}).get_json()
    assert bad["count"] is None and bad["error"] == "Condition 1: enter a number"
    raw = client.post("/shops/corner/segments/count", data={"csrf_token": token, "rule_json": json.dumps(
        {"any": [{"field": "orders", "op": ">", "value": 1}, {"all": [{"field": "clv", "op": ">", "value": 400}]}]})})
    assert raw.get_json()["count"] == 2
    assert client.post("/shops/corner/segments/count", data=rows(**{"0": ("clv", ">=", "1")})).status_code == 400
    assert db.execute("SELECT COUNT(*) FROM owner_segments").fetchone()[0] == 0


def test_hostile_rule_json_gets_its_reason_never_a_500(client, login, db):
    shop_with_history(db)
    login()
    token = _csrf(client.get("/shops/corner/segments/new").get_data(as_text=True))
    for hostile in ('{"all": [{"field": ["clv"], "op": ">", "value": 1}]}', "[" * 5000 + "]" * 5000):
        live = client.post("/shops/corner/segments/count", data={"csrf_token": token, "rule_json": hostile})
        assert live.status_code == 200 and live.get_json()["count"] is None and live.get_json()["error"]
        saved = client.post("/shops/corner/segments/new", data={"csrf_token": token, "name": "Odd", "rule_json": hostile})
        assert saved.status_code == 422 and "This segment cannot be saved" in saved.get_data(as_text=True)
    assert db.execute("SELECT COUNT(*) FROM owner_segments").fetchone()[0] == 0


def test_a_number_that_is_not_finite_in_a_condition_row_gets_its_reason(client, login, db):
    shop_with_history(db)
    login()
    token = _csrf(client.get("/shops/corner/segments/new").get_data(as_text=True))
    for typed in ("nan", "inf", "-inf", "1e400"):
        data = {**rows(**{"0": ("clv", ">=", typed)}), "csrf_token": token}
        live = client.post("/shops/corner/segments/count", data=data)
        assert live.status_code == 200 and live.get_json()["error"] == "Condition 1: enter a number", typed
        saved = client.post("/shops/corner/segments/new", data={**data, "name": "Odd"})
        assert saved.status_code == 422 and "enter a number" in saved.get_data(as_text=True), typed
    assert db.execute("SELECT COUNT(*) FROM owner_segments").fetchone()[0] == 0


def test_save_refuse_and_remove(client, login, db):
    shop_with_history(db)
    login()
    token = _csrf(client.get("/shops/corner/segments/new").get_data(as_text=True))
    refused = client.post("/shops/corner/segments/new", data={**rows(**{"0": ("brand", "<", "Wella")}),
                                                             "name": "Fans", "csrf_token": token})
    assert refused.status_code == 422
    assert "this field takes = != in" in refused.get_data(as_text=True)  # next to the row, in the page's language
    assert 'value="Wella"' in refused.get_data(as_text=True)  # what was typed stays
    clash = client.post("/shops/corner/segments/new", data={**rows(**{"0": ("orders", ">", "0")}), "name": "vip",
                                                           "csrf_token": token})
    assert clash.status_code == 422 and "is a built-in segment" in clash.get_data(as_text=True)
    assert db.execute("SELECT COUNT(*) FROM owner_segments").fetchone()[0] == 0

    saved = client.post("/shops/corner/segments/new", data={
        **rows(**{"0": ("clv", ">=", "100"), "1": ("accepts_marketing", "=", "yes")}), "name": "Big spenders",
        "csrf_token": token})
    assert saved.status_code == 302 and saved.headers["Location"].endswith("/shops/corner/segment/Big%20spenders")
    segment = owner_segments.get_segment(db, 1, "Big spenders")
    assert segment["rule"] == {"all": [{"field": "clv", "op": ">=", "value": 100},
                                       {"field": "accepts_marketing", "op": "=", "value": True}]}
    assert segment["count"] == 1

    listing = client.get("/shops/corner/segments").get_data(as_text=True)
    assert re.search(r'data-segment="Big spenders".*?<td class="num">1</td>', listing, re.S)
    editor = client.get("/shops/corner/segment/Big%20spenders").get_data(as_text=True)
    assert 'value="100"' in editor and 'id="flow-form"' in editor

    removed = client.post("/shops/corner/segment/Big%20spenders/remove", data={"csrf_token": token})
    assert removed.status_code == 302
    assert db.execute("SELECT COUNT(*) FROM owner_segments").fetchone()[0] == 0


def test_a_flow_from_the_segment_page(client, login, db):
    shop = shop_with_history(db)
    owner_segments.save_segment(db, shop, "Big spenders", {"all": [{"field": "clv", "op": ">=", "value": 100}]})
    login()
    token = _csrf(client.get("/shops/corner/segment/Big%20spenders").get_data(as_text=True))
    bad = client.post("/shops/corner/segment/Big%20spenders/flow", data={
        "csrf_token": token, "name": "winback", "days": "40", "offer": "none"})
    assert bad.status_code == 422 and "is a built-in flow" in bad.get_data(as_text=True)
    client.post("/language", data={"lang": "nl", "next": "/", "csrf_token": token})
    bad = client.post("/shops/corner/segment/Big%20spenders/flow", data={
        "csrf_token": token, "name": "winback", "days": "40", "offer": "none"})
    assert "&#39;winback&#39; is een ingebouwde flow; kies een andere naam" in bad.get_data(as_text=True)
    client.post("/language", data={"lang": "en", "next": "/", "csrf_token": token})
    made = client.post("/shops/corner/segment/Big%20spenders/flow", data={
        "csrf_token": token, "name": "vip_checkin", "days": "40", "offer": "percent", "percent": "10",
        "valid_days": "5", "reminder": "y", "subject": "Running low, {first_name}?", "intro": "Time for more?",
        "before": "winback"})
    assert made.status_code == 302 and made.headers["Location"].endswith("/shops/corner/flows/vip_checkin")
    flow = load_flows(db, shop["id"])["vip_checkin"]
    assert flow["entry"] == "Big spenders" and flow["days_since_last_order"] == 40 and flow["before"] == "winback"
    order = list(load_flows(db, shop["id"]))
    assert order.index("vip_checkin") == order.index("winback") - 1
    assert [s["offer"] for s in flow["steps"]] == [{"percent": 10, "valid_days": 5}, {"reuse": True}]
    editor = client.get("/shops/corner/flows/vip_checkin").get_data(as_text=True)
    assert "Running low, {first_name}?" in editor  # the owner's words, editable per language
    flows_page = client.get("/shops/corner/flows").get_data(as_text=True)
    assert 'data-flow="vip_checkin"' in flows_page
    in_use = client.post("/shops/corner/segment/Big%20spenders/remove", data={"csrf_token": token})
    assert in_use.status_code == 302 and owner_segments.get_segment(db, shop["id"], "Big spenders")
    gone = client.post("/shops/corner/own-flows/vip_checkin/remove", data={"csrf_token": token})
    assert gone.status_code == 302 and "vip_checkin" not in load_flows(db, shop["id"])


def test_another_user_s_shop_is_not_found(client, login, db, make_user):
    shop = shop_with_history(db)
    owner_segments.save_segment(db, shop, "Mine", {"all": [{"field": "orders", "op": ">", "value": 0}]})
    make_user("eve", "a long password here")
    login("eve", "a long password here")
    for url in ("/shops/corner/segments", "/shops/corner/segments/new", "/shops/corner/segment/Mine"):
        assert client.get(url).status_code == 404


def test_a_segment_a_scheduled_campaign_goes_to_is_kept_until_the_campaign_is_cancelled(client, login, db, runner):
    shop = shop_with_history(db)
    owner_segments.save_segment(db, shop, "Big", {"all": [{"field": "clv", "op": ">=", "value": 100}]})
    made = runner.invoke(args=["campaign", "create", "--shop", "corner", "--segment", "Big", "--template", "thank_you",
                               "--at", "2026-03-10T10:00", "--now", "2026-03-01", "--json"])
    campaign = json.loads(made.output)["id"]
    refused = runner.invoke(args=["segment", "remove", "--shop", "corner", "Big"])
    assert refused.exit_code == 1 and f"campaign {campaign}" in refused.output and refused.output.count("\n") == 1
    login()
    token = _csrf(client.get("/shops/corner/segment/Big").get_data(as_text=True))
    page = client.post("/shops/corner/segment/Big/remove", data={"csrf_token": token}, follow_redirects=True)
    assert "Big is the segment of a scheduled campaign: cancel the campaign first." in page.get_data(as_text=True)
    assert owner_segments.get_segment(db, shop["id"], "Big")["count"] == 1
    runner.invoke(args=["campaign", "cancel", "--shop", "corner", str(campaign), "--now", "2026-03-02"])
    assert runner.invoke(args=["segment", "remove", "--shop", "corner", "Big"]).exit_code == 0


def test_a_refused_rule_and_name_are_explained_in_the_owners_language(client, login, db):
    shop_with_history(db)
    login()
    page = client.get("/shops/corner/segments/new").get_data(as_text=True)
    token = _csrf(page)
    client.post("/language", data={"lang": "nl", "next": "/", "csrf_token": token})
    rule = json.dumps({"all": [{"field": "shoe_size", "op": "=", "value": 42}]})
    live = client.post("/shops/corner/segments/count", data={"csrf_token": token, "rule_json": rule}).get_json()
    assert live["error"].startswith("rule.all[1]: onbekend veld 'shoe_size' (de velden zijn clv, orders")
    client.post("/language", data={"lang": "pl", "next": "/", "csrf_token": token})
    saved = client.post("/shops/corner/segments/new", data={"csrf_token": token, "name": "lapsed",
                                                            "rule_json": json.dumps({"all": [{"field": "orders", "op": ">", "value": 1}]})})
    assert saved.status_code == 422
    assert "&#39;lapsed&#39; to segment wbudowany; wybierz inną nazwę" in saved.get_data(as_text=True)

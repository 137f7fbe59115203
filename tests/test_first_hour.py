"""The owner's first hour (issue 17): a demo with a past, the report's range and weekly trend, the
guided start of a newly connected shop, the public address from `serve`, and CLI manners."""
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from app.db import connect
from app.mailer import build
from app.migrations import init_db
from app.settings import save_setting
from app.shops import get_shop
from app.users import ensure_admin
from app.web.public_address import serve_address
from tests.builders import lapsed_shop, make_shop
from conftest import ADMIN_PASSWORD, CHEAP_HASH
from connectors.woocommerce.connect import add_store
from flows.definitions import DEFAULT_FLOWS, load_flows
from test_serving import free_port, wait_for
from test_woo_connect import callback, start, state_of

ROOT = Path(__file__).resolve().parent.parent
WINBACK = str(Path(sys.executable).parent / "winback")
NOW = "2026-12-05T12:00:00Z"
# 2,000 customers and 20 days: enough held-out win-back customers whose window has closed for the
# lift to count, in about 14 s of CPU (`time winback demo --customers 2000 --history-days 20`).
DEMO = ["demo", "--customers", "2000", "--history-days", "20", "--now", NOW, "--json"]


def _env(instance):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINBACK_")}
    env.update(WINBACK_INSTANCE_PATH=str(instance), WINBACK_ADMIN_PASSWORD=ADMIN_PASSWORD,
               WINBACK_PASSWORD_HASH_METHOD=CHEAP_HASH)
    return env


def _cli(env, *args, check=True):
    return subprocess.run([WINBACK, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One demo shop with 20 days of simulated flow history, built by the `winback demo` command."""
    instance = tmp_path_factory.mktemp("first-hour") / "instance"
    env = _env(instance)
    _cli(env, "init-db")
    built = json.loads(_cli(env, *DEMO).stdout)
    report = json.loads(_cli(env, "report", "--shop", "demo", "--now", NOW, "--json").stdout)
    return {"env": env, "instance": instance, "built": built, "report": report}


@pytest.fixture
def demo_app(demo):
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(demo["instance"]), "PASSWORD_HASH_METHOD": CHEAP_HASH})
    yield app


# ---- 1. a demo with a past -----------------------------------------------------------------------
def test_the_demo_comes_with_a_flow_history_that_shows_the_lift(demo):
    history = demo["built"]["history"]
    assert history["days"] == 21 and history["sent"] > 500
    assert history["accepted"] == history["sent"]  # every email went to the demo transport, none to SMTP
    assert history["orders"] > 0 and history["clicks"] > 0
    flows = {f["flow"]: f for f in demo["report"]["flows"]}
    winback = flows["winback"]
    assert winback["lift"]["enough_data"] is True
    assert winback["lift"]["treated"] >= 30 and winback["lift"]["holdout"] >= 30
    assert winback["sent"] > 0 and winback["converted"] > 0 and winback["revenue"] > 0
    assert any(s["clicks"] for s in winback["steps"])
    assert winback["discount_cost"] > 0  # the simulated orders used the emails' codes
    # The control group buys too (on its own, without a code), just less often: the lift is a difference.
    held = sum(f["lift"]["holdout_converted"] for f in flows.values() if f["lift"].get("holdout"))
    assert held > 0 and winback["lift"]["treated_rate"] > winback["lift"]["holdout_rate"]


def test_the_weekly_trend_adds_up_to_the_report(demo):
    trend = demo["report"]["trend"]
    assert len(trend) >= 3 and all(w["week"] <= NOW[:10] for w in trend)
    weeks = [w["week"] for w in trend]
    assert weeks == sorted(weeks)
    assert sum(w["sent"] for w in trend) == sum(f["sent"] for f in demo["report"]["flows"])
    assert sum(w["converted"] for w in trend) == sum(f["converted"] for f in demo["report"]["flows"])
    assert any(w["incremental_revenue"] is not None for w in trend)


def test_the_report_takes_a_range_in_shop_time(demo):
    env = demo["env"]
    whole = demo["report"]
    first_week = json.loads(_cli(env, "report", "--shop", "demo", "--now", NOW, "--from", "2026-11-15",
                                 "--to", "2026-11-21", "--json").stdout)
    later = json.loads(_cli(env, "report", "--shop", "demo", "--now", NOW, "--from", "2026-11-22",
                            "--json").stdout)
    enrolled = lambda doc: sum(f["enrolled"] for f in doc["flows"])  # noqa: E731
    assert 0 < enrolled(first_week) < enrolled(whole) and 0 < enrolled(later) < enrolled(whole)
    assert enrolled(first_week) + enrolled(later) == enrolled(whole)
    assert first_week["now"] == "2026-11-21T23:00:00Z"  # the end of the 21st in Amsterdam
    bad = _cli(env, "report", "--shop", "demo", "--from", "2026-11-31", check=False)
    assert bad.returncode == 1 and "not a date" in bad.stderr and "Traceback" not in bad.stderr


def test_the_demo_pages_say_demo_and_show_the_trend(demo_app):
    client = demo_app.test_client()
    page = client.get("/login")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    dashboard = client.get("/shops/demo").get_data(as_text=True)
    assert 'data-test="demo-banner"' in dashboard
    assert 'data-test="checklist"' not in dashboard  # the demo is not a shop to set up
    report = client.get("/shops/demo/report").get_data(as_text=True)
    assert 'data-test="demo-banner"' in report and "svg" in report and 'class="bar trend-sent"' in report
    ranged = client.get("/shops/demo/report?from=2026-11-22&to=2026-11-28")
    assert ranged.status_code == 200 and 'value="2026-11-22"' in ranged.get_data(as_text=True)
    wrong = client.get("/shops/demo/report?from=yesterday")
    assert wrong.status_code == 200 and "is not a date" in wrong.get_data(as_text=True)


def test_the_demo_report_in_the_browser(demo, browser):
    from playwright.sync_api import expect
    port = free_port()
    proc = subprocess.Popen([WINBACK, "serve", "--no-scheduler", "--port", str(port)], env=demo["env"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(60_000)  # the report of a 2,000-customer history, on a busy test machine
        page.goto(f"http://127.0.0.1:{port}/shops/demo/report")
        page.fill("#username", "admin")
        page.fill("#password", ADMIN_PASSWORD)
        page.click("main button[type=submit]")
        expect(page.locator('[data-test="demo-banner"]')).to_be_visible()
        winback = page.locator('section.flow-report[data-flow="winback"]')
        expect(winback.locator("p.lift strong")).to_contain_text("Lift vs control")
        assert page.locator("svg.trend rect.trend-sent").count() == len(demo["report"]["trend"])
        page.fill('input[name="from"]', "2026-11-22")
        page.click('[data-test="report-range"] button')
        expect(page).to_have_url(re.compile(r"from=2026-11-22"))
        page.context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_demo_without_history_has_none(tmp_path):
    env = _env(tmp_path / "instance")
    _cli(env, "init-db")
    built = json.loads(_cli(env, "demo", "--customers", "50", "--history-days", "0", "--now", NOW, "--json").stdout)
    assert built["history"]["days"] == 0
    messages = json.loads(_cli(env, "messages", "--shop", "demo", "--json").stdout)
    assert messages == []


# ---- 8. CLI manners --------------------------------------------------------------------------------
def test_messages_piped_into_head_ends_quietly(demo):
    # More output than a pipe holds, so `head` closes it while winback still writes.
    proc = subprocess.Popen(f"'{WINBACK}' messages --shop demo --limit 100000 | head -n 2", shell=True,
                            env=demo["env"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            executable="/bin/bash")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and len(out.splitlines()) == 2
    assert err == ""
    piped = subprocess.run(f"set -o pipefail; '{WINBACK}' messages --shop demo --limit 100000 | head -n 1",
                           shell=True, env=demo["env"], cwd=ROOT, capture_output=True, text=True,
                           executable="/bin/bash")
    assert piped.returncode == 0, piped.stderr  # winback's own exit status
    assert "Broken pipe" not in piped.stderr and "Traceback" not in piped.stderr


def test_a_cut_list_says_how_many_more(demo):
    total = demo["built"]["history"]["sent"]
    cut = _cli(demo["env"], "messages", "--shop", "demo", "--status", "sent", "--limit", "5")
    assert len(cut.stdout.splitlines()) == 5
    assert cut.stderr.strip() == f"{total - 5} more (use --limit)"
    whole = _cli(demo["env"], "messages", "--shop", "demo", "--status", "sent", "--limit", str(total))
    assert whole.stderr == ""


def test_the_dry_run_is_summed_up_per_flow(app, db, runner):
    lapsed_shop(db)
    at_ten = runner.invoke(args=["run-flows", "--shop", "s", "--now", "2026-04-12T10:00:00+00:00", "--dry-run"])
    assert at_ten.exit_code == 0
    assert re.search(r"winback +1 enter, 0 held out, 1 send, 0 deferred, 0 withheld", at_ten.output)
    assert re.search(r"sunset +nobody", at_ten.output)
    night = runner.invoke(args=["run-flows", "--shop", "s", "--now", "2026-04-12T22:00:00+00:00", "--dry-run",
                                "--json", "--by-flow"])
    doc = {f["flow"]: f for f in json.loads(night.output)["flows"]}
    assert doc["winback"] == {"flow": "winback", "would_enter": 1, "held_out": 0, "would_send": 0, "deferred": 1,
                              "withheld": 0, "reasons": {"send window": 1}}
    rows = json.loads(runner.invoke(args=["run-flows", "--shop", "s", "--now", "2026-04-12T10:00:00+00:00",
                                          "--dry-run", "--json"]).output)
    assert [r["customer"] for r in rows] == ["A"]  # the customer list is as it was
    assert db.execute("SELECT COUNT(*) FROM enrolments").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


# ---- 2. the guided start -----------------------------------------------------------------------------
def _connect_woo(app, client, login, db):
    login()
    resp = start(client, "https://new-shop.example")
    assert callback(client, state_of(resp), "ck_new", "cs_new").status_code == 200
    return get_shop(db, "new-shop.example")


def _items(client, handle):
    page = client.get(f"/shops/{handle}").get_data(as_text=True)
    return dict(re.findall(r'data-item="(\w+)" data-done="(\d)"', page))


def test_a_newly_connected_shop_starts_with_its_flows_off(app, client, login, db):
    shop = _connect_woo(app, client, login, db)
    assert not any(f["enabled"] for f in load_flows(db, shop["id"]).values())
    # The shops the tests build (and the demo) keep their flows as they come (category win-back is off).
    built = load_flows(db, make_shop(db, "built")["id"])
    assert {n: f["enabled"] for n, f in built.items()} == {n: f.get("enabled", True) for n, f in DEFAULT_FLOWS.items()}
    assert built["winback"]["enabled"]


def test_an_imported_shop_starts_with_its_flows_off(app, db, runner, tmp_path):
    csv = tmp_path / "orders.csv"
    csv.write_text("created_at,total,customer_id\n2026-01-01,20,A\n")
    assert runner.invoke(args=["import-orders", "--shop", "mine", str(csv)]).exit_code == 0
    listed = json.loads(runner.invoke(args=["flow", "list", "--shop", "mine", "--json"]).output)
    assert len(listed) == len(DEFAULT_FLOWS) and not any(f["enabled"] for f in listed)


def test_the_checklist_ticks_from_the_shops_real_state(app, client, login, db):
    shop = _connect_woo(app, client, login, db)
    assert _items(client, shop["handle"]) == {"connect": "0", "sender": "0", "email": "0", "review": "0", "live": "0"}
    save_setting(db, shop["id"], "postal_address", "Shop, 1 Street, 1000 Town")
    assert _items(client, shop["handle"])["sender"] == "0"  # the sender address is still missing
    save_setting(db, shop["id"], "sender_email", "hello@new-shop.example")
    assert _items(client, shop["handle"])["sender"] == "1"
    assert client.get(f"/shops/{shop['handle']}/flows/winback").status_code == 200
    page = client.get(f"/shops/{shop['handle']}").get_data(as_text=True)
    assert "Review the flows (1/5 opened)" in page
    for name in ("replenish", "vip_winback", "second_order", "sunset"):
        client.get(f"/shops/{shop['handle']}/flows/{name}")
    assert _items(client, shop["handle"])["review"] == "1"


def test_go_live_turns_on_the_reviewed_flows_only(app, client, login, db):
    shop = _connect_woo(app, client, login, db)
    page = client.get(f"/shops/{shop['handle']}").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    refused = client.post(f"/shops/{shop['handle']}/go-live", data={"csrf_token": token}, follow_redirects=True)
    assert "before going live" in refused.get_data(as_text=True)
    assert not any(f["enabled"] for f in load_flows(db, shop["id"]).values())
    client.get(f"/shops/{shop['handle']}/flows/winback")
    client.get(f"/shops/{shop['handle']}/flows/second_order")
    done = client.post(f"/shops/{shop['handle']}/go-live", data={"csrf_token": token}, follow_redirects=True)
    assert "2 reviewed flows are on" in done.get_data(as_text=True)
    assert {n for n, f in load_flows(db, shop["id"]).items() if f["enabled"]} == {"winback", "second_order"}
    assert _items(client, shop["handle"])["live"] == "1"
    assert client.post(f"/shops/{shop['handle']}/go-live").status_code == 400  # no CSRF token


def test_the_checklist_in_the_browser(app, live, browser, db):
    from playwright.sync_api import expect
    add_store(app, db, "https://corner.example", "ck_corner", "cs_corner", offline=True)
    page = browser.new_context(viewport={"width": 390, "height": 800}).new_page()
    page.set_default_timeout(10_000)
    page.goto(live + "/shops/corner.example")
    page.fill("#username", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("main button[type=submit]")
    checklist = page.locator('[data-test="checklist"]')
    expect(checklist).to_be_visible()
    expect(checklist.locator("li")).to_have_count(5)
    expect(checklist.locator('li[data-item="review"]')).to_have_attribute("data-done", "0")
    checklist.locator('li[data-item="review"] a').click()
    page.wait_for_url(live + "/shops/corner.example/flows")
    page.goto(live + "/shops/corner.example/flows/winback")
    page.goto(live + "/shops/corner.example")
    expect(page.locator('li[data-item="review"]')).to_contain_text("1/5")
    page.click("#go-live button")
    expect(page.locator(".flash")).to_contain_text("1 reviewed flows are on")
    expect(page.locator('li[data-item="live"]')).to_have_attribute("data-done", "1")
    page.context.close()


# ---- 3. the public address ---------------------------------------------------------------------------
def test_serve_takes_its_host_and_port_as_the_public_address(tmp_path):
    env = _env(tmp_path / "instance")
    _cli(env, "init-db")
    port = free_port()
    proc = subprocess.Popen([WINBACK, "serve", "--no-scheduler", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert f"links in emails point at http://127.0.0.1:{port}" in line
    given = _env(tmp_path / "instance") | {"WINBACK_APP_URL": "https://winback.example"}
    proc = subprocess.Popen([WINBACK, "serve", "--no-scheduler", "--port", str(free_port())], env=given, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "links in emails point at https://winback.example" in line


def _app_without_url(tmp_path):
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path / "i"), "DATABASE": str(tmp_path / "w.db"),
                      "PASSWORD_HASH_METHOD": CHEAP_HASH})
    with app.app_context():
        from app.db import get_db
        init_db(get_db())
        ensure_admin(get_db(), ADMIN_PASSWORD, method=CHEAP_HASH)
    return app


def test_unsubscribe_links_and_the_install_link_use_the_served_address(tmp_path):
    app = _app_without_url(tmp_path)
    assert serve_address(app, "0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert serve_address(app, "192.0.2.7", 8000) == "http://192.0.2.7:8000"
    db = connect(app.config["DATABASE"])
    shop = make_shop(db, "s")
    with app.app_context():
        msg = build(app, shop, {"sender_name": None, "sender_email": None}, {
            "id": 1, "email": "a@example.com", "subject": "Hi", "body_text": "x", "body_html": None,
            "message_id": None, "is_marketing": 1, "customer_id": 1})
    assert msg["List-Unsubscribe"].startswith("<http://192.0.2.7:8000/u/")
    client = app.test_client()
    page = client.get("/login", base_url="http://192.0.2.7:8000")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
                base_url="http://192.0.2.7:8000")
    connect_page = client.get("/connect", base_url="http://192.0.2.7:8000").get_data(as_text=True)
    assert "http://192.0.2.7:8000/shopify/install" in connect_page
    dashboard = client.get("/shops/s", base_url="http://192.0.2.7:8000").get_data(as_text=True)
    assert 'data-warning="public_address"' not in dashboard


def test_requests_on_another_host_warn_on_the_dashboard_and_in_the_log_once(tmp_path, caplog):
    app = _app_without_url(tmp_path)
    serve_address(app, "127.0.0.1", 8000)
    make_shop(connect(app.config["DATABASE"]), "s")
    client = app.test_client()
    base = "http://winback.lan:8000"
    with caplog.at_level(logging.WARNING, logger="winback.address"):
        page = client.get("/login", base_url=base)
        token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
        client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
                    base_url=base)
        dashboard = client.get("/shops/s", base_url=base).get_data(as_text=True)
    assert 'data-warning="public_address"' in dashboard
    assert "winback.lan:8000" in dashboard and "http://127.0.0.1:8000" in dashboard
    assert len([r for r in caplog.records if "winback.lan:8000" in r.getMessage()]) == 1

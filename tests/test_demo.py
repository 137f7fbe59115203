"""The demo shop: deterministic, idempotent, and realistic enough for every segment and flow."""
import json
import statistics
from collections import defaultdict
from datetime import date, timedelta

import pytest

from app.db import connect

from app.migrations import init_db
from connectors.base import ORDER_STATUSES
from connectors.demo import REPLENISHABLE, DemoConnector, seed_demo

NOW = "2026-06-01"
ANCHOR = date(2026, 6, 1)
ANCHOR_UTC = "2026-05-31T22:00:00Z"  # 00:00 in Amsterdam (summer time)
PAID = "o.status = 'paid' AND o.is_test = 0"


def fresh_db(tmp_path, name="w.db"):
    db = connect(str(tmp_path / name))
    init_db(db)
    return db


def dump(db) -> dict:
    """Everything the demo wrote, without row ids."""
    return {
        "customers": db.execute(
            "SELECT external_id, email, first_name, last_name, locale, accepts_marketing,"
            " marketing_updated_at, created_at, updated_at FROM customers ORDER BY external_id").fetchall(),
        "orders": db.execute(
            "SELECT o.external_id, o.name, c.external_id, o.created_at, o.order_date, o.currency,"
            " o.total_minor, o.refunded_minor, o.status, o.financial_status, o.is_test,"
            " o.discount_codes, o.updated_at FROM orders o LEFT JOIN customers c ON c.id = o.customer_id"
            " ORDER BY o.external_id").fetchall(),
        "lines": db.execute(
            "SELECT o.external_id, l.line_key, p.external_id, l.sku, l.title, l.brand, l.category,"
            " l.quantity, l.price_minor FROM order_lines l JOIN orders o ON o.id = l.order_id"
            " LEFT JOIN products p ON p.id = l.product_id ORDER BY o.external_id, l.line_key").fetchall(),
        "products": db.execute(
            "SELECT external_id, title, sku, brand, category, price_minor, replenishable, replenish_days"
            " FROM products ORDER BY external_id").fetchall(),
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A 2,000-customer demo shop as of 2026-06-01, shared by the trait tests."""
    db = fresh_db(tmp_path_factory.mktemp("demo"))
    stats = seed_demo(db, customers=2000, seed=1, now=NOW)
    yield db, stats
    db.close()


@pytest.fixture(scope="module")
def history(demo):
    """Per customer row id: sorted purchase days (paid, not test) and net revenue in cents."""
    db, _ = demo
    days, clv = defaultdict(set), defaultdict(int)
    for cid, day, net in db.execute(
            f"SELECT o.customer_id, o.order_date, o.total_minor - o.refunded_minor FROM orders o WHERE {PAID}"):
        days[cid].add(date.fromisoformat(day))
        clv[cid] += net
    return {cid: sorted(d) for cid, d in days.items()}, clv


def avg_gap(days):
    return (days[-1] - days[0]).days / (len(days) - 1)


# ---- determinism and refreshing -------------------------------------------------------------
def test_same_parameters_give_the_same_shop(tmp_path):
    a, b = fresh_db(tmp_path, "a.db"), fresh_db(tmp_path, "b.db")
    stats_a = seed_demo(a, customers=500, seed=7, now=NOW)
    stats_b = seed_demo(b, customers=500, seed=7, now="2026-06-01T15:30:00")  # same day, same shop
    assert dump(a) == dump(b)
    assert {k: v for k, v in stats_a.items() if k != "seconds"} == \
        {k: v for k, v in stats_b.items() if k != "seconds"}


def test_connector_is_deterministic_and_yields_valid_records():
    one = DemoConnector(customers=300, seed=3, anchor=NOW)
    two = DemoConnector(customers=300, seed=3, anchor=NOW)
    assert one.platform == "demo"
    orders = list(one.orders())
    assert orders == list(two.orders())
    assert list(one.customers()) == list(two.customers())
    assert [o.created_at for o in orders] == sorted(o.created_at for o in orders)
    assert all(o.status in ORDER_STATUSES and o.lines and o.customer for o in orders)
    assert all(o.created_at < one.anchor for o in orders)
    keys = [c.key for c in one.customers()]
    assert len(keys) == len(set(keys)) == 300
    assert orders[0].external_id == "D100001" and orders[0].name == "#1001"
    assert [line.line_key for line in max(orders, key=lambda o: len(o.lines)).lines][:2] == ["1", "2"]
    assert len(list(one.products())) == 40


def test_rerun_changes_nothing(tmp_path):
    db = fresh_db(tmp_path)
    first = seed_demo(db, customers=400, seed=1, now=NOW)
    before = dump(db)
    second = seed_demo(db, customers=400, seed=1, now=NOW)
    assert dump(db) == before
    assert first["orders_new"] == first["orders"] > 400
    for key in ("orders_new", "orders_updated", "customers_new", "customers_updated", "lines_written",
                "lines_removed", "products_new", "products_updated", "orders_removed",
                "customers_removed", "customers_reset", "products_marked"):
        assert second.get(key, 0) == 0, key
    assert second["orders_unchanged"] == second["orders"] == first["orders"]
    runs = db.execute("SELECT kind, source, status FROM sync_runs ORDER BY id").fetchall()
    assert runs == [("demo", "seed 1", "ok"), ("demo", "seed 1", "ok")]


def test_another_seed_gives_another_shop(tmp_path):
    a, b = fresh_db(tmp_path, "a.db"), fresh_db(tmp_path, "b.db")
    seed_demo(a, customers=300, seed=1, now=NOW)
    seed_demo(b, customers=300, seed=2, now=NOW)
    da, db_ = dump(a), dump(b)
    assert da["products"] == db_["products"]
    assert da["customers"] != db_["customers"]
    assert da["orders"] != db_["orders"]


def test_refresh_leaves_exactly_the_new_history(tmp_path):
    db, fresh = fresh_db(tmp_path, "a.db"), fresh_db(tmp_path, "b.db")
    seed_demo(db, customers=600, seed=1, now=NOW)
    stats = seed_demo(db, customers=350, seed=2, now="2026-03-15")
    seed_demo(fresh, customers=350, seed=2, now="2026-03-15")
    assert dump(db) == dump(fresh)
    assert stats["orders_removed"] > 0 and stats["customers_removed"] > 0
    assert stats["customers"] == 350
    assert db.execute("SELECT MAX(created_at) FROM orders").fetchone()[0] < "2026-03-15"


def test_shop_and_time_span(demo):
    db, stats = demo
    shop = db.execute("SELECT handle, platform, name, currency, timezone, locale FROM shops").fetchone()
    assert shop[:2] == ("demo", "demo") and shop[2] != "demo"
    assert shop[3:] == ("EUR", "Europe/Amsterdam", "en")
    first, last, latest_update = db.execute(
        "SELECT MIN(order_date), MAX(created_at), MAX(updated_at) FROM orders").fetchone()
    assert last < ANCHOR_UTC and latest_update < ANCHOR_UTC
    assert ANCHOR - timedelta(days=735) <= date.fromisoformat(first) <= ANCHOR - timedelta(days=700)
    assert stats["shop"] == "demo" and stats["customers"] == 2000 and stats["products"] == 40
    assert stats["orders"] == db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    assert stats["lines"] == db.execute("SELECT COUNT(*) FROM order_lines").fetchone()[0]
    # Customers arrive more often lately: the last year brings more first orders than the first.
    firsts = db.execute("SELECT MIN(order_date) FROM orders GROUP BY customer_id").fetchall()
    late = sum(1 for (d,) in firsts if d >= (ANCHOR - timedelta(days=365)).isoformat())
    assert late > 1.2 * (len(firsts) - late)


# ---- the traits segments and flows rely on --------------------------------------------------
def test_one_time_lapsed_lost_and_new(history):
    days, _ = history
    buyers = len(days)
    one_time = [d for d in days.values() if len(d) == 1]
    repeat = [d for d in days.values() if len(d) >= 2]
    assert 0.40 <= len(one_time) / buyers <= 0.60
    lost = [d for d in days.values() if (ANCHOR - d[-1]).days > 365]
    lapsed = [d for d in repeat if 30 <= (ANCHOR - d[-1]).days <= 365
              and (ANCHOR - d[-1]).days > 1.5 * avg_gap(d)]
    active_repeat = [d for d in repeat if (ANCHOR - d[-1]).days <= 1.5 * avg_gap(d)]
    assert len(lapsed) >= 0.15 * len(repeat)
    assert len(active_repeat) >= 0.15 * len(repeat)
    assert 0.05 * buyers <= len(lost) <= 0.40 * buyers
    new = [d for d in days.values() if (ANCHOR - d[0]).days <= 30]
    assert 0.02 * buyers <= len(new) <= 0.15 * buyers
    second_order_due = [d for d in one_time if 14 <= (ANCHOR - d[0]).days <= 180]
    assert len(second_order_due) >= 0.05 * buyers


def test_big_spenders(history):
    _, clv = history
    values = sorted(clv.values())
    median = statistics.median(values)
    top_percent = values[-max(1, len(values) // 100):]
    assert min(top_percent) >= 5 * median
    assert 2000 <= median <= 20000  # 20 to 200 EUR


def test_catalogue(demo):
    db, _ = demo
    n, brands, categories = db.execute(
        "SELECT COUNT(*), COUNT(DISTINCT brand), COUNT(DISTINCT category) FROM products").fetchone()
    assert 35 <= n <= 45 and 4 <= brands <= 7 and 4 <= categories <= 7
    low, high = db.execute("SELECT MIN(price_minor), MAX(price_minor) FROM products").fetchone()
    assert 300 <= low and high <= 50000
    # Categories are not one brand each: brand loyalty is more than category loyalty.
    assert db.execute("SELECT COUNT(*) FROM (SELECT category FROM products GROUP BY category"
                      " HAVING COUNT(DISTINCT brand) >= 2)").fetchone()[0] >= 4


def test_replenishable_products_and_cycles(demo):
    db, _ = demo
    marked = dict(db.execute(
        "SELECT external_id, replenish_days FROM products WHERE replenishable = 1").fetchall())
    assert marked == REPLENISHABLE and 3 <= len(marked) <= 5
    for pid, cycle in marked.items():
        rows = db.execute(
            f"SELECT o.customer_id, o.order_date, l.quantity FROM order_lines l"
            f" JOIN orders o ON o.id = l.order_id JOIN products p ON p.id = l.product_id"
            f" WHERE p.external_id = ? AND {PAID} ORDER BY o.order_date", [pid]).fetchall()
        by_customer = defaultdict(list)
        for cid, day, qty in rows:
            by_customer[cid].append((date.fromisoformat(day), qty))
        all_gaps, cyclers = [], 0
        for buys in by_customer.values():
            gaps = [(b[0] - a[0]).days / a[1] for a, b in zip(buys, buys[1:]) if b[0] > a[0]]
            all_gaps += gaps
            if len(gaps) >= 2 and abs(statistics.median(gaps) - cycle) <= 0.2 * cycle:
                cyclers += 1
        assert cyclers >= 10, pid
        assert len(all_gaps) >= 20 and abs(statistics.median(all_gaps) - cycle) <= 0.25 * cycle, pid


def test_replenishment_due_around_the_anchor(demo):
    db, _ = demo
    last = {}
    for cid, pid, day, qty, cycle in db.execute(
            f"SELECT o.customer_id, l.product_id, o.order_date, l.quantity, p.replenish_days"
            f" FROM order_lines l JOIN orders o ON o.id = l.order_id JOIN products p ON p.id = l.product_id"
            f" WHERE p.replenishable = 1 AND {PAID} ORDER BY o.order_date"):
        last[cid, pid] = (date.fromisoformat(day), qty, cycle)
    due = {cid for (cid, _), (day, qty, cycle) in last.items()
           if day + timedelta(days=cycle * qty - 5) <= ANCHOR <= day + timedelta(days=cycle * qty + cycle)}
    assert len(due) >= 30
    # Some cyclers stopped: their last purchase of the product is long past its due date.
    stopped = [1 for (day, qty, cycle) in last.values() if (ANCHOR - day).days > 3 * cycle * qty]
    assert len(stopped) >= 30


def test_brand_loyal_and_category_lapsed(demo, history):
    db, _ = demo
    days, _ = history
    brands_by_day, categories = defaultdict(lambda: defaultdict(set)), defaultdict(lambda: defaultdict(set))
    for cid, day, brand, category in db.execute(
            f"SELECT o.customer_id, o.order_date, l.brand, l.category FROM order_lines l"
            f" JOIN orders o ON o.id = l.order_id WHERE {PAID}"):
        brands_by_day[cid][day].add(brand)
        categories[cid][category].add(date.fromisoformat(day))
    loyal = [cid for cid, per_day in brands_by_day.items()
             if len(per_day) >= 2 and set.intersection(*per_day.values())]
    repeaters = sum(1 for d in days.values() if len(d) >= 2)
    assert len(loyal) >= 0.05 * repeaters
    # Category lapse while still buying: active overall, but one category long overdue.
    lapsed_category = 0
    for cid, per_category in categories.items():
        mine = days[cid]
        if len(mine) < 3 or (ANCHOR - mine[-1]).days > 1.5 * avg_gap(mine):
            continue
        for cat_days in per_category.values():
            cat_days = sorted(cat_days)
            if (len(cat_days) >= 2 and cat_days[-1] < mine[-1]
                    and (ANCHOR - cat_days[-1]).days > 1.5 * avg_gap(cat_days)):
                lapsed_category += 1
                break
    assert lapsed_category >= 20


def test_consent_locales_names_and_emails(demo):
    db, _ = demo
    rows = db.execute("SELECT external_id, email, first_name, locale, accepts_marketing,"
                      " marketing_updated_at FROM customers").fetchall()
    n = len(rows)
    consent = [r[4] for r in rows]
    assert 0.50 <= consent.count(1) / n <= 0.70
    assert consent.count(0) >= 0.10 * n and consent.count(None) >= 0.05 * n
    assert all((r[4] is None) == (r[5] is None) for r in rows)
    locales = [r[3] for r in rows if r[3]]
    share = {loc: locales.count(loc) / len(locales) for loc in ("en", "nl", "pl")}
    assert 0.50 <= share["en"] <= 0.70 and 0.15 <= share["nl"] <= 0.35 and 0.08 <= share["pl"] <= 0.22
    assert sum(share.values()) == pytest.approx(1)
    pl_names = {r[2] for r in rows if r[3] == "pl"}
    assert pl_names & {"Anna", "Piotr", "Katarzyna", "Łukasz", "Małgorzata", "Paweł"}
    nl_names = {r[2] for r in rows if r[3] == "nl"}
    assert nl_names & {"Sanne", "Daan", "Lotte", "Bram", "Femke", "Thijs"}
    emails = [r[1] for r in rows]
    assert len(set(emails)) == n
    assert all(e.rsplit("@", 1)[1] in ("example.com", "example.org", "example.net") for e in emails)
    assert all(e == e.lower() and e.isascii() for e in emails)


def test_order_noise(demo):
    db, _ = demo
    n = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    count = dict(db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall())
    assert 0.01 * n <= count["cancelled"] <= 0.035 * n
    assert 0.003 * n <= count["pending"] <= 0.02 * n
    full = db.execute("SELECT COUNT(*) FROM orders WHERE status = 'refunded'"
                      " AND refunded_minor = total_minor").fetchone()[0]
    partial = db.execute("SELECT COUNT(*) FROM orders WHERE status = 'paid'"
                         " AND refunded_minor > 0 AND refunded_minor < total_minor").fetchone()[0]
    assert full == count["refunded"] and full >= 0.005 * n and partial >= 0.005 * n
    assert 0.015 * n <= full + partial <= 0.05 * n
    tests = db.execute("SELECT COUNT(*), COUNT(DISTINCT customer_id) FROM orders WHERE is_test = 1").fetchone()
    assert 2 <= tests[0] <= 6
    same_day = db.execute("SELECT COUNT(*) FROM (SELECT 1 FROM orders GROUP BY customer_id, order_date"
                          " HAVING COUNT(*) > 1)").fetchone()[0]
    assert same_day >= 10
    guests = db.execute("SELECT COUNT(*) FROM customers WHERE external_id = email AND first_name IS NULL"
                        " AND accepts_marketing IS NULL").fetchone()[0]
    assert 0.01 * 2000 <= guests <= 0.06 * 2000
    with_code = db.execute("SELECT COUNT(*) FROM orders WHERE discount_codes IS NOT NULL").fetchone()[0]
    assert 0.02 * n <= with_code <= 0.2 * n


def test_ids_names_and_totals(demo):
    db, _ = demo
    assert db.execute("SELECT MIN(external_id), MIN(name) FROM orders").fetchone() == ("D100001", "#1001")
    first_customer = db.execute("SELECT MIN(external_id) FROM customers WHERE external_id LIKE 'C%'")
    assert first_customer.fetchone()[0] == "C10001"
    assert db.execute("SELECT MIN(external_id), MAX(external_id) FROM products").fetchone() == ("P001", "P040")
    # Order numbers follow time; line keys count 1, 2, ...
    names = [int(n[1:]) for (n,) in db.execute("SELECT name FROM orders ORDER BY created_at, name")]
    assert names == sorted(names)
    bad_keys = db.execute("SELECT COUNT(*) FROM (SELECT order_id, MAX(CAST(line_key AS INTEGER)) m,"
                          " COUNT(*) c FROM order_lines GROUP BY order_id) WHERE m <> c").fetchone()[0]
    assert bad_keys == 0
    # Totals: lines less discount plus shipping (at most 4.95), never above.
    for total, lines in db.execute(
            "SELECT o.total_minor, SUM(l.quantity * l.price_minor) FROM orders o"
            " JOIN order_lines l ON l.order_id = o.id GROUP BY o.id"):
        assert 0 < total <= lines + 495 and total >= lines * 0.8 - 1


def test_no_progress_bar_without_a_terminal(tmp_path, capsys):
    seed_demo(fresh_db(tmp_path), customers=50, seed=1, now=NOW, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ---- the command -------------------------------------------------------------------------------
def test_demo_command_json_and_if_missing(runner, db):
    result = runner.invoke(args=["demo", "--customers", "300", "--now", NOW, "--history-days", "0", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["shop"] == "demo" and stats["customers"] == 300 and stats["products"] == 40
    assert stats["orders"] > 300 and stats["lines"] >= stats["orders"]
    before = dump(db)
    again = runner.invoke(args=["demo", "--customers", "50", "--seed", "9", "--if-missing"])
    assert again.exit_code == 0, again.output
    assert "exists" in again.output
    assert dump(db) == before
    assert db.execute("SELECT COUNT(*) FROM sync_runs").fetchone()[0] == 1
    quiet = runner.invoke(args=["demo", "--if-missing", "--json"])
    assert quiet.exit_code == 0 and dump(db) == before

"""A shop's time zone changes (the owner's Rules page, or the platform's shop details): its orders'
calendar days follow, so purchase days, gaps and lapse count in the shop's days whichever zone the
orders were first written in."""
import re
from datetime import time

from app.shops import get_shop
from app.timeutil import from_db, local_date
from connectors.store import ShopWriter, change_timezone, keep_days_in_zone
from flows.refresh import refresh
from tests.builders import History, at, day

METRICS = ("purchases", "purchase_days", "first_date", "second_date", "last_date", "avg_gap_days", "status")


def _history(db, handle, tz="UTC", platform="import"):
    """Customer A orders late in the UTC evening on days 0, 10 and 40, which in Amsterdam are the
    next days, and on day 11 in the afternoon: four UTC days, three Amsterdam days."""
    h = History(db, handle, tz=tz, platform=platform)
    for d, hour in ((0, time(23, 30)), (10, time(23, 30)), (11, time(15)), (40, time(23, 10))):
        h.order("A", d, at=hour)
    for i in range(5):
        h.repeat(f"R{i}", [0, 30, 60], at=time(12))
    return h


def _metrics(db, shop):
    return {row["external_id"]: tuple(row[k] for k in METRICS) for row in db.query(
        f"SELECT c.external_id, {', '.join('s.' + k for k in METRICS)} FROM customer_snapshots s"
        " JOIN customers c ON c.id = s.customer_id WHERE s.shop_id = ?", [shop["id"]])}


def test_a_new_time_zone_gives_the_orders_the_days_of_a_shop_made_in_it(db):
    moved_shop = _history(db, "moved", "UTC").write()
    born = History(db, "born", tz="Europe/Amsterdam")
    born.records = _history(db, "scratch", "UTC").records  # the same instants, written in Amsterdam
    born_shop = born.write()
    now = at(100)
    refresh(db, moved_shop, now)  # a snapshot read in UTC days

    moved = change_timezone(db, moved_shop["id"], "Europe/Amsterdam")
    assert moved == 3  # A's three late orders; the afternoon's and the others' noons stay on their day
    assert change_timezone(db, moved_shop["id"], "Europe/Amsterdam") == 0
    for created, order_day in db.execute("SELECT created_at, order_date FROM orders WHERE shop_id = ?", [moved_shop["id"]]):
        assert order_day == local_date(from_db(created), "Europe/Amsterdam")

    moved_shop = get_shop(db, "moved")
    refresh(db, moved_shop, now)
    refresh(db, born_shop, now)
    assert _metrics(db, moved_shop) == _metrics(db, born_shop)
    a = _metrics(db, moved_shop)["A"]
    assert (a[1], a[2], a[4]) == (3, str(day(1)), str(day(41)))  # days 10 and 11 are one purchase day now


def test_the_rules_page_moves_the_orders_to_the_new_zones_days(client, login, db):
    shop = _history(db, "s", "UTC").write()
    refresh(db, shop, at(100))
    login()
    page = client.get("/shops/s/settings").get_data(as_text=True)
    values = dict(re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', page))
    values.pop("smtp_url_clear", None)
    values.update(postal_address="Main street 1", timezone="Pacific/Auckland",
                  csrf_token=re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1))
    assert client.post("/shops/s/settings", data=values).status_code == 302
    assert get_shop(db, "s")["timezone"] == "Pacific/Auckland"
    for created, order_day in db.execute("SELECT created_at, order_date FROM orders WHERE shop_id = ?", [shop["id"]]):
        assert order_day == local_date(from_db(created), "Pacific/Auckland")


def test_a_zone_the_platform_reports_moves_the_orders_days(app, db):
    from connectors.woocommerce.webhooks import handle_setup
    shop = _history(db, "w", platform="woocommerce").order("B", 5, at=time(3), oid="early").write()
    handle_setup(app, db, shop, {"currency": "EUR", "timezone": "America/Los_Angeles",
                                 "credentials": {"consumer_key": "ck", "consumer_secret": "cs"}})
    assert get_shop(db, "w")["timezone"] == "America/Los_Angeles"
    days = dict(db.execute("SELECT created_at, order_date FROM orders WHERE shop_id = ?", [shop["id"]]).fetchall())
    assert days and all(d == local_date(from_db(c), "America/Los_Angeles") for c, d in days.items())
    early = db.execute("SELECT order_date FROM orders WHERE external_id = 'early'").fetchone()[0]
    assert early == str(day(4))  # 03:00 UTC on day 5 is the evening of day 4 in Los Angeles


def test_a_zone_half_an_hour_off_puts_each_order_on_its_own_day(db):
    """In Kolkata (UTC+5:30) local midnight falls at 18:30 UTC: two orders of one UTC hour, either side
    of it, land on two days."""
    shop = History(db, "k", tz="UTC").order("K", 3, at=time(18, 15), oid="before").order(
        "K", 3, at=time(18, 45), oid="after").write()
    assert change_timezone(db, shop["id"], "Asia/Kolkata") == 1
    days = dict(db.execute("SELECT external_id, order_date FROM orders WHERE shop_id = ?", [shop["id"]]).fetchall())
    assert days == {"before": str(day(3)), "after": str(day(4))}


def test_orders_a_long_write_dated_in_the_old_zone_follow_the_shop(db):
    """A sync or an import that began before the zone changed dates its orders in the old zone; at
    its end they are moved to the new zone's days."""
    h = History(db, "late", tz="UTC")
    shop = h.order("A", 1, at=time(12)).write()
    writer = ShopWriter(db, shop)  # begun in UTC
    change_timezone(db, shop["id"], "Asia/Tokyo")
    writer.write_orders(History(db, "scratch2", tz="UTC").order("A", 5, at=time(20), oid="late-one").records)
    late = "SELECT order_date FROM orders WHERE external_id = 'late-one'"
    assert db.execute(late).fetchone()[0] == str(day(5))  # the old zone's day
    assert keep_days_in_zone(db, shop["id"], "UTC") == 1
    assert db.execute(late).fetchone()[0] == str(day(6))  # 20:00 UTC is 05:00 the next day in Tokyo
    assert keep_days_in_zone(db, shop["id"], "Asia/Tokyo") == 0

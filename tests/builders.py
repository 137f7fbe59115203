"""The one place tests build shops and order histories.

    make_shop(db, "corner", platform="woocommerce", tz="Europe/Warsaw")   a bare shop
    History(db).repeat("A", [0, 40], total="20").order("B", 3, lines=[{"product": "beans"}]).write()
                                                                     customers with orders on given days
    History(db, shop=existing).order("A", 102).write()               more orders for a shop already built
    ready_to_send(db, shop)                                          postal address set, nobody held out
    lapsed_shop(db)                                                  the flows tests' standard shop

Days are counted from D0 (2026-01-01) in the shop's time zone; `at(n)` is a tick time on day n.
"""
import copy
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from itertools import count

from app.settings import save_setting
from app.shops import create_shop
from app.timeutil import zone
from connectors.base import CustomerRecord, LineRecord, OrderRecord
from connectors.store import ShopWriter
from flows.definitions import DEFAULT_FLOWS, save_flow

D0 = date(2026, 1, 1)
POSTAL = "Winback Test Shop, 1 Market Street, 1000 Testville"
_ORDER_IDS = count(1)  # unique across builders, so a later order never replaces an earlier one


def day(n: int) -> date:
    """Day n of the test calendar."""
    return D0 + timedelta(days=n)


def now_at(n: int) -> str:
    """--now for 00:00 of day n (shop time)."""
    return day(n).isoformat()


def at(n, hour=10, minute=0) -> datetime:
    """A tick time: day n of the test calendar at hh:mm UTC."""
    return datetime.combine(day(n), time(hour, minute), tzinfo=timezone.utc)


def make_shop(db, handle="s", platform="import", *, tz="UTC", **fields) -> dict:
    """A shop of any platform, handle and time zone (other create_shop fields: name, locale, ...)."""
    return create_shop(db, handle, platform, timezone=tz, **fields)


class History:
    """Orders for a shop: each customer's orders on given days, with consent, locale and lines.

    Builds a new shop (`handle`, `tz`, `platform`, other shop fields) unless `shop` is given; order
    times are in `tz`, else in the shop's time zone.
    """

    def __init__(self, db, handle="s", tz=None, *, platform="import", shop=None, **shop_fields):
        self.db = db
        self.shop = shop or create_shop(db, handle, platform, timezone=tz or "UTC", **shop_fields)
        self.tz = tz or self.shop["timezone"]
        self.records = []

    def order(self, customer, d, total="50", lines=(), status="paid", refunded="0", test=False,
              at=time(12), consent=True, oid=None, locale=None, email=None, first_name=None, name=None):
        """One order of `customer` on day `d` (a day number or a date) at `at`, shop time.

        `customer` is the platform's customer id (None: a guest known by `email`); the email is
        `<customer>@example.com` unless given. `lines` are dicts: product, title, brand, category,
        qty, price (default: the order total).
        """
        when = datetime.combine(day(d) if isinstance(d, int) else d, at, tzinfo=zone(self.tz))
        oid = oid or f"{customer or email}-{next(_ORDER_IDS)}"
        self.records.append(OrderRecord(
            external_id=oid, created_at=when, total=Decimal(total), currency="EUR", status=status,
            refunded=Decimal(refunded), test=test, name=name,
            customer=CustomerRecord(customer, email=email or f"{customer.lower()}@example.com",
                                    first_name=first_name, accepts_marketing=consent,  # None: not known
                                    marketing_updated_at=when if consent is not None else None, locale=locale),
            lines=[LineRecord(str(i), product_external_id=p.get("product"), title=p.get("title", p.get("product")),
                              brand=p.get("brand"), category=p.get("category"), quantity=p.get("qty", 1),
                              price=Decimal(str(p.get("price", total)))) for i, p in enumerate(lines)]))
        return self

    def repeat(self, customer, days, **kw):
        """The same order of `customer` on each of `days`."""
        for d in days:
            self.order(customer, d, **kw)
        return self

    def write(self):
        """Write the orders through the connectors' writer (as an import would); returns the shop."""
        ShopWriter(self.db, self.shop).write_orders(self.records)
        self.records = []
        return self.shop


def ready_to_send(db, shop, *flows):
    """Flows as the flow tests want them: nobody held out, and the postal address marketing mail needs."""
    save_setting(db, shop["id"], "postal_address", POSTAL)
    for name in flows or DEFAULT_FLOWS:
        flow = copy.deepcopy(DEFAULT_FLOWS[name])
        flow["holdout"] = 0
        save_flow(db, shop["id"], name, flow)
    return shop


def lapsed_shop(db, consent=True, extra=None):
    """A: orders on day 0 and 40 (usual gap 40: lapsed from day 101); nine richer customers keep A off VIP."""
    h = History(db).repeat("A", [0, 40], total="20", consent=consent)
    for i in range(9):
        h.repeat(f"R{i}", [0, 40, 90], total="100")
    if extra:
        extra(h)
    return ready_to_send(db, h.write())


def lost_shop(db):
    """L: orders on day 0 and 30, so lost (over 365 days) from day 396; five customers who bought
    recently keep the shop's thresholds ordinary. Ready to send."""
    h = History(db).repeat("L", [0, 30])
    for i in range(5):
        h.repeat(f"R{i}", [0, 380, 390])
    return ready_to_send(db, h.write())


def seeded_demo_file(path, password, method, now, customers=120):
    """A database file at `path` with the admin (`password`, hashed by `method`) and the demo shop of
    `customers` customers, refreshed as of `now`: seeded once, copied into each test's database."""
    from app.db import connect
    from app.migrations import init_db
    from app.shops import get_shop
    from app.users import ensure_admin
    from connectors.demo import seed_demo
    from flows.refresh import refresh
    db = connect(path)
    init_db(db)
    ensure_admin(db, password, method=method)
    seed_demo(db, customers=customers, seed=1, now=now)
    refresh(db, get_shop(db, "demo"), now)
    db.close()
    return path

"""Building small, exact shop histories for the intelligence tests."""
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import count

from app.shops import create_shop
from app.timeutil import zone
from connectors.base import CustomerRecord, LineRecord, OrderRecord
from connectors.store import ShopWriter

D0 = date(2026, 1, 1)
_ORDER_IDS = count(1)  # unique across builders, so a later order never replaces an earlier one


def day(n: int) -> date:
    """Day n of the test calendar."""
    return D0 + timedelta(days=n)


def now_at(n: int) -> str:
    """--now for 00:00 of day n (shop time)."""
    return day(n).isoformat()


class History:
    """Orders for a shop, given as (customer, day, total, lines, status, refunded)."""

    def __init__(self, db, handle="s", tz="UTC"):
        self.db = db
        self.shop = create_shop(db, handle, "import", timezone=tz)
        self.tz = tz
        self.records = []

    def order(self, customer, d, total="50", lines=(), status="paid", refunded="0", test=False,
              at=time(12), consent=True, oid=None):
        when = datetime.combine(day(d) if isinstance(d, int) else d, at, tzinfo=zone(self.tz))
        oid = oid or f"{customer}-{next(_ORDER_IDS)}"
        self.records.append(OrderRecord(
            external_id=oid, created_at=when, total=Decimal(total), currency="EUR", status=status,
            refunded=Decimal(refunded), test=test,
            customer=CustomerRecord(customer, email=f"{customer.lower()}@example.com", accepts_marketing=consent,
                                    marketing_updated_at=when),
            lines=[LineRecord(str(i), product_external_id=p.get("product"), title=p.get("title", p.get("product")),
                              brand=p.get("brand"), category=p.get("category"), quantity=p.get("qty", 1),
                              price=Decimal(str(p.get("price", total)))) for i, p in enumerate(lines)]))
        return self

    def repeat(self, customer, days, **kw):
        for d in days:
            self.order(customer, d, **kw)
        return self

    def write(self):
        ShopWriter(self.db, self.shop).write_orders(self.records)
        self.records = []
        return self.shop

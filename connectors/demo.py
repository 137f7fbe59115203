"""The demo shop: a deterministic, realistic two-year history for trying Winback without a store.

The story behind the numbers (later issues fit a BG/NBD model on it and test segments on it):

* Customers arrive over the two years before the anchor date, more of them lately (the shop grows).
* Most customers follow the BG/NBD story: while alive they buy at their own Poisson rate
  lambda ~ Gamma(r, alpha); after each repeat purchase they silently drop out with their own
  probability p ~ Beta(a, b). So many buy once, and many repeat buyers are lapsed or lost by now.
* Some customers re-buy a replenishable product (coffee beans, dog food, face cream, tea) on a
  cycle of `cycle x quantity` days give or take a little, until they stop.
* A few big spenders fill larger baskets with pricier items; some customers only ever buy their
  favourite brand; some repeat buyers stop buying one category while still buying others.
* The usual noise of a real shop: cancelled, pending and refunded orders, test orders by the
  owner, guest checkouts, discount codes, two orders on one day, consent given, refused or unknown.

Only `random.Random(seed).random()` drives the generator (the samplers below are built on it), so
the same (customers, seed, anchor date) gives the same shop on every Python version. Every email
address is on a reserved example domain: the demo can never mail a real person.
"""
from __future__ import annotations

import math
import random
import sys
import time as _time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Iterator

from tqdm import tqdm

from app.db import write_transaction
from app.runs import finish_run, start_run
from app.settings import get_settings, save_setting
from app.shops import ShopError, create_shop, get_shop
from app.timeutil import UTC, parse_now, start_of_day, to_db, zone

from . import store
from .base import Connector, CustomerRecord, LineRecord, OrderRecord, ProductRecord
from .store import ShopWriter

SHOP_HANDLE = "demo"
SHOP_NAME = "Lindenhof Coffee & Home"
SHOP_CURRENCY = "EUR"
SHOP_TIMEZONE = "Europe/Amsterdam"
SHOP_LOCALE = "en"
SHOP_POSTAL_ADDRESS = "Lindenhof Coffee & Home (demo), Lindenstraat 1, 1000 AA Demostad"
HISTORY_DAYS = 730

# BG/NBD population parameters (time unit: days). With two years of growing acquisition they give
# roughly half the customers a single purchase day and plenty of lapsed and lost repeat buyers.
BG_R, BG_ALPHA = 0.55, 70.0
BG_A, BG_B = 1.1, 3.2
# Replenishers: chance to try once and never come back, then a per-purchase drop-out ~ Beta.
REPL_TRY_ONCE = 0.25
REPL_A, REPL_B = 2.0, 13.0
ACQUISITION_GROWTH = 1.5  # the acquisition rate at the anchor is 1 + this times the one at the start

EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


@dataclass(frozen=True, slots=True)
class DemoProduct:
    """One product of the demo catalogue; `cycle` in days for the replenishable ones."""
    external_id: str
    title: str
    brand: str
    category: str
    price: Decimal
    popularity: float
    cycle: int | None = None
    durable: bool = False

    @property
    def sku(self) -> str:
        """The shop's stock-keeping code (LH-001 for P001)."""
        return "LH-" + self.external_id[1:]

    @property
    def url(self) -> str:
        """Its place on the demo storefront of this installation (a path: emails prefix APP_URL)."""
        return f"/demo-store#{self.external_id}"

    @property
    def image_file(self) -> str:
        """Its category's picture in app/static/."""
        return f"demo/{self.category.lower().replace(' ', '-')}.png"

    @property
    def image_url(self) -> str:
        """The picture as this installation serves it (a path, like `url`)."""
        return f"/static/{self.image_file}"


def _catalogue() -> tuple[DemoProduct, ...]:
    rows = [
        # title, brand, category, price, popularity, cycle, durable
        ("Espresso Blend Coffee Beans 1 kg", "Van Dijk Roasters", "Coffee", "24.90", 10, 30, False),
        ("Single Origin Ethiopia Beans 250 g", "Van Dijk Roasters", "Coffee", "11.50", 4, None, False),
        ("Decaf Ground Coffee 500 g", "Van Dijk Roasters", "Coffee", "12.95", 3, None, False),
        ("Coffee Discovery Gift Box", "Van Dijk Roasters", "Coffee", "34.95", 2, None, False),
        ("Mocha Java Beans 500 g", "Leaf & Kettle", "Coffee", "14.50", 4, None, False),
        ("Cold Brew Coffee Bags (10)", "Leaf & Kettle", "Coffee", "9.95", 3, None, False),
        ("Loose Leaf Earl Grey 250 g", "Leaf & Kettle", "Tea", "12.50", 8, 45, False),
        ("Sencha Green Tea 100 g", "Leaf & Kettle", "Tea", "9.90", 4, None, False),
        ("Chai Spice Blend 150 g", "Leaf & Kettle", "Tea", "10.50", 3, None, False),
        ("Matcha Ceremonial Grade 30 g", "Leaf & Kettle", "Tea", "21.00", 3, None, False),
        ("Chamomile Herbal Tea 100 g", "Wild Meadow", "Tea", "7.95", 4, None, False),
        ("Rooibos Vanilla 200 g", "Wild Meadow", "Tea", "8.95", 3, None, False),
        ("Daily Face Cream 50 ml", "Blossom & Birch", "Skincare", "32.00", 9, 60, False),
        ("Vitamin C Serum 30 ml", "Blossom & Birch", "Skincare", "38.50", 4, None, False),
        ("Gentle Cleanser 150 ml", "Blossom & Birch", "Skincare", "18.90", 4, None, False),
        ("Night Repair Cream 50 ml", "Blossom & Birch", "Skincare", "44.00", 3, None, False),
        ("Skincare Discovery Set", "Blossom & Birch", "Skincare", "64.00", 1, None, False),
        ("Hand Cream Trio", "Wild Meadow", "Skincare", "19.50", 4, None, False),
        ("Lavender Bath Salts", "Wild Meadow", "Skincare", "16.50", 3, None, False),
        ("Olive Oil Soap Bar", "Wild Meadow", "Skincare", "5.95", 4, None, False),
        ("Grain-Free Dog Food 12 kg", "Happy Paws", "Pet Supplies", "54.95", 9, 28, False),
        ("Chicken Dog Treats 300 g", "Happy Paws", "Pet Supplies", "7.95", 6, None, False),
        ("Salmon Cat Food 2 kg", "Happy Paws", "Pet Supplies", "19.95", 5, None, False),
        ("Cotton Rope Toy", "Happy Paws", "Pet Supplies", "8.50", 3, None, False),
        ("Oatmeal Dog Shampoo", "Wild Meadow", "Pet Supplies", "12.95", 3, None, False),
        ("Orthopedic Dog Bed", "Nordhaus", "Pet Supplies", "89.00", 1, None, True),
        ("Glass French Press 1 l", "Nordhaus", "Kitchen", "39.00", 4, None, True),
        ("Stoneware Mug Set (4)", "Nordhaus", "Kitchen", "36.00", 4, None, True),
        ("Espresso Machine Classica", "Nordhaus", "Kitchen", "349.00", 1, None, True),
        ("Burr Grinder Pro", "Nordhaus", "Kitchen", "179.00", 1, None, True),
        ("Milk Frother", "Nordhaus", "Kitchen", "29.95", 3, None, True),
        ("Hand Coffee Grinder", "Van Dijk Roasters", "Kitchen", "59.00", 2, None, True),
        ("Cast Iron Teapot", "Leaf & Kettle", "Kitchen", "54.00", 2, None, True),
        ("Glass Tea Infuser Bottle", "Leaf & Kettle", "Kitchen", "19.95", 3, None, True),
        ("Soy Candle Fig & Cedar", "Wild Meadow", "Home Fragrance", "24.50", 6, None, False),
        ("Reed Diffuser Lavender", "Wild Meadow", "Home Fragrance", "29.00", 4, None, False),
        ("Linen Spray Fresh Cotton", "Wild Meadow", "Home Fragrance", "14.95", 3, None, False),
        ("Scented Candle Trio", "Blossom & Birch", "Home Fragrance", "49.00", 2, None, False),
        ("Wax Melts Amber", "Nordhaus", "Home Fragrance", "8.95", 3, None, False),
        ("Ceramic Ultrasonic Diffuser", "Nordhaus", "Home Fragrance", "69.00", 1, None, True),
    ]
    return tuple(DemoProduct(f"P{i:03d}", title, brand, cat, Decimal(price), pop, cycle, durable)
                 for i, (title, brand, cat, price, pop, cycle, durable) in enumerate(rows, 1))


CATALOGUE = _catalogue()
OUT_OF_STOCK = frozenset({"P017"})  # one sold-out product: emails must never show it
REPLENISHABLE = {p.external_id: p.cycle for p in CATALOGUE if p.cycle}
# How often a customer's favourite category is this one.
CATEGORY_SHARE = {"Coffee": 28, "Tea": 18, "Skincare": 20, "Pet Supplies": 15, "Kitchen": 9,
                  "Home Fragrance": 10}

FIRST_NAMES = {  # (name, female)
    "en": [(n, True) for n in ("Emma", "Olivia", "Amelia", "Sophie", "Grace", "Chloe", "Jessica",
                               "Lucy", "Hannah", "Charlotte", "Emily", "Ella", "Isla", "Mia",
                               "Ruby", "Alice")]
    + [(n, False) for n in ("James", "Oliver", "Jack", "Harry", "George", "Thomas", "William",
                             "Daniel", "Samuel", "Joseph", "Noah", "Leo", "Oscar", "Henry",
                             "Ethan", "Adam")],
    "nl": [(n, True) for n in ("Sanne", "Lotte", "Julia", "Fleur", "Anouk", "Femke", "Lisa", "Eva",
                               "Iris", "Noor", "Roos", "Maud", "Sophie", "Tess")]
    + [(n, False) for n in ("Daan", "Sem", "Lucas", "Bram", "Jesse", "Thijs", "Ruben", "Lars",
                             "Niels", "Joris", "Koen", "Sven", "Stijn", "Wouter")],
    "pl": [(n, True) for n in ("Anna", "Maria", "Katarzyna", "Małgorzata", "Agnieszka", "Zofia",
                               "Julia", "Aleksandra", "Magdalena", "Natalia", "Ewa", "Joanna")]
    + [(n, False) for n in ("Piotr", "Krzysztof", "Tomasz", "Paweł", "Michał", "Łukasz", "Jakub",
                             "Kamil", "Marcin", "Mateusz", "Adam", "Wojciech")],
}
LAST_NAMES = {
    "en": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
           "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
           "Wood", "Jackson", "Clarke", "Hughes", "Turner", "Hill", "Cooper"),
    "nl": ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser", "Smit",
           "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
           "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Kok"),
    "pl": ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski",
           "Zieliński", "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Mazur", "Krawczyk",
           "Jankowski", "Wojciechowski", "Kwiatkowski", "Kaczmarek"),
}
LOCALE_SHARE = (("en", 60), ("nl", 25), ("pl", 15))
# Shoppers buy in the morning, at lunch and mostly in the evening (local hours 7..23).
HOUR_WEIGHTS = (1, 2, 3, 4, 4, 5, 6, 5, 4, 4, 5, 6, 8, 9, 9, 7, 4)
SHIPPING = Decimal("4.95")
FREE_SHIPPING_FROM = Decimal("50.00")
CENT = Decimal("0.01")


class _Rand:
    """Samplers built only on Mersenne Twister's `random()`, whose stream never changes."""

    def __init__(self, seed):
        self.random = random.Random(seed).random

    def uniform(self, a, b):
        return a + (b - a) * self.random()

    def randint(self, a, b):
        return a + min(int(self.random() * (b - a + 1)), b - a)

    def chance(self, p):
        return self.random() < p

    def choice(self, seq):
        return seq[min(int(self.random() * len(seq)), len(seq) - 1)]

    def weighted(self, items, weights):
        total = sum(weights)
        x = self.random() * total
        for item, w in zip(items, weights):
            x -= w
            if x < 0:
                return item
        return items[-1]

    def normal(self):
        u1, u2 = 1.0 - self.random(), self.random()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def exponential(self, rate):
        return -math.log(1.0 - self.random()) / rate

    def gamma(self, shape, scale=1.0):
        """Marsaglia and Tsang's method (with the usual boost for shape < 1)."""
        if shape < 1.0:
            return self.gamma(shape + 1.0, scale) * (1.0 - self.random()) ** (1.0 / shape)
        d = shape - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        while True:
            x = self.normal()
            v = (1.0 + c * x) ** 3
            if v <= 0:
                continue
            u = 1.0 - self.random()
            if u < 1.0 - 0.0331 * x ** 4 or math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
                return d * v * scale

    def beta(self, a, b):
        x, y = self.gamma(a), self.gamma(b)
        return x / (x + y) if x + y > 0 else 0.5


class _Customer:
    """A generated customer: who they are and how they shop."""
    __slots__ = ("index", "record", "staff", "events", "repl", "repl_qty", "prefs", "loyal_brand",
                 "big", "lapse_category", "lapse_from", "owned")

    def __init__(self, index):
        self.index = index
        self.staff = False
        self.events: list[float] = []
        self.repl: DemoProduct | None = None
        self.repl_qty: list[int] = []
        self.prefs: dict[str, float] = {}
        self.loyal_brand: str | None = None
        self.big = False
        self.lapse_category: str | None = None
        self.lapse_from = 0
        self.owned: set[str] = set()


@dataclass(slots=True)
class _Order:
    day: int
    seconds: int
    customer: _Customer
    seq: int
    lines: list[tuple[DemoProduct, int]]
    status: str = "paid"
    test: bool = False
    code: str | None = None
    percent: int = 0
    free_shipping: bool = False
    refund: str | None = None  # None, "partial" or "full"


def demo_anchor(now=None, tz: str = SHOP_TIMEZONE) -> datetime:
    """00:00 shop time of the day of `now` (an ISO string, an aware datetime, or None = today), in UTC."""
    moment = now if isinstance(now, datetime) else parse_now(now, tz)
    if moment.tzinfo is None:
        raise ValueError("the demo's `now` must be an aware datetime")
    return start_of_day(moment.astimezone(zone(tz)).date(), tz)


class DemoConnector(Connector):
    """A synthetic shop: deterministic records from (number of customers, seed, anchor date).

    The history covers the HISTORY_DAYS days before the anchor (00:00 shop time of `anchor`'s
    day); every order is strictly before it. `since` is ignored: the demo has no incremental sync.
    """

    platform = "demo"

    def __init__(self, shop: dict | None = None, *, customers: int = 5000, seed: int = 1, anchor=None):
        shop = dict(shop or {})
        shop.setdefault("timezone", SHOP_TIMEZONE)
        shop.setdefault("currency", SHOP_CURRENCY)
        super().__init__(shop)
        if customers < 1:
            raise ValueError("the demo needs at least one customer")
        self.n_customers = int(customers)
        self.seed = seed
        self.timezone = shop["timezone"] or SHOP_TIMEZONE
        self.currency = shop["currency"] or SHOP_CURRENCY
        self.anchor = demo_anchor(anchor, self.timezone)
        self._built: tuple[list[CustomerRecord], list[OrderRecord]] | None = None

    @property
    def replenish_days(self) -> dict[str, int]:
        """{product external id: cycle in days} of the products an owner would mark replenishable."""
        return dict(REPLENISHABLE)

    def products(self, since: datetime | None = None) -> Iterator[ProductRecord]:
        """The catalogue (about 40 products over 6 brands and 6 categories)."""
        for p in CATALOGUE:
            yield ProductRecord(external_id=p.external_id, title=p.title, sku=p.sku, brand=p.brand,
                                category=p.category, price=p.price, currency=self.currency,
                                url=p.url, image_url=p.image_url, published=True,
                                in_stock=p.external_id not in OUT_OF_STOCK, variant_id=p.external_id)

    def customers(self, since: datetime | None = None) -> Iterator[CustomerRecord]:
        """Every customer (guests included), in order of arrival."""
        yield from self._build()[0]

    def orders(self, since: datetime | None = None) -> Iterator[OrderRecord]:
        """Every order with its lines and customer, oldest first."""
        yield from self._build()[1]

    # ---- generation ------------------------------------------------------------------------
    def _build(self):
        if self._built is None:
            self._built = _Generator(self).run()
        return self._built


class _Generator:
    def __init__(self, conn: DemoConnector):
        self.n = conn.n_customers
        self.rng = _Rand(conn.seed)
        self.tz = zone(conn.timezone)
        self.currency = conn.currency
        anchor_date = conn.anchor.astimezone(self.tz).date()
        self.start_date = anchor_date - timedelta(days=HISTORY_DAYS)
        self.by_category: dict[str, list[DemoProduct]] = {}
        self.by_brand: dict[str, list[DemoProduct]] = {}
        for p in CATALOGUE:
            self.by_category.setdefault(p.category, []).append(p)
            self.by_brand.setdefault(p.brand, []).append(p)
        self.emails: set[str] = set()

    def run(self):
        n = self.n
        # A shop owner who places a few test orders, when the shop is big enough to have one.
        has_staff = n >= 20
        arrivals = sorted(self._arrival() for _ in range(n - has_staff))
        if has_staff:
            arrivals.insert(0, 0.0)
        customers = []
        for i, t0 in enumerate(arrivals):
            c = _Customer(i)
            c.staff = has_staff and i == 0
            self._profile(c, t0)
            customers.append(c)
        orders: list[_Order] = []
        for c in customers:
            orders.extend(self._orders_of(c))
        orders.sort(key=lambda o: (o.day, o.seconds, o.customer.index, o.seq))
        records = [self._order_record(k, o) for k, o in enumerate(orders)]
        return [c.record for c in customers], records

    def _arrival(self) -> float:
        """Day of a customer's first order; the acquisition rate grows linearly over the history."""
        g = ACQUISITION_GROWTH
        u = self.rng.random()
        x = (math.sqrt(1.0 + 2.0 * g * u * (1.0 + g / 2.0)) - 1.0) / g
        return min(x * HISTORY_DAYS, HISTORY_DAYS - 1e-6)

    # ---- who the customer is ---------------------------------------------------------------
    def _profile(self, c: _Customer, t0: float):
        rng = self.rng
        if c.staff:
            c.events = [0.0, 1.0, float(HISTORY_DAYS // 2), float(HISTORY_DAYS - 40)]
            c.prefs = {"Coffee": 1.0}
            c.record = self._identity(c, "nl", ("Sanne", True), "Lindeman", guest=False)
            c.record.accepts_marketing = False
            c.record.marketing_updated_at = self._at(0, 9 * 3600)
            c.record.created_at = self._at(0, 8 * 3600)
            c.record.updated_at = c.record.created_at
            return
        locale = rng.weighted([loc for loc, _ in LOCALE_SHARE], [w for _, w in LOCALE_SHARE])
        guest = rng.chance(0.03)
        first = rng.choice(FIRST_NAMES[locale])
        last = rng.choice(LAST_NAMES[locale])
        c.record = self._identity(c, locale, first, last, guest)

        cats = list(CATEGORY_SHARE)
        main = rng.weighted(cats, [CATEGORY_SHARE[k] for k in cats])
        rest = [k for k in cats if k != main]
        second = rng.weighted(rest, [CATEGORY_SHARE[k] for k in rest])
        c.prefs = {k: 0.1 / (len(cats) - 2) for k in cats}
        c.prefs[main], c.prefs[second] = 0.65, 0.25
        c.big = rng.chance(0.02)
        repl = [p for p in self.by_category[main] if p.cycle]
        if repl and rng.chance(0.18):
            c.repl = repl[0]
        elif rng.chance(0.10):
            # Loyalty to a brand one can keep buying (not one that only sells durables).
            brands = sorted({p.brand for p in self.by_category[main] if not p.durable})
            if brands:
                c.loyal_brand = rng.choice(brands)

        c.events = self._replenish_events(c, t0) if c.repl else self._bgnbd_events(t0)
        if (c.repl is None and c.loyal_brand is None and len(c.events) >= 4 and rng.chance(0.35)):
            # Category lapse: buys the category on the first purchases, then never again.
            c.lapse_category = main if rng.chance(0.5) else second
            c.lapse_from = max(2, round(len(c.events) * rng.uniform(0.35, 0.65)))
            c.lapse_from = min(c.lapse_from, len(c.events) - 2)
        self._consent(c, t0)

    def _bgnbd_events(self, t0: float) -> list[float]:
        rng = self.rng
        lam = rng.gamma(BG_R, 1.0 / BG_ALPHA)
        p = rng.beta(BG_A, BG_B)
        events, t = [t0], t0
        while lam > 0:
            t += rng.exponential(lam)
            if t >= HISTORY_DAYS:
                break
            events.append(t)
            if rng.chance(p):
                break
        return events

    def _replenish_events(self, c: _Customer, t0: float) -> list[float]:
        rng = self.rng
        p = rng.beta(REPL_A, REPL_B)
        events, t = [t0], t0
        c.repl_qty = [self._repl_quantity(c.repl)]
        alive = not rng.chance(REPL_TRY_ONCE)
        while alive:
            gap = c.repl.cycle * c.repl_qty[-1] * (1.0 + 0.1 * rng.normal())
            t += max(gap, 0.5 * c.repl.cycle)
            if t >= HISTORY_DAYS:
                break
            events.append(t)
            c.repl_qty.append(self._repl_quantity(c.repl))
            alive = not rng.chance(p)
        return events

    def _repl_quantity(self, product: DemoProduct) -> int:
        # Nobody carries home two 12 kg bags; smaller packs are sometimes bought two at a time.
        return 1 if product.cycle < 30 or not self.rng.chance(0.2) else 2

    def _identity(self, c: _Customer, locale, first, last, guest) -> CustomerRecord:
        name, female = first
        if locale == "pl" and female and last.endswith(("ski", "cki", "dzki")):
            last = last[:-1] + "a"
        email = self._email(name, last)
        if guest:
            return CustomerRecord(external_id=None, email=email)
        return CustomerRecord(external_id=f"C{10001 + c.index}", email=email, first_name=name,
                              last_name=last, locale=locale)

    def _email(self, first: str, last: str) -> str:
        rng = self.rng
        f, l = _ascii(first), _ascii(last)
        pattern = rng.randint(0, 4)
        local = (f"{f}.{l}", f"{f}{l}", f"{f[0]}.{l}", f"{f}.{l}{rng.randint(60, 99)}",
                 f"{f}{rng.randint(1, 99)}")[pattern]
        domain = rng.choice(EMAIL_DOMAINS)
        email, k = f"{local}@{domain}", 2
        while email in self.emails:
            email, k = f"{local}{k}@{domain}", k + 1
        self.emails.add(email)
        return email

    def _consent(self, c: _Customer, t0: float):
        rng, rec = self.rng, c.record
        if rec.external_id is None:
            return
        u = rng.random()
        if u < 0.65:
            rec.accepts_marketing = True
            if rng.chance(0.08):  # later unsubscribed
                day = rng.randint(int(t0) + 1, HISTORY_DAYS - 1) if int(t0) + 1 < HISTORY_DAYS else int(t0)
                rec.accepts_marketing = False
                rec.marketing_updated_at = self._at(day, rng.randint(8 * 3600, 22 * 3600))
        elif u < 0.87:
            rec.accepts_marketing = False

    # ---- what the customer buys ------------------------------------------------------------
    def _orders_of(self, c: _Customer) -> list[_Order]:
        rng = self.rng
        out: list[_Order] = []
        seq = 0
        for k, t in enumerate(c.events):
            day = int(t)
            lines = self._basket(c, k)
            if not lines:
                continue
            if c.staff:
                out.append(_Order(day, rng.randint(9 * 3600, 17 * 3600), c, seq, lines, test=True))
                seq += 1
                continue
            secs = self._time_of_day()
            order = _Order(day, secs, c, seq, lines)
            seq += 1
            self._discount(order, first=(k == 0), day=day)
            u = rng.random()
            if u < 0.02:
                order.status = "cancelled"
            elif u < 0.03:
                order.status = "pending"
            elif u < 0.045:
                order.refund = "full"
            elif u < 0.06:
                order.refund = "partial"
            out.append(order)
            later = secs + rng.randint(20 * 60, 3 * 3600)
            if later < 24 * 3600 - 1 and (order.status == "cancelled" and rng.chance(0.5)
                                          or order.status == "paid" and rng.chance(0.012)):
                # Re-ordered after a cancellation, or came back for something forgotten.
                again = lines if order.status == "cancelled" else self._basket(c, k, extra=True)
                if again:
                    out.append(_Order(day, later, c, seq, list(again)))
                    seq += 1
        rec = c.record
        if out and rec.external_id is not None:
            first, last = out[0], out[-1]
            rec.created_at = self._at(first.day, max(first.seconds - rng.randint(0, 600), 0))
            rec.updated_at = self._at(last.day, last.seconds)
            if rec.accepts_marketing is not None and rec.marketing_updated_at is None:
                rec.marketing_updated_at = self._at(first.day, first.seconds)
            if rec.marketing_updated_at is not None and rec.marketing_updated_at > rec.updated_at:
                rec.updated_at = rec.marketing_updated_at
        return out

    def _basket(self, c: _Customer, k: int, extra: bool = False) -> list[tuple[DemoProduct, int]]:
        rng = self.rng
        chosen: dict[str, tuple[DemoProduct, int]] = {}
        excluded = c.lapse_category if c.lapse_category and k >= c.lapse_from else None
        if extra:
            n_lines = 1
        elif c.repl is not None:
            chosen[c.repl.external_id] = (c.repl, c.repl_qty[k])
            n_lines = 1 + (rng.chance(0.3)) + (rng.chance(0.08))
        elif c.big:
            n_lines = rng.weighted([2, 3, 4, 5], [3, 4, 2, 1])
        else:
            n_lines = rng.weighted([1, 2, 3, 4], [58, 28, 10, 4])
        if c.loyal_brand and not extra:
            self._add(c, chosen, self.by_brand[c.loyal_brand])
        if c.lapse_category and k < c.lapse_from and not extra:
            self._add(c, chosen, self.by_category[c.lapse_category])
        cats = [k2 for k2 in c.prefs if k2 != excluded]
        weights = [c.prefs[k2] for k2 in cats]
        tries = 0
        while len(chosen) < n_lines and tries < 10:
            tries += 1
            cat = rng.weighted(cats, weights)
            self._add(c, chosen, self.by_category[cat])
        return list(chosen.values())

    def _add(self, c: _Customer, chosen: dict, pool: list[DemoProduct]):
        rng = self.rng
        pool = [p for p in pool if p.external_id not in chosen
                and not (p.durable and p.external_id in c.owned) and not (p.cycle and p is not c.repl
                                                                          and c.repl is not None)]
        if not pool:
            return
        weights = [p.popularity * (float(p.price) ** 1.2 / 10 if c.big else 1.0) for p in pool]
        p = rng.weighted(pool, weights)
        if p.durable:
            qty = 1
            c.owned.add(p.external_id)
        elif p.price < 15:
            qty = rng.weighted([1, 2, 3], [70, 22, 8]) + (c.big and rng.chance(0.4))
        else:
            qty = 1 + rng.chance(0.08) + (c.big and rng.chance(0.3))
        chosen[p.external_id] = (p, qty)

    def _time_of_day(self) -> int:
        rng = self.rng
        hour = 7 + rng.weighted(range(len(HOUR_WEIGHTS)), HOUR_WEIGHTS)
        return hour * 3600 + rng.randint(0, 3599)

    def _discount(self, order: _Order, first: bool, day: int):
        rng = self.rng
        d = self.start_date + timedelta(days=day)
        if d.month == 11 and d.day >= 24 or d.month == 12 and d.day <= 1:
            if rng.chance(0.4):
                order.code, order.percent = "BLACKFRIDAY20", 20
        elif first and rng.chance(0.12):
            order.code, order.percent = "WELCOME10", 10
        elif rng.chance(0.03):
            order.code, order.percent, order.free_shipping = rng.choice(
                (("FRIENDS10", 10, False), ("SPRING15", 15, False), ("FREESHIP", 0, True)))

    # ---- records ---------------------------------------------------------------------------
    def _at(self, day: int, seconds: int) -> datetime:
        local = datetime.combine(self.start_date + timedelta(days=day), time(0)) + timedelta(seconds=seconds)
        return local.replace(tzinfo=self.tz).astimezone(UTC)

    def _order_record(self, k: int, o: _Order) -> OrderRecord:
        rng = self.rng
        lines = [LineRecord(line_key=str(j), product_external_id=p.external_id, sku=p.sku,
                            title=p.title, brand=p.brand, category=p.category, quantity=qty,
                            price=p.price) for j, (p, qty) in enumerate(o.lines, 1)]
        subtotal = sum((p.price * qty for p, qty in o.lines), Decimal(0))
        discount = (subtotal * o.percent / 100).quantize(CENT)
        shipping = Decimal(0) if o.free_shipping or subtotal - discount >= FREE_SHIPPING_FROM else SHIPPING
        total = subtotal - discount + shipping
        created = self._at(o.day, o.seconds)
        updated = created
        status, refunded, financial = o.status, Decimal(0), {"paid": "paid", "pending": "pending",
                                                             "cancelled": "voided"}[o.status]
        days_left = HISTORY_DAYS - o.day
        if o.status == "cancelled":
            updated = created + timedelta(minutes=rng.randint(5, 240))
        if o.refund and days_left > 3:
            refund_day = o.day + rng.randint(1, min(14, days_left - 1))
            updated = self._at(refund_day, rng.randint(9 * 3600, 17 * 3600))
            if o.refund == "full":
                status, refunded, financial = "refunded", total, "refunded"
            else:
                p, qty = o.lines[-1]
                refunded = p.price if len(o.lines) > 1 or qty > 1 else (total * Decimal("0.3")).quantize(CENT)
                financial = "partially_refunded"
        if updated >= self._at(HISTORY_DAYS, 0):
            updated = created
        return OrderRecord(
            external_id=f"D{100001 + k}", name=f"#{1001 + k}", created_at=created, total=total,
            currency=self.currency, status=status, refunded=refunded, financial_status=financial,
            test=o.test, discount_codes=[o.code] if o.code else [], updated_at=updated,
            customer=o.customer.record, lines=lines)


def _ascii(text: str) -> str:
    text = text.replace("ł", "l").replace("Ł", "L")
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


# ---- writing the demo shop ------------------------------------------------------------------
def seed_demo(db, *, customers: int = 5000, seed: int = 1, now=None, progress: bool = False) -> dict:
    """Create or refresh shop `demo` with a synthetic two-year history; returns what it did.

    The history is exactly the one generated for (customers, seed, the day of `now`): orders and
    customers of an earlier demo that are not in it are removed, and customers keep no attributes
    of an earlier seed. Running it again with the same arguments changes nothing. The replenishable
    products are marked with their cycles, as an owner would. With `progress`, a progress bar on
    stderr (only when stderr is a terminal).
    """
    started = _time.monotonic()
    if int(customers) < 1:
        raise ValueError("the demo needs at least one customer")
    shop = get_shop(db, SHOP_HANDLE)
    if shop is None:
        shop = create_shop(db, SHOP_HANDLE, "demo", name=SHOP_NAME, currency=SHOP_CURRENCY,
                           timezone=SHOP_TIMEZONE, locale=SHOP_LOCALE)
    elif shop["platform"] != "demo":
        raise ShopError(f"shop {SHOP_HANDLE!r} is a {shop['platform']} shop, not the demo; "
                        "it is left as it is")
    if not (get_settings(db, shop["id"])["postal_address"] or "").strip():
        # A fictional address (also for a demo made before it had one), so that the demo's marketing
        # emails are complete as an owner's would be; an address the owner typed stays.
        save_setting(db, shop["id"], "postal_address", SHOP_POSTAL_ADDRESS)
    connector = DemoConnector(shop, customers=customers, seed=seed, anchor=now)
    run_id = start_run(db, shop["id"], "demo", f"seed {seed}")
    try:
        result = _write(db, shop, connector, progress)
    except BaseException as exc:
        finish_run(db, run_id, error=str(exc) or type(exc).__name__)
        raise
    result["seconds"] = round(_time.monotonic() - started, 2)
    finish_run(db, run_id, result)
    return result


def _write(db, shop: dict, connector: DemoConnector, progress: bool) -> dict:

    products = list(connector.products())
    customers = list(connector.customers())
    orders = list(connector.orders())
    shop_id = shop["id"]
    writer = ShopWriter(db, shop)
    # One transaction: readers see the old demo until the new one is complete.
    with write_transaction(db):
        # Customers of an earlier demo that are not in this one go; the rest take this demo's
        # attributes before the writer merges (it would keep old values where new ones are empty).
        removed = store.keep_only(db, shop_id, orders=[o.external_id for o in orders],
                                  customers=[c.key for c in customers],
                                  products=[p.external_id for p in products])
        reset = store.reset_customers(db, [_reset_params(shop_id, c) for c in customers])
        writer.upsert_products(products)
        bar = tqdm(orders, total=len(orders), desc="Demo shop", unit=" orders", file=sys.stderr,
                   disable=None if progress else True, leave=False)
        try:
            writer.write_orders(bar)
        finally:
            bar.close()
        marked = store.mark_replenishable(db, shop_id, connector.replenish_days)
    counts = db.execute(
        "SELECT (SELECT COUNT(*) FROM customers WHERE shop_id = :s),"
        " (SELECT COUNT(*) FROM orders WHERE shop_id = :s),"
        " (SELECT COUNT(*) FROM products WHERE shop_id = :s),"
        " (SELECT COUNT(*) FROM order_lines WHERE shop_id = :s)", {"s": shop_id}).fetchone()
    result = {"shop": SHOP_HANDLE, "customers": counts[0], "orders": counts[1], "products": counts[2],
              "lines": counts[3], "seed": connector.seed, "now": to_db(connector.anchor)}
    for key, value in sorted(writer.stats.items()):
        result.setdefault(key, value)
    result.update(orders_removed=removed["orders"], customers_removed=removed["customers"],
                  customers_reset=reset, products_marked=marked)
    return result


def _reset_params(shop_id: int, c: CustomerRecord) -> tuple:
    def t(dt):
        return to_db(dt) if dt is not None else None
    values = ((c.email or "").strip().lower() or None, c.first_name, c.last_name, c.locale,
              None if c.accepts_marketing is None else int(c.accepts_marketing),
              t(c.marketing_updated_at), t(c.created_at), t(c.updated_at))
    return (*values, shop_id, c.key, *values)

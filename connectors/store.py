"""Writes normalised records into SQLite: idempotent, batched upserts scoped to one shop.

This module owns `customers`, `orders`, `order_lines` and `products`: it is the only one that
writes them (the bulk writer below, and named functions for single changes of state further down).
The owners of the other tables are listed in flows/enrolments.py.

Loading the same records twice changes nothing: every upsert only touches a row when a value
differs, and the counts it returns say what was new, changed or already there.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from itertools import islice
from typing import Iterable, NamedTuple

from app import snapshot_marks
from app.addresses import address_problem
from app.db import write_transaction
from app.money import to_minor
from app.shops import set_timezone
from app.timeutil import UTC, from_db, to_db, utcnow, zone

from . import staging
from .base import ORDER_STATUSES, CustomerRecord, OrderRecord, ProductRecord


def _plain_insert(upsert: str, with_id: bool = True) -> str:
    """The INSERT of an upsert without its ON CONFLICT clause, for rows known to be new (cheaper);
    `with_id`: the row id is given (the writer numbers new rows instead of looking them up after)."""
    insert = upsert[:upsert.index("ON CONFLICT")]
    if not with_id:
        return insert
    return insert.replace("(shop_id,", "(id, shop_id,", 1).replace("VALUES (?", "VALUES (?, ?", 1)


def _flag(value) -> int | None:
    """True/False/None -> 1/0/NULL."""
    return None if value is None else int(bool(value))


def _merge_sql(table: str, merge: dict[str, str]) -> tuple[str, str]:
    """SET and WHERE clauses of an upsert that only writes when a value really changes."""
    sets = ", ".join(f"{col} = {expr}" for col, expr in merge.items())
    olds = ", ".join(f"{table}.{col}" for col in merge)
    news = ", ".join(merge.values())
    return sets, f"({olds}) IS NOT ({news})"


_CONSENT_NEWER = ("(excluded.accepts_marketing IS NOT NULL AND (customers.marketing_updated_at IS NULL"
                  " OR excluded.marketing_updated_at >= customers.marketing_updated_at))")
_CUSTOMER_MERGE = {
    "email": "COALESCE(excluded.email, customers.email)",
    "first_name": "COALESCE(excluded.first_name, customers.first_name)",
    "last_name": "COALESCE(excluded.last_name, customers.last_name)",
    "locale": "COALESCE(excluded.locale, customers.locale)",
    # Consent: the most recent evidence wins, whatever order the records arrive in.
    "accepts_marketing": f"CASE WHEN {_CONSENT_NEWER} THEN excluded.accepts_marketing"
                         " ELSE customers.accepts_marketing END",
    "marketing_updated_at": f"CASE WHEN {_CONSENT_NEWER} THEN excluded.marketing_updated_at"
                            " ELSE customers.marketing_updated_at END",
    "created_at": "MIN(COALESCE(customers.created_at, excluded.created_at),"
                  " COALESCE(excluded.created_at, customers.created_at))",
    "updated_at": "MAX(COALESCE(customers.updated_at, excluded.updated_at),"
                  " COALESCE(excluded.updated_at, customers.updated_at))",
}
_CUSTOMER_SET, _CUSTOMER_WHERE = _merge_sql("customers", _CUSTOMER_MERGE)
UPSERT_CUSTOMER = f"""
INSERT INTO customers (shop_id, external_id, email, first_name, last_name, locale,
                       accepts_marketing, marketing_updated_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (shop_id, external_id) DO UPDATE SET {_CUSTOMER_SET} WHERE {_CUSTOMER_WHERE}
"""
INSERT_CUSTOMER = _plain_insert(UPSERT_CUSTOMER)
# The upsert for a customer whose row id the writer has just looked up: the same merge, as an update
# of that row (the upsert's failed insert and unique-index probe cost about as much as the update
# itself). Parameters: ?1 the row id, ?2..?9 the values after (shop_id, external_id).
_CUSTOMER_VALUES = ("email", "first_name", "last_name", "locale", "accepts_marketing", "marketing_updated_at",
                    "created_at", "updated_at")


def _by_id(merge: dict[str, str], values: tuple[str, ...]) -> dict[str, str]:
    """`merge` with each `excluded.<column>` replaced by its numbered parameter (?2, ?3, ...)."""
    out = {}
    for col, expr in merge.items():
        # Longest names first: "excluded.marketing_updated_at" before "excluded.updated_at".
        for n, name in sorted(enumerate(values, start=2), key=lambda p: -len(p[1])):
            expr = expr.replace(f"excluded.{name}", f"?{n}")
        assert "excluded." not in expr, expr
        out[col] = expr
    return out


_CUSTOMER_SET_BY_ID, _CUSTOMER_WHERE_BY_ID = _merge_sql("customers", _by_id(_CUSTOMER_MERGE, _CUSTOMER_VALUES))
UPDATE_CUSTOMER_BY_ID = f"""
UPDATE customers SET {_CUSTOMER_SET_BY_ID} WHERE id = ?1 AND {_CUSTOMER_WHERE_BY_ID}
"""

# Product data from a product sync wins; data seen on order lines only fills gaps.
_PRODUCT_DETAILS = ("url", "image_url", "published", "in_stock", "variant_id", "created_at")
_PRODUCT_MERGE_FULL = {c: f"COALESCE(excluded.{c}, products.{c})"
                       for c in ("title", "sku", "brand", "category", "price_minor", *_PRODUCT_DETAILS,
                                 "updated_at")}
_PRODUCT_MERGE_FILL = {c: f"COALESCE(products.{c}, excluded.{c})"
                       for c in ("title", "sku", "brand", "category", "price_minor")}
_PRODUCT_INSERT = """
INSERT INTO products (shop_id, external_id, title, sku, brand, category, price_minor, url, image_url,
                      published, in_stock, variant_id, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (shop_id, external_id) DO UPDATE SET {} WHERE {}
"""
UPSERT_PRODUCT = _PRODUCT_INSERT.format(*_merge_sql("products", _PRODUCT_MERGE_FULL))
FILL_PRODUCT = _PRODUCT_INSERT.format(*_merge_sql("products", _PRODUCT_MERGE_FILL))
INSERT_PRODUCT = _plain_insert(UPSERT_PRODUCT)

_ORDER_MERGE = {c: f"excluded.{c}" for c in (
    "name", "created_at", "order_date", "currency", "total_minor", "refunded_minor", "status",
    "financial_status", "is_test", "discount_codes", "updated_at")}
_ORDER_MERGE["customer_id"] = "COALESCE(excluded.customer_id, orders.customer_id)"
_ORDER_SET, _ORDER_WHERE = _merge_sql("orders", _ORDER_MERGE)
UPSERT_ORDER = f"""
INSERT INTO orders (shop_id, external_id, name, customer_id, created_at, order_date, currency,
                    total_minor, refunded_minor, status, financial_status, is_test,
                    discount_codes, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (shop_id, external_id) DO UPDATE SET {_ORDER_SET} WHERE {_ORDER_WHERE}
"""
INSERT_ORDER = _plain_insert(UPSERT_ORDER)

_LINE_MERGE = {c: f"excluded.{c}" for c in (
    "product_id", "sku", "title", "brand", "category", "quantity", "price_minor")}
_LINE_SET, _LINE_WHERE = _merge_sql("order_lines", _LINE_MERGE)
UPSERT_LINE = f"""
INSERT INTO order_lines (shop_id, order_id, line_key, product_id, sku, title, brand, category,
                         quantity, price_minor)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (order_id, line_key) DO UPDATE SET {_LINE_SET} WHERE {_LINE_WHERE}
"""
INSERT_LINE = _plain_insert(UPSERT_LINE, with_id=False)
DELETE_STALE_LINES = """
DELETE FROM order_lines
WHERE order_id = ? AND line_key NOT IN (SELECT value FROM json_each(?))
"""

# Copying a staged batch (connectors/staging.py) of orders all new to the shop: order ids follow on
# from ?1 in batch order (as write_prepared numbers them); customer and product ids from temp.import_keys.
_KEYS_TABLE = ("CREATE TEMP TABLE IF NOT EXISTS import_keys (kind TEXT, key TEXT, id INTEGER,"
               " PRIMARY KEY (kind, key)) WITHOUT ROWID")
_STAGED_KNOWN = f"""
SELECT 1 FROM {staging.STAGE}.stage_orders s JOIN orders o ON o.shop_id = ? AND o.external_id = s.external_id LIMIT 1
"""
COPY_STAGED_ORDERS = f"""
INSERT INTO orders (id, shop_id, external_id, name, customer_id, created_at, order_date, currency,
                    total_minor, refunded_minor, status, financial_status, is_test, discount_codes, updated_at)
SELECT ?1 + s.seq, ?2, s.external_id, s.name, c.id, s.created_at, s.order_date, s.currency,
       s.total_minor, s.refunded_minor, s.status, s.financial_status, s.is_test, s.discount_codes, s.updated_at
FROM {staging.STAGE}.stage_orders s LEFT JOIN temp.import_keys c ON c.kind = 'c' AND c.key = s.customer_key
ORDER BY s.seq
"""
COPY_STAGED_LINES = f"""
INSERT INTO order_lines (shop_id, order_id, line_key, product_id, sku, title, brand, category,
                         quantity, price_minor)
SELECT ?2, ?1 + l.order_seq, l.line_key, p.id, l.sku, l.title, l.brand, l.category, l.quantity, l.price_minor
FROM {staging.STAGE}.stage_lines l LEFT JOIN temp.import_keys p ON p.kind = 'p' AND p.key = l.product_key
WHERE true ORDER BY l.rowid
ON CONFLICT (order_id, line_key) DO UPDATE SET {_LINE_SET} WHERE {_LINE_WHERE}
"""


def _batches(iterable, size):
    it = iter(iterable)
    while batch := list(islice(it, size)):
        yield batch


class _Conversions:
    """Memoised to_db, to_minor and local dates for one batch (the same few values recur).

    Each gives exactly what the app.timeutil / app.money function it stands for gives. Times are
    memoised with their `fold`: two wall times of one zone that differ only in it compare equal.
    """

    def __init__(self, timezone: str):
        self.zone = zone(timezone)
        self.times: dict = {}
        self.folded: dict = {}  # times with fold=1 (equal to their fold=0 twin, but another instant)
        self.dates: dict = {}
        self.minors: dict = {}

    def time(self, dt):
        if dt is None:
            return None
        times = self.folded if dt.fold else self.times
        text = times.get(dt)
        if text is None:
            utc = (dt if dt.tzinfo is UTC else dt.astimezone(UTC)) if dt.tzinfo is not None else None
            if utc is None or utc.year < 1000:
                text = to_db(dt)  # the reference formatting (and its error for naive times)
            else:
                text = utc.isoformat()[:19] + "Z"  # (the offset and any fraction of a second left off)
            times[dt] = text
        return text

    def date(self, dt):
        key = (dt, 1) if dt.fold else dt
        text = self.dates.get(key)
        if text is None:
            # (isoformat pads the year to four digits, as date().isoformat() does)
            text = self.dates[key] = dt.astimezone(self.zone).isoformat()[:10]
        return text

    def minor(self, amount, currency):
        if type(amount) is not Decimal:  # 5 == Decimal(5), but to_minor(5) is an error
            return to_minor(amount, currency)
        key = (amount, currency)
        try:
            value = self.minors.get(key)
        except TypeError:  # an unhashable amount (a signalling NaN): to_minor says what is wrong
            return to_minor(amount, currency)
        if value is None:
            value = self.minors[key] = to_minor(amount, currency)
        return value


def _bool(value):
    return None if value is None else int(bool(value))


# A customer as the writer handles it: (external_id or None for a guest, email as given, first_name,
# last_name, locale, accepts_marketing 0/1/None, marketing_updated_at, created_at, updated_at), the
# times as database text. Plain values: a batch prepared in another process pickles cheaply.
def _customer_row(rec: CustomerRecord, conv: _Conversions) -> tuple:
    return (rec.external_id, rec.email, rec.first_name, rec.last_name, rec.locale,
            _bool(rec.accepts_marketing), conv.time(rec.marketing_updated_at), conv.time(rec.created_at),
            conv.time(rec.updated_at))


def _merge_customer_rows(a: tuple, b: tuple) -> tuple:
    """Combine two rows of one customer: later non-empty values win, consent by its time."""
    a_time, b_time = a[6], b[6]
    if b[5] is not None and (a[5] is None or a_time is None or (b_time is not None and b_time >= a_time)):
        consent = b[5], b_time
    else:
        consent = a[5], a_time
    created = [t for t in (a[7], b[7]) if t is not None]
    updated = [t for t in (a[8], b[8]) if t is not None]
    return (a[0] or b[0], b[1] or a[1], b[2] or a[2], b[3] or a[3], b[4] or a[4], *consent,
            min(created) if created else None, max(updated) if updated else None)


def _customer_rows(records: Iterable[CustomerRecord], conv: _Conversions) -> dict[str, tuple]:
    """{customer key: row}, the records of one customer merged."""
    merged: dict[str, tuple] = {}
    for rec in records:
        key = rec.key
        row = _customer_row(rec, conv)
        prev = merged.get(key)
        merged[key] = row if prev is None else _merge_customer_rows(prev, row)
    return merged


def _product_rows(records: Iterable[ProductRecord], conv: _Conversions, currency: str) -> dict[str, tuple]:
    """{external id: (title, sku, brand, category, price_minor, url, image_url, published, in_stock,
    variant_id, created_at, updated_at)} (the last record wins)."""
    return {r.external_id: (r.title, r.sku, r.brand, r.category,
                            conv.minor(r.price, r.currency or currency) if r.price is not None else None,
                            r.url, r.image_url, _flag(r.published), _flag(r.in_stock), r.variant_id,
                            conv.time(r.created_at), conv.time(r.updated_at))
            for r in {r.external_id: r for r in records}.values()}


class PreparedOrders(NamedTuple):
    """A batch of orders turned into plain rows (no database needed): what `ShopWriter.write_prepared`
    writes. `customers` {key: customer row}; `products` {external id: product row}; `orders`
    [(external_id, name, customer key, created_at, order_date, currency, total_minor, refunded_minor,
    status, financial_status, is_test, discount_codes, updated_at, merge_lines, lines, repeats)], each
    line (line_key, product external id, sku, title, brand, category, quantity, price_minor), `repeats`
    whether a line key occurs more than once among them; `problems`
    {email: address_problem(email)} of the customers."""
    customers: dict
    products: dict
    orders: list
    problems: dict


def prepare_orders(records: Iterable[OrderRecord], timezone: str, currency: str,
                   check_addresses: bool = True) -> PreparedOrders:
    """Turn one batch of order records into the rows ShopWriter writes (status rules, amounts in
    minor units, times as text). Pure: it may run in another process than the writer.
    `check_addresses=False` leaves `problems` empty: the writer checks the addresses itself."""
    conv = _Conversions(timezone)
    orders: dict[str, OrderRecord] = {}
    for rec in records:
        if rec.status not in ORDER_STATUSES:
            raise ValueError(f"order {rec.external_id}: unknown status {rec.status!r}")
        prev = orders.get(rec.external_id)
        if prev is not None and rec.merge_lines:
            prev.lines.extend(rec.lines)
        else:
            orders[rec.external_id] = rec
    customers = _customer_rows((r.customer for r in orders.values() if r.customer), conv)
    line_products = {}
    for rec in orders.values():
        for line in rec.lines:
            if not line.product_external_id:
                continue
            prod = line_products.get(line.product_external_id)
            if prod is None:
                line_products[line.product_external_id] = ProductRecord(
                    external_id=line.product_external_id, title=line.title, sku=line.sku,
                    brand=line.brand, category=line.category, price=line.price,
                    currency=rec.currency)
            elif prod.title is None or prod.sku is None or prod.brand is None \
                    or prod.category is None:  # fill gaps from the other lines of this product
                for name in ("title", "sku", "brand", "category"):
                    if getattr(prod, name) is None:
                        setattr(prod, name, getattr(line, name))
    products = _product_rows(line_products.values(), conv, currency)
    rows = []
    # One object for each distinct line text of the batch: the batch pickles (and unpickles in the
    # writer) each string once, not once per line.
    texts: dict[tuple, tuple] = {}
    for rec in orders.values():
        cur = rec.currency
        total = conv.minor(rec.total, cur)
        refunded = min(conv.minor(rec.refunded, cur), total)
        status = rec.status
        if status == "paid" and total > 0 and refunded >= total:
            status = "refunded"
        codes = sorted({c.strip().lower() for c in rec.discount_codes if c and c.strip()}) \
            if rec.discount_codes else None
        lines = []
        for line in rec.lines:
            text = (line.line_key, line.product_external_id, line.sku, line.title, line.brand, line.category)
            lines.append(texts.setdefault(text, text)
                         + (int(line.quantity), conv.minor(line.price, cur) if line.price is not None else None))
        rows.append((rec.external_id, rec.name, rec.customer.key if rec.customer else None,
                     conv.time(rec.created_at), conv.date(rec.created_at), cur, total, refunded, status,
                     rec.financial_status, int(bool(rec.test)), json.dumps(codes) if codes else None,
                     conv.time(rec.updated_at), rec.merge_lines, lines,
                     len(lines) > 1 and len({line[0] for line in lines}) < len(lines)))
    problems = {r[1]: address_problem(r[1]) for r in customers.values() if r[1]} if check_addresses else {}
    return PreparedOrders(customers, products, rows, problems)


class ShopWriter:
    """Idempotent writer of one shop's records. `stats` counts what each call did."""

    def __init__(self, db, shop: dict, batch_size: int = 2000):
        self.db = db
        self.shop_id = shop["id"]
        self.timezone = shop["timezone"]
        self.currency = shop["currency"]
        self.batch_size = batch_size
        self.stats = Counter()

    # ---- lookups -------------------------------------------------------------------------
    def _ids(self, table: str, keys: Iterable[str]) -> dict[str, int]:
        keys = list(set(keys))
        if not keys:
            return {}
        rows = self.db.execute(
            f"SELECT external_id, id FROM {table} WHERE shop_id = ?"
            " AND external_id IN (SELECT value FROM json_each(?))",
            [self.shop_id, json.dumps(keys)]).fetchall()
        return dict(rows)

    # ---- customers -----------------------------------------------------------------------
    def upsert_customers(self, records: Iterable[CustomerRecord]) -> dict[str, int]:
        """Insert or update customers; returns {customer key: row id}.

        A guest (no platform id) joins the stored customer with the same email, if there is one;
        a registered customer absorbs an earlier guest row of the same email (its orders move).
        """
        return self._write_customers(_customer_rows(records, _Conversions(self.timezone)))

    def _next_id(self, table: str) -> int:
        """The id the next new row of `table` gets (the writer holds the write lock)."""
        return (self.db.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0] or 0) + 1

    def _write_customers(self, merged: dict[str, tuple], problems: dict | None = None) -> dict[str, int]:
        if not merged:
            return {}
        with write_transaction(self.db):
            alias = self._guest_aliases(merged)
            for email, target in alias.items():
                row = merged.pop(email)
                if target in merged:
                    merged[target] = _merge_customer_rows(merged[target], row)
                else:
                    merged[target] = (target,) + row[1:]
            ids = self._ids("customers", merged)
            shop_id = self.shop_id
            next_id = self._next_id("customers")
            inserts, upserts, emails = [], [], []
            for key, r in merged.items():
                email = (r[1] or "").strip().lower() or None
                if r[0] and email:
                    emails.append(email)
                known = ids.get(key)
                if known is not None:
                    upserts.append((known, email, *r[2:]))
                else:
                    ids[key] = next_id
                    inserts.append((next_id, shop_id, key, email, *r[2:]))
                    next_id += 1
            changed = self._execute(INSERT_CUSTOMER, inserts) + self._execute(UPDATE_CUSTOMER_BY_ID, upserts)
            snapshot_marks.mark_customers(self.db, shop_id, (row[0] for row in inserts))
            new = len(inserts)
            self.stats["customers_new"] += new
            self.stats["customers_updated"] += changed - new
            self._mark_addresses(merged, ids, problems, {row[2] for row in inserts})
            self._absorb_guests(emails)  # (a blank email matches no guest: guests are keyed by email)
        for email, external_id in alias.items():
            ids[email] = ids[external_id]
        return ids

    def _mark_addresses(self, merged: dict[str, tuple], ids: dict[str, int], problems: dict | None,
                        new: set = frozenset()):
        """Mark customers whose address cannot be mailed as undeliverable, with the reason (and clear
        that mark once a valid address arrives), so that one bad address never stops a delivery run.
        `problems`: {email: address_problem(email)} known already (see prepare_orders); `new`: keys
        of customers inserted just now (no mark to clear)."""
        bad, good = [], []
        now = to_db(utcnow())
        problems = problems or {}
        for key, row in merged.items():
            email = row[1]
            if email and key in ids:
                problem = problems[email] if email in problems else address_problem(email)
                if problem:
                    bad.append((now, problem, ids[key]))
                elif key not in new:
                    good.append(ids[key])
        if bad:
            self.db.conn.executemany(
                "UPDATE customers SET email_failed_at = COALESCE(email_failed_at, ?), email_failure = ?"
                " WHERE id = ? AND (email_failed_at IS NULL OR email_failure LIKE 'invalid address%')", bad)
        if good:
            self.db.execute(
                "UPDATE customers SET email_failed_at = NULL, email_failure = NULL"
                " WHERE id IN (SELECT value FROM json_each(?)) AND email_failure LIKE 'invalid address%'",
                [json.dumps(good)])

    def _guest_aliases(self, merged: dict[str, tuple]) -> dict[str, str]:
        """{guest email: key of the registered customer with that email} (this batch, then stored)."""
        guests = [k for k, r in merged.items() if not r[0]]
        if not guests:
            return {}
        registered = {}
        for key, row in merged.items():
            if row[0] and row[1]:
                registered.setdefault(row[1].strip().lower(), key)
        rows = self.db.execute(
            "SELECT email, external_id FROM customers WHERE shop_id = ? AND external_id <> email"
            " AND email IN (SELECT value FROM json_each(?)) ORDER BY id",
            [self.shop_id, json.dumps(guests)]).fetchall()
        for email, external_id in rows:
            registered.setdefault(email, external_id)
        return {g: registered[g] for g in guests if g in registered}

    def _absorb_guests(self, emails: list[str]):
        if not emails:
            return
        # Which of these emails have a guest row at all (usually none): probed on the unique
        # (shop_id, external_id) index, a guest's external_id being its email. "+email" keeps SQLite
        # from taking the email index instead, which reads every registered customer's row.
        emails = [row[0] for row in self.db.execute(
            "SELECT external_id FROM customers WHERE shop_id = ? AND external_id IN (SELECT value FROM json_each(?))"
            " AND +email = external_id", [self.shop_id, json.dumps(emails)])]
        if not emails:
            return
        pairs = self.db.execute(
            "SELECT g.id, MIN(r.id) FROM customers g JOIN customers r"
            " ON r.shop_id = g.shop_id AND r.email = g.email AND r.external_id <> r.email"
            " WHERE g.shop_id = ? AND g.external_id = g.email"
            " AND g.email IN (SELECT value FROM json_each(?)) GROUP BY g.id",
            [self.shop_id, json.dumps(emails)]).fetchall()
        if pairs:
            self.db.conn.executemany("UPDATE orders SET customer_id = ? WHERE customer_id = ?",
                                     [(reg, guest) for guest, reg in pairs])
            self.db.conn.executemany("DELETE FROM customers WHERE id = ?", [(g,) for g, _ in pairs])
            self.stats["customers_merged"] += len(pairs)

    # ---- products ------------------------------------------------------------------------
    def upsert_products(self, records: Iterable[ProductRecord], fill_only: bool = False) -> dict[str, int]:
        """Insert or update products; returns {external id: row id}."""
        return self._write_products(_product_rows(records, _Conversions(self.timezone), self.currency),
                                    fill_only)

    def _write_products(self, rows: dict[str, tuple], fill_only: bool) -> dict[str, int]:
        if not rows:
            return {}
        with write_transaction(self.db):
            ids = self._ids("products", rows)
            shop_id = self.shop_id
            next_id = self._next_id("products")
            inserts, upserts = [], []
            for key, r in rows.items():
                if key in ids:
                    upserts.append((shop_id, key, *r))
                else:
                    ids[key] = next_id
                    inserts.append((next_id, shop_id, key, *r))
                    next_id += 1
            changed = self._execute(INSERT_PRODUCT, inserts) + \
                self._execute(FILL_PRODUCT if fill_only else UPSERT_PRODUCT, upserts)
            new = len(inserts)
            self.stats["products_new"] += new
            self.stats["products_updated"] += changed - new
            return ids

    # ---- orders --------------------------------------------------------------------------
    def write_orders(self, records: Iterable[OrderRecord]) -> Counter:
        """Write orders (with their customers, products and lines) in batches; returns stats."""
        for batch in _batches(records, self.batch_size):
            self.upsert_orders(batch)
        return self.stats

    def _execute(self, sql: str, params: list) -> int:
        """executemany; returns how many rows it inserted or changed."""
        return self.db.conn.executemany(sql, params).rowcount if params else 0

    def upsert_orders(self, records: list[OrderRecord]):
        """Write one batch of orders in one transaction."""
        self.write_prepared(prepare_orders(records, self.timezone, self.currency))

    def write_prepared(self, batch: PreparedOrders):
        """Write one batch from `prepare_orders` in one transaction."""
        with write_transaction(self.db):
            customer_ids = self._write_customers(batch.customers, batch.problems)
            product_ids = self._write_products(batch.products, fill_only=True)
            self._write_order_rows(batch.orders, customer_ids, product_ids)

    def write_staged(self, batch: staging.StagedOrders):
        """Write one batch from `staging.stage` in one transaction (STAGE attached: `staging.attached`).

        Orders new to the shop (a first import) are copied in by SQLite; a batch holding an order
        the shop has already goes through the same rows and rules as `write_prepared`.
        """
        db, shop_id = self.db, self.shop_id
        with write_transaction(db):
            staging.load(db, batch)
            customer_ids = self._write_customers(batch.customers, batch.problems)
            product_ids = self._write_products(batch.products, fill_only=True)
            if db.execute(_STAGED_KNOWN, [shop_id]).fetchone():
                self._write_order_rows(staging.order_rows(db), customer_ids, product_ids)
                return
            db.execute(_KEYS_TABLE)
            db.execute("DELETE FROM temp.import_keys")
            for kind, ids in (("c", customer_ids), ("p", product_ids)):
                db.execute("INSERT INTO temp.import_keys SELECT ?, key, value FROM json_each(?)",
                           [kind, json.dumps(ids)])
            first_id = self._next_id("orders")
            new = db.execute(COPY_STAGED_ORDERS, [first_id, shop_id]).rowcount
            self.stats["orders_new"] += new
            self.stats["orders_unchanged"] += batch.orders - new  # (none: every order was new)
            # Repeated line keys of an order: the later line updates the earlier, as in write_prepared.
            self.stats["lines_written"] += db.execute(COPY_STAGED_LINES, [first_id, shop_id]).rowcount
            self.stats["lines"] += db.execute(f"SELECT COUNT(*) FROM {staging.STAGE}.stage_lines").fetchone()[0]
            # Every order is new: its customer is marked. The batch's customers are exactly those of
            # its orders (prepare_orders takes them from the orders), so their ids are these.
            snapshot_marks.mark_customers(db, shop_id, customer_ids.values())
            db.execute("DELETE FROM temp.import_keys")

    def _write_order_rows(self, orders: list, customer_ids: dict, product_ids: dict):
        """Write PreparedOrders.orders rows, their customers and products written already."""
        shop_id = self.shop_id
        existing = self._ids("orders", (o[0] for o in orders))
        order_ids = dict(existing)
        next_id = self._next_id("orders")
        # Rows known to be new take a plain INSERT (much cheaper than the upsert); the rest
        # the upsert, which only writes what differs.
        inserts, upserts = [], []
        for o in orders:
            if o[0] in existing:
                upserts.append((shop_id, o[0], o[1], customer_ids.get(o[2]) if o[2] is not None else None,
                                *o[3:13]))
            else:
                order_ids[o[0]] = next_id
                inserts.append((next_id, shop_id, o[0], o[1],
                                customer_ids.get(o[2]) if o[2] is not None else None, *o[3:13]))
                next_id += 1
        changed = self._execute(INSERT_ORDER, inserts) + self._execute(UPSERT_ORDER, upserts)
        new = len(inserts)
        self.stats["orders_new"] += new
        self.stats["orders_updated"] += changed - new
        self.stats["orders_unchanged"] += len(orders) - changed

        # A new order's lines are new too, except a line key repeated within the order: its
        # later occurrences go through the upsert, after the inserts, as they did in sequence.
        inserts, upserts, stale = [], [], []
        count = 0
        for o in orders:
            oid = order_ids[o[0]]
            lines = o[14]
            old = o[0] in existing
            target = upserts if old else inserts
            keys = set() if not old and o[15] else None
            for line in lines:
                row = (shop_id, oid, line[0], product_ids.get(line[1]), *line[2:])
                if keys is not None:
                    if line[0] in keys:
                        upserts.append(row)
                        continue
                    keys.add(line[0])
                target.append(row)
            count += len(lines)
            if old and not o[13]:
                stale.append((oid, json.dumps([line[0] for line in lines])))
        if stale:
            self.stats["lines_removed"] += self.db.conn.executemany(DELETE_STALE_LINES, stale).rowcount
        if inserts or upserts:
            self.stats["lines_written"] += self._execute(INSERT_LINE, inserts) + \
                self._execute(UPSERT_LINE, upserts)
        self.stats["lines"] += count
        # New orders, and old ones whose lines may have gained a key (updates mark themselves).
        snapshot_marks.mark_customers(self.db, shop_id, {
            customer_ids.get(o[2]) for o in orders if o[2] is not None and (o[0] not in existing or o[14])})

    # ---- product details learnt later (WooCommerce orders written from their delivery) ---------
    def mark_details_pending(self, product_ids: Iterable[str]):
        """Mark products seen on order lines as still needing the platform's details."""
        ids = sorted(set(product_ids))
        if ids:
            with write_transaction(self.db):
                self.db.execute("UPDATE products SET details_pending = 1 WHERE shop_id = ?"
                                " AND external_id IN (SELECT value FROM json_each(?))", [self.shop_id, json.dumps(ids)])

    def fill_details(self, records: Iterable[ProductRecord], gone: Iterable[str] = ()):
        """Write products read from the platform, clear their mark and fill brand and category in on
        the order lines that lack them. `gone`: ids the platform no longer has (nothing to learn)."""
        records = list(records)
        ids = json.dumps(sorted({r.external_id for r in records} | set(gone)))
        with write_transaction(self.db):
            if records:
                self.upsert_products(records)
            self.db.execute("UPDATE products SET details_pending = 0 WHERE shop_id = ?"
                            " AND external_id IN (SELECT value FROM json_each(?))", [self.shop_id, ids])
            self.db.execute("""
                UPDATE order_lines SET brand = COALESCE(order_lines.brand, p.brand),
                                       category = COALESCE(order_lines.category, p.category)
                FROM products p
                WHERE p.id = order_lines.product_id AND p.shop_id = ? AND order_lines.shop_id = p.shop_id
                  AND p.external_id IN (SELECT value FROM json_each(?))
                  AND (order_lines.brand IS NULL OR order_lines.category IS NULL)
                  AND (p.brand IS NOT NULL OR p.category IS NOT NULL)""", [self.shop_id, ids])


def forget_consent(db, shop_id):
    """Forget the marketing consent of every customer of the shop (its source changed); Winback's
    own unsubscribes stay."""
    with write_transaction(db):
        db.execute("UPDATE customers SET accepts_marketing = NULL, marketing_updated_at = NULL WHERE shop_id = ?",
                   [shop_id])


# ---- single writes of customer state (callers hold the write transaction unless said) --------
def unsubscribe(db, shop_id, customer_id, now_db) -> bool:
    """Record the customer's unsubscribe; False if they had already unsubscribed."""
    cur = db.execute("UPDATE customers SET unsubscribed_at = ? WHERE id = ? AND shop_id = ?"
                     " AND unsubscribed_at IS NULL", [now_db, customer_id, shop_id])
    return cur.rowcount == 1


def mark_unsubscribe_synced(db, customer_id, now_db):
    """The platform has heard of the customer's unsubscribe."""
    db.execute("UPDATE customers SET unsubscribe_synced_at = ? WHERE id = ?", [now_db, customer_id])


def mark_inactive(db, customer_id, now_db):
    """The sunset got no answer: the customer gets no more marketing email."""
    db.execute("UPDATE customers SET marketing_inactive_at = ? WHERE id = ?", [now_db, customer_id])


def confirm_marketing(db, customer_id, now_db):
    """The customer answered the sunset email: they want to keep hearing from the shop."""
    db.execute("UPDATE customers SET marketing_confirmed_at = ?, marketing_inactive_at = NULL WHERE id = ?",
               [now_db, customer_id])


def mark_undeliverable(db, customer_id, now_db, failure: str):
    """The mail server refused the address for good."""
    db.execute("UPDATE customers SET email_failed_at = ?, email_failure = ? WHERE id = ?",
               [now_db, failure, customer_id])


def erase_customers(db, customer_ids) -> None:
    """Remove these customers (a redaction); their orders stay, anonymous."""
    for cid in customer_ids:
        db.execute("UPDATE orders SET customer_id = NULL WHERE customer_id = ?", [cid])
        db.execute("DELETE FROM customers WHERE id = ?", [cid])


def erase_shop_customers(db, shop_id) -> int:
    """Remove every customer of the shop (a shop redaction); its orders stay, anonymous. Returns
    how many customers went."""
    db.execute("UPDATE orders SET customer_id = NULL WHERE shop_id = ?", [shop_id])
    return db.execute("DELETE FROM customers WHERE shop_id = ?", [shop_id]).rowcount


REDATE_BATCH = 20_000  # orders read per query while finding the days that move


def _local_days(timezone: str):
    """A function giving the day in `timezone` ('YYYY-MM-DD', as the writer computes it) of a stored
    UTC time. Worked out once per UTC hour, which falls on one local day unless the zone's offset is
    not whole hours and local midnight falls inside it (then per time): parsing and converting each
    of a million times cost seconds."""
    local = zone(timezone)
    by_hour: dict[str, str] = {}

    def day(created: str) -> str:
        hour = created[:13]
        known = by_hour.get(hour)
        if known is None:
            start = from_db(hour + ":00:00Z")
            first, last = (t.astimezone(local).isoformat()[:10] for t in (start, start + timedelta(seconds=3599)))
            known = by_hour[hour] = first if first == last else ""
        return known or from_db(created).astimezone(local).isoformat()[:10]
    return day


def _moved_days(db, shop_id, local_day, after=0) -> tuple[list, int]:
    """([(new day, order id)] of the shop's orders after id `after` whose day moves, the last id read)."""
    moved = []
    while True:
        rows = db.execute("SELECT id, created_at, order_date FROM orders WHERE shop_id = ? AND id > ?"
                          " ORDER BY id LIMIT ?", [shop_id, after, REDATE_BATCH]).fetchall()
        if not rows:
            return moved, after
        after = rows[-1][0]
        moved += [(day, order_id) for order_id, created, old in rows if (day := local_day(created)) != old]


def change_timezone(db, shop_id, timezone: str) -> int:
    """Move the shop to `timezone` with its orders: each order gets the calendar day (`order_date`) its
    time falls on there, since a customer's purchase days, gaps and lapse count in the shop's days.
    The days that move are found first, reading; then the orders written meanwhile are added, and
    the days and the shop's zone are written in one transaction, so that no order is left in the old
    zone's days if anything fails (about a second for a quarter of a million orders that move; in a
    caller's transaction, within it). The orders' update trigger marks their customers: the next
    refresh reads their metrics again. Returns how many orders moved to another day."""
    local_day = _local_days(timezone)
    moved, last = _moved_days(db, shop_id, local_day)
    with write_transaction(db):
        moved += _moved_days(db, shop_id, local_day, last)[0]
        db.conn.executemany("UPDATE orders SET order_date = ? WHERE id = ? AND shop_id = ?",
                            [(day, order_id, shop_id) for day, order_id in moved])
        set_timezone(db, shop_id, timezone)
    return len(moved)


def keep_days_in_zone(db, shop_id, timezone: str) -> int:
    """After a long write (a sync, an import) that dated its orders in `timezone`, the zone of the shop
    when it began: when the shop moved to another zone meanwhile, its orders are moved too
    (change_timezone ran before some of them were written). Returns how many orders moved."""
    current = db.execute("SELECT timezone FROM shops WHERE id = ?", [shop_id]).fetchone()
    return change_timezone(db, shop_id, current[0]) if current and current[0] != timezone else 0


def set_replenishable(db, product_id, on: bool, days, now_db):
    """The owner marks a product replenishable (with its cycle in days) or not."""
    db.execute("UPDATE products SET replenishable = ?, replenish_days = ?, updated_at = ? WHERE id = ?",
               [int(on), days, now_db, product_id])


# ---- replacing a whole history (the demo shop) -----------------------------------------------
RESET_CUSTOMER = """
UPDATE customers SET email = ?, first_name = ?, last_name = ?, locale = ?, accepts_marketing = ?,
       marketing_updated_at = ?, created_at = ?, updated_at = ?
WHERE shop_id = ? AND external_id = ?
  AND (email, first_name, last_name, locale, accepts_marketing, marketing_updated_at, created_at,
       updated_at) IS NOT (?, ?, ?, ?, ?, ?, ?, ?)
"""


def keep_only(db, shop_id, *, orders: list[str], customers: list[str], products: list[str]) -> dict:
    """Remove the shop's orders, customers and products whose external ids are not listed; returns
    {"orders": n, "customers": n} removed."""
    removed_orders = db.execute(
        "DELETE FROM orders WHERE shop_id = ? AND external_id NOT IN (SELECT value FROM json_each(?))",
        [shop_id, json.dumps(orders)]).rowcount
    removed_customers = db.execute(
        "DELETE FROM customers WHERE shop_id = ? AND external_id NOT IN (SELECT value FROM json_each(?))",
        [shop_id, json.dumps(customers)]).rowcount
    db.execute("DELETE FROM products WHERE shop_id = ?"
               " AND external_id NOT IN (SELECT value FROM json_each(?))", [shop_id, json.dumps(products)])
    return {"orders": removed_orders, "customers": removed_customers}


def reset_customers(db, rows) -> int:
    """Give customers exactly the attributes in `rows` (RESET_CUSTOMER's parameters: new values,
    shop id, external id, the new values again); returns how many changed."""
    return db.conn.executemany(RESET_CUSTOMER, rows).rowcount


def mark_replenishable(db, shop_id, cycles: dict[str, int]) -> int:
    """Mark products (by external id) replenishable with their cycle in days; returns how many changed."""
    return db.conn.executemany(
        "UPDATE products SET replenishable = 1, replenish_days = ? WHERE shop_id = ? AND external_id = ?"
        " AND (replenishable, replenish_days) IS NOT (1, ?)",
        [(days, shop_id, pid, days) for pid, days in cycles.items()]).rowcount


def suppress_mailed_address(db, email: str, reason: str, now=None) -> list[dict]:
    """Mark every customer with this address whom Winback has mailed (in any shop) undeliverable,
    for `reason` (an earlier failure keeps its time and reason); returns their `id` and `shop_id`.

    Only customers who were sent mail are touched: a bounce or complaint is about mail a shop sent,
    and an address no shop mailed is nobody's business here."""
    address = (email or "").strip().lower()
    if not address:
        return []
    with write_transaction(db):
        rows = list(db.query(
            "SELECT c.id, c.shop_id FROM customers c WHERE c.email = ? AND EXISTS (SELECT 1 FROM messages m"
            " WHERE m.customer_id = c.id AND lower(m.email) = ? AND m.status IN ('sent', 'sending', 'unknown'))",
            [address, address]))
        db.execute("UPDATE customers SET email_failed_at = ?, email_failure = ? WHERE email_failed_at IS NULL"
                   " AND id IN (SELECT value FROM json_each(?))",
                   [to_db(now or utcnow()), reason[:500], json.dumps([r["id"] for r in rows])])
    return rows

"""Order history from CSV files: Winback's `generic` format and Shopify's Orders → Export.

The file is streamed twice. A quick scan checks that it is UTF-8 text with the columns the format
needs and finds orders whose rows are not contiguous; the import pass then turns rows into
OrderRecords (with their customer and lines) that ShopWriter writes in batches. Bad rows are
collected as {"line", "error"} and skipped; a problem with the file itself raises ValueError before
anything is written. Memory stays bounded whatever the size of the file: the current order, the
ids needed to count distinct customers, and the few orders whose rows are split up.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import hashlib
import io
import os
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Iterator

from babel.numbers import is_currency
from tqdm import tqdm

from app.db import larger_cache, write_transaction
from app.money import check_currency, parse_amount
from app.runs import finish_run, start_run
from app.timeutil import UTC, zone

from . import pipeline, staging
from .base import ORDER_STATUSES, Connector, CustomerRecord, LineRecord, OrderRecord, ProductRecord
from .store import ShopWriter, keep_days_in_zone

FORMATS = ("generic", "shopify")

# Orders per ShopWriter transaction: fewer, larger commits write each hot index page fewer times.
BATCH_SIZE = 30_000
# SQLite page cache during an import (KiB); the default 2 MiB makes every random index insert
# (customers, orders by customer) a read from the OS.
IMPORT_CACHE_KIB = 128 * 1024
# From this size on, the file is read in a second process while the writer writes (see
# connectors/pipeline.py); below it, starting that process costs more than it saves.
PARALLEL_MIN_BYTES = 8 << 20
# Reading in a second process, a batch lives in both processes at once: batches of this size and a
# smaller page cache keep the two together under 500 MB for a 1,000,000-line file (420 MB). 20,000
# rather than 15,000 orders: 3 % more lines a second (the writer's per-batch work), each write
# transaction 0.6 s instead of 0.4 s; 6,000 were 20 % slower.
PARALLEL_BATCH_SIZE = 20_000
PARALLEL_CACHE_KIB = 96 * 1024
# Orders per write transaction when reading in parallel. Several prepared batches could share one
# commit (each commit writes out every index page the batch touched): three of them saved about 10 %
# of the writer's CPU, but held the write lock about two seconds, waiting for the reader in between,
# and webhook intake waits behind it. One batch a transaction keeps the lock short.
PARALLEL_TRANSACTION_ORDERS = 1
# Amounts and quantities beyond these would overflow SQLite's 64-bit integers in minor units.
MAX_AMOUNT = Decimal(10) ** 12
MAX_QUANTITY = 10 ** 9

GENERIC_ORDER_FIELDS = ("created_at", "total", "currency", "status", "refunded_amount",
                        "customer_id", "email", "first_name", "locale", "accepts_marketing")
GENERIC_LINE_FIELDS = ("product_id", "sku", "title", "brand", "category", "quantity", "price")
GENERIC_COLUMNS = ("order_id",) + GENERIC_ORDER_FIELDS + GENERIC_LINE_FIELDS

SHOPIFY_ORDER_FIELDS = ("email", "financial status", "accepts marketing", "currency", "total",
                        "discount code", "created at", "billing name", "shipping name",
                        "cancelled at", "refunded amount", "id")
SHOPIFY_LINE_FIELDS = ("lineitem quantity", "lineitem name", "lineitem price", "lineitem sku",
                       "vendor")
SHOPIFY_REQUIRED = ("name", "email", "financial status", "total", "created at",
                    "lineitem quantity", "lineitem name", "lineitem price")
SHOPIFY_STATUS = {
    "paid": "paid", "partially_refunded": "paid", "refunded": "refunded",
    "pending": "pending", "authorized": "pending", "partially_paid": "pending",
    "voided": "cancelled", "expired": "cancelled",
}

_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False, "": None}
_STATUS_WORDS = {s: s for s in ORDER_STATUSES}
_STATUS_WORDS[""] = "paid"


class CsvConnector(Connector):
    """One CSV file of order history (`fmt` "generic" or "shopify") as a read-only shop source.

    `orders()` streams OrderRecords with their customer and lines; rows that cannot be imported
    are collected in `skipped` as {"line", "error"} (line = the physical line where the record
    starts, the header being line 1). `check()` raises ValueError for a problem with the file as a
    whole; `orders()` runs it first.
    """

    platform = "import"

    def __init__(self, shop: dict, path, fmt: str = "generic", progress: bool = False):
        super().__init__(shop)
        if fmt not in FORMATS:
            raise ValueError(f"unknown CSV format {fmt!r} (use generic or shopify)")
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path)
        self.fmt = fmt
        self.progress = progress
        self.timezone = shop.get("timezone") or "UTC"
        self.currency = shop.get("currency") or "EUR"
        self.skipped: list[dict] = []
        self.lines = 0
        self.orders_count = 0
        self._registered: set[str] = set()
        self._registered_emails: set[str] = set()
        self._guests: set[str] = set()
        self._columns: dict[str, int] | None = None
        self._width = 0
        self._header_line = 1
        self._split: set[str] = set()
        self._since: datetime | None = None
        self._customers_count: int | None = None

    # ---- what the import found -----------------------------------------------------------
    @property
    def customers_count(self) -> int:
        """Distinct customers of the imported orders (a guest and a registered customer with the
        same email count once)."""
        if self._customers_count is not None:  # read in another process (see `summary`)
            return self._customers_count
        return len(self._registered) + len(self._guests - self._registered_emails)

    # ---- Connector interface -------------------------------------------------------------
    def customers(self, since: datetime | None = None) -> Iterator[CustomerRecord]:
        """Nothing: a CSV file's customers come embedded in its orders."""
        return iter(())

    def products(self, since: datetime | None = None) -> Iterator[ProductRecord]:
        """Nothing: products come from the order lines (ShopWriter creates them)."""
        return iter(())

    def orders(self, since: datetime | None = None) -> Iterator[OrderRecord]:
        """Stream the file's orders (those created at or after `since`), skipping bad rows.

        `skipped`, `lines`, `orders_count` and `customers_count` describe the latest pass.
        """
        self.check()
        self.skipped, self.lines, self.orders_count = [], 0, 0
        self._customers_count = None
        self._registered, self._registered_emails, self._guests = set(), set(), set()
        with open(self.path, "rb") as raw, \
                io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
            reader = csv.reader(text)
            for _ in _records(reader):
                if reader.line_num >= self._header_line:
                    break
            bar = None
            if self.progress:
                bar = tqdm(total=os.path.getsize(self.path), unit="B", unit_scale=True,
                           desc=f"Importing {self.name}", file=sys.stderr, leave=False)
            rows = self._generic(reader, raw, bar) if self.fmt == "generic" else \
                self._shopify(reader, raw, bar)
            self._since = since
            try:
                for rec in rows:
                    if rec is not None:
                        yield rec
            finally:
                if bar is not None:
                    bar.close()

    def summary(self) -> dict:
        """What the latest pass found, as plain values (to send from another process)."""
        return {"skipped": self.skipped, "lines": self.lines, "orders_count": self.orders_count,
                "customers_count": self.customers_count}

    def take_summary(self, summary: dict):
        """Describe a pass made by a copy of this connector in another process."""
        self.skipped, self.lines = summary["skipped"], summary["lines"]
        self.orders_count, self._customers_count = summary["orders_count"], summary["customers_count"]

    # ---- the file as a whole -------------------------------------------------------------
    def check(self):
        """Check the file before anything is imported: UTF-8, not empty, the required columns.

        Also notes which orders have rows in more than one place, so that their pieces are
        added together rather than replacing each other. Raises ValueError with one sentence.
        """
        if self._columns is not None:
            return
        plain = _check_utf8(self.path, self.name)
        with open(self.path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = None
            for record in _records(reader):
                if isinstance(record, list) and any(cell.strip() for cell in record):
                    header = record
                    break
            if header is None:
                raise ValueError(f"{self.name} is empty: expected a header row and order rows")
            self._header_line = reader.line_num
            columns = self._map_header(header)
            key = columns.get("order_id" if self.fmt == "generic" else "name")
            if key is not None:
                # Without quotes every record is one line: split by commas, three times faster.
                self._split = _split_keys_plain(fh, key) if plain else _split_keys(reader, key)
        self._columns = columns
        self._width = len(header)

    def _map_header(self, header: list[str]) -> dict[str, int]:
        names = [h.strip().lower() for h in header]
        columns: dict[str, int] = {}
        wanted = GENERIC_COLUMNS if self.fmt == "generic" else \
            ("name",) + SHOPIFY_ORDER_FIELDS + SHOPIFY_LINE_FIELDS
        for i, name in enumerate(names):
            if name in wanted:
                if name in columns:
                    raise ValueError(f"{self.name}: column {header[i].strip()!r} appears twice in the header")
                columns[name] = i
        if self.fmt == "generic":
            missing = [c for c in ("created_at", "total") if c not in columns]
            if "customer_id" not in columns and "email" not in columns:
                missing.append("customer_id or email")
            if missing and "financial status" in names and "lineitem name" in names:
                raise ValueError(f"{self.name} looks like a Shopify orders export: "
                                 "import it with --format shopify")
        else:
            missing = [_shopify_title(c) for c in SHOPIFY_REQUIRED if c not in columns]
        if missing:
            hint = ""
            if len(header) == 1 and ";" in header[0]:
                hint = " (the file seems to be separated by ';': save it comma-separated)"
            elif self.fmt == "shopify" and "created_at" in names:
                hint = " (is it a generic file? import it with --format generic)"
            raise ValueError(f"{self.name} lacks the required column"
                             f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}{hint}")
        return columns

    # ---- shared helpers ------------------------------------------------------------------
    def _skip(self, line: int, error):
        self.skipped.append({"line": line, "error": str(error)})

    def _count_customer(self, customer: CustomerRecord):
        if customer.external_id:
            self._registered.add(customer.external_id)
            if customer.email:
                self._registered_emails.add(customer.email)
        else:
            self._guests.add(customer.email)

    def _getter(self, names):
        """A function returning the row's values of `names` (missing columns read as '')."""
        cols = self._columns
        absent = self._width  # rows are padded with one '' past the header's width
        idx = [cols.get(n, absent) for n in names]
        if len(idx) == 1:
            i = idx[0]
            return lambda row: (row[i],)
        return itemgetter(*idx)

    def _rows(self, reader, raw, bar):
        """(line, row) for each non-blank record, rows padded to the header's width plus one ''.

        A record the csv module cannot parse, or with more values than the header has columns, is
        reported and left out; it does not end the order around it.
        """
        width = self._width
        pad = width + 1
        last = reader.line_num
        seen_bytes = raw.tell()
        if bar is not None:
            bar.update(seen_bytes)
        count = 0
        while True:
            try:
                for record in reader:
                    line = last + 1
                    last = reader.line_num
                    if bar is not None:
                        count += 1
                        if not count & 1023:
                            pos = raw.tell()
                            bar.update(pos - seen_bytes)
                            seen_bytes = pos
                    if not any(record):
                        continue
                    n = len(record)
                    if n == width:
                        record.append("")
                    elif n < width:
                        record.extend([""] * (pad - n))
                    elif any(v.strip() for v in record[width:]):
                        self._skip(line, f"row has {n} fields but the header has {width}")
                        continue
                    else:
                        del record[width:]
                        record.append("")
                    yield line, record
                break
            except csv.Error as exc:  # the reader goes on with the next record
                line = last + 1
                last = reader.line_num
                self._skip(line, f"unreadable CSV record: {exc}")
        if bar is not None:
            bar.update(os.path.getsize(self.path) - seen_bytes)

    # ---- generic format ------------------------------------------------------------------
    def _generic(self, reader, raw, bar) -> Iterator[OrderRecord]:
        cols = self._columns
        key_i = cols.get("order_id")
        get_order = self._getter(GENERIC_ORDER_FIELDS)
        get_line = self._getter(GENERIC_LINE_FIELDS)
        split = self._split
        pieces: dict[str, _Order] = {}
        parse_order = self._parse_generic_order
        parse_line = _LineParser()
        seen_rows: dict[int, int] = {}
        cur: _Order | None = None

        for line, row in self._rows(reader, raw, bar):
            key = row[key_i].strip() if key_i is not None else ""
            if not key or cur is None or key != cur.key:
                if cur is not None and cur.rec is not None:
                    yield self._emit(cur)
                cur = _next_order(key, split, pieces)
            oraw = get_order(row)
            try:
                if cur.raw is None:
                    vals = parse_order(oraw)
                elif oraw != cur.raw:
                    _compare(parse_order(oraw, partial=True), oraw, cur)
                    vals = cur.vals
                else:
                    vals = cur.vals
                lrec = parse_line(get_line(row))
            except ValueError as exc:
                self._skip(line, exc)
                continue
            if cur.raw is None:
                cur.raw, cur.vals, cur.first_line = oraw, vals, line
            if cur.rec is None:
                if not key:
                    cur.key = _row_id(vals, lrec, seen_rows)
                cur.rec = self._generic_record(cur)
            if lrec is not None:
                lrec.line_key = cur.line_key(lrec.line_key)
                cur.rec.lines.append(lrec)
            if not key:
                yield self._emit(cur)
                cur = None
        if cur is not None and cur.rec is not None:
            yield self._emit(cur)

    def _parse_generic_order(self, raw, partial=False) -> tuple:
        """Parse a generic row's order-level values; with `partial`, empty ones stay None."""
        (created, total, currency, status, refunded, customer_id, email, first_name, locale,
         marketing) = raw
        created = created.strip()
        if not created:
            raise ValueError("created_at is empty")
        created_at = _timestamp(created, self.timezone, "created_at")
        total = _amount(total, "total", required=True)
        currency = currency.strip()
        if currency:
            currency = _currency(currency)
        elif not partial:
            currency = self.currency
        else:
            currency = None
        word = status.strip().lower()
        if partial and not word:
            status = None
        else:
            status = _STATUS_WORDS.get(word)
            if status is None:
                raise ValueError(f"status {_status_text(word)} is not one of "
                                 f"{', '.join(ORDER_STATUSES)}")
        refunded_text = refunded.strip()
        refunded = _amount(refunded_text, "refunded_amount") if refunded_text else \
            (None if partial else Decimal(0))
        if refunded is not None and refunded > total:
            raise ValueError(f"refunded_amount {refunded_text} is more than total {total}")
        customer_id = customer_id.strip() or None
        email = _email(email)
        if customer_id is None and email is None:
            raise ValueError("no customer_id and no email: a row needs at least one of them")
        marketing_text = marketing.strip()
        marketing = _BOOLS.get(marketing_text.lower(), _BOOLS)
        if marketing is _BOOLS:
            raise ValueError(f"accepts_marketing {marketing_text!r} is not one of "
                             "true, false, yes, no, 1, 0")
        return (created_at, total, currency, status, refunded, customer_id, email,
                first_name.strip() or None, locale.strip() or None, marketing)

    def _generic_record(self, order: _Order) -> OrderRecord:
        (created_at, total, currency, status, refunded, customer_id, email, first_name, locale,
         marketing) = order.vals
        customer = CustomerRecord(
            external_id=customer_id, email=email, first_name=first_name, locale=locale,
            accepts_marketing=marketing,
            marketing_updated_at=created_at if marketing is not None else None,
            created_at=created_at)
        return OrderRecord(external_id=order.key, created_at=created_at, total=total,
                           currency=currency, status=status, refunded=refunded, name=order.key,
                           customer=customer, merge_lines=order.merge)

    def _emit(self, order: _Order) -> OrderRecord | None:
        """The order's record, counted; None when it is older than the `since` asked for."""
        rec = order.rec
        order.rec = None
        if self._since is not None and rec.created_at < self._since:
            return None
        if not order.emitted:
            order.emitted = True
            self.orders_count += 1
            self._count_customer(rec.customer)
        self.lines += len(rec.lines)
        return rec

    # ---- Shopify format ------------------------------------------------------------------
    def _shopify(self, reader, raw, bar) -> Iterator[OrderRecord]:
        cols = self._columns
        name_i = cols["name"]
        total_i, status_i = cols["total"], cols["financial status"]
        currency_i = cols.get("currency", self._width)
        email_i, created_i = cols["email"], cols["created at"]
        get_order = self._getter(SHOPIFY_ORDER_FIELDS)
        get_line = self._getter(SHOPIFY_LINE_FIELDS)
        split = self._split
        pieces: dict[str, _Order] = {}
        parse_line = _LineParser(shopify=True)
        cur: _Order | None = None

        for line, row in self._rows(reader, raw, bar):
            key = row[name_i].strip()
            if not key or cur is None or key != cur.key:
                if cur is not None and cur.rec is not None:
                    yield self._emit(cur)
                cur = None
                if not key:
                    self._skip(line, "Name (the order number) is empty")
                    continue
                cur = _next_order(key, split, pieces)
            order_row = bool(row[total_i].strip() or row[status_i].strip() or row[currency_i].strip())
            try:
                if order_row:
                    oraw = get_order(row)
                    if cur.raw is None:
                        vals = self._parse_shopify_order(key, oraw)
                    elif oraw != cur.raw:
                        if self._parse_shopify_order(key, oraw) != cur.vals:
                            _contradiction(oraw, cur)
                        vals = cur.vals
                    else:
                        vals = cur.vals
                elif cur.raw is None:
                    if cur.rejected:
                        raise ValueError(f"line item of order {key}, whose first row (line "
                                         f"{cur.rejected}) was skipped")
                    raise ValueError(f"line item of order {key} without the order's first row "
                                     "(the one with Financial Status and Total) before it")
                else:
                    vals = cur.vals
                    self._check_shopify_continuation(row[email_i], row[created_i], cur)
                lrec = parse_line(get_line(row))
            except ValueError as exc:
                if order_row and cur.raw is None and not cur.rejected:
                    cur.rejected = line
                self._skip(line, exc)
                continue
            if cur.raw is None:
                cur.raw, cur.vals, cur.first_line = oraw, vals, line
            if cur.rec is None:
                cur.rec = self._shopify_record(cur)
            if lrec is not None:
                lrec.line_key = cur.line_key(lrec.line_key)
                cur.rec.lines.append(lrec)
        if cur is not None and cur.rec is not None:
            yield self._emit(cur)

    def _parse_shopify_order(self, name: str, raw) -> tuple:
        (email, financial, marketing, currency, total, discount, created, billing_name,
         shipping_name, cancelled, refunded, order_id) = raw
        email = _email(email, "Email")
        if email is None:
            raise ValueError(f"order {name} has no Email, so it cannot be tied to a customer")
        created = created.strip()
        if not created:
            raise ValueError("Created at is empty")
        created_at = _timestamp(created, self.timezone, "Created at")
        total = _amount(total, "Total", required=True)
        currency = currency.strip()
        currency = _currency(currency) if currency else self.currency
        financial = financial.strip().lower()
        status = SHOPIFY_STATUS.get(financial)
        if status is None:
            raise ValueError(f"Financial Status {_status_text(financial)} is not one of "
                             f"{', '.join(SHOPIFY_STATUS)}")
        refunded_text = refunded.strip()
        refunded = _amount(refunded_text, "Refunded Amount") if refunded_text else None
        if refunded is None:
            refunded = total if status == "refunded" else Decimal(0)
        if cancelled.strip():
            _timestamp(cancelled.strip(), self.timezone, "Cancelled at")
            status = "cancelled"
        marketing_text = marketing.strip()
        marketing = _BOOLS.get(marketing_text.lower(), _BOOLS)
        if marketing is _BOOLS:
            raise ValueError(f"Accepts Marketing {marketing_text!r} is not yes or no")
        full_name = billing_name.strip() or shipping_name.strip()
        first_name, _, last_name = full_name.partition(" ")
        codes = tuple(c.strip() for c in discount.split(",") if c.strip())
        return (created_at, total, refunded, currency, status, financial or None, email,
                first_name or None, last_name.strip() or None, marketing, codes,
                order_id.strip() or name)

    def _check_shopify_continuation(self, email: str, created: str, order: _Order):
        """A line-item row repeats Email and Created at: they must match the order's first row."""
        raw = order.raw
        email = email.strip()
        if email and email.lower() != raw[0].strip().lower():
            raise ValueError(f"Email {email!r} contradicts the order's first row (line "
                             f"{order.first_line}: {raw[0].strip()!r})")
        created = created.strip()
        if created and created != raw[6].strip() and \
                _timestamp(created, self.timezone, "Created at") != order.vals[0]:
            raise ValueError(f"Created at {created!r} contradicts the order's first row (line "
                             f"{order.first_line}: {raw[6].strip()!r})")

    def _shopify_record(self, order: _Order) -> OrderRecord:
        (created_at, total, refunded, currency, status, financial, email, first_name, last_name,
         marketing, codes, external_id) = order.vals
        customer = CustomerRecord(
            external_id=None, email=email, first_name=first_name, last_name=last_name,
            accepts_marketing=marketing,
            marketing_updated_at=created_at if marketing is not None else None,
            created_at=created_at)
        return OrderRecord(external_id=external_id, created_at=created_at, total=total,
                           currency=currency, status=status, refunded=refunded, name=order.key,
                           financial_status=financial, discount_codes=list(codes),
                           customer=customer, merge_lines=order.merge)


class _Order:
    """The import's state of one order: its first accepted row and the record being filled."""

    __slots__ = ("key", "merge", "raw", "vals", "first_line", "rec", "counts", "emitted", "rejected")

    def __init__(self, key: str, merge: bool = False):
        self.key = key
        self.merge = merge
        self.raw = None
        self.vals = None
        self.first_line = 0
        self.rec = None
        self.counts = None
        self.emitted = False
        self.rejected = 0

    def line_key(self, base: str) -> str:
        """`base` (product key and price) plus its occurrence number within the order."""
        counts = self.counts
        if counts is None:
            self.counts = {base: 1}
            return base
        n = counts.get(base, 0) + 1
        counts[base] = n
        return base if n == 1 else f"{base}#{n}"


def _next_order(key, split, pieces):
    """The order a row with `key` starts: an order whose rows are split up across the file is one
    object gathering every piece (its lines are merged); any other is new."""
    if key not in split:
        return _Order(key)
    if key not in pieces:
        pieces[key] = _Order(key, merge=True)
    return pieces[key]


class _LineParser:
    """Turns a row's line fields into a LineRecord (line_key = product key and price), or None."""

    def __init__(self, shopify: bool = False):
        self.shopify = shopify
        self.prices: dict[str, tuple[Decimal | None, str]] = {}
        self.labels = ("Lineitem quantity", "Lineitem price") if shopify else ("quantity", "price")

    def __call__(self, raw) -> LineRecord | None:
        if self.shopify:
            quantity, title, price, sku, brand = raw
            product_id = category = ""
        else:
            product_id, sku, title, brand, category, quantity, price = raw
        if not (product_id or sku or title or brand or category or price):
            return None
        product_id, sku, title = product_id.strip(), sku.strip(), title.strip()
        brand, category = brand.strip() or None, category.strip() or None
        if not (product_id or sku or title or brand or category or price.strip()):
            return None
        if product_id:
            product = product_id
        elif sku:
            product = "sku:" + sku
        elif title:
            product = "title:" + title
        else:
            product = None
        try:
            qty = int(quantity) if quantity else 1
        except ValueError:
            qty = _quantity(quantity, self.labels[0])
        if not 0 <= qty <= MAX_QUANTITY:
            raise ValueError(f"{self.labels[0]} {quantity.strip()!r} is not a whole number "
                             f"from 0 to {MAX_QUANTITY:,}")
        cached = self.prices.get(price)
        if cached is None:
            if price.strip():
                value = _amount(price, self.labels[1])
                tag = f"{value.normalize():f}"
            else:
                value, tag = None, ""
            if len(self.prices) > 100_000:
                self.prices.clear()
            cached = self.prices[price] = (value, tag)
        value, tag = cached
        return LineRecord(f"{product or ''}@{tag}", product, sku or None, title or None, brand,
                          category, qty, value)


# ---- values ------------------------------------------------------------------------------
def _status_text(word: str) -> str:
    """A status word for an error message ("(empty)" when there is none)."""
    return repr(word) if word else "(empty)"


def _shopify_title(name: str) -> str:
    """A Shopify column's name as the export spells it."""
    special = {"id": "Id", "created at": "Created at", "cancelled at": "Cancelled at"}
    if name in special:
        return special[name]
    if name.startswith("lineitem "):
        return "Lineitem " + name[len("lineitem "):]
    return " ".join(word.capitalize() for word in name.split(" "))


def _timestamp(text: str, tz: str, what: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO 8601 date") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(tz))
    elif dt.tzinfo is UTC and not dt.microsecond:  # "…Z" or "+00:00": already what the rest gives
        return dt
    return dt.astimezone(UTC).replace(microsecond=0)


def _amount(text: str, what: str, required: bool = False) -> Decimal:
    raw = text.strip()
    if not raw:
        if required:
            raise ValueError(f"{what} is empty")
        return Decimal(0)
    value = parse_amount(raw, what)
    if value >= MAX_AMOUNT:
        raise ValueError(f"{what} {raw!r} is too large")
    return value


def _quantity(text: str, what: str) -> int:
    raw = text.strip()
    if not raw:
        return 1
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"{what} {raw!r} is not a whole number")
    return int(value)


_CURRENCIES: dict[str, str] = {}


def _currency(text: str) -> str:
    code = _CURRENCIES.get(text)
    if code is None:
        code = check_currency(text)
        # check_currency lets unknown three-letter codes through (babel names them after
        # themselves); babel's own list settles it.
        if not is_currency(code):
            raise ValueError(f"unknown currency {text!r}")
        _CURRENCIES[text] = code
    return code


def _email(text: str, what: str = "email") -> str | None:
    value = text.strip().lower()
    if not value:
        return None
    at = value.find("@")
    if at < 1 or at == len(value) - 1 or " " in value:
        raise ValueError(f"{what} {text.strip()!r} is not an email address")
    return value


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text) if text else "empty"


def _compare(vals: tuple, raw: tuple, order: _Order):
    """Raise ValueError naming the first order-level value of a later generic row that differs
    from the order's first row (an empty value repeats nothing and contradicts nothing)."""
    for i, new in enumerate(vals):
        if new is not None and new != order.vals[i]:
            raise ValueError(f"{GENERIC_ORDER_FIELDS[i]} {_shown(raw[i])} contradicts the order's "
                             f"first row (line {order.first_line}: {_shown(order.raw[i])})")


def _contradiction(raw: tuple, order: _Order):
    """Raise ValueError naming the Shopify column where a second order row differs from the first."""
    for i, name in enumerate(SHOPIFY_ORDER_FIELDS):
        if raw[i].strip().lower() != order.raw[i].strip().lower():
            raise ValueError(f"{_shopify_title(name)} {_shown(raw[i])} contradicts the order's "
                             f"first row (line {order.first_line}: {_shown(order.raw[i])})")
    raise ValueError(f"order-level values contradict the order's first row (line {order.first_line})")


def _row_id(vals: tuple, line: LineRecord | None, seen: dict[int, int]) -> str:
    """A stable id for an order given without order_id: its identifying content, numbered.

    Status, refunds and consent may change between two exports of the same order, so they are
    left out; the occurrence number tells identical rows apart.
    """
    created_at, total, currency, _status, _refunded, customer_id, email = vals[:7]
    parts = [customer_id or "", email or "", created_at.isoformat(), f"{total.normalize():f}",
             currency]
    if line is not None:
        parts += [line.line_key, str(line.quantity)]
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=10).digest()
    number = int.from_bytes(digest, "big")
    n = seen.get(number, 0) + 1
    seen[number] = n
    return f"row-{digest.hex()}" + (f"-{n}" if n > 1 else "")


# ---- reading the file --------------------------------------------------------------------
def _records(reader) -> Iterator:
    """The reader's records; a csv.Error comes out as the exception object, and reading goes on."""
    while True:
        try:
            for record in reader:
                yield record
            return
        except csv.Error as exc:
            yield exc


def _split_keys(reader, column: int) -> set[str]:
    """Order keys whose rows appear in more than one run (non-contiguous orders)."""
    def keys():
        for record in _records(reader):
            if not isinstance(record, list):
                yield None
            elif len(record) <= column:
                yield None if any(record) else ""
            else:
                key = record[column].strip()
                yield key or (None if any(record) else "")
    return _repeated_runs(keys())


def _split_keys_plain(lines, column: int) -> set[str]:
    """`_split_keys` for lines without quotes or NUL bytes, whose records are the lines split by
    commas (as the csv module reads them, records too large for it left out as it leaves them)."""
    limit = csv.field_size_limit()

    def keys():
        for line in lines:
            text = line.rstrip("\r\n")
            if len(text) > limit and any(len(value) > limit for value in text.split(",")):
                yield None  # the csv module's error for a field over its limit
                continue
            values = text.split(",", column + 1)
            key = values[column].strip() if len(values) > column else ""
            # A record with some value but none in the key's column ends a run; an empty one does not.
            yield key or (None if text.strip(",") else "")
    return _repeated_runs(keys())


def _repeated_runs(keys) -> set[str]:
    """The keys that come back after another key's run: each of `keys` is a record's key, "" for an
    empty record (which does not end a run) or None for a record that ends the run without a key."""
    seen, split = set(), set()
    prev = None
    for key in keys:
        if key == "" or key == prev:
            continue
        if key is None:
            prev = None
            continue
        if key in seen:
            split.add(key)
        else:
            seen.add(key)
        prev = key
    return split


def _check_utf8(path: str, name: str) -> bool:
    """ValueError naming the line of the first byte that is not UTF-8; also for an empty file.

    Returns whether the file is plain: no quote and no NUL byte anywhere (see `_split_keys_plain`)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    plain = True
    offset = 0
    newlines = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # exc.object is the chunk behind the decoder's pending bytes (never a newline).
                line = newlines + exc.object.count(b"\n", 0, exc.start) + 1
                bad = exc.object[exc.start:exc.start + 1].hex()
                raise ValueError(f"{name} is not UTF-8 text (line {line}, byte 0x{bad}): "
                                 "save it as CSV UTF-8 and import it again") from None
            offset += len(chunk)
            newlines += chunk.count(b"\n")
            plain = plain and b'"' not in chunk and b"\0" not in chunk
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ValueError(f"{name} is not UTF-8 text (it ends inside a character): "
                             "save it as CSV UTF-8 and import it again") from None
    if offset == 0:
        raise ValueError(f"{name} is empty: expected a header row and order rows")
    return plain


# ---- the import --------------------------------------------------------------------------
@contextlib.contextmanager
def _without_cyclic_gc():
    """Pause Python's cyclic garbage collector, then restore it.

    An import allocates millions of short-lived records that form no reference cycles (reference
    counting frees them); with a batch of them alive, the collector's full passes re-scanned it
    again and again and took about a third of the import's time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write_grouped(db, writer: ShopWriter, batches, orders_per_transaction: int):
    """Write staged batches, several to a transaction (about `orders_per_transaction` orders).

    A transaction starts only once its first batch is there (the reader checks the whole file
    before its first batch); within it, the next batches are usually queued already.
    """
    it = iter(batches)
    batch = next(it, None)
    while batch is not None:
        with write_transaction(db):
            count = 0
            while batch is not None:
                writer.write_staged(batch)
                count += batch.orders
                if count >= orders_per_transaction:
                    break
                batch = next(it, None)
        if batch is not None:
            batch = next(it, None)


def _read(connector: CsvConnector):
    """Pipeline source (runs in the reading process): the checked connector's orders, its summary."""
    return connector.orders(), connector.summary


def import_orders(db, shop, path, *, fmt="generic", progress=False, parallel: bool | None = None) -> dict:
    """Import a CSV file of order history into `shop`; returns what it did.

    {"orders": distinct orders written, "customers": distinct customers of those orders,
    "lines": order lines imported, "orders_new", "orders_updated", "orders_unchanged",
    "skipped": [{"line", "error"}]}. Bad rows are skipped and reported; a problem with the file as
    a whole raises ValueError before anything is imported. Each import is recorded in sync_runs.
    `parallel`: read the file in a second process (default: for files of PARALLEL_MIN_BYTES and more).
    """
    run_id = start_run(db, shop["id"], "import", os.path.basename(os.fspath(path)))
    try:
        connector = CsvConnector(shop, path, fmt=fmt, progress=progress)
        writer = ShopWriter(db, shop, batch_size=BATCH_SIZE)
        if parallel is None:
            parallel = os.path.getsize(connector.path) >= PARALLEL_MIN_BYTES
        with larger_cache(db, PARALLEL_CACHE_KIB if parallel else IMPORT_CACHE_KIB), _without_cyclic_gc():
            if parallel:
                # The reading process checks the file first: a problem with it arrives here before
                # any batch, so nothing is written.
                reading = pipeline.Pipeline(_read, (connector,), timezone=writer.timezone, currency=writer.currency,
                                            batch_size=PARALLEL_BATCH_SIZE, stage=True)
                with staging.attached(db):
                    _write_grouped(db, writer, reading, PARALLEL_TRANSACTION_ORDERS)
                connector.take_summary(reading.summary)
                stats = writer.stats
            else:
                connector.check()
                stats = writer.write_orders(connector.orders())
        keep_days_in_zone(db, shop["id"], writer.timezone)  # the zone its orders were dated in
        new, updated = stats["orders_new"], stats["orders_updated"]
        result = {
            "orders": connector.orders_count,
            "customers": connector.customers_count,
            "lines": connector.lines,
            "orders_new": new,
            "orders_updated": updated,
            # A split order is written once per piece; it counts once here.
            "orders_unchanged": connector.orders_count - new - updated,
            "skipped": connector.skipped,
        }
    except BaseException as exc:
        finish_run(db, run_id, error=str(exc) or type(exc).__name__)
        raise
    summary = {k: v for k, v in result.items() if k != "skipped"}
    summary.update({k: v for k, v in stats.items() if k not in summary}, format=fmt,
                   skipped=len(connector.skipped),
                   skipped_lines=[s["line"] for s in connector.skipped[:100]])
    finish_run(db, run_id, stats=summary)
    return result

"""The normalised record model and the interface every shop connector implements.

A connector turns a platform's data into these records; `connectors.store.ShopWriter` writes them
into SQLite idempotently. Amounts are Decimals in the record's currency; times are aware datetimes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Iterator

ORDER_STATUSES = ("paid", "pending", "refunded", "cancelled")


@dataclass(slots=True)
class CustomerRecord:
    """A customer. `external_id` is the platform's id; None for a guest known only by email."""
    external_id: str | None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    locale: str | None = None
    accepts_marketing: bool | None = None
    marketing_updated_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        """The customer's id in Winback's output: the platform id, else the lower-cased email."""
        if self.external_id:
            return str(self.external_id)
        if not self.email:
            raise ValueError("a customer needs an id or an email")
        return self.email.strip().lower()


@dataclass(slots=True)
class ProductRecord:
    """A product (brand = vendor, category = product type or main category)."""
    external_id: str
    title: str | None = None
    sku: str | None = None
    brand: str | None = None
    category: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    updated_at: datetime | None = None
    # What an email shows (None: not known from this source, the stored value stays).
    url: str | None = None
    image_url: str | None = None
    published: bool | None = None
    in_stock: bool | None = None
    variant_id: str | None = None  # the first variant's id (Shopify's cart permalink needs it)
    created_at: datetime | None = None


@dataclass(slots=True)
class LineRecord:
    """One order line. `line_key` is stable for the same line across loads (platform id or content)."""
    line_key: str
    product_external_id: str | None = None
    sku: str | None = None
    title: str | None = None
    brand: str | None = None
    category: str | None = None
    quantity: int = 1
    price: Decimal | None = None


@dataclass(slots=True)
class OrderRecord:
    """An order with its lines and (optionally) the customer it belongs to.

    `status` is one of ORDER_STATUSES: a purchase is a `paid`, non-test order. `refunded` is the
    amount refunded so far. With `merge_lines` the lines are added to those already stored instead
    of replacing them (a source that delivers one order's lines in pieces).
    """
    external_id: str
    created_at: datetime
    total: Decimal
    currency: str
    status: str = "paid"
    refunded: Decimal = Decimal(0)
    name: str | None = None
    financial_status: str | None = None
    test: bool = False
    discount_codes: list[str] = field(default_factory=list)
    updated_at: datetime | None = None
    customer: CustomerRecord | None = None
    lines: list[LineRecord] = field(default_factory=list)
    merge_lines: bool = False


@dataclass(slots=True)
class WebhookEvent:
    """A verified webhook delivery, ready to be stored and processed."""
    topic: str
    delivery_id: str | None
    payload: dict


class Connector(ABC):
    """What every shop source offers Winback.

    Reading: `customers`, `products`, `orders` yield normalised records, all of them or those
    changed since a time (incremental sync). Writing is an optional capability: a source without
    it raises NotImplementedError, and callers fall back (codes kept in SQLite). Webhooks are not
    a connector's business: a platform's `webhooks` module checks and reads deliveries, and
    connectors/platforms.py lists its handlers.
    """

    platform: str = ""

    def __init__(self, shop: dict):
        self.shop = shop

    @abstractmethod
    def customers(self, since: datetime | None = None) -> Iterator[CustomerRecord]:
        """Customers, or those updated since `since`."""

    @abstractmethod
    def products(self, since: datetime | None = None) -> Iterator[ProductRecord]:
        """Products, or those updated since `since`."""

    @abstractmethod
    def orders(self, since: datetime | None = None) -> Iterator[OrderRecord]:
        """Orders with lines and customers, or those updated since `since`."""

    def prepare(self, db) -> None:
        """Set up what the platform side needs before a scheduled sync (e.g. webhooks of a shop
        added offline). Failures here must not stop the sync: webhooks are a hint, the poll is truth."""

    def create_discount(self, *, code: str, customer: dict, percent: Decimal | None,
                        free_shipping: bool, expires_at: datetime, amount: Decimal | None = None,
                        min_order: Decimal | None = None) -> str:
        """Create a single-use code bound to `customer` on the platform; returns the code as stored.

        The code gives `percent` off, a fixed `amount` off the order, or free shipping, in the shop's
        currency; with `min_order` it applies to orders whose subtotal is at least that much.

        Sources without a discount API keep codes in Winback's own database instead.
        """
        raise NotImplementedError(f"{self.platform} has no discount API")

    def recent_orders(self, customer: dict, since: datetime) -> Iterator[OrderRecord]:
        """A live look at a customer's orders since `since`, for the check right before a send."""
        return iter(())

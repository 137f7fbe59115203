"""WooCommerce JSON (REST v3 and webhook payloads) → Winback's record model.

Identity: a registered customer is keyed by its user id; a guest (`customer_id` 0) by the
lower-cased billing email, which ShopWriter merges with the registered customer of that email.
Times come from the `*_gmt` fields (UTC without a `Z`); the local fields are only a fallback.
"""
from __future__ import annotations

import html
from datetime import datetime
from decimal import Decimal, InvalidOperation

from app.timeutil import UTC, parse_timestamp

from ..base import CustomerRecord, LineRecord, OrderRecord, ProductRecord

PAID = {"processing", "completed"}
CANCELLED = {"cancelled", "failed", "trash"}
ERASED_EMAIL = "deleted@site.invalid"  # WordPress privacy erasure anonymises emails to this
TRUTHY = {"1", "yes", "true", "on", "subscribed", "y"}


class Consent:
    """How marketing consent is read, from the shop's `woo_consent_source` setting.

    "none": nobody consents; "meta:<key>": a customer/order meta key with a truthy value;
    "soft_opt_in": every customer who bought (the EU soft opt-in for existing customers).
    """

    def __init__(self, source: str = "none"):
        source = (source or "none").strip()
        self.mode, _, self.meta_key = source.partition(":")

    def from_meta(self, meta_data, when) -> tuple[bool | None, datetime | None]:
        """(accepts_marketing, evidence time) from a `meta_data` list, for the meta mode."""
        if self.mode == "none":
            return False, None
        if self.mode != "meta":
            return None, None
        for item in meta_data or ():
            if isinstance(item, dict) and item.get("key") == self.meta_key:
                value = item.get("value")
                truthy = value is True or (not isinstance(value, bool) and str(value).strip().lower() in TRUTHY)
                return truthy, when
        return None, None

    def for_order(self, order: dict, paid: bool, when) -> tuple[bool | None, datetime | None]:
        """Consent evidence carried by an order."""
        if self.mode == "soft_opt_in":
            return (True, when) if paid else (None, None)
        return self.from_meta(order.get("meta_data"), when)


def clean_email(value) -> str | None:
    """Trimmed, lower-cased email; None for empty or privacy-erased addresses."""
    email = (value or "").strip().lower()
    if not email or email == ERASED_EMAIL:
        return None
    return email


def woo_time(obj: dict, field: str, tz: str = "UTC") -> datetime | None:
    """The UTC time of `field` (from `field_gmt`, else the store-local `field`)."""
    gmt = obj.get(f"{field}_gmt")
    if gmt:
        return parse_timestamp(gmt.rstrip("Z"), "UTC")
    local = obj.get(field)
    return parse_timestamp(local, tz) if local else None


def _decimal(value, default="0") -> Decimal:
    try:
        return Decimal(str(value if value not in (None, "") else default))
    except InvalidOperation:
        return Decimal(default)


def map_customer(data: dict, consent: Consent, tz: str = "UTC") -> CustomerRecord | None:
    """A registered customer from `/customers` or a customer.* webhook; None when erased."""
    email = clean_email(data.get("email")) or clean_email((data.get("billing") or {}).get("email"))
    if not data.get("id"):
        return None
    if not email and (data.get("email") or "").strip().lower() == ERASED_EMAIL:
        return None
    updated = woo_time(data, "date_modified", tz)
    accepts, when = consent.from_meta(data.get("meta_data"), updated)
    if consent.mode == "soft_opt_in":
        accepts, when = (True, updated) if data.get("is_paying_customer") else (None, None)
    return CustomerRecord(
        external_id=str(data["id"]), email=email,
        first_name=data.get("first_name") or (data.get("billing") or {}).get("first_name") or None,
        last_name=data.get("last_name") or (data.get("billing") or {}).get("last_name") or None,
        accepts_marketing=accepts, marketing_updated_at=when,
        created_at=woo_time(data, "date_created", tz), updated_at=updated)


def order_status(status: str) -> str:
    """WooCommerce status → paid / refunded / cancelled / pending."""
    status = (status or "").lower()
    if status in PAID:
        return "paid"
    if status == "refunded":
        return "refunded"
    if status in CANCELLED:
        return "cancelled"
    return "pending"  # pending, on-hold, checkout-draft and unknown plugin statuses


def map_order(data: dict, consent: Consent, catalog: dict | None = None, tz: str = "UTC") -> OrderRecord | None:
    """An order with its customer and lines; None for a privacy-erased order."""
    billing = data.get("billing") or {}
    raw_email = (billing.get("email") or "").strip().lower()
    if raw_email == ERASED_EMAIL:
        return None
    email = clean_email(raw_email)
    created = woo_time(data, "date_created", tz)
    updated = woo_time(data, "date_modified", tz) or created
    status = order_status(data.get("status"))
    total = _decimal(data.get("total"))
    refunded = -sum((_decimal(r.get("total")) for r in data.get("refunds") or ()), Decimal(0))
    if status == "refunded":
        refunded = total
    customer = None
    customer_id = int(data.get("customer_id") or 0)
    accepts, when = consent.for_order(data, status == "paid", updated)
    if customer_id > 0 or email:
        customer = CustomerRecord(
            external_id=str(customer_id) if customer_id > 0 else None, email=email,
            first_name=billing.get("first_name") or None, last_name=billing.get("last_name") or None,
            accepts_marketing=accepts, marketing_updated_at=when, created_at=created)
    catalog = catalog or {}
    lines = []
    for item in data.get("line_items") or ():
        product_id = str(item["product_id"]) if item.get("product_id") else None
        brand, category = catalog.get(product_id, (None, None))
        lines.append(LineRecord(
            line_key=str(item.get("id")), product_external_id=product_id, sku=item.get("sku") or None,
            title=html.unescape(item.get("name") or "") or None, brand=brand, category=category,
            quantity=int(item.get("quantity") or 0),
            price=_decimal(item.get("price")) if item.get("price") is not None else None))
    return OrderRecord(
        external_id=str(data["id"]), created_at=created or datetime.now(UTC), total=total,
        currency=(data.get("currency") or "").upper() or "EUR", status=status,
        refunded=max(refunded, Decimal(0)), name=f"#{data.get('number') or data['id']}",
        financial_status=data.get("status"),
        discount_codes=[c["code"].strip().lower() for c in data.get("coupon_lines") or () if c.get("code")],
        updated_at=updated, customer=customer, lines=lines)


def product_brand_category(data: dict) -> tuple[str | None, str | None]:
    """(brand, main category) of a product: the first of `brands[]` and `categories[]`."""
    brands = [b.get("name") for b in data.get("brands") or () if b.get("name")]
    categories = [c.get("name") for c in data.get("categories") or () if c.get("name")]
    return (html.unescape(brands[0]) if brands else None,
            html.unescape(categories[0]) if categories else None)


def map_product(data: dict, currency: str | None = None, tz: str = "UTC") -> ProductRecord:
    """A product with its brand and main category, storefront link (`permalink`), first image,
    price, and whether it is published and can be ordered."""
    brand, category = product_brand_category(data)
    price = data.get("price")
    image = next(iter(data.get("images") or ()), {}).get("src")
    return ProductRecord(
        external_id=str(data["id"]), title=html.unescape(data.get("name") or "") or None,
        sku=data.get("sku") or None, brand=brand, category=category,
        price=_decimal(price) if price not in (None, "") else None, currency=currency,
        url=data.get("permalink") or None, image_url=image or None,
        published=data.get("status") == "publish" if data.get("status") else None,
        # "onbackorder" can still be ordered; "outofstock" cannot.
        in_stock=data.get("stock_status") in ("instock", "onbackorder") if data.get("stock_status") else None,
        variant_id=str(data["id"]), created_at=woo_time(data, "date_created", tz),
        updated_at=woo_time(data, "date_modified", tz))

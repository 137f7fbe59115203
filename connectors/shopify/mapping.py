"""Shopify's shapes (REST webhook bodies and GraphQL nodes) mapped to Winback's record model."""
from __future__ import annotations

from decimal import Decimal

from app.timeutil import parse_timestamp

from ..base import CustomerRecord, LineRecord, OrderRecord, ProductRecord

_PAID = {"paid", "partially_refunded"}
_PENDING = {"pending", "authorized", "partially_paid"}
_CANCELLED = {"voided", "expired"}
_CONSENT = {"subscribed": True, "unsubscribed": False, "not_subscribed": False, "pending": False,
            "invalid": False, "redacted": False}


def numeric_id(value) -> str | None:
    """The numeric id of a GID (`gid://shopify/Order/1` → `1`) or of a plain id."""
    if value is None or value == "":
        return None
    if type(value) is str:  # noqa: E721 - the hot path of bulk imports
        return value.rpartition("/")[2]
    return str(value)


def gid(kind: str, value) -> str:
    """The GID of a numeric id."""
    text = str(value)
    return text if text.startswith("gid://") else f"gid://shopify/{kind}/{text}"


def _time(text):
    return parse_timestamp(text) if text else None


def _decimal(value) -> Decimal:
    return Decimal(value) if isinstance(value, str) else Decimal(str(value))


def _money(money_set, fallback=None) -> tuple[Decimal, str | None]:
    if money_set:
        shop_money = money_set.get("shopMoney") or money_set.get("shop_money")
        if shop_money:
            return _decimal(shop_money["amount"]), shop_money.get("currencyCode") or shop_money.get("currency_code")
    return _decimal(fallback or 0), None


def order_status(financial_status: str | None, cancelled_at) -> str:
    """Winback's order status for Shopify's financial status (any case) and cancellation."""
    fs = (financial_status or "").lower()
    if cancelled_at or fs in _CANCELLED:
        return "cancelled"
    if fs == "refunded":
        return "refunded"
    if fs in _PAID:
        return "paid"
    return "pending"


def consent(state: str | None) -> bool | None:
    """Marketing consent of an email marketing state: only `subscribed` may receive marketing."""
    return _CONSENT.get((state or "").lower()) if state else None


# ---- REST (webhook bodies) ---------------------------------------------------------------------
def customer_from_rest(data: dict | None) -> CustomerRecord | None:
    """A customer from a REST/webhook customer object (None when it has neither id nor email)."""
    if not data:
        return None
    email = (data.get("email") or "").strip() or None
    cid = numeric_id(data.get("id"))
    if cid is None and email is None:
        return None
    emc = data.get("email_marketing_consent") or {}
    return CustomerRecord(
        external_id=cid, email=email, first_name=data.get("first_name"), last_name=data.get("last_name"),
        locale=data.get("locale"), accepts_marketing=consent(emc.get("state")),
        marketing_updated_at=_time(emc.get("consent_updated_at")),
        created_at=_time(data.get("created_at")), updated_at=_time(data.get("updated_at")))


def product_from_rest(data: dict) -> ProductRecord:
    """A product from a products/update body (brand = vendor, category = product type). The body has
    no storefront URL: the stored one (from the last sync) stays."""
    variants = data.get("variants") or [{}]
    price = variants[0].get("price")
    tracked = [v for v in variants if v.get("inventory_management")]
    return ProductRecord(
        external_id=numeric_id(data["id"]), title=data.get("title"), sku=variants[0].get("sku") or None,
        brand=data.get("vendor") or None, category=data.get("product_type") or None,
        price=Decimal(str(price)) if price not in (None, "") else None,
        image_url=((data.get("image") or {}).get("src")) or None,
        published=(data.get("status") == "active" and bool(data.get("published_at")))
        if "status" in data else None,
        in_stock=(not tracked or sum(int(v.get("inventory_quantity") or 0) for v in tracked) > 0)
        if variants != [{}] else None,
        variant_id=numeric_id(variants[0].get("id")),
        created_at=_time(data.get("created_at")), updated_at=_time(data.get("updated_at")))


def _refunded_rest(data: dict) -> Decimal:
    total = Decimal(0)
    for refund in data.get("refunds") or []:
        for tx in refund.get("transactions") or []:
            if tx.get("kind") == "refund" and tx.get("status") == "success":
                total += Decimal(str(tx.get("amount") or 0))
    return total


def order_from_rest(data: dict, categories: dict | None = None) -> OrderRecord:
    """An order from a REST/webhook order body. `categories` maps product id → (brand, category)."""
    categories = categories or {}
    total, currency = _money(data.get("total_price_set"), data.get("total_price"))
    customer = customer_from_rest(data.get("customer"))
    if customer is None and (data.get("email") or "").strip():
        customer = CustomerRecord(external_id=None, email=data["email"].strip())
    elif customer is not None and not customer.email and (data.get("email") or "").strip():
        customer.email = data["email"].strip()
    lines = []
    for item in data.get("line_items") or []:
        pid = numeric_id(item.get("product_id"))
        brand, category = categories.get(pid, (None, None))
        price, _ = _money(item.get("price_set"), item.get("price"))
        lines.append(LineRecord(
            line_key=str(item["id"]), product_external_id=pid, sku=item.get("sku") or None,
            title=item.get("title"), brand=item.get("vendor") or brand, category=category,
            quantity=int(item.get("quantity") or 0), price=price))
    return OrderRecord(
        external_id=numeric_id(data["id"]),
        created_at=_time(data.get("processed_at") or data.get("created_at")),
        total=total, currency=currency or data.get("currency"),
        status=order_status(data.get("financial_status"), data.get("cancelled_at")),
        refunded=_refunded_rest(data), name=data.get("name"),
        financial_status=data.get("financial_status"), test=bool(data.get("test")),
        discount_codes=[d.get("code") for d in data.get("discount_codes") or [] if d.get("code")],
        updated_at=_time(data.get("updated_at")), customer=customer, lines=lines)


# ---- GraphQL nodes -----------------------------------------------------------------------------
def customer_from_graphql(node: dict | None) -> CustomerRecord | None:
    """A customer from a GraphQL Customer node."""
    if not node or not node.get("id"):
        return None
    address = node.get("defaultEmailAddress") or {}
    return CustomerRecord(
        external_id=numeric_id(node["id"]), email=address.get("emailAddress"),
        first_name=node.get("firstName"), last_name=node.get("lastName"),
        accepts_marketing=consent(address.get("marketingState")),
        marketing_updated_at=_time(address.get("marketingUpdatedAt")),
        created_at=_time(node.get("createdAt")), updated_at=_time(node.get("updatedAt")))


def product_from_graphql(node: dict, variant: dict | None = None) -> ProductRecord:
    """A product from a GraphQL Product node (category: product type, else taxonomy category).
    `variant` is its first variant (a bulk export gives variants as lines of their own; a page
    query nests them). Published: active and on the online store (`onlineStoreUrl` is null
    otherwise); in stock: inventory not tracked, or some left."""
    category = node.get("productType") or ((node.get("category") or {}).get("fullName"))
    if variant is None:
        variant = next(iter((node.get("variants") or {}).get("nodes") or ()), None)
    lowest = ((node.get("priceRangeV2") or {}).get("minVariantPrice")) or {}
    price = (variant or {}).get("price") or lowest.get("amount")
    image = (((node.get("featuredMedia") or {}).get("preview") or {}).get("image") or {}).get("url")
    status = node.get("status")
    return ProductRecord(external_id=numeric_id(node["id"]), title=node.get("title"),
                         brand=node.get("vendor") or None, category=category or None,
                         price=Decimal(str(price)) if price not in (None, "") else None,
                         currency=lowest.get("currencyCode"), url=node.get("onlineStoreUrl") or None,
                         image_url=image or None,
                         published=(status == "ACTIVE" and bool(node.get("onlineStoreUrl"))) if status else None,
                         in_stock=(node.get("tracksInventory") is False or (node.get("totalInventory") or 0) > 0)
                         if "totalInventory" in node else None,
                         variant_id=numeric_id((variant or {}).get("id")),
                         created_at=_time(node.get("createdAt")), updated_at=_time(node.get("updatedAt")))


def line_from_graphql(node: dict) -> LineRecord:
    """An order line from a GraphQL LineItem node (brand: line vendor, else product vendor)."""
    product = node.get("product") or {}
    price, _ = _money(node.get("originalUnitPriceSet"))
    category = product.get("productType") or ((product.get("category") or {}).get("fullName"))
    return LineRecord(
        line_key=numeric_id(node["id"]), product_external_id=numeric_id(product.get("id")),
        sku=node.get("sku") or None, title=node.get("title"),
        brand=node.get("vendor") or product.get("vendor") or None, category=category or None,
        quantity=int(node.get("quantity") or 0), price=price)


def order_from_graphql(node: dict, lines: list[LineRecord] | None = None) -> OrderRecord:
    """An order from a GraphQL Order node; lines from `lines` or the node's own `lineItems`."""
    total, currency = _money(node.get("totalPriceSet"))
    refunded, _ = _money(node.get("totalRefundedSet"))
    if lines is None:
        lines = [line_from_graphql(n) for n in ((node.get("lineItems") or {}).get("nodes") or [])]
    customer = customer_from_graphql(node.get("customer"))
    email = (node.get("email") or "").strip() or None
    if customer is None and email:
        customer = CustomerRecord(external_id=None, email=email)
    elif customer is not None and not customer.email:
        customer.email = email
    return OrderRecord(
        external_id=numeric_id(node["id"]), created_at=_time(node.get("processedAt") or node.get("createdAt")),
        total=total, currency=currency or node.get("currencyCode"),
        status=order_status(node.get("displayFinancialStatus"), node.get("cancelledAt")),
        refunded=refunded, name=node.get("name"),
        financial_status=(node.get("displayFinancialStatus") or "").lower() or None,
        test=bool(node.get("test")), discount_codes=list(node.get("discountCodes") or []),
        updated_at=_time(node.get("updatedAt")), customer=customer, lines=lines)

"""WooCommerce connector (issue #7): key flow, REST sync, webhooks, coupons.

The package: `client` (REST calls), `mapping` (JSON → records), `webhooks` (create, verify,
process), `coupons` (personal codes), `connect` (pending connections and registering a store).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Iterator

from app.db import connect as connect_db  # not `connect`: the package has a module of that name
from app.settings import get_settings
from app.shops import load_credentials, store_credentials
from app.timeutil import UTC

from ..base import Connector, CustomerRecord, OrderRecord, ProductRecord
from . import coupons, mapping, webhooks
from .catalog import fill_pending
from .client import WooClient, WooError, normalise_store_url

__all__ = ["WooConnector", "WooClient", "WooError", "normalise_store_url"]


def _gmt(dt: datetime) -> str:
    """A filter value WooCommerce accepts with dates_are_gmt=true: naive UTC, seconds."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class WooConnector(Connector):
    """One WooCommerce store, read and written through its REST API."""

    platform = "woocommerce"

    def __init__(self, shop: dict, client: WooClient, credentials: dict, *,
                 consent: mapping.Consent | None = None, app=None):
        super().__init__(shop)
        self.client, self.credentials, self.app = client, credentials, app
        self.consent = consent or mapping.Consent("none")
        self.catalog: dict[str, tuple[str | None, str | None]] = {}

    # ---- reading -----------------------------------------------------------------------
    def products(self, since: datetime | None = None) -> Iterator[ProductRecord]:
        """Products (changed since `since`), with brand and main category."""
        params = {"orderby": "id", "order": "asc"}
        if since is not None:
            params.update(modified_after=_gmt(since), dates_are_gmt="true")
        for data in self.client.paginate("products", **params):
            yield self.map_product(data)

    def customers(self, since: datetime | None = None) -> Iterator[CustomerRecord]:
        """Registered customers; /customers has no date filter, so `since` is applied here."""
        for data in self.client.paginate("customers", role="all", orderby="id", order="asc"):
            record = self.map_customer(data)
            if record is None:
                continue
            if since is not None and record.updated_at is not None and record.updated_at < since:
                continue
            yield record

    def orders(self, since: datetime | None = None) -> Iterator[OrderRecord]:
        """Orders (changed since `since`, oldest change first), guests included."""
        if since is None:
            params = {"orderby": "id", "order": "asc"}
        else:
            params = {"modified_after": _gmt(since), "dates_are_gmt": "true",
                      "orderby": "modified", "order": "asc"}
        pages = self.client.paginate("orders", **params)
        while chunk := list(islice(pages, 100)):
            yield from self.map_orders(chunk)

    def recent_orders(self, customer: dict, since: datetime) -> Iterator[OrderRecord]:
        """A customer's orders created since `since` (by user id, or by billing email for guests)."""
        params = {"after": _gmt(since), "dates_are_gmt": "true", "orderby": "date", "order": "asc"}
        external = str(customer.get("external_id") or "")
        email = (customer.get("email") or "").strip().lower()
        if external.isdigit():
            params["customer"] = external
        elif email:
            params["search"] = email
        else:
            return iter(())
        found = [o for o in self.client.paginate("orders", **params)
                 if external.isdigit() or (o.get("billing") or {}).get("email", "").strip().lower() == email]
        return iter(self.map_orders(found))

    # ---- mapping -----------------------------------------------------------------------
    def map_orders(self, items: list[dict]) -> list[OrderRecord]:
        """Map orders, looking up brand and category of products not seen yet."""
        self._load_catalog({str(li["product_id"]) for o in items for li in o.get("line_items") or ()
                            if li.get("product_id")})
        out = []
        for data in items:
            record = mapping.map_order(data, self.consent, self.catalog, self.shop["timezone"])
            if record is not None:
                out.append(record)
        return out

    def map_customer(self, data: dict) -> CustomerRecord | None:
        """One customer record from store JSON."""
        return mapping.map_customer(data, self.consent, self.shop["timezone"])

    def map_product(self, data: dict) -> ProductRecord:
        """One product record from store JSON; remembers its brand and category for order lines."""
        record = mapping.map_product(data, self.shop["currency"], self.shop["timezone"])
        self.catalog[record.external_id] = (record.brand, record.category)
        return record

    def _load_catalog(self, product_ids: set[str]):
        missing = sorted(p for p in product_ids if p not in self.catalog)
        for start in range(0, len(missing), 100):
            chunk = missing[start:start + 100]
            for data in self.client.paginate("products", include=",".join(chunk)):
                self.map_product(data)
            for pid in chunk:  # deleted products: remember that there is nothing to find
                self.catalog.setdefault(pid, (None, None))

    # ---- writing -----------------------------------------------------------------------
    def create_discount(self, *, code: str, customer: dict, percent: Decimal | None,
                        free_shipping: bool, expires_at: datetime, amount: Decimal | None = None,
                        min_order: Decimal | None = None) -> str:
        """A one-use coupon (percent, fixed amount off the cart, or free shipping) restricted to the
        customer's email, optionally from a minimum order; returns the stored code."""
        return coupons.create_coupon(self.client, code=code, email=customer.get("email") or "",
                                     percent=percent, free_shipping=free_shipping, expires_at=expires_at,
                                     amount=amount, min_order=min_order)

    def prepare(self, db) -> None:
        """Before a scheduled sync: create the webhooks of a shop added offline, and fill in the
        products that delivered orders named before the store was asked about them (best effort)."""
        try:
            self.ensure_webhooks(db)
        except WooError:
            pass  # webhooks are a hint; the poll still reconciles
        try:
            fill_pending(self, db)
        except WooError:
            pass  # the marks stay; the next round tries again

    def ensure_webhooks(self, db, force: bool = False) -> dict:
        """Create the store's webhooks unless they exist (always with `force`); returns their ids."""
        if self.credentials.get("webhook_ids") and not force:
            return self.credentials["webhook_ids"]
        creds = dict(self.credentials)
        creds.setdefault("webhook_secret", webhooks.new_secret())
        creds["webhook_ids"] = webhooks.register(self.client, webhooks.delivery_url(self.app, self.shop["id"]),
                                                 creds["webhook_secret"])
        store_credentials(self.app, db, self.shop["id"], creds)
        self.credentials = creds
        return creds["webhook_ids"]


def make_client(app, store_url, key, secret) -> WooClient:
    """A client with the app's timeout and retry settings."""
    return WooClient(store_url, key, secret,
                     timeout=float(app.config.get("WOOCOMMERCE_TIMEOUT", 30)),
                     retries=int(app.config.get("WOOCOMMERCE_RETRIES", 4)),
                     backoff=float(app.config.get("WOOCOMMERCE_BACKOFF", 1.0)))


def factory(app, shop) -> WooConnector:
    """The connector of a WooCommerce shop, from its encrypted keys and consent setting."""
    creds = load_credentials(app, shop)
    if not creds.get("consumer_key") or not shop.get("base_url"):
        raise LookupError(f"shop {shop['handle']!r} has no WooCommerce keys: connect it again")
    db = connect_db(app.config["DATABASE"])
    try:
        source = get_settings(db, shop["id"]).get("woo_consent_source", "none")
    finally:
        db.close()
    return WooConnector(shop, make_client(app, shop["base_url"], creds["consumer_key"], creds["consumer_secret"]),
                        creds, consent=mapping.Consent(source), app=app)

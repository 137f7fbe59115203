"""A fake Shopify on loopback for the connector tests: OAuth, GraphQL with cost throttling, bulk
exports served as JSONL, discount and consent mutations, and signed webhook deliveries.

A real HTTP server (werkzeug) in a thread, seeded from tests/fixtures/shopify. It dispatches
GraphQL by operation, not by parsing the language; the documents it receives are the connector's.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from decimal import Decimal
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "shopify"
PRODUCT_TYPES = {"632910392": "Phones", "921728736": "Laptops"}


def load_fixture_orders() -> list[dict]:
    """Every fixture order body (the standalone order.json first)."""
    orders = [json.loads((FIXTURES / "order.json").read_text())["order"]]
    names = {o["id"] for o in orders}
    for path in sorted((FIXTURES / "orders").glob("*.json")):
        order = json.loads(path.read_text())
        if order["id"] in names:  # order_13 is a later state of order.json: keep the first
            continue
        names.add(order["id"])
        orders.append(order)
    return orders


def load_fixture_customer() -> dict:
    return json.loads((FIXTURES / "customer.json").read_text())["customer"]


def sign_webhook(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def webhook_headers(secret, body: bytes, topic, shop, webhook_id) -> dict:
    return {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign_webhook(secret, body),
            "X-Shopify-Shop-Domain": shop, "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-API-Version": "2026-10", "Content-Type": "application/json"}


def sign_query(secret: str, params: dict) -> dict:
    """Query parameters with Shopify's hex HMAC added."""
    def esc(text, key):
        text = str(text).replace("%", "%25").replace("&", "%26")
        return text.replace("=", "%3D") if key else text
    message = "&".join(f"{esc(k, True)}={esc(v, False)}" for k, v in sorted(params.items()))
    return {**params, "hmac": hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()}


def _positive_decimal(value) -> bool:
    """Shopify's Decimal scalar as sent by clients: a string such as "10.00", more than zero here."""
    try:
        return isinstance(value, str) and float(value) > 0
    except ValueError:
        return False


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


def _gid(kind, value):
    return f"gid://shopify/{kind}/{value}"


def _money(amount, currency):
    return {"shopMoney": {"amount": str(amount), "currencyCode": currency}}


def _refunded(order):
    return sum((Decimal(t["amount"]) for r in order.get("refunds") or [] for t in r.get("transactions") or []
                if t.get("kind") == "refund" and t.get("status") == "success"), Decimal(0))


def customer_node(c):
    emc = c.get("email_marketing_consent") or {}
    return {"id": _gid("Customer", c["id"]), "createdAt": c.get("created_at"), "updatedAt": c.get("updated_at"),
            "firstName": c.get("first_name"), "lastName": c.get("last_name"),
            "defaultEmailAddress": {"emailAddress": c.get("email"), "marketingState": (emc.get("state") or "not_subscribed").upper(),
                                    "marketingOptInLevel": (emc.get("opt_in_level") or "").upper() or None,
                                    "marketingUpdatedAt": emc.get("consent_updated_at")} if c.get("email") else None}


def line_node(item):
    pid = item.get("product_id")
    return {"id": _gid("LineItem", item["id"]), "title": item.get("title"), "sku": item.get("sku"),
            "vendor": item.get("vendor"), "quantity": item.get("quantity"),
            "originalUnitPriceSet": _money(item["price"], item["price_set"]["shop_money"]["currency_code"]),
            "product": {"id": _gid("Product", pid), "productType": PRODUCT_TYPES.get(str(pid), ""),
                        "vendor": "Apple", "category": None} if pid else None,
            "variant": {"id": _gid("ProductVariant", item["variant_id"])} if item.get("variant_id") else None}


def order_node(o, with_lines=True):
    shop_money = o["total_price_set"]["shop_money"]
    node = {"id": _gid("Order", o["id"]), "name": o.get("name"), "email": o.get("email") or None,
            "createdAt": o["created_at"], "processedAt": o.get("processed_at"), "updatedAt": o["updated_at"],
            "cancelledAt": o.get("cancelled_at"), "test": o.get("test", False), "currencyCode": o.get("currency"),
            "displayFinancialStatus": (o.get("financial_status") or "").upper(),
            "totalPriceSet": _money(shop_money["amount"], shop_money["currency_code"]),
            "totalRefundedSet": _money(_refunded(o), shop_money["currency_code"]),
            "discountCodes": [d["code"] for d in o.get("discount_codes") or []],
            "customer": customer_node(o["customer"]) if o.get("customer") else None}
    if with_lines:
        node["lineItems"] = {"nodes": [line_node(i) for i in o.get("line_items") or []]}
    else:
        node["customer"] = {"id": node["customer"]["id"]} if node["customer"] else None
    return node


def product_node(pid, item, order):
    """A Product node as the Admin API gives it: published on the online store, in stock, one variant
    (the line's) at the line's price, a featured image. Tests change the fields they look at."""
    currency = item["price_set"]["shop_money"]["currency_code"]
    return {"id": _gid("Product", pid), "title": item["title"], "vendor": "Apple",
            "productType": PRODUCT_TYPES.get(pid, ""), "createdAt": order["created_at"],
            "updatedAt": order["updated_at"], "category": None,
            "onlineStoreUrl": f"https://shop.winback-test.example/products/p{pid}", "status": "ACTIVE",
            "tracksInventory": True, "totalInventory": 7,
            "featuredMedia": {"preview": {"image": {"url": f"https://cdn.shopify.example/files/p{pid}.jpg"}}},
            "priceRangeV2": {"minVariantPrice": {"amount": item["price"], "currencyCode": currency}},
            "variants": {"nodes": [{"id": _gid("ProductVariant", item.get("variant_id") or f"{pid}1"),
                                    "price": item["price"]}]}}


class FakeShopify:
    """The fake. Attributes tests turn: `bucket_*` (throttling), `fail_graphql` (HTTP 503s to come),
    `fail_downloads` (bulk result failures to come), `bulk_polls` (polls before an export is done)."""

    def __init__(self, client_id="test-client", secret="test-secret", shop="winback-test.myshopify.com"):
        self.client_id, self.secret, self.shop = client_id, secret, shop
        self.primary_domain = "https://shop.winback-test.example"  # the shop query's primaryDomain { url }
        self.orders = {str(o["id"]): o for o in load_fixture_orders()}
        customers = {str(o["customer"]["id"]): o["customer"] for o in self.orders.values() if o.get("customer")}
        fixture = load_fixture_customer()
        customers[str(fixture["id"])] = fixture
        self.customers = customers
        self.products = {}
        for o in self.orders.values():
            for item in o["line_items"]:
                if item.get("product_id"):
                    pid = str(item["product_id"])
                    self.products[pid] = product_node(pid, item, o)
        self.codes, self.tokens, self.refresh_tokens = {}, {}, {}
        self.token_ttl = 3600
        self.discounts, self.consents, self.subscriptions, self.log = [], [], [], []
        self.bulk_ops, self.bulk_ids = {}, itertools.count(1)
        self.bulk_polls = 1
        self.fail_graphql = 0
        self.fail_downloads = 0
        self.bucket_max, self.bucket_available, self.restore_rate, self.query_cost = 1000.0, 1000.0, 100.0, 10
        self.clock_offset = 0.0
        self._last = self.clock()
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True, request_handler=_QuietHandler)
        self.port = self.server.server_port
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()

    @property
    def admin_url(self):
        return self.base + "/{shop}"

    def clock(self):
        return time.monotonic() + self.clock_offset

    def advance(self, seconds):
        """The tests' `sleep`: moves the fake's clock instead of waiting."""
        self.clock_offset += seconds

    def issue_code(self, shop=None):
        code = f"code-{len(self.codes) + 1}"
        self.codes[code] = shop or self.shop
        return code

    def ops(self, name):
        return [entry for entry in self.log if entry == name]

    # ---- HTTP ------------------------------------------------------------------------------
    def wsgi(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            response = self.route(request)
        return response(environ, start_response)

    def route(self, request):
        path = request.path
        m = re.match(r"^/bulk/(\d+)\.jsonl$", path)
        if m:
            return self.download(int(m.group(1)))
        m = re.match(r"^/([^/]+)/admin/oauth/access_token$", path)
        if m and request.method == "POST":
            return self.access_token(m.group(1), request.get_json(force=True, silent=True) or request.form.to_dict())
        m = re.match(r"^/([^/]+)/admin/api/([^/]+)/graphql\.json$", path)
        if m and request.method == "POST":
            return self.graphql(m.group(1), request)
        return Response("not found", 404)

    def access_token(self, shop, body):
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.secret:
            return Response(json.dumps({"error": "invalid_client"}), 401)
        grant = body.get("grant_type")
        self.log.append(f"token:{grant or 'code'}")
        if grant == "client_credentials":
            return self._token(shop, expires=86400, refresh=False)
        if grant == "refresh_token":
            if self.refresh_tokens.pop(body.get("refresh_token"), None) != shop:
                return Response(json.dumps({"error": "invalid_grant"}), 400)
            return self._token(shop, expires=self.token_ttl, refresh=True)
        if self.codes.pop(body.get("code"), None) != shop:
            return Response(json.dumps({"error": "invalid_request"}), 400)
        return self._token(shop, expires=self.token_ttl if body.get("expiring") == "1" else None,
                           refresh=body.get("expiring") == "1")

    def _token(self, shop, expires, refresh):
        token = f"shpat_{len(self.tokens) + 1}"
        self.tokens[token] = shop
        data = {"access_token": token, "scope": "read_customers,write_customers,read_orders,read_all_orders,"
                                                "read_products,write_discounts"}
        if expires:
            data["expires_in"] = expires
        if refresh:
            rt = f"shprt_{len(self.refresh_tokens) + len(self.tokens)}"
            self.refresh_tokens[rt] = shop
            data.update(refresh_token=rt, refresh_token_expires_in=90 * 86400)
        return Response(json.dumps(data), 200, content_type="application/json")

    def _cost(self):
        now = self.clock()
        self.bucket_available = min(self.bucket_max, self.bucket_available + (now - self._last) * self.restore_rate)
        self._last = now
        status = {"maximumAvailable": self.bucket_max, "currentlyAvailable": round(self.bucket_available),
                  "restoreRate": self.restore_rate}
        if self.bucket_available < self.query_cost:
            return False, {"requestedQueryCost": self.query_cost, "actualQueryCost": None, "throttleStatus": status}
        self.bucket_available -= self.query_cost
        status["currentlyAvailable"] = round(self.bucket_available)
        return True, {"requestedQueryCost": self.query_cost, "actualQueryCost": self.query_cost, "throttleStatus": status}

    def graphql(self, shop, request):
        if self.fail_graphql > 0:
            self.fail_graphql -= 1
            self.log.append("503")
            return Response("unavailable", 503)
        if self.tokens.get(request.headers.get("X-Shopify-Access-Token")) != shop:
            return Response(json.dumps({"errors": "[API] Invalid API key or access token"}), 401)
        body = request.get_json(force=True)
        ok, cost = self._cost()
        if not ok:
            self.log.append("THROTTLED")
            return self._json({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                               "extensions": {"cost": cost}})
        query, variables = body["query"], body.get("variables") or {}
        name = re.search(r"^\s*(?:query|mutation)\s+(\w+)", query, re.M)
        name = name.group(1) if name else "anonymous"
        self.log.append(name)
        data = getattr(self, f"op_{name}")(variables)
        return self._json({"data": data, "extensions": {"cost": cost}})

    @staticmethod
    def _json(doc):
        return Response(json.dumps(doc), 200, content_type="application/json")

    # ---- GraphQL operations ----------------------------------------------------------------
    def op_Shop(self, v):
        return {"shop": {"name": "Winback Test", "currencyCode": "USD", "ianaTimezone": "America/New_York",
                         "myshopifyDomain": self.shop, "primaryDomain": {"url": self.primary_domain}}}

    def op_Sub(self, v):
        self.subscriptions.append((v["topic"], v["sub"]["uri"]))
        return {"webhookSubscriptionCreate": {"webhookSubscription": {"id": _gid("WebhookSubscription", len(self.subscriptions)),
                                                                      "topic": v["topic"], "uri": v["sub"]["uri"],
                                                                      "format": "JSON", "includeFields": []},
                                              "userErrors": []}}

    def op_BulkRun(self, v):
        resource = re.search(r"\{\s*(\w+)", v["query"]).group(1)
        op_id = next(self.bulk_ids)
        self.bulk_ops[op_id] = {"resource": resource, "polls": self.bulk_polls}
        return {"bulkOperationRunQuery": {"bulkOperation": {"id": _gid("BulkOperation", op_id), "status": "CREATED"},
                                          "userErrors": []}}

    def op_PollBulk(self, v):
        op_id = int(v["id"].rsplit("/", 1)[-1])
        op = self.bulk_ops[op_id]
        if op.get("failed"):
            return {"node": {"id": v["id"], "status": "FAILED", "errorCode": "INTERNAL_SERVER_ERROR", "url": None}}
        if op["polls"] > 0:
            op["polls"] -= 1
            status, url = "RUNNING", None
        else:
            status, url = "COMPLETED", f"{self.base}/bulk/{op_id}.jsonl"
        return {"node": {"id": v["id"], "status": status, "errorCode": None, "objectCount": "0",
                         "rootObjectCount": "0", "fileSize": None, "url": url, "partialDataUrl": None,
                         "createdAt": None, "completedAt": None}}

    def jsonl(self, resource) -> list[dict]:
        """The export's objects. Order lines come out of order: one before its parent, the rest
        after the next order, as `groupObjects: false` allows."""
        if resource == "customers":
            return [customer_node(c) for c in self.customers.values()]
        if resource == "products":  # variants are lines of their own, the first one before its product
            out = []
            for node in self.products.values():
                variants = [{**v, "__parentId": node["id"]} for v in node["variants"]["nodes"]]
                out.extend(variants[:1])
                out.append({k: v for k, v in node.items() if k != "variants"})
                out.extend(variants[1:])
            return out
        out, held = [], []
        for o in sorted(self.orders.values(), key=lambda o: o["created_at"]):
            node = order_node(o, with_lines=False)
            lines = [{**line_node(i), "__parentId": node["id"]} for i in o["line_items"]]
            if not out and lines:
                out.append(lines.pop(0))  # a child before its parent
            out.append(node)
            out.extend(held)
            held = lines
        out.extend(held)
        return out

    def download(self, op_id):
        if self.fail_downloads > 0:
            self.fail_downloads -= 1
            self.log.append("download-failed")
            return Response("error", 500)
        self.log.append("download")
        body = "".join(json.dumps(obj) + "\n" for obj in self.jsonl(self.bulk_ops[op_id]["resource"]))
        return Response(body, 200, content_type="application/jsonl")

    def _page(self, items, v, first, key):
        since = re.search(r"updated_at:>'([^']+)'", v.get("query") or "")
        if since:
            items = [i for i in items if (i.get("updatedAt") or "") and
                     _utc(i["updatedAt"]) > since.group(1)]
        m = re.search(r"customer_id:(\d+)", v.get("query") or "")
        if m:
            items = [i for i in items if i.get("customer") and i["customer"]["id"].endswith("/" + m.group(1))]
        start = int(v.get("cursor") or 0)
        page = items[start:start + first]
        more = start + first < len(items)
        return {key: {"pageInfo": {"hasNextPage": more, "endCursor": str(start + first) if more else None},
                      "nodes": page}}

    def op_Customers(self, v):
        return self._page([customer_node(c) for c in self.customers.values()], v, 250, "customers")

    def op_Products(self, v):
        return self._page(list(self.products.values()), v, 250, "products")

    def op_Orders(self, v):
        return self._page([order_node(o) for o in self.orders.values()], v, 25, "orders")

    def op_Order(self, v):
        order = self.orders.get(v["id"].rsplit("/", 1)[-1])
        return {"order": order_node(order) if order else None}

    def _discount(self, v, key, kind):
        data = v["input"]
        errors = []
        pct = (((data.get("customerGets") or {}).get("value") or {}).get("percentage"))
        if pct is not None and not 0 <= pct <= 1:
            errors.append({"field": ["basicCodeDiscount", "customerGets", "value", "percentage"],
                           "code": "VALUE_OUTSIDE_RANGE", "message": "Value must be between 0.0 and 1.0"})
        value = (data.get("customerGets") or {}).get("value") or {}
        if kind == "basic" and len(value) != 1:
            errors.append({"field": ["basicCodeDiscount", "customerGets", "value"], "code": "INVALID",
                           "message": "Value must be exactly one of percentage, discountAmount or discountOnQuantity"})
        fixed = value.get("discountAmount")
        if fixed is not None and (set(fixed) - {"amount", "appliesOnEachItem"} or not _positive_decimal(fixed.get("amount"))):
            errors.append({"field": ["basicCodeDiscount", "customerGets", "value", "discountAmount", "amount"],
                           "code": "INVALID", "message": "Amount must be a positive Decimal"})
        minimum = data.get("minimumRequirement")
        if minimum is not None and (set(minimum) != {"subtotal"} or set(minimum["subtotal"]) != {"greaterThanOrEqualToSubtotal"}
                                    or not _positive_decimal(minimum["subtotal"]["greaterThanOrEqualToSubtotal"])):
            errors.append({"field": ["basicCodeDiscount", "minimumRequirement"], "code": "INVALID",
                           "message": "Minimum requirement must be a quantity or a subtotal"})
        if any(d["code"] == data["code"] for d in self.discounts):
            errors.append({"field": ["basicCodeDiscount", "code"], "code": "TAKEN", "message": "Code must be unique."})
        if not errors:
            self.discounts.append({**copy.deepcopy(data), "kind": kind})
        return {key: {"codeDiscountNode": None if errors else {"id": _gid("DiscountCodeNode", len(self.discounts))},
                      "userErrors": errors}}

    def op_CreatePersonalCode(self, v):
        return self._discount(v, "discountCodeBasicCreate", "basic")

    def op_CreateFreeShipCode(self, v):
        return self._discount(v, "discountCodeFreeShippingCreate", "free_shipping")

    def op_Unsubscribe(self, v):
        data = v["input"]
        state = data["emailMarketingConsent"]["marketingState"]
        if state == "NOT_SUBSCRIBED":
            return {"customerEmailMarketingConsentUpdate": {"customer": None, "userErrors": [
                {"field": ["input"], "code": "INVALID", "message": "Not settable"}]}}
        cid = data["customerId"].rsplit("/", 1)[-1]
        self.consents.append((cid, state))
        if cid in self.customers:
            self.customers[cid]["email_marketing_consent"] = {
                "state": state.lower(), "opt_in_level": "single_opt_in",
                "consent_updated_at": data["emailMarketingConsent"].get("consentUpdatedAt")}
        return {"customerEmailMarketingConsentUpdate": {"customer": {"id": data["customerId"]}, "userErrors": []}}


def _utc(text):
    from datetime import datetime, timezone
    return datetime.fromisoformat(text).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def winback_app_for(fake, instance_path, **config):
    """An app (database initialised) talking to the fake Shopify `fake`."""
    from app import create_app  # tests only: this module is also imported by the benchmarks
    from app.migrations import init_db
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance_path), "SHOPIFY_CLIENT_ID": fake.client_id,
                      "SHOPIFY_CLIENT_SECRET": fake.secret, "SHOPIFY_ADMIN_URL": fake.admin_url,
                      "APP_URL": "http://127.0.0.1:5000", **config})
    with app.app_context():
        from app.db import get_db
        init_db(get_db())
    return app

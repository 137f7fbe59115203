"""A fake WooCommerce store on loopback: a real HTTP server thread speaking enough of wc/v3.

It behaves like the parts of WooCommerce Winback relies on (see shared/reference/woocommerce.md):
Basic auth with the consumer key and secret (401 otherwise), per_page ≤ 100 (400 above),
X-WP-Total / X-WP-TotalPages, modified_after with dates_are_gmt, lower-cased unique coupon codes,
webhook creation followed by the unsigned ping, the /wc-auth/v1/authorize grant that POSTs the keys
to callback_url, and deliveries signed like WooCommerce (PHP-style JSON, base64 HMAC-SHA256).
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import requests
from flask import Flask, jsonify, redirect, request
from werkzeug.serving import make_server

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "woocommerce"
API = "/wp-json/wc/v3"


def php_json(obj) -> bytes:
    """JSON as WordPress' wp_json_encode writes it: compact, with escaped slashes."""
    return json.dumps(obj, separators=(",", ":")).replace("/", "\\/").encode()


def fixture(name) -> dict:
    return json.loads((FIXTURES / name).read_text())


class FakeStore:
    """The store's data and behaviour; `url` is its base URL once started."""

    def __init__(self, key="ck_" + "a" * 40, secret="cs_" + "b" * 40):
        self.keys = {key: secret}
        self.key, self.secret = key, secret
        self.customers, self.orders, self.products = {}, {}, {}
        self.coupons, self.webhooks = {}, {}
        self.pings, self.deliveries, self.requests = [], [], []
        self.fail_queue: list[tuple[str, int]] = []  # (path suffix, status) served before real answers
        self.delay = 0.0  # seconds every API answer takes (a slow store); `slow_request` is set meanwhile
        self.slow_request = threading.Event()
        self.timezone = "America/Los_Angeles"
        self.currency = "USD"
        self._next_id = 10_000
        self.coupon_delay = 0.0   # seconds each coupon creation takes (a slow store)
        self.on_coupon = None     # called with the request body while a coupon is being created
        self.app = self._make_app()
        self.server = None

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self):
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()

    def next_id(self):
        self._next_id += 1
        return self._next_id

    # ---- seeding -----------------------------------------------------------------------
    def seed_fixtures(self):
        """The verbatim docs examples: customer 25, guest order 727 (same email), products."""
        self.add(self.customers, fixture("customer.json"))
        self.add(self.orders, fixture("order.json"))
        self.add(self.products, fixture("product.json"))
        for pid, name, cat, brand in ((93, "Woo Single #1", "Music", "Woo"),
                                      (22, "Ship Your Idea", "Clothing", "Idea Co")):
            product = copy.deepcopy(fixture("product.json"))
            product.update(id=pid, name=name, categories=[{"id": pid, "name": cat, "slug": cat.lower()}],
                           brands=[{"id": pid + 1, "name": brand, "slug": brand.lower()}])
            self.add(self.products, product)
        return self

    def add(self, table, obj):
        table[int(obj["id"])] = obj
        return obj

    def make_order(self, oid, *, email, customer_id=0, status="completed", total="50.00",
                   created_gmt="2026-01-10T10:00:00", modified_gmt=None, refunds=(), coupons=(),
                   meta=(), product_id=93):
        """A generated order in the shape of the fixture."""
        order = copy.deepcopy(fixture("order.json"))
        modified_gmt = modified_gmt or created_gmt
        order.update(id=oid, number=str(oid), status=status, total=total, customer_id=customer_id,
                     date_created_gmt=created_gmt, date_created=created_gmt, date_modified_gmt=modified_gmt,
                     date_modified=modified_gmt, refunds=[{"id": oid * 10 + i, "reason": "", "total": t}
                                                          for i, t in enumerate(refunds)],
                     coupon_lines=[{"id": oid * 10, "code": c, "discount": "5.00"} for c in coupons],
                     meta_data=[{"id": oid * 100 + i, "key": k, "value": v} for i, (k, v) in enumerate(meta)])
        order["billing"] = {**order["billing"], "email": email}
        order["line_items"] = [{**order["line_items"][0], "id": oid * 10 + 1, "product_id": product_id}]
        return self.add(self.orders, order)

    def touch(self, oid, modified_gmt, **changes):
        """Change an order as the store would (its modified time moves)."""
        self.orders[oid].update(changes, date_modified_gmt=modified_gmt, date_modified=modified_gmt)
        return self.orders[oid]

    # ---- sending -----------------------------------------------------------------------
    def deliver(self, topic, resource: dict, *, delivery_id=None, secret=None) -> list[requests.Response]:
        """Send `resource` to every active webhook of `topic`, signed as WooCommerce signs."""
        body = php_json(resource)
        out = []
        for hook in list(self.webhooks.values()):
            if hook["topic"] != topic or hook["status"] != "active":
                continue
            sign_with = secret or hook["secret"]
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "WooCommerce/9.6.0 Hookshot (WordPress/6.7.1)",
                "X-WC-Webhook-Source": self.url + "/",
                "X-WC-Webhook-Topic": topic,
                "X-WC-Webhook-Resource": topic.split(".")[0],
                "X-WC-Webhook-Event": topic.split(".")[1],
                "X-WC-Webhook-Signature": base64.b64encode(
                    hmac.new(sign_with.encode(), body, hashlib.sha256).digest()).decode(),
                "X-WC-Webhook-ID": str(hook["id"]),
                "X-WC-Webhook-Delivery-ID": delivery_id or secrets.token_hex(16),
            }
            resp = requests.post(hook["delivery_url"], data=body, headers=headers, timeout=10)
            self.deliveries.append((topic, resp.status_code))
            out.append(resp)
        return out

    def ping(self, hook) -> int:
        try:
            status = requests.post(hook["delivery_url"], data={"webhook_id": str(hook["id"])}, timeout=10,
                                   headers={"User-Agent": "WooCommerce/9.6.0 Hookshot (WordPress/6.7.1)"}).status_code
        except requests.RequestException:
            status = None  # an unreachable app: WooCommerce shows the error and keeps the webhook
        self.pings.append((hook["id"], status))
        return status

    # ---- the HTTP side -----------------------------------------------------------------
    def _make_app(self):
        app = Flask("fake_woo")
        store = self

        def error(status, code, message):
            return jsonify(code=code, message=message, data={"status": status}), status

        @app.before_request
        def auth_and_faults():
            store.requests.append((request.method, request.path, request.args.to_dict()))
            if not request.path.startswith(API):
                return None
            if store.delay:
                store.slow_request.set()
                time.sleep(store.delay)
            for i, (suffix, status) in enumerate(store.fail_queue):
                if request.path.endswith(suffix):
                    store.fail_queue.pop(i)
                    return error(status, "fake_fault", "injected failure")
            auth = request.authorization
            if not auth or store.keys.get(auth.username) != auth.password:
                return error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
            return None

        def listing(items, *, dated=True):
            args = request.args
            try:
                per_page = int(args.get("per_page", 10))
                page = int(args.get("page", 1))
            except ValueError:
                return error(400, "rest_invalid_param", "Invalid parameter(s): per_page")
            if not 1 <= per_page <= 100:
                return error(400, "rest_invalid_param", "Invalid parameter(s): per_page")
            items = list(items)
            if args.get("include"):
                wanted = {int(x) for x in args["include"].split(",") if x}
                items = [i for i in items if i["id"] in wanted]
            if args.get("modified_after") and dated:
                value = args["modified_after"]
                try:
                    datetime.fromisoformat(value)
                except ValueError:
                    return error(400, "rest_invalid_param", "Invalid parameter(s): modified_after")
                if "T" not in value:
                    return error(400, "rest_invalid_param", "Invalid parameter(s): modified_after")
                field = "date_modified_gmt" if args.get("dates_are_gmt") == "true" else "date_modified"
                items = [i for i in items if (i.get(field) or "") > value[:19]]
            if args.get("after"):
                field = "date_created_gmt" if args.get("dates_are_gmt") == "true" else "date_created"
                items = [i for i in items if (i.get(field) or "") > args["after"][:19]]
            if args.get("status") and args["status"] not in ("any", "all"):
                wanted = set(args["status"].split(","))
                items = [i for i in items if i.get("status") in wanted]
            if args.get("customer"):
                items = [i for i in items if str(i.get("customer_id")) == args["customer"]]
            if args.get("search"):
                needle = args["search"].lower()
                items = [i for i in items if needle in json.dumps(i).lower()]
            key = {"modified": lambda i: (i.get("date_modified_gmt") or "", i["id"])}.get(
                args.get("orderby"), lambda i: i["id"])
            items.sort(key=key, reverse=args.get("order", "desc") == "desc")
            total = len(items)
            pages = max(1, -(-total // per_page))
            chunk = items[(page - 1) * per_page: page * per_page]
            resp = jsonify(chunk)
            resp.headers["X-WP-Total"] = str(total)
            resp.headers["X-WP-TotalPages"] = str(pages)
            return resp

        @app.get("/wp-json/")
        def index():
            return jsonify(name="Fake store", namespaces=["wc/v3"], timezone_string=store.timezone, gmt_offset=-8)

        @app.get(f"{API}/data/currencies/current")
        def currency():
            return jsonify(code=store.currency, name="United States (US) dollar", symbol="$")

        @app.get(f"{API}/customers")
        def customers():
            return listing(store.customers.values(), dated=False)

        @app.get(f"{API}/orders")
        def orders():
            return listing(store.orders.values())

        @app.get(f"{API}/orders/<int:oid>")
        def order(oid):
            if oid not in store.orders:
                return error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
            return jsonify(store.orders[oid])

        @app.get(f"{API}/products")
        def products():
            return listing(store.products.values())

        @app.post(f"{API}/coupons")
        def create_coupon():
            body = request.get_json(force=True)
            if store.on_coupon is not None:
                store.on_coupon(body)
            if store.coupon_delay:
                time.sleep(store.coupon_delay)
            code = str(body.get("code") or "").strip().lower()
            if not code:
                return error(400, "rest_missing_callback_param", "Missing parameter(s): code")
            if any(c["code"] == code for c in store.coupons.values()):
                return error(400, "woocommerce_rest_coupon_code_already_exists", "The coupon code already exists")
            if body.get("discount_type", "fixed_cart") not in ("percent", "fixed_cart", "fixed_product"):
                return error(400, "rest_invalid_param", "Invalid parameter(s): discount_type")
            for field in ("amount", "minimum_amount"):
                if field in body and not isinstance(body[field], str):
                    return error(400, "rest_invalid_param", f"Invalid parameter(s): {field}")
            for field in ("usage_limit", "usage_limit_per_user"):
                if body.get(field) is not None and not isinstance(body[field], int):
                    return error(400, "rest_invalid_param", f"Invalid parameter(s): {field}")
            emails = body.get("email_restrictions", [])
            if not isinstance(emails, list) or not all(isinstance(e, str) and "@" in e for e in emails):
                return error(400, "rest_invalid_param", "Invalid parameter(s): email_restrictions")
            if body.get("date_expires"):
                try:
                    datetime.fromisoformat(body["date_expires"])
                except ValueError:
                    return error(400, "rest_invalid_param", "Invalid parameter(s): date_expires")
            coupon = {**fixture("coupon_created.json"), **body, "id": store.next_id(), "code": code,
                      "email_restrictions": [e.lower() for e in emails]}
            store.coupons[coupon["id"]] = coupon
            return jsonify(coupon), 201

        @app.get(f"{API}/webhooks")
        def list_webhooks():
            return listing(store.webhooks.values(), dated=False)

        @app.post(f"{API}/webhooks")
        def create_webhook():
            body = request.get_json(force=True)
            if not body.get("topic") or not str(body.get("delivery_url", "")).startswith(("http://", "https://")):
                return error(400, "rest_missing_callback_param", "Missing parameter(s): topic, delivery_url")
            hook = {"id": store.next_id(), "name": body.get("name", ""), "topic": body["topic"],
                    "delivery_url": body["delivery_url"], "status": body.get("status", "active"),
                    "secret": body.get("secret") or secrets.token_urlsafe(40)}
            store.webhooks[hook["id"]] = hook
            store.ping(hook)  # WooCommerce pings right after creating; the REST answer ignores the result
            return jsonify({k: v for k, v in hook.items() if k != "secret"}), 201

        @app.put(f"{API}/webhooks/<int:hid>")
        def update_webhook(hid):
            if hid not in store.webhooks:
                return error(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
            store.webhooks[hid].update(request.get_json(force=True))
            return jsonify({k: v for k, v in store.webhooks[hid].items() if k != "secret"})

        @app.get("/wc-auth/v1/authorize")
        def authorize():
            """The merchant's grant, already logged in: make keys, POST them, send the browser back."""
            args = request.args
            missing = [p for p in ("app_name", "scope", "user_id", "return_url", "callback_url") if not args.get(p)]
            if missing or args["scope"] not in ("read", "write", "read_write"):
                return f"Error: invalid request ({', '.join(missing) or 'scope'})", 400
            if args.get("deny"):
                return redirect(f"{args['return_url']}?{urlencode({'success': 0, 'user_id': args['user_id']})}")
            key, secret = "ck_" + secrets.token_hex(20), "cs_" + secrets.token_hex(20)
            store.keys[key] = secret
            resp = requests.post(args["callback_url"], timeout=10,
                                 data=json.dumps({"key_id": 1, "user_id": args["user_id"], "consumer_key": key,
                                                  "consumer_secret": secret, "key_permissions": args["scope"]}),
                                 headers={"Content-Type": "application/json;charset=UTF-8"})
            store.last_callback = resp
            if resp.status_code != 200:  # WooCommerce deletes the key unless it gets exactly 200
                del store.keys[key]
                return "Error: An error occurred in the request and at the time were unable to send the consumer data.", 401
            return redirect(f"{args['return_url']}?{urlencode({'success': 1, 'user_id': args['user_id']})}")

        return app

"""Shopify's mandatory privacy topics: a customer's data export, customer and shop erasure."""
from __future__ import annotations

import json
import os
import shutil

from app.timeutil import to_db, utcnow


def _folder(app, shop) -> str:
    return os.path.join(app.instance_path, "privacy", str(shop["id"]))


def _customer_ids(db, shop_id, customer: dict) -> list[int]:
    ids = []
    if customer.get("id") is not None:
        ids += [r[0] for r in db.execute("SELECT id FROM customers WHERE shop_id = ? AND external_id = ?",
                                         [shop_id, str(customer["id"])])]
    email = (customer.get("email") or "").strip().lower()
    if email:  # a guest row is keyed by the email
        ids += [r[0] for r in db.execute("SELECT id FROM customers WHERE shop_id = ? AND email = ?",
                                         [shop_id, email])]
    return sorted(set(ids))


def _record(db, shop_id, topic, ref, path):
    db.execute("INSERT INTO privacy_requests (shop_id, topic, customer_ref, file, received_at)"
               " VALUES (?, ?, ?, ?, ?)", [shop_id, topic, ref, path, to_db(utcnow())])


def export_customer(app, db, shop, payload) -> str:
    """Write the customer's stored data (profile, orders, lines) as JSON; returns the file path."""
    customer = payload.get("customer") or {}
    ids = _customer_ids(db, shop["id"], customer)
    people = []
    for cid in ids:
        row = dict(next(db.query("SELECT * FROM customers WHERE id = ?", [cid])))
        orders = list(db.query("SELECT id, external_id, name, created_at, currency, total_minor, refunded_minor,"
                               " status, discount_codes FROM orders WHERE customer_id = ? ORDER BY created_at", [cid]))
        for order in orders:
            order["lines"] = list(db.query("SELECT title, sku, brand, category, quantity, price_minor"
                                           " FROM order_lines WHERE order_id = ?", [order.pop("id")]))
        people.append({"customer": row, "orders": orders})
    folder = _folder(app, shop)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    request_id = (payload.get("data_request") or {}).get("id") or to_db(utcnow()).replace(":", "")
    path = os.path.join(folder, f"data_request_{request_id}_{customer.get('id') or 'guest'}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"shop": shop["handle"], "requested": payload, "records": people}, f, indent=2, default=str)
    os.chmod(path, 0o600)
    _record(db, shop["id"], "customers/data_request", str(customer.get("id") or ""), path)
    return path


def redact_customer(app, db, shop, payload) -> int:
    """Delete the customer's rows (orders keep their totals, customer_id becomes NULL) and the
    stored deliveries that mention them; returns how many customer rows went."""
    customer = payload.get("customer") or {}
    ids = _customer_ids(db, shop["id"], customer)
    for cid in ids:
        db.execute("UPDATE orders SET customer_id = NULL WHERE customer_id = ?", [cid])
        db.execute("DELETE FROM customers WHERE id = ?", [cid])
    needles = [n for n in (customer.get("email"), str(customer.get("id") or "")) if n]
    for needle in needles:
        db.execute("DELETE FROM webhook_events WHERE shop_id = ? AND status <> 'pending'"
                   " AND instr(payload, ?) > 0", [shop["id"], needle])
        # This very request (still pending while it runs) names the customer too.
        db.execute("UPDATE webhook_events SET payload = '{\"redacted\": true}' WHERE shop_id = ?"
                   " AND topic IN ('customers/redact', 'customers/data_request') AND instr(payload, ?) > 0",
                   [shop["id"], needle])
    if customer.get("id") is not None:
        for (path,) in db.execute("SELECT file FROM privacy_requests WHERE shop_id = ? AND customer_ref = ?"
                                  " AND file IS NOT NULL", [shop["id"], str(customer["id"])]).fetchall():
            if os.path.exists(path):
                os.remove(path)
        db.execute("UPDATE privacy_requests SET file = NULL WHERE shop_id = ? AND customer_ref = ?",
                   [shop["id"], str(customer["id"])])
    _record(db, shop["id"], "customers/redact", str(customer.get("id") or ""), None)
    return len(ids)


def redact_shop(app, db, shop, payload) -> int:
    """Delete every customer of the shop, its stored deliveries, exports and credentials."""
    db.execute("UPDATE orders SET customer_id = NULL WHERE shop_id = ?", [shop["id"]])
    gone = db.execute("DELETE FROM customers WHERE shop_id = ?", [shop["id"]]).rowcount
    db.execute("DELETE FROM webhook_events WHERE shop_id = ? AND topic <> 'shop/redact'", [shop["id"]])
    db.execute("UPDATE shops SET credentials = NULL WHERE id = ?", [shop["id"]])
    db.execute("DELETE FROM privacy_requests WHERE shop_id = ?", [shop["id"]])
    shutil.rmtree(_folder(app, shop), ignore_errors=True)
    _record(db, shop["id"], "shop/redact", None, None)
    return gone

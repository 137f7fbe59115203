"""Shopify's mandatory privacy topics: a customer's data export, customer and shop erasure.

Erasure leaves no trace of the person in the database file or the instance folder: their customer
rows go (with what hangs off them), the messages sent to them keep only anonymous facts (flow,
step, status, times), stored deliveries and exports that mention them are deleted, and the
deleted bytes are zeroed (`secure_delete`) and the WAL truncated once the erasure has committed.
Orders stay as anonymous totals.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Callable

from app import webhooks as inbox
from app.db import after_commit
from app.shops import forget_credentials
from app.timeutil import to_db, utcnow
from connectors import store

log = logging.getLogger("winback.privacy")
COMPLIANCE_TOPICS = ("customers/redact", "customers/data_request", "shop/redact")

# An erasure also reaches tables of flows/ (messages, discount codes), which sit above the connectors:
# their owners' functions are handed down by the app factory (`init_app`), like the settings hooks.
# {"messages_of_person": f(db, shop_id, where, params, needles), "messages_of_shop": f(db, shop_id),
#  "code_errors": f(db, where, params)}
ERASERS: dict[str, Callable] = {}
_ERASERS_NEEDED = ("messages_of_person", "messages_of_shop", "code_errors")


def init_app(app, erasers: dict):
    """Take the functions that erase a person's traces from the tables flows/ owns."""
    missing = set(_ERASERS_NEEDED) - set(erasers)
    if missing:
        raise ValueError(f"erasers missing: {', '.join(sorted(missing))}")
    ERASERS.update(erasers)


def _erasers() -> dict:
    # Fail (and so roll back, to be retried) rather than erase only half of a person.
    if not all(name in ERASERS for name in _ERASERS_NEEDED):
        raise RuntimeError("the app factory did not hand down the erasers of flows/; nothing was erased")
    return ERASERS


def _folder(app, shop) -> str:
    return os.path.join(app.instance_path, "privacy", str(shop["id"]))


def _customer_ids(db, shop_id, customer: dict) -> list[int]:
    ids = []
    if customer.get("id") is not None:
        ids += [r[0] for r in db.execute("SELECT id FROM customers WHERE shop_id = ? AND external_id = ?",
                                         [shop_id, str(customer["id"])])]
    email = (customer.get("email") or "").strip().lower()
    if email:  # a guest row is keyed by the email (stored lower-case)
        ids += [r[0] for r in db.execute("SELECT id FROM customers WHERE shop_id = ? AND email = ?",
                                         [shop_id, email])]
    return sorted(set(ids))


def _record(db, shop_id, topic, ref, path):
    db.execute("INSERT INTO privacy_requests (shop_id, topic, customer_ref, file, received_at)"
               " VALUES (?, ?, ?, ?, ?)", [shop_id, topic, ref, path, to_db(utcnow())])


def _messages_where(ids, emails) -> tuple[str, list]:
    """The SQL condition (and its parameters) for the messages sent to these customers/addresses."""
    return ("(customer_id IN (SELECT value FROM json_each(?)) OR lower(email) IN (SELECT value FROM json_each(?)))",
            [json.dumps(ids), json.dumps(sorted(emails))])


def export_customer(app, db, shop, payload) -> str:
    """Write the customer's stored data (profile, orders, lines, the messages sent to them) as JSON;
    returns the file path."""
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
    emails = {(p["customer"].get("email") or "").lower() for p in people} | {(customer.get("email") or "").lower()}
    where, params = _messages_where(ids, emails - {""})
    messages = list(db.query(f"SELECT created_at, sent_at, status, flow, step, email, subject, body_text"
                             f" FROM messages WHERE shop_id = ? AND {where} ORDER BY created_at, id",
                             [shop["id"], *params]))
    folder = _folder(app, shop)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    request_id = (payload.get("data_request") or {}).get("id") or to_db(utcnow()).replace(":", "")
    path = os.path.join(folder, f"data_request_{request_id}_{customer.get('id') or 'guest'}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"shop": shop["handle"], "requested": payload, "records": people, "messages": messages},
                  f, indent=2, default=str)
    os.chmod(path, 0o600)
    _record(db, shop["id"], "customers/data_request", str(customer.get("id") or ""), path)
    return path


def _names_json(value, external_id: str, needles: set[str]) -> bool:
    """Whether a delivery's JSON names the customer: their id as a customer's id, or an address or
    phone of theirs in any string."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "customer" and isinstance(item, dict) and external_id and str(item.get("id")) == external_id:
                return True
            if key == "customer_id" and external_id and str(item) == external_id:
                return True
            if _names_json(item, external_id, needles):
                return True
        return False
    if isinstance(value, list):
        return any(_names_json(item, external_id, needles) for item in value)
    return isinstance(value, str) and any(n in value.lower() for n in needles)


def _mentions(external_id: str, needles: set[str]):
    def check(payload: str, last_error: str) -> bool:
        if any(n in last_error.lower() for n in needles):
            return True
        try:
            return _names_json(json.loads(payload), external_id, needles)
        except ValueError:  # not JSON: plain text search
            return any(n in payload.lower() for n in needles | ({external_id} - {""}))
    return check


def _wipe_freed_bytes(db):
    """Deleted bytes live on in the WAL until it is checkpointed: copy it back and truncate it.
    Runs after the erasure commits (a checkpoint cannot run inside a transaction)."""
    def checkpoint():
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning("the WAL could not be truncated after a redaction (a reader was busy);"
                        " SQLite's next checkpoint will overwrite it")
    after_commit(db, checkpoint)


def redact_customer(app, db, shop, payload) -> int:
    """Erase the customer: their rows (orders keep their totals, customer_id becomes NULL), the
    personal parts of the messages sent to them, the deliveries and exports that mention them;
    returns how many customer rows went."""
    erase = _erasers()
    db.execute("PRAGMA secure_delete = ON")
    customer = payload.get("customer") or {}
    external_id = str(customer.get("id") or "")
    ids = _customer_ids(db, shop["id"], customer)
    rows = list(db.query("SELECT email, first_name, last_name FROM customers WHERE id IN"
                         " (SELECT value FROM json_each(?))", [json.dumps(ids)]))
    emails = {e.strip().lower() for e in [customer.get("email")] + [r["email"] for r in rows] if e and e.strip()}
    phone = (customer.get("phone") or "").strip()
    needles = emails | ({phone.lower()} if phone else set())

    where, params = _messages_where(ids, emails)
    erase["messages_of_person"](db, shop["id"], where, params,
                                needles | {n.lower() for r in rows for n in (r["first_name"], r["last_name"]) if n})
    erase["code_errors"](db, "customer_id IN (SELECT value FROM json_each(?))", [json.dumps(ids)])
    store.erase_customers(db, ids)
    inbox.scrub_payloads(db, shop["id"], needles | ({external_id} - {""}), _mentions(external_id, needles),
                         keep_topics=COMPLIANCE_TOPICS)
    _remove_exports(app, db, shop, external_id, needles)
    inbox.scrub_spool(app, shop["id"], needles | ({external_id} - {""}))
    _record(db, shop["id"], "customers/redact", external_id, None)
    _wipe_freed_bytes(db)
    return len(ids)


def _remove_exports(app, db, shop, external_id, needles):
    """Delete the data exports made for this customer, or that mention them."""
    folder = _folder(app, shop)
    gone = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().lower()
        if (external_id and name.endswith(f"_{external_id}.json")) or any(n in text for n in needles):
            os.remove(path)
            gone.append(path)
    db.execute("UPDATE privacy_requests SET file = NULL WHERE shop_id = ? AND (file IN"
               " (SELECT value FROM json_each(?)) OR (customer_ref = ? AND customer_ref <> ''))",
               [shop["id"], json.dumps(gone), external_id])


def redact_shop(app, db, shop, payload) -> int:
    """Erase every customer of the shop, the messages sent, its stored deliveries, exports and
    credentials; anonymous order totals stay."""
    erase = _erasers()
    db.execute("PRAGMA secure_delete = ON")
    erase["messages_of_shop"](db, shop["id"])
    erase["code_errors"](db, "shop_id = ?", [shop["id"]])
    gone = store.erase_shop_customers(db, shop["id"])
    inbox.erase_shop_events(db, shop["id"], "shop/redact")
    forget_credentials(db, shop["id"])
    db.execute("DELETE FROM privacy_requests WHERE shop_id = ?", [shop["id"]])
    shutil.rmtree(_folder(app, shop), ignore_errors=True)
    inbox.scrub_spool(app, shop["id"])
    _record(db, shop["id"], "shop/redact", None, None)
    _wipe_freed_bytes(db)
    return gone

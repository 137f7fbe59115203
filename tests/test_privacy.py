"""Shopify's privacy topics leave nothing behind: after `customers/redact` (or `shop/redact`) the
person's email, names, address and phone are found in no byte of the database file, its WAL, or
any file of the instance folder; the data export lists the messages sent to the customer."""
import json
import time
from pathlib import Path

import pytest

from app import webhooks as inbox
from app.db import connect
from app.timeutil import to_db, utcnow
from connectors.shopify import oauth
from connectors.shopify.install import save_shop
from tests.fake_shopify import FIXTURES, FakeShopify, webhook_headers, winback_app_for

SHOP = "privacy-test.myshopify.com"
LETTERS = "abcdefghijklmnop"


@pytest.fixture
def fake():
    server = FakeShopify(shop=SHOP).start()
    yield server
    server.stop()


@pytest.fixture
def papp(tmp_path, fake):
    return winback_app_for(fake, tmp_path / "instance")  # the database in the instance folder, as in production


@pytest.fixture
def pdb(papp):
    handle = connect(papp.config["DATABASE"])
    yield handle
    handle.close()


@pytest.fixture
def shop(papp, pdb, fake):
    return save_shop(papp, pdb, SHOP, oauth.exchange_code(papp, SHOP, fake.issue_code()), verify=True)


def person(i):
    """A customer whose every personal string is unique (no one's is part of another's)."""
    s = LETTERS[i]
    return {"id": 880000100 + i, "order_id": 770000100 + i, "email": f"ann.{s}.redactme@example.org",
            "first": f"Annabel{s}x", "last": f"Zwiebelmey{s}r", "street": f"Quokka{s}weg 17",
            "phone": f"+3161199{i:04d}", "address_phone": f"555-0{i:03d}-{s}{s}"}


def _as(text, p):
    for old, new in (("bob.norman@mail.example.com", p["email"]), ('"Bob Norman"', f'"{p["first"]} {p["last"]}"'),
                     ('"Bob"', f'"{p["first"]}"'), ('"Norman"', f'"{p["last"]}"'),
                     ("Chestnut Street 92", p["street"]), ("+16136120707", p["phone"]),
                     ("555-625-1199", p["address_phone"]), ("+1(502)-459-2181", p["address_phone"]),
                     ("207119551", str(p["id"])), ("450789469", str(p["order_id"]))):
        text = text.replace(old, new)
    return json.loads(text)


def customer_payload(p):
    return _as((FIXTURES / "customer.json").read_text(), p)["customer"]


def order_payload(p):
    return _as((FIXTURES / "order.json").read_text(), p)["order"]


def deliver(client, fake, topic, payload):
    body = json.dumps(payload).encode()
    resp = client.post("/webhooks/shopify", data=body,
                       headers=webhook_headers(fake.secret, body, topic, SHOP, f"wh-{time.monotonic_ns()}"))
    assert resp.status_code == 200, resp.get_data(as_text=True)


def add_message(db, shop, p, n, status="sent", error=None):
    # The message log as the sender leaves it: address, subject and a body that greets by name.
    cid = db.execute("SELECT id FROM customers WHERE shop_id = ? AND external_id = ?",
                     [shop["id"], str(p["id"])]).fetchone()[0]
    now = to_db(utcnow())
    db.execute("INSERT INTO messages (shop_id, customer_id, flow, step, idempotency_key, is_marketing, email, locale,"
               " subject, body_text, body_html, status, created_at, scheduled_for, sent_at, error)"
               " VALUES (?, ?, 'winback', ?, ?, 1, ?, 'en', ?, ?, ?, ?, ?, ?, ?, ?)",
               [shop["id"], cid, n, f"k-{p['id']}-{n}", p["email"], f"{p['first']}, we miss you",
                f"Hi {p['first']} {p['last']}, come back!", f"<p>Hi {p['first']}, come back!</p>",
                status, now, now, now if status == "sent" else None, error])


def populate(papp, pdb, fake, shop, people):
    client = papp.test_client()
    for p in people:
        deliver(client, fake, "customers/create", customer_payload(p))
        deliver(client, fake, "orders/create", order_payload(p))
    assert inbox.process_due(papp, pdb)["done"] == 2 * len(people)
    for p in people:
        add_message(pdb, shop, p, 0)
        add_message(pdb, shop, p, 1, status="failed", error=f"550 5.1.1 <{p['email']}>: mailbox unavailable")
    return client


def traces(root: Path, p) -> list[str]:
    """Every file under `root` (database, WAL, exports, ...) holding one of the person's strings."""
    needles = [p[k].encode() for k in ("email", "first", "last", "street", "phone", "address_phone")]
    needles.append(p["email"].upper().encode())
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {n.decode()}" for n in needles if n in data]
    return found


def totals(db):
    return db.execute("SELECT COUNT(*), SUM(total_minor), SUM(refunded_minor) FROM orders").fetchone()


def test_customer_redact_leaves_no_trace(papp, pdb, fake, shop, tmp_path):
    ann, other = person(0), person(1)
    client = populate(papp, pdb, fake, shop, [ann, other])
    deliver(client, fake, "customers/data_request", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": ann["id"], "email": ann["email"], "phone": ann["phone"]},
        "orders_requested": [ann["order_id"]], "data_request": {"id": 4242}})
    assert inbox.process_due(papp, pdb)["done"] == 1
    assert traces(tmp_path, ann) and traces(tmp_path, other)  # the search finds what is there
    before = totals(pdb)
    # A delivery that was spooled while the database was busy and could not be read back (kept aside
    # as .bad): it mentions the person too.
    spool = Path(inbox.spool_folder(papp))
    spool.mkdir(exist_ok=True)
    for who in (ann, other):
        (spool / f"0001-{who['id']}.json.bad").write_text(
            f'{{"shop_id": {shop["id"]}, "payload": "{{\\"email\\": \\"{who["email"]}\\", \\"first_name')

    deliver(client, fake, "customers/redact", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": ann["id"], "email": ann["email"], "phone": ann["phone"]},
        "orders_to_redact": [ann["order_id"]]})
    assert inbox.process_due(papp, pdb)["done"] == 1

    assert traces(tmp_path, ann) == []
    assert traces(tmp_path, other)  # the other customer is untouched
    assert [p.name for p in spool.iterdir()] == [f"0001-{other['id']}.json.bad"]
    assert (tmp_path / "instance" / "winback.db-wal").stat().st_size == 0 or \
        not (tmp_path / "instance" / "winback.db-wal").exists()
    assert totals(pdb) == before  # orders stay as anonymous totals
    assert pdb.execute("SELECT customer_id FROM orders WHERE external_id = ?",
                       [str(ann["order_id"])]).fetchone()[0] is None
    # the message log keeps what was sent when, without the person
    rows = pdb.execute("SELECT flow, step, status, email, subject, body_text, body_html FROM messages"
                       " WHERE idempotency_key LIKE ? ORDER BY step", [f"k-{ann['id']}-%"]).fetchall()
    assert rows == [("winback", 0, "sent", None, "", "", None), ("winback", 1, "failed", None, "", "", None)]
    events = pdb.execute("SELECT topic, status, payload FROM webhook_events WHERE topic = 'customers/redact'").fetchall()
    assert events == [("customers/redact", "done", '{"redacted": true}')]


def test_data_request_lists_the_messages_sent(papp, pdb, fake, shop):
    ann = person(2)
    client = populate(papp, pdb, fake, shop, [ann, person(3)])
    deliver(client, fake, "customers/data_request", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": ann["id"], "email": ann["email"]},
        "orders_requested": [ann["order_id"]], "data_request": {"id": 77}})
    assert inbox.process_due(papp, pdb)["done"] == 1
    path = pdb.execute("SELECT file FROM privacy_requests WHERE topic = 'customers/data_request'").fetchone()[0]
    export = json.loads(Path(path).read_text())
    assert export["records"][0]["customer"]["email"] == ann["email"]
    assert [(m["step"], m["status"], m["email"], m["subject"]) for m in export["messages"]] == [
        (0, "sent", ann["email"], f"{ann['first']}, we miss you"),
        (1, "failed", ann["email"], f"{ann['first']}, we miss you")]
    assert export["messages"][0]["body_text"] == f"Hi {ann['first']} {ann['last']}, come back!"


def test_shop_redact_of_ten_customers_leaves_no_trace(papp, pdb, fake, shop, tmp_path):
    people = [person(i) for i in range(10)]
    client = populate(papp, pdb, fake, shop, people)
    deliver(client, fake, "customers/data_request", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": people[4]["id"], "email": people[4]["email"]},
        "orders_requested": [], "data_request": {"id": 5}})
    assert inbox.process_due(papp, pdb)["done"] == 1
    assert all(traces(tmp_path, p) for p in people)
    before = totals(pdb)

    deliver(client, fake, "shop/redact", {"shop_id": 1, "shop_domain": SHOP})
    assert inbox.process_due(papp, pdb)["done"] == 1

    left = {p["email"]: traces(tmp_path, p) for p in people}
    assert left == {p["email"]: [] for p in people}
    assert totals(pdb) == before
    assert pdb.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0

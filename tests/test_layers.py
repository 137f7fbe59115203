"""One owner per table: only the module that owns a table writes it; pages and CLI commands write
nothing themselves; the unsubscribe exit exists once.

The source is read as text: any statement that writes (INSERT, UPDATE, DELETE, REPLACE) names its
table, and the module holding it must be that table's owner. A new writer elsewhere fails here
with the file and the table, so it goes through the owner's named function instead.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "connectors", "flows")

# table -> the module that owns it (see the table in flows/enrolments.py)
OWNERS = {
    "shops": "app/shops.py",
    "users": "app/users.py",
    "user_shops": "app/users.py",
    "shop_settings": "app/settings.py",
    "webhook_events": "app/webhooks.py",
    "sync_runs": "app/runs.py",
    "login_failures": "app/login_throttle.py",
    "customers": "connectors/store.py",
    "orders": "connectors/store.py",
    "order_lines": "connectors/store.py",
    "products": "connectors/store.py",
    "sync_state": "connectors/sync.py",
    "shopify_installs": "connectors/shopify/subscriptions.py",
    "privacy_requests": "connectors/shopify/privacy.py",
    "enrolments": "flows/enrolments.py",
    "messages": "flows/messages.py",
    "discount_codes": "flows/codes.py",
    "leases": "flows/lease.py",
    "shop_snapshots": "flows/refresh.py",
    "snapshot_marks": "app/snapshot_marks.py",
    "customer_segments": "flows/segments.py",
    "clicks": "flows/clicks.py",
    "campaigns": "flows/campaigns.py",
    "nps_answers": "flows/nps.py",
    "offer_arms": "flows/offer_arms.py",
    "offer_test_history": "flows/offer_arms.py",
    "owner_segments": "flows/owner_segments.py",
    # the scratch database of a batch being imported (not the shop's database)
    "stage_orders": "connectors/staging.py",
    "stage_lines": "connectors/staging.py",
}

# Writers besides the owner, each with the reason it is still there. Keep this list short.
SHARED = {
    # Each platform's connect flow keeps its own rows (the `platform` column); neither reads the other's.
    "oauth_states": {"connectors/shopify/oauth.py", "connectors/woocommerce/connect.py"},
    # The intelligence pipeline fills one row per customer in stages: metrics builds it, scores and
    # segments add their columns (one concern, flows/intelligence/ in the architecture).
    "customer_snapshots": {"flows/metrics.py", "flows/scores.py", "flows/segments.py"},
}

WRITE = re.compile(r"\b(?:UPDATE|INSERT(?:\s+OR\s+[A-Z]+)?\s+INTO|DELETE\s+FROM|REPLACE\s+INTO)\s+([a-z_]+(?:\.[a-z_]+)?)")
API_WRITE = re.compile(r"""\[\s*["']([a-z_]+)["']\s*\]\s*\.\s*(?:insert|upsert|insert_all|upsert_all|update|delete|delete_where)\(""")


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "app/migrations.py":  # migrations change the schema and fix data once
                continue
            yield rel, path.read_text(encoding="utf-8")


def writes() -> dict[str, set[str]]:
    """{table: {module that writes it}} found in the source."""
    found = {}
    for rel, text in _sources():
        for match in list(WRITE.finditer(text)) + list(API_WRITE.finditer(text)):
            table = match.group(1)
            if table.startswith("temp."):
                continue
            found.setdefault(table, set()).add(rel)
    return found


def test_the_scan_sees_the_writers():
    """The scan itself finds what it looks for (else every other test here would pass vacuously)."""
    found = writes()
    assert "flows/enrolments.py" in found["enrolments"]
    assert "connectors/store.py" in found["customers"]
    assert WRITE.search('db.execute("INSERT OR IGNORE INTO messages (a) VALUES (?)")').group(1) == "messages"
    assert WRITE.search("DELETE FROM\n    customers WHERE id = ?").group(1) == "customers"
    assert API_WRITE.search('db["users"].update(1, {"email": x})').group(1) == "users"


def test_every_table_is_written_by_its_owner_alone():
    """No module but a table's owner holds a statement that writes it."""
    strays = []
    for table, modules in sorted(writes().items()):
        allowed = SHARED.get(table) or {OWNERS.get(table, "<no owner declared>")}
        strays += [f"{module} writes {table} (owner: {', '.join(sorted(allowed))})"
                   for module in sorted(modules - allowed)]
    assert strays == []


def test_pages_and_cli_commands_hold_no_writing_sql():
    """The web views and the CLI call the owners; they write nothing themselves."""
    offenders = [f"{rel}: {m.group(0)}" for rel, text in _sources()
                 if rel.startswith("app/web/") or rel == "app/cli.py"
                 for m in list(WRITE.finditer(text)) + list(API_WRITE.finditer(text))]
    assert offenders == []


def test_the_unsubscribe_exit_exists_once():
    """One statement ends enrolments because of an unsubscribe; the link's POST and the tick share it."""
    holders = [rel for rel, text in _sources() if "exit_reason = 'unsubscribed'" in text]
    assert holders == ["flows/enrolments.py"]
    text = (ROOT / "flows/enrolments.py").read_text(encoding="utf-8")
    assert text.count("exit_reason = 'unsubscribed'") == 1


def test_an_erasure_without_the_erasers_of_flows_erases_nothing(app, db, monkeypatch):
    """Shopify's erasure reaches messages and codes through functions the app factory hands down;
    were they missing, it refuses (the event is retried) rather than leave the person half erased."""
    from app.db import write_transaction
    from app.shops import create_shop
    from connectors.shopify import privacy
    shop = create_shop(db, "s.myshopify.com", "shopify")
    db.execute("INSERT INTO customers (shop_id, external_id, email) VALUES (?, '7', 'ann@example.com')", [shop["id"]])
    assert set(privacy.ERASERS) == {"messages_of_person", "messages_of_shop", "code_errors"}  # the factory's
    monkeypatch.setattr(privacy, "ERASERS", {})
    with pytest.raises(RuntimeError, match="erasers"):
        with write_transaction(db):
            privacy.redact_customer(app, db, shop, {"customer": {"id": 7, "email": "ann@example.com"}})
    assert db.execute("SELECT COUNT(*) FROM customers WHERE email = 'ann@example.com'").fetchone()[0] == 1

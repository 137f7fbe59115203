"""The schema as numbered migrations (sqlite-utils `Migrations`).

Never edit an applied migration: add a new one. Times are UTC text `YYYY-MM-DDTHH:MM:SSZ`; money is
integer minor units of the row's currency; every row belongs to a shop.
"""
from flask import current_app, has_app_context
from sqlite_utils import Migrations

from .db import get_db
from .settings import encrypt_plain_secrets

migrations = Migrations("winback")


def _run(db, statements: str):
    # executescript() would commit the migration's transaction, so run statement by statement.
    for statement in statements.split(";\n"):
        if statement.strip():
            db.execute(statement)


@migrations(name="0001_shops_customers_orders")
def m0001(db):
    _run(db, """
CREATE TABLE shops (
    id INTEGER PRIMARY KEY,
    handle TEXT NOT NULL UNIQUE,
    platform TEXT NOT NULL CHECK (platform IN ('demo', 'import', 'shopify', 'woocommerce')),
    name TEXT NOT NULL,
    currency TEXT NOT NULL DEFAULT 'EUR',
    timezone TEXT NOT NULL DEFAULT 'UTC',
    locale TEXT NOT NULL DEFAULT 'en',
    base_url TEXT,
    credentials TEXT,
    created_at TEXT NOT NULL,
    last_sync_at TEXT
);
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    locale TEXT,
    accepts_marketing INTEGER CHECK (accepts_marketing IN (0, 1)),
    marketing_updated_at TEXT,
    created_at TEXT,
    updated_at TEXT,
    UNIQUE (shop_id, external_id)
);
CREATE INDEX customers_shop_email ON customers (shop_id, email);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    title TEXT,
    sku TEXT,
    brand TEXT,
    category TEXT,
    price_minor INTEGER,
    replenishable INTEGER NOT NULL DEFAULT 0 CHECK (replenishable IN (0, 1)),
    replenish_days INTEGER CHECK (replenish_days > 0),
    updated_at TEXT,
    UNIQUE (shop_id, external_id)
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    name TEXT,
    customer_id INTEGER REFERENCES customers(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    order_date TEXT NOT NULL,
    currency TEXT NOT NULL,
    total_minor INTEGER NOT NULL CHECK (total_minor >= 0),
    refunded_minor INTEGER NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    status TEXT NOT NULL CHECK (status IN ('paid', 'pending', 'refunded', 'cancelled')),
    financial_status TEXT,
    is_test INTEGER NOT NULL DEFAULT 0 CHECK (is_test IN (0, 1)),
    discount_codes TEXT,
    updated_at TEXT,
    UNIQUE (shop_id, external_id)
);
CREATE INDEX orders_customer ON orders (customer_id, created_at);
CREATE INDEX orders_shop_created ON orders (shop_id, created_at);
CREATE TABLE order_lines (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    line_key TEXT NOT NULL,
    product_id INTEGER REFERENCES products(id) ON DELETE SET NULL,
    sku TEXT,
    title TEXT,
    brand TEXT,
    category TEXT,
    quantity INTEGER NOT NULL DEFAULT 1 CHECK (quantity >= 0),
    price_minor INTEGER,
    UNIQUE (order_id, line_key)
);
CREATE INDEX order_lines_product ON order_lines (product_id)
""")


@migrations(name="0002_users_settings_runs")
def m0002(db):
    _run(db, """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at TEXT NOT NULL
);
CREATE TABLE user_shops (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, shop_id)
) WITHOUT ROWID;
CREATE TABLE shop_settings (
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (shop_id, key)
) WITHOUT ROWID;
CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    source TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    stats TEXT,
    error TEXT
);
CREATE INDEX sync_runs_shop ON sync_runs (shop_id, started_at)
""")


@migrations(name="0003_customer_snapshots")
def m0003(db):
    _run(db, """
CREATE TABLE customer_snapshots (
    customer_id INTEGER PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    purchases INTEGER NOT NULL DEFAULT 0,
    purchase_days INTEGER NOT NULL DEFAULT 0,
    clv_minor INTEGER NOT NULL DEFAULT 0,
    aov_minor INTEGER,
    first_order_at TEXT,
    last_order_at TEXT,
    first_date TEXT,
    second_date TEXT,
    last_date TEXT,
    avg_gap_days REAL,
    days_since_first INTEGER,
    days_since_last INTEGER,
    status TEXT CHECK (status IN ('active', 'lapsed', 'lost')),
    lapse_after_days REAL,
    p_alive REAL,
    expected_90d REAL,
    expected_next_order TEXT,
    r_score INTEGER,
    f_score INTEGER,
    m_score INTEGER,
    stage TEXT
);
CREATE INDEX customer_snapshots_shop ON customer_snapshots (shop_id, status);
CREATE INDEX orders_purchases ON orders (shop_id, customer_id, order_date, created_at, total_minor,
    refunded_minor, currency) WHERE status = 'paid' AND is_test = 0;
CREATE TABLE customer_segments (
    customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    segment TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (customer_id, segment)
) WITHOUT ROWID;
CREATE INDEX customer_segments_shop ON customer_segments (shop_id, segment);
CREATE TABLE shop_snapshots (
    shop_id INTEGER PRIMARY KEY REFERENCES shops(id) ON DELETE CASCADE,
    computed_for TEXT NOT NULL,
    computed_at TEXT NOT NULL,
    now_date TEXT NOT NULL,
    customers INTEGER NOT NULL,
    retention_days REAL,
    one_time_return_days REAL,
    vip_threshold_minor INTEGER,
    model TEXT,
    seconds REAL
)
""")


@migrations(name="0004_webhooks_sync_state")
def m0004(db):
    _run(db, """
CREATE TABLE webhook_events (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    platform TEXT NOT NULL,
    topic TEXT NOT NULL,
    delivery_id TEXT,
    received_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    processed_at TEXT,
    UNIQUE (shop_id, delivery_id)
);
CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at);
CREATE TABLE sync_state (
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    value TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (shop_id, resource)
) WITHOUT ROWID;
CREATE TABLE oauth_states (
    state TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    shop_handle TEXT,
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    data TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
)
""")


@migrations(name="0005_shopify")
def m0005(db):
    _run(db, """
CREATE TABLE shopify_installs (
    shop_id INTEGER PRIMARY KEY REFERENCES shops(id) ON DELETE CASCADE,
    installed_at TEXT,
    uninstalled_at TEXT,
    webhooks_registered_at TEXT
);
CREATE TABLE privacy_requests (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    topic TEXT NOT NULL,
    customer_ref TEXT,
    file TEXT,
    received_at TEXT NOT NULL
)
""")


@migrations(name="0006_flows_codes_messages")
def m0006(db):
    _run(db, """
ALTER TABLE customers ADD COLUMN unsubscribed_at TEXT;
ALTER TABLE customers ADD COLUMN marketing_inactive_at TEXT;
ALTER TABLE customers ADD COLUMN marketing_confirmed_at TEXT;
CREATE TABLE enrolments (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    flow TEXT NOT NULL,
    anchor_order_at TEXT NOT NULL,
    reason TEXT,
    held_out INTEGER NOT NULL DEFAULT 0 CHECK (held_out IN (0, 1)),
    discounted INTEGER NOT NULL DEFAULT 0 CHECK (discounted IN (0, 1)),
    entered_at TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    first_sent_at TEXT,
    next_due_at TEXT,
    deferred_reason TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'held_out', 'completed', 'exited', 'converted')),
    exit_reason TEXT,
    ended_at TEXT,
    converted_order_id INTEGER REFERENCES orders(id) ON DELETE SET NULL,
    UNIQUE (customer_id, flow, anchor_order_at)
);
CREATE UNIQUE INDEX enrolments_one_running ON enrolments (customer_id) WHERE status IN ('active', 'held_out');
CREATE INDEX enrolments_shop_status ON enrolments (shop_id, status, next_due_at);
CREATE TABLE discount_codes (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    customer_id INTEGER REFERENCES customers(id) ON DELETE SET NULL,
    enrolment_id INTEGER REFERENCES enrolments(id) ON DELETE SET NULL,
    code TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('percent', 'free_shipping')),
    percent REAL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    platform_ref TEXT,
    used_order_id INTEGER REFERENCES orders(id) ON DELETE SET NULL,
    used_at TEXT,
    UNIQUE (shop_id, code)
);
CREATE INDEX discount_codes_enrolment ON discount_codes (enrolment_id);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    customer_id INTEGER REFERENCES customers(id) ON DELETE SET NULL,
    enrolment_id INTEGER REFERENCES enrolments(id) ON DELETE SET NULL,
    flow TEXT NOT NULL,
    step INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    is_marketing INTEGER NOT NULL CHECK (is_marketing IN (0, 1)),
    email TEXT,
    locale TEXT,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT,
    discount_code_id INTEGER REFERENCES discount_codes(id) ON DELETE SET NULL,
    status TEXT NOT NULL CHECK (status IN ('outbox', 'sending', 'sent', 'failed')),
    created_at TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    sent_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    message_id TEXT
);
CREATE INDEX messages_customer ON messages (customer_id, created_at);
CREATE INDEX messages_shop_status ON messages (shop_id, status);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID
""")


@migrations(name="0007_delivery")
def m0007(db):
    _run(db, """
ALTER TABLE customers ADD COLUMN email_failed_at TEXT;
ALTER TABLE customers ADD COLUMN email_failure TEXT;
ALTER TABLE customers ADD COLUMN unsubscribe_synced_at TEXT;
CREATE INDEX messages_due ON messages (status, scheduled_for)
""")


@migrations(name="0008_ui_user_email")
def m0008(db):
    _run(db, """
ALTER TABLE users ADD COLUMN email TEXT
""")


@migrations(name="0009_safe_sending")
def m0009(db):
    # SQLite cannot change a CHECK constraint in place: the messages table is rebuilt so that a step
    # can be `withheld` (with its reason) or `unknown` (interrupted mid-send), and so that a message
    # is stored before it is rendered (its subject and body are written at delivery).
    _run(db, """
CREATE TABLE messages_new (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    customer_id INTEGER REFERENCES customers(id) ON DELETE SET NULL,
    enrolment_id INTEGER REFERENCES enrolments(id) ON DELETE SET NULL,
    flow TEXT NOT NULL,
    step INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    is_marketing INTEGER NOT NULL CHECK (is_marketing IN (0, 1)),
    email TEXT,
    locale TEXT,
    subject TEXT,
    body_text TEXT,
    body_html TEXT,
    discount_code_id INTEGER REFERENCES discount_codes(id) ON DELETE SET NULL,
    status TEXT NOT NULL CHECK (status IN ('outbox', 'sending', 'sent', 'failed', 'withheld', 'unknown')),
    created_at TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    planned_for TEXT,
    sent_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    withheld_reason TEXT,
    message_id TEXT
);
INSERT INTO messages_new (id, shop_id, customer_id, enrolment_id, flow, step, idempotency_key, is_marketing, email,
                          locale, subject, body_text, body_html, discount_code_id, status, created_at, scheduled_for,
                          planned_for, sent_at, attempts, error, message_id)
SELECT id, shop_id, customer_id, enrolment_id, flow, step, idempotency_key, is_marketing, email, locale, subject,
       body_text, body_html, discount_code_id, status, created_at, scheduled_for, created_at, sent_at, attempts, error,
       message_id FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_customer ON messages (customer_id, created_at);
CREATE INDEX messages_shop_status ON messages (shop_id, status);
CREATE INDEX messages_due ON messages (status, scheduled_for);
CREATE INDEX messages_marketing_sent ON messages (customer_id, sent_at) WHERE is_marketing = 1;
ALTER TABLE enrolments ADD COLUMN step_planned_at TEXT;
ALTER TABLE discount_codes ADD COLUMN step INTEGER;
ALTER TABLE discount_codes ADD COLUMN platform_state TEXT NOT NULL DEFAULT 'local'
    CHECK (platform_state IN ('local', 'reserved', 'created', 'failed'));
ALTER TABLE discount_codes ADD COLUMN platform_error TEXT;
CREATE UNIQUE INDEX discount_codes_step ON discount_codes (enrolment_id, step) WHERE step IS NOT NULL
""")


@migrations(name="0010_inbox")
def m0010(db):
    # A product first seen on a delivered order line, before the store was asked about it (the
    # webhook handler must not call the store): the next sync fills in its brand and category.
    _run(db, """
ALTER TABLE products ADD COLUMN details_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX products_details_pending ON products (shop_id) WHERE details_pending = 1
""")
    # Deliveries that earlier versions gave up on because the process had not imported the
    # platform's handlers were never processed: they get their turn now.
    db.execute("UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = received_at"
               " WHERE status = 'failed' AND last_error LIKE 'LookupError: no handler for %'")


@migrations(name="0011_accounts")
def m0011(db):
    # session_token: part of every login cookie; a new one ends the user's sessions (logout, password).
    # login_failures: the shared counts of app/login_throttle.py.
    _run(db, """
ALTER TABLE users ADD COLUMN session_token TEXT;
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, at);
CREATE INDEX login_failures_at ON login_failures (at)
""")
    # A shop's SMTP URL (it may hold a password) was stored in plain text before; encrypt it now when
    # the installation's key is at hand (init-db, serve, worker: always), else on its next save.
    if has_app_context():
        encrypt_plain_secrets(current_app, db)


@migrations(name="0015_dkim")
def m0015(db):
    # A shop's DKIM signing key (app/dkim.py): JSON {domain, selector, private_key}, encrypted with
    # the installation's key like the credentials; NULL: the shop's mail goes out unsigned.
    _run(db, "ALTER TABLE shops ADD COLUMN dkim_key TEXT")


@migrations(name="0016_clicks")
def m0016(db):
    # One row per recorded click on a tracked email link (flows/clicks.py owns it). `link` names the
    # link within its message (shop, keep, ...); `suspect` = 1: a mail scanner's prefetch, kept to
    # show but never counted. At most one counted click per message and link.
    _run(db, """
CREATE TABLE clicks (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    link TEXT NOT NULL,
    clicked_at TEXT NOT NULL,
    suspect INTEGER NOT NULL DEFAULT 0,
    reason TEXT
);
CREATE UNIQUE INDEX clicks_counted ON clicks (message_id, link) WHERE suspect = 0;
CREATE INDEX clicks_message ON clicks (message_id, clicked_at)
""")


@migrations(name="0017_offers")
def m0017(db):
    # Offers beyond percent: a code can be an amount off (`amount_minor`) and ask for a minimum order
    # (`min_order_minor`), both in minor units of `currency` (the shop's when the code was made).
    # SQLite cannot change the CHECK on `kind` in place, so the table is rebuilt with the same ids.
    # Dropping the old table runs an implicit DELETE whose ON DELETE SET NULL would empty
    # messages.discount_code_id (foreign keys are on, and cannot be turned off inside the
    # migration's transaction): the links are kept aside and put back.
    _run(db, """
CREATE TEMP TABLE offers_message_codes AS
    SELECT id, discount_code_id FROM messages WHERE discount_code_id IS NOT NULL;
CREATE TABLE discount_codes_new (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    customer_id INTEGER REFERENCES customers(id) ON DELETE SET NULL,
    enrolment_id INTEGER REFERENCES enrolments(id) ON DELETE SET NULL,
    code TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('percent', 'amount', 'free_shipping')),
    percent REAL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    platform_ref TEXT,
    used_order_id INTEGER REFERENCES orders(id) ON DELETE SET NULL,
    used_at TEXT,
    step INTEGER,
    platform_state TEXT NOT NULL DEFAULT 'local' CHECK (platform_state IN ('local', 'reserved', 'created', 'failed')),
    platform_error TEXT,
    amount_minor INTEGER CHECK (amount_minor > 0),
    min_order_minor INTEGER CHECK (min_order_minor > 0),
    currency TEXT,
    UNIQUE (shop_id, code),
    CHECK (kind != 'amount' OR (amount_minor IS NOT NULL AND currency IS NOT NULL)),
    CHECK (min_order_minor IS NULL OR currency IS NOT NULL)
);
INSERT INTO discount_codes_new (id, shop_id, customer_id, enrolment_id, code, kind, percent, created_at, expires_at,
                                platform_ref, used_order_id, used_at, step, platform_state, platform_error)
SELECT id, shop_id, customer_id, enrolment_id, code, kind, percent, created_at, expires_at, platform_ref,
       used_order_id, used_at, step, platform_state, platform_error FROM discount_codes;
DROP TABLE discount_codes;
ALTER TABLE discount_codes_new RENAME TO discount_codes;
CREATE INDEX discount_codes_enrolment ON discount_codes (enrolment_id);
CREATE UNIQUE INDEX discount_codes_step ON discount_codes (enrolment_id, step) WHERE step IS NOT NULL;
UPDATE messages SET discount_code_id = (SELECT k.discount_code_id FROM temp.offers_message_codes k
                                        WHERE k.id = messages.id)
WHERE id IN (SELECT id FROM temp.offers_message_codes);
DROP TABLE temp.offers_message_codes
""")


@migrations(name="0019_product_details")
def m0019(db):
    # What an email's product block shows and links to, and whether it may show the product at all.
    _run(db, """
ALTER TABLE products ADD COLUMN url TEXT;
ALTER TABLE products ADD COLUMN image_url TEXT;
ALTER TABLE products ADD COLUMN published INTEGER CHECK (published IN (0, 1));
ALTER TABLE products ADD COLUMN in_stock INTEGER CHECK (in_stock IN (0, 1));
ALTER TABLE products ADD COLUMN variant_id TEXT;
ALTER TABLE products ADD COLUMN created_at TEXT
""")


@migrations(name="0020_owner_segments")
def m0020(db):
    # The owner's own segments (flows/owner_segments.py): a rule each; members live in customer_segments.
    _run(db, """
CREATE TABLE owner_segments (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    rule TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    members INTEGER,
    refreshed_for TEXT,
    error TEXT
);
CREATE UNIQUE INDEX owner_segments_name ON owner_segments (shop_id, name COLLATE NOCASE)
""")


@migrations(name="0021_campaigns")
def m0021(db):
    # One-off emails to a segment (flows/campaigns.py). Their members are enrolments of the one-step
    # source `campaign:<id>`, which run beside a flow: the one-running-enrolment rule is for flows.
    _run(db, """
CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    segment TEXT NOT NULL,
    template TEXT NOT NULL,
    subject TEXT,
    offer TEXT,
    holdout REAL NOT NULL CHECK (holdout >= 0 AND holdout <= 0.5),
    scheduled_for TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'sending', 'sent', 'cancelled', 'missed')),
    note TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX campaigns_shop ON campaigns (shop_id, status, scheduled_for);
DROP INDEX enrolments_one_running;
CREATE UNIQUE INDEX enrolments_one_running ON enrolments (customer_id)
    WHERE status IN ('active', 'held_out') AND flow NOT LIKE 'campaign:%'
""")


@migrations(name="0022_journey")
def m0022(db):
    # The entry segment that admitted an enrolment (category win-back: `category_lapsed:<category>`,
    # whose category its emails are about), and the answers to the after-purchase journey's 0-10
    # recommendation question (flows/nps.py owns them): one per email, a later click updates it.
    # A shop that saved the one-email second_order (turned it on or off, or changed its control
    # group) gets the journey's three emails too, keeping its own on/off and control group.
    _run(db, """
ALTER TABLE enrolments ADD COLUMN segment TEXT;
CREATE TABLE nps_answers (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    flow TEXT NOT NULL,
    score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 10),
    comment TEXT,
    answered_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (message_id)
);
CREATE INDEX nps_answers_shop ON nps_answers (shop_id, flow, answered_at);
CREATE INDEX nps_answers_customer ON nps_answers (customer_id);
UPDATE shop_settings SET value = json_set(value,
    '$.steps', json('[{"delay_days": 0, "template": "journey_how_to", "offer": null},
                      {"delay_days": 11, "template": "second_order", "offer": null},
                      {"delay_days": 42, "template": "journey_care", "offer": null}]'),
    '$.min_days_since_order', 3, '$.max_days_since_order', 10, '$.stop_after_days', 180)
WHERE key = 'flow:second_order' AND json_valid(value) AND json_array_length(value, '$.steps') = 1
  AND json_extract(value, '$.steps[0].template') = 'second_order'
""")


@migrations(name="0023_scores")
def m0023(db):
    # Issue #15: every customer's chance of an order in 30 days, predicted 12-month value, value if
    # won back, and the offer decision (flows/scores.py writes them at each refresh); on a message, what
    # the discount guardrails changed about its step's offer and why (flows/offer_policy.py).
    _run(db, """
ALTER TABLE customer_snapshots ADD COLUMN p_purchase_30d REAL;
ALTER TABLE customer_snapshots ADD COLUMN p_purchase_next REAL;
ALTER TABLE customer_snapshots ADD COLUMN return_share REAL;
ALTER TABLE customer_snapshots ADD COLUMN predicted_clv_12m_minor INTEGER;
ALTER TABLE customer_snapshots ADD COLUMN worth_minor INTEGER;
ALTER TABLE customer_snapshots ADD COLUMN offer_kind TEXT;
ALTER TABLE customer_snapshots ADD COLUMN offer_percent REAL;
ALTER TABLE customer_snapshots ADD COLUMN offer_rule TEXT;
ALTER TABLE messages ADD COLUMN offer_note TEXT
""")


@migrations(name="0024_offer_arms")
def m0024(db):
    # Offer tests (flows/offer_arms.py owns both tables). `offer_arms`: the arm of a step's offer
    # test each entrant got, fixed once assigned (`offer` is the arm's JSON; NULL: no code), under
    # `test`, the key of the arms it was drawn from. `offer_test_history`: each test that ended
    # because an arm was made the default, by the owner or by Winback, with what the report said.
    _run(db, """
CREATE TABLE offer_arms (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    enrolment_id INTEGER NOT NULL REFERENCES enrolments(id) ON DELETE CASCADE,
    flow TEXT NOT NULL,
    step INTEGER NOT NULL,
    test TEXT NOT NULL,
    arm INTEGER NOT NULL,
    offer TEXT,
    assigned_at TEXT NOT NULL,
    UNIQUE (enrolment_id, step)
);
CREATE INDEX offer_arms_test ON offer_arms (shop_id, flow, step, test);
CREATE TABLE offer_test_history (
    id INTEGER PRIMARY KEY,
    shop_id INTEGER NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    flow TEXT NOT NULL,
    step INTEGER NOT NULL,
    offers TEXT NOT NULL,
    chosen TEXT,
    decided_by TEXT NOT NULL CHECK (decided_by IN ('owner', 'auto')),
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    decided_at TEXT NOT NULL,
    summary TEXT
);
CREATE INDEX offer_test_history_shop ON offer_test_history (shop_id, decided_at)
""")





@migrations(name="0025_first_hour")
def m0025(db):
    # The guided start: a newly connected shop's flows wait for the owner's review (flows_review),
    # which flows were reviewed, when a test email went out, and when the owner went live.
    _run(db, """
ALTER TABLE shops ADD COLUMN flows_review INTEGER NOT NULL DEFAULT 0 CHECK (flows_review IN (0, 1));
ALTER TABLE shops ADD COLUMN flows_reviewed TEXT;
ALTER TABLE shops ADD COLUMN test_sent_at TEXT;
ALTER TABLE shops ADD COLUMN live_at TEXT
""")


@migrations(name="0026_snapshot_marks")
def m0026(db):
    # What changed since the stored snapshot (app/snapshot_marks.py). Updates and deletions are marked
    # here by triggers; new customers, orders and lines by their writer, once per batch.
    db.execute("""CREATE TABLE snapshot_marks (shop_id INTEGER NOT NULL, customer_id INTEGER NOT NULL,
                  PRIMARY KEY (shop_id, customer_id)) WITHOUT ROWID""")

    # NOT EXISTS rather than INSERT OR IGNORE: the conflict clause of the statement that fires a
    # trigger overrides the one inside it.
    def mark(shop, customer, where="1"):
        return (f"INSERT INTO snapshot_marks SELECT {shop}, {customer} WHERE {where} AND NOT EXISTS "
                f"(SELECT 1 FROM snapshot_marks WHERE shop_id = {shop} AND customer_id = {customer})")

    def mark_order(order):
        return (f"INSERT INTO snapshot_marks SELECT DISTINCT o.shop_id, o.customer_id FROM orders o "
                f"WHERE o.id IN ({order}) AND o.customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                f"snapshot_marks m WHERE m.shop_id = o.shop_id AND m.customer_id = o.customer_id)")

    triggers = {
        "order_update": ("AFTER UPDATE ON orders",
                         mark("NEW.shop_id", "NEW.customer_id", "NEW.customer_id IS NOT NULL") + "; "
                         + mark("OLD.shop_id", "OLD.customer_id", "OLD.customer_id IS NOT NULL")),
        "order_delete": ("AFTER DELETE ON orders WHEN OLD.customer_id IS NOT NULL",
                         mark("OLD.shop_id", "OLD.customer_id")),
        "line_update": ("AFTER UPDATE ON order_lines", mark_order("NEW.order_id, OLD.order_id")),
        "line_delete": ("AFTER DELETE ON order_lines", mark_order("OLD.order_id")),
        "customer_update": ("AFTER UPDATE ON customers", mark("NEW.shop_id", "NEW.id")),
        "customer_delete": ("AFTER DELETE ON customers", mark("OLD.shop_id", "0")),
        "product_insert": ("AFTER INSERT ON products", mark("NEW.shop_id", "0")),
        "product_update": ("AFTER UPDATE OF replenishable, replenish_days, brand, category ON products",
                           mark("NEW.shop_id", "0")),
        "product_delete": ("AFTER DELETE ON products", mark("OLD.shop_id", "0")),
        "settings_insert": ("AFTER INSERT ON shop_settings", mark("NEW.shop_id", "0")),
        "settings_update": ("AFTER UPDATE ON shop_settings", mark("NEW.shop_id", "0")),
        "settings_delete": ("AFTER DELETE ON shop_settings", mark("OLD.shop_id", "0")),
    }
    for name, (when, body) in triggers.items():
        db.execute(f"CREATE TRIGGER snapshot_marks_{name} {when} BEGIN {body}; END")



@migrations(name="0027_learned_shop_model")
def m0027(db):
    # What a refresh learned about the whole shop (model fits, thresholds, percentiles) and for
    # which day: the refreshes of that day score changed customers with it (flows/shop_model.py).
    db.execute("ALTER TABLE shop_snapshots ADD COLUMN learned TEXT")
    # A product change marks the whole shop only when something a refresh reads really changed: a
    # sync's upsert names these columns whenever it updates a product (its price, say).
    read = ("title", "brand", "category", "replenishable", "replenish_days")
    db.execute("DROP TRIGGER snapshot_marks_product_update")
    db.execute("CREATE TRIGGER snapshot_marks_product_update AFTER UPDATE OF " + ", ".join(read) + " ON products"
               " WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in read) + " BEGIN INSERT INTO snapshot_marks"
               " SELECT NEW.shop_id, 0 WHERE NOT EXISTS (SELECT 1 FROM snapshot_marks WHERE shop_id = NEW.shop_id"
               " AND customer_id = 0); END")


def init_db(db=None):
    """Create or migrate the schema; returns the names of the migrations applied now."""
    db = db or get_db()
    pending = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    return pending

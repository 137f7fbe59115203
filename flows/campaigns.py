"""Campaigns: a one-off email to a segment at a chosen moment, sent by the flows' own delivery.

A campaign is a row of `campaigns` (this module owns the table; the table of owners is in
flows/enrolments.py): a segment (any name of `customer_segments`: the built-in ones, `vip`,
`lapsed`, `brand_loyal:Wella`, …, and the owner's saved segments), a template (`vip_early_access`,
`brand_launch`, `thank_you`), an optional subject, an optional offer, a time and a holdout share.

It is delivered as a one-step enrolment source, `campaign:<id>`: when its time comes, the next
delivery run (`run-flows`, the scheduler's tick or its delivery round) takes the segment's members
from the stored snapshot of that moment, once, as enrolments (held-out members by a stable hash per
campaign, never emailed; the others due at once). From there flows/delivery.py treats them like any
flow step: claimed in a short transaction, the personal code reserved and created on the platform
outside the write lock, the final check at hand-over (consent, caps over delivered mail, send
window: deferred, never dropped; no purchase since; not later than `max_lateness_hours` after the
campaign's time), rendered, sent once. A campaign whose time passed by more than that before it
could start (no email delivery then) is `missed`, never sent late.

Every campaign needs marketing consent, the thank-you included: it sells nothing, but it is still an
email the customer did not ask for. The report reuses the flows' attribution (last touch within
`conversion_days`) and their lift against the holdout (flows.attribution.lift, Newcombe's interval).
"""
import json
from datetime import timedelta
from decimal import Decimal

from app.db import write_transaction
from app.money import exponent, from_minor, to_minor
from app.settings import get_settings
from app.timeutil import from_db, to_db, utcnow

from . import enrolments, messages, owner_segments
from .attribution import ATTRIBUTED, lift
from .copy import SUBJECT_MAX, check_placeholders
from .definitions import check_offer, offer_kind
from .products import blocks
from .refresh import segment_counts
from .render import products_wanted, render

TEMPLATES = ("vip_early_access", "brand_launch", "thank_you")
NO_OFFER = frozenset({"thank_you"})  # a thank-you sells nothing
PREFIX = "campaign:"
OFFER_DAYS = 7           # a campaign's code is valid a week (an early access, a launch)
MAX_AHEAD = timedelta(days=365)
PAST_GRACE = timedelta(minutes=5)  # "now" typed into a form is a few moments old when it arrives
CANCELLED = "campaign cancelled"
STATUSES = ("scheduled", "sending", "sent", "cancelled", "missed")
PICKS = 3


class CampaignError(ValueError):
    """A campaign that cannot be made or changed, with the reason."""


def flow_name(campaign_id) -> str:
    """The enrolment source of a campaign: `campaign:<id>`."""
    return f"{PREFIX}{campaign_id}"


def parse_offer(text) -> dict | None:
    """`percent:15`, `amount:10`, `free_shipping` or `none` -> the offer (valid OFFER_DAYS days), or
    None for no offer; CampaignError with the reason otherwise."""
    text = (text or "none").strip().lower()
    if text in ("none", ""):
        return None
    if text == "free_shipping":
        offer = {"free_shipping": True, "valid_days": OFFER_DAYS}
    else:
        kind, sep, value = text.partition(":")
        if not sep or kind not in ("percent", "amount"):
            raise CampaignError(f"offer {text!r}: use percent:15, amount:10, free_shipping or none")
        try:
            number = float(value)
        except ValueError:
            raise CampaignError(f"offer {text!r}: {value!r} is not a number") from None
        offer = {kind: int(number) if number.is_integer() else number, "valid_days": OFFER_DAYS}
    problem = check_offer(offer)
    if problem:
        raise CampaignError(f"offer {text!r}: {problem}")
    return offer


def offer_text(offer) -> str:
    """The offer as `campaign create --offer` takes it."""
    kind = offer_kind(offer)
    if kind is None:
        return "none"
    return "free_shipping" if kind == "free_shipping" else f"{kind}:{offer[kind]:g}"


def segment_choices(db, shop_id) -> dict:
    """{segment name: members now}: the built-in segments and every other name the stored snapshot
    holds (brand-loyal, category, the owner's saved segments, those without members now too: the
    members are taken when the campaign starts)."""
    counts = segment_counts(db, shop_id)
    return counts | {s["name"]: counts.get(s["name"], 0) for s in owner_segments.list_segments(db, shop_id)}


def brand_of(segment) -> str | None:
    """The brand of a `brand_loyal:<brand>` segment, else None."""
    return segment.split(":", 1)[1] if segment.startswith("brand_loyal:") else None


def _clean_subject(subject):
    if subject is None or not subject.strip():
        return None
    subject = subject.strip()
    if "\n" in subject or "\r" in subject or any(ord(ch) < 32 or ord(ch) == 127 for ch in subject):
        raise CampaignError("subject: a single line without control characters")
    if len(subject) > SUBJECT_MAX:
        raise CampaignError(f"subject: at most {SUBJECT_MAX} characters")
    try:
        check_placeholders(subject)
    except ValueError as exc:
        raise CampaignError(f"subject: {exc.args[0]}") from None
    return subject


def create(db, shop, *, segment, template, subject=None, offer=None, at=None, holdout=10, now=None) -> dict:
    """Schedule a campaign (`offer` as parse_offer takes it, `holdout` in percent, `at` a datetime,
    default now); CampaignError says what is wrong and nothing is saved."""
    now = now or utcnow()
    at = at or now
    if template not in TEMPLATES:
        raise CampaignError(f"template {template!r}: one of {', '.join(TEMPLATES)}")
    known = segment_choices(db, shop["id"])
    if segment not in known:
        names = list(known)
        listed = ", ".join(names[:15]) + (f", … ({len(names)} in all: `winback segments`)" if len(names) > 15 else "")
        raise CampaignError(f"segment {segment!r}: no such segment in this shop (known: {listed})")
    offer = offer if isinstance(offer, dict) or offer is None else parse_offer(offer)
    if isinstance(offer, dict) and check_offer(offer):
        raise CampaignError(f"offer: {check_offer(offer)}")
    if offer_kind(offer) == "amount" and to_minor(Decimal(str(offer["amount"])), shop["currency"]) != \
            Decimal(str(offer["amount"])).scaleb(exponent(shop["currency"])):
        raise CampaignError(f"offer amount:{offer['amount']:g}: {shop['currency']} has {exponent(shop['currency'])}"
                            " decimals")
    if offer is not None and template in NO_OFFER:
        raise CampaignError(f"template {template}: a thank-you carries no offer (use --offer none)")
    subject = _clean_subject(subject)
    try:
        share = float(holdout)
    except (TypeError, ValueError):
        raise CampaignError(f"holdout {holdout!r}: a percentage from 0 to 50") from None
    if not 0 <= share <= 50:
        raise CampaignError(f"holdout {holdout!r}: a percentage from 0 to 50")
    if at < now - PAST_GRACE:
        raise CampaignError(f"time {to_db(at)}: already past (now is {to_db(now)})")
    if at > now + MAX_AHEAD:
        raise CampaignError(f"time {to_db(at)}: at most a year ahead")
    with write_transaction(db):
        cur = db.execute(
            "INSERT INTO campaigns (shop_id, segment, template, subject, offer, holdout, scheduled_for, status,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'scheduled', ?)",
            [shop["id"], segment, template, subject, json.dumps(offer) if offer else None, share / 100,
             to_db(at), to_db(now)])
    return get(db, shop["id"], cur.lastrowid)


def _row(row) -> dict:
    out = dict(row)
    out["offer"] = json.loads(out["offer"]) if out["offer"] else None
    out["flow"] = flow_name(out["id"])
    out["brand"] = brand_of(out["segment"])
    return out


def get(db, shop_id, campaign_id) -> dict | None:
    """One campaign of the shop, or None."""
    rows = list(db.query("SELECT * FROM campaigns WHERE shop_id = ? AND id = ?", [shop_id, campaign_id]))
    return _row(rows[0]) if rows else None


def list_campaigns(db, shop) -> list[dict]:
    """The shop's campaigns, the next one to go first, then the latest."""
    return [_row(r) for r in db.query(
        "SELECT * FROM campaigns WHERE shop_id = ? ORDER BY status != 'scheduled', scheduled_for DESC, id DESC",
        [shop["id"]])]


def cancel(db, shop, campaign_id, now=None) -> dict:
    """Cancel a scheduled campaign, or stop one that is sending (what it has not delivered is
    withheld); CampaignError for a campaign that is done or unknown."""
    campaign = get(db, shop["id"], campaign_id)
    if campaign is None:
        raise CampaignError(f"no campaign {campaign_id} in shop {shop['handle']!r}")
    if campaign["status"] not in ("scheduled", "sending"):
        raise CampaignError(f"campaign {campaign_id} is {campaign['status']}: there is nothing left to cancel")
    now_db = to_db(now or utcnow())
    with write_transaction(db):
        db.execute("UPDATE campaigns SET status = 'cancelled', finished_at = ?, note = ? WHERE id = ?",
                   [now_db, CANCELLED, campaign_id])
        messages.withhold_flow(db, shop["id"], campaign["flow"], CANCELLED)
        enrolments.withdraw(db, shop["id"], campaign["flow"], CANCELLED, now_db)
    return get(db, shop["id"], campaign_id)


def as_flow(campaign) -> dict:
    """The campaign as the delivery sees a flow: one step, promotional, on while it is sending; its
    lateness counts from the campaign's time (`starts_at`), however long the caps or window defer a member."""
    return {"name": campaign["flow"], "entry": campaign["segment"], "kind": "promotional",
            "starts_at": campaign["scheduled_for"],
            "enabled": campaign["status"] == "sending", "holdout": campaign["holdout"],
            "steps": [{"delay_days": 0, "template": campaign["template"], "offer": campaign["offer"],
                       "campaign": {"id": campaign["id"], "subject": campaign["subject"],
                                    "brand": campaign["brand"]}}]}


NOT_RECENTLY_DISCOUNTED = """
  AND NOT EXISTS (SELECT 1 FROM enrolments e WHERE e.customer_id = s.customer_id AND e.discounted = 1
                  AND e.entered_at > :cooldown_since)"""


def start_due(db, shop, params, settings) -> dict:
    """Start the shop's campaigns that are due (their members taken now, from the stored snapshot),
    mark those past their lateness `missed` and those with nothing left to deliver `sent`; returns
    {campaign:<id>: flow} of the started ones for the delivery (stopped ones are off: what they had
    claimed is withheld). The caller has registered `wb_bucket` (flows.engine)."""
    now, now_db = params["now"], params["now_db"]
    lateness = timedelta(hours=settings["max_lateness_hours"])
    with write_transaction(db):
        for c in [_row(r) for r in db.query(
                "SELECT * FROM campaigns WHERE shop_id = ? AND status = 'scheduled' AND scheduled_for <= ?",
                [shop["id"], now_db])]:
            if now > from_db(c["scheduled_for"]) + lateness:
                db.execute("UPDATE campaigns SET status = 'missed', finished_at = ?, note = ? WHERE id = ?",
                           [now_db, f"could not start within {settings['max_lateness_hours']} h of its time"
                                    " (no email delivery then)", c["id"]])
                continue
            enrolments.enrol_campaign(db, NOT_RECENTLY_DISCOUNTED if c["offer"] else "", {
                "shop": shop["id"], "flow": c["flow"], "segment": c["segment"], "holdout": c["holdout"],
                "planned": c["scheduled_for"], "now_db": now_db, "discounted": int(bool(c["offer"])),
                "cooldown_since": to_db(now - timedelta(days=settings["discount_cooldown_days"]))})
            db.execute("UPDATE campaigns SET status = 'sending', started_at = ? WHERE id = ?", [now_db, c["id"]])
        db.execute(
            "UPDATE campaigns SET status = 'sent', finished_at = :now WHERE shop_id = :shop AND status = 'sending'"
            " AND NOT EXISTS (SELECT 1 FROM enrolments e WHERE e.shop_id = :shop AND e.status = 'active'"
            "                 AND e.flow = 'campaign:' || campaigns.id)"
            " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.shop_id = :shop AND m.status IN ('outbox', 'sending')"
            "                 AND m.flow = 'campaign:' || campaigns.id)",
            {"now": now_db, "shop": shop["id"]})
    return {c["flow"]: as_flow(c) for c in [_row(r) for r in db.query(
        "SELECT * FROM campaigns WHERE shop_id = ? AND started_at IS NOT NULL AND status IN ('sending', 'cancelled')",
        [shop["id"]])]}


def taken(db, shop_id, now_db) -> dict:
    """{"enrolled", "held_out"}: the members the campaigns started at `now_db` took, for the tick's counts."""
    row = db.execute("SELECT COUNT(*) FILTER (WHERE held_out = 0), COUNT(*) FILTER (WHERE held_out = 1)"
                     " FROM enrolments WHERE shop_id = ? AND flow LIKE 'campaign:%' AND entered_at = ?",
                     [shop_id, now_db]).fetchone()
    return {"enrolled": row[0], "held_out": row[1]}


# ---- what the emails show -------------------------------------------------------------------
_PRODUCTS = """
SELECT p.id, p.external_id, p.title, p.price_minor, p.url, p.image_url, p.variant_id FROM products p
LEFT JOIN (SELECT l.product_id, SUM(l.quantity) AS units FROM order_lines l JOIN orders o ON o.id = l.order_id
           WHERE o.shop_id = :shop AND o.status = 'paid' AND o.is_test = 0 GROUP BY l.product_id) s
       ON s.product_id = p.id
WHERE p.shop_id = :shop AND p.published = 1 AND p.in_stock = 1 AND p.url IS NOT NULL
  AND (:brand IS NULL OR p.brand = :brand)
ORDER BY p.created_at IS NULL, p.created_at DESC, COALESCE(s.units, 0) DESC, p.id LIMIT :limit
"""


def picks(db, shop_id, step, limit, cache=None) -> list[dict]:
    """The products a campaign email shows: the newest published, in-stock products (a launch, an
    early access), of the segment's brand for `brand_loyal:<brand>`; none in a thank-you. The same
    for every member, so one query per delivery batch (`cache`)."""
    campaign = step.get("campaign") or {}
    if step["template"] == "thank_you" or not limit:
        return []
    key = ("campaign_picks", shop_id, campaign.get("brand"), limit)
    if cache is not None and key in cache:
        return cache[key]
    rows = list(db.query(_PRODUCTS, {"shop": shop_id, "brand": campaign.get("brand"), "limit": limit}))
    if cache is not None:
        cache[key] = rows
    return rows


# ---- the report -----------------------------------------------------------------------------
GROUPS = """
SELECT flow, COUNT(*) FILTER (WHERE held_out = 0) AS recipients, COUNT(*) FILTER (WHERE held_out = 1) AS held_out
FROM enrolments WHERE shop_id = :shop AND flow LIKE 'campaign:%' GROUP BY flow
"""
SENT = """
SELECT flow, COUNT(*) FILTER (WHERE status = 'sent') AS sent, COUNT(*) FILTER (WHERE status = 'withheld') AS withheld
FROM messages WHERE shop_id = :shop AND flow LIKE 'campaign:%' AND created_at < :now GROUP BY flow
"""


def report(db, shop, now) -> list[dict]:
    """Per campaign: {"id", "name", "template", "segment", "status", "scheduled_for", "recipients"
    (members meant to get it), "held_out", "sent", "withheld", "converted", "revenue", "lift"}, the lift
    over `conversion_days` after the start against the held-out members."""
    campaigns = list_campaigns(db, shop)
    if not campaigns:
        return []  # the attribution below reads every flow's orders (1.3 s on the demo) for the campaigns' rows
    settings = get_settings(db, shop["id"])
    # Every campaign, whatever the report's range (`since` "" is before any moment).
    params = {"shop": shop["id"], "now": to_db(now), "currency": shop["currency"], "days": settings["conversion_days"],
              "since": ""}
    attributed = {r["flow"]: r for r in db.query(ATTRIBUTED, params) if r["flow"].startswith(PREFIX)}
    groups = {r["flow"]: r for r in db.query(GROUPS, params)}
    sent = {r["flow"]: r for r in db.query(SENT, params)}
    out = []
    for c in campaigns:
        a, g, s = attributed.get(c["flow"], {}), groups.get(c["flow"], {}), sent.get(c["flow"], {})
        out.append({"id": c["id"], "name": c["subject"] or c["template"], "template": c["template"],
                    "segment": c["segment"], "offer": offer_text(c["offer"]), "status": c["status"],
                    "note": c["note"], "scheduled_for": c["scheduled_for"], "started_at": c["started_at"],
                    "holdout": round(c["holdout"] * 100, 2), "recipients": g.get("recipients", 0),
                    "held_out": g.get("held_out", 0), "sent": s.get("sent", 0), "withheld": s.get("withheld", 0),
                    "converted": a.get("converted", 0),
                    "revenue": round(_money(a.get("revenue"), shop["currency"]), 2),
                    "lift": lift(db, shop, c["flow"], settings["conversion_days"], now)})
    return out


def _money(minor, currency) -> float:
    return float(from_minor(round(minor or 0), currency))


# ---- preview and test send (the campaign page) ----------------------------------------------
def sample_member(db, shop, campaign) -> dict | None:
    """A real customer to show the email for: a member of the campaign's segment with an address,
    else any customer with one; None for a shop without customers."""
    rows = list(db.query(
        "SELECT c.* FROM customers c WHERE c.shop_id = :s AND c.email IS NOT NULL"
        " ORDER BY c.id IN (SELECT customer_id FROM customer_segments WHERE shop_id = :s AND segment = :seg) DESC,"
        " c.first_name IS NULL, c.id LIMIT 1", {"s": shop["id"], "seg": campaign["segment"]}))
    return dict(rows[0]) if rows else None


def sample_code(offer, currency, now) -> dict | None:
    """A code as the campaign would make it (WB-PREVIEW, valid OFFER_DAYS from `now`), for previews."""
    kind = offer_kind(offer)
    if kind is None:
        return None
    minor = to_minor(Decimal(str(offer["amount"])), currency) if kind == "amount" else None
    return {"id": None, "code": "WB-PREVIEW", "kind": kind, "percent": offer.get("percent"), "amount_minor": minor,
            "min_order_minor": None, "currency": currency,
            "expires_at": to_db(now + timedelta(days=offer.get("valid_days", OFFER_DAYS)))}


def render_preview(db, shop, campaign, customer, lang, *, links, app_url, now=None):
    """The campaign's email as `customer` would get it, in `lang`, with a sample code and the given
    `links` (the page's preview has dead ones but the shop button's); nothing is stored."""
    now = now or utcnow()
    step = as_flow(campaign)["steps"][0]
    code = sample_code(campaign["offer"], shop["currency"], now)
    customer = {**customer, "locale": lang}
    wanted = products_wanted(db, shop, customer, campaign["template"])
    items = blocks(picks(db, shop["id"], step, wanted), shop, get_settings(db, shop["id"]), app_url,
                   code and code["code"])
    return render(campaign["template"], shop=shop, customer=customer, code=code, items=items, links=links, db=db,
                  now=now, campaign=step["campaign"])

"""The discount guardrails applied when a flow step's offer becomes a personal code.

Each refresh stores every customer's offer decision in `customer_snapshots` (flows.predictions,
flows.targeting.decide_offers). When a step is claimed for delivery, `decide` turns the step's
offer into the one to use for this customer: none (they would likely order anyway, or are worth less
than the owner's floor: the email goes without a code and reads like an offer-less one), a smaller
percentage (their value tier's), or the step's own offer. Amount-off and free-shipping offers are
kept as they are unless the decision is none. A reminder of a code ("reuse") whose first email went
without one has nothing to remind of, and goes without a code too.
"""
import json

from app.money import exponent, format_money
from app.settings import get_settings

from . import targeting

DECISION = """
SELECT offer_kind, offer_percent, offer_rule, p_purchase_30d, worth_minor
FROM customer_snapshots WHERE customer_id = ?
"""
_NOTHING_TO_REMIND = "no code to remind of: an earlier email of this flow went without one"


def decision(row, shop, settings, gettext=None, locale="en") -> dict:
    """{"kind", "percent", "reason"} of a snapshot row (offer_kind, offer_percent, offer_rule,
    p_purchase_30d, worth_minor); the reason in English, or through `gettext` (see targeting.words_text)
    with amounts as `locale` writes them."""
    row = dict(row)
    row["floor_minor"] = targeting.floor_minor(settings, shop["currency"])
    unit = 10 ** exponent(shop["currency"])
    if row.get("worth_minor") is not None:  # "worth about €85": whole units
        row["worth_minor"] = targeting.half_up(row["worth_minor"] / unit) * unit
    words = targeting.offer_words(row, lambda minor: format_money(minor, shop["currency"], locale), settings)
    kind = row.get("offer_kind") or "none"
    return {"kind": kind, "percent": row.get("offer_percent") if kind == "percent" else None,
            "reason": targeting.words_text(words, gettext)}


def decide(db, shop, enrolment, offer) -> tuple[dict | None, dict | None]:
    """(the offer to use for this enrolment's due step, or None for no code; a note of what the
    guardrails changed and why, or None when the step's offer stands)."""
    if not offer:
        return offer, None
    if offer.get("reuse"):
        has_code = db.execute("SELECT 1 FROM discount_codes WHERE enrolment_id = ? LIMIT 1",
                              [enrolment["id"]]).fetchone()
        return (offer, None) if has_code else (None, {"kind": "none", "percent": None, "reason": _NOTHING_TO_REMIND})
    row = next(iter(db.query(DECISION, [enrolment["customer_id"]])), None)
    if row is None or row["offer_kind"] is None:
        return offer, None  # no stored decision yet (before the first refresh): the flow decides
    made = decision(row, shop, get_settings(db, shop["id"]))
    if made["kind"] == "none":
        return None, made
    percent = made["percent"]
    if offer.get("percent") is not None and percent is not None and float(offer["percent"]) > percent:
        return {**offer, "percent": percent}, made
    return offer, None


def removed(message) -> bool:
    """Whether the guardrails took this claimed message's offer away (its `offer_note` says none)."""
    note = message["offer_note"] if "offer_note" in message.keys() else None
    return bool(note) and json.loads(note).get("kind") == "none"


def explained(row, shop, settings, snapshot, gettext=None) -> tuple[list[str], dict]:
    """For `explain`: (reasons in words, the keys p_purchase_30d, predicted_clv_12m, worth, offer) from
    one customer's stored snapshot row; the reasons in English, or through `gettext`."""
    targeting_summary = (snapshot.get("model") or {}).get("targeting") or {}
    scale = 10.0 ** -exponent(shop["currency"])
    money = (lambda minor: None if minor is None else round(minor * scale, exponent(shop["currency"])))
    made = decision(row, shop, settings, gettext) if row["purchases"] else None
    reasons = []
    lapse = targeting.lapse_words(row, targeting_summary.get("horizon_days", settings["lapse_horizon_days"]))
    if lapse is not None:
        reasons.append(targeting.words_text(lapse, gettext))
    if made is not None and row["offer_kind"] is not None:
        reasons.append(made["reason"])
    return reasons, {"p_purchase_30d": row["p_purchase_30d"],
                     "predicted_clv_12m": money(row["predicted_clv_12m_minor"]), "worth": money(row["worth_minor"]),
                     "offer": made if row["offer_kind"] is not None else None}


def customer_scores(db, shop, customer_id, snapshot, gettext=None, locale="en") -> dict | None:
    """What the customer's page shows of the stored scores: {"p_purchase_30d", "predicted_clv_12m_minor",
    "worth_minor", "lapse" (words or None), "offer" ({"kind", "percent", "reason"} or None)}, the words
    through `gettext`; None for a customer without a stored snapshot row."""
    row = next(iter(db.query("SELECT * FROM customer_snapshots WHERE customer_id = ?", [customer_id])), None)
    if row is None:
        return None
    settings = get_settings(db, shop["id"])
    horizon = ((snapshot or {}).get("model") or {}).get("targeting", {}).get("horizon_days",
                                                                              settings["lapse_horizon_days"])
    lapse = targeting.lapse_words(row, horizon)
    return {"p_purchase_30d": row["p_purchase_30d"], "predicted_clv_12m_minor": row["predicted_clv_12m_minor"],
            "worth_minor": row["worth_minor"], "lapse": targeting.words_text(lapse, gettext),
            "offer": decision(row, shop, settings, gettext, locale) if row["offer_kind"] is not None else None}

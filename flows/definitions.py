"""Flow definitions as data: the five SPEC flows as defaults, per-shop overrides, validation.

A flow is {"name", "entry" (segment), "kind" ("promotional" | "service"), "enabled", "holdout"
(share held out), "steps": [{"delay_days", "template", "offer"}]}. An offer is None (no code: the
email's reason to come back is the offer), a new personal code {"percent": P, "valid_days": D},
{"amount": A, "valid_days": D} (A off, in the shop's currency) or {"free_shipping": true,
"valid_days": D}, each with an optional "min_order": M (the order's subtotal from M on, in the
shop's currency), or {"reuse": true} (the enrolment's code while it is valid). Delays count from
the first email of the enrolment. A step may also test offers: "offers" is a list of 2 to MAX_ARMS
new-code offers or None, one drawn per entrant (flows/offer_arms.py); "offer" stays the default.
"""
import copy
import json
import math

from app import settings
from app.db import write_transaction
from app.shops import awaiting_review
from app.timeutil import to_db, utcnow

from . import enrolments, messages

PRIORITY = ("replenish", "vip_winback", "winback", "category_winback", "second_order", "sunset")

DEFAULT_FLOWS = {
    "replenish": {"entry": "replenish_due", "kind": "promotional", "enabled": True, "holdout": 0.10,
                  "steps": [{"delay_days": 0, "template": "replenish_reminder", "offer": None}]},
    "vip_winback": {"entry": "vip_at_risk", "kind": "promotional", "enabled": True, "holdout": 0.10,
                    "steps": [{"delay_days": 0, "template": "vip_winback_1", "offer": {"percent": 20, "valid_days": 4}},
                              {"delay_days": 3, "template": "vip_winback_2", "offer": {"reuse": True}},
                              {"delay_days": 10, "template": "vip_winback_3", "offer": {"percent": 25, "valid_days": 3}}]},
    "winback": {"entry": "lapsed", "kind": "promotional", "enabled": True, "holdout": 0.10,
                "steps": [{"delay_days": 0, "template": "winback_1", "offer": {"percent": 15, "valid_days": 4}},
                          {"delay_days": 3, "template": "winback_2", "offer": {"reuse": True}},
                          {"delay_days": 10, "template": "winback_3", "offer": {"percent": 20, "valid_days": 3}}]},
    # A customer who stopped buying one category but still buys (win-back has the lapsed): off by
    # default; entry `category_lapsed:<category>` (flows/category_winback.py).
    "category_winback": {"entry": "category_lapsed", "kind": "promotional", "enabled": False, "holdout": 0.10,
                         "steps": [{"delay_days": 0, "template": "category_winback_1",
                                    "offer": {"percent": 10, "valid_days": 7}},
                                   {"delay_days": 5, "template": "category_winback_2", "offer": {"reuse": True}}]},
    # The after-purchase journey (flows/journey.py): service mail from day 3 after the first order
    # (how to use it), day 14 (how was it: the 0-10 question) and day 45 (care tips); it starts
    # within `max_days_since_order` of the order and stops `stop_after_days` after it.
    "second_order": {"entry": "one_time", "kind": "service", "enabled": True, "holdout": 0.10,
                     "min_days_since_order": 3, "max_days_since_order": 10, "stop_after_days": 180,
                     "steps": [{"delay_days": 0, "template": "journey_how_to", "offer": None},
                               {"delay_days": 11, "template": "second_order", "offer": None},
                               {"delay_days": 42, "template": "journey_care", "offer": None}]},
    "sunset": {"entry": "lost", "kind": "promotional", "enabled": True, "holdout": 0.10,
               "no_response_days": 14,
               "steps": [{"delay_days": 0, "template": "sunset", "offer": None}]},
}

class FlowError(ValueError):
    """A flow definition that cannot run, with the reason."""


OFFER_KINDS = ("percent", "amount", "free_shipping")  # the offers that make a new code
MAX_PERCENT = 90
MAX_AMOUNT = 100_000    # in the shop's currency: high enough for yen and forints, and no typo's 10⁹
MAX_MIN_ORDER = 1_000_000


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _given(value) -> bool:
    return value is not None and value is not False  # 0 is given (and refused), False is not


def offer_kind(offer) -> str | None:
    """"percent", "amount", "free_shipping" or "reuse" for a step's offer; None for no offer."""
    if not offer:
        return None
    if offer.get("reuse"):
        return "reuse"
    return next((kind for kind in OFFER_KINDS if _given(offer.get(kind))), None)


def check_offer(offer) -> str | None:
    """Why a new-code offer cannot run (None: it can). Exactly one of percent, amount and free
    shipping; a validity in days; an optional minimum order, in the shop's currency."""
    kinds = [k for k in OFFER_KINDS if _given(offer.get(k))]
    if len(kinds) != 1:
        return "an offer is one of a percentage, an amount off or free shipping"
    unknown = set(offer) - {*OFFER_KINDS, "valid_days", "min_order"}
    if unknown:
        return f"an offer has no {', '.join(sorted(unknown))}"
    valid = offer.get("valid_days")
    if not _number(valid) or not 0 < valid <= 365:
        return "a code must be valid between 1 and 365 days"
    kind = kinds[0]
    value = offer[kind]
    if kind == "percent" and (not _number(value) or not 0 < value <= MAX_PERCENT):
        return f"a discount must be more than 0 % and at most {MAX_PERCENT} %"
    if kind == "amount" and (not _number(value) or not 0 < value <= MAX_AMOUNT):
        return f"an amount off must be more than 0 and at most {MAX_AMOUNT:,} in the shop's currency"
    if kind == "free_shipping" and value is not True:
        return "free shipping is true or absent"
    minimum = offer.get("min_order")
    if minimum is not None:
        if not _number(minimum) or not 0 < minimum <= MAX_MIN_ORDER:
            return f"a minimum order must be more than 0 and at most {MAX_MIN_ORDER:,} in the shop's currency"
        if kind == "amount" and minimum <= value:
            return "the minimum order must be more than the amount off (else the order would be free)"
    return None


MAX_ARMS = 6


def check_arms(arms, kind) -> str | None:
    """Why a step's offer test cannot run (None: it can). `arms` is a list of 2 to MAX_ARMS
    different new-code offers (see check_offer), `None` meaning no code; promotional flows only."""
    if kind == "service":
        return "a service flow tests no offers"
    if not isinstance(arms, list) or not 2 <= len(arms) <= MAX_ARMS:
        return f"an offer test has 2 to {MAX_ARMS} offers"
    for n, arm in enumerate(arms, 1):
        if arm is None:
            continue
        if not isinstance(arm, dict) or arm.get("reuse"):
            return f"offer {n} of the test is a new code or none"
        problem = check_offer(arm)
        if problem:
            return f"offer {n} of the test: {problem}"
    if len({json.dumps(arm, sort_keys=True) for arm in arms}) < len(arms):
        return "the offers of a test must differ"
    return None

def validate_flow(name, flow) -> dict:
    """Check one flow definition; returns it normalised or raises FlowError naming the problem."""
    # "custom": the owner's own flow on their segment (flows/owner_flows.py)
    if name not in DEFAULT_FLOWS and not (isinstance(flow, dict) and flow.get("custom")):
        raise FlowError(f"unknown flow {name!r}")
    if not isinstance(flow, dict):
        raise FlowError(f"{name}: a flow is an object")
    if flow.get("kind") not in ("promotional", "service"):
        raise FlowError(f"{name}: kind must be promotional or service")
    holdout = flow.get("holdout", 0.10)
    if not isinstance(holdout, (int, float)) or not 0 <= holdout <= 0.5:
        raise FlowError(f"{name}: holdout must be a share between 0 and 0.5")
    steps = flow.get("steps")
    if not isinstance(steps, list) or not steps:
        raise FlowError(f"{name}: needs at least one step")
    last = -1
    for i, step in enumerate(steps, 1):
        delay = step.get("delay_days")
        if not isinstance(delay, (int, float)) or delay < 0:
            raise FlowError(f"{name} step {i}: delay must be zero or more days")
        if delay < last:
            raise FlowError(f"{name} step {i}: delays must not go back in time")
        last = delay
        if not step.get("template"):
            raise FlowError(f"{name} step {i}: needs a template")
        arms_problem = check_arms(step["offers"], flow["kind"]) if step.get("offers") is not None else None
        if arms_problem:
            raise FlowError(f"{name} step {i}: {arms_problem}")
        offer = step.get("offer")
        if offer is None:
            continue
        if flow["kind"] == "service":
            raise FlowError(f"{name} step {i}: a service flow carries no offer")
        if not isinstance(offer, dict):
            raise FlowError(f"{name} step {i}: an offer is an object, or none")
        if offer.get("reuse"):
            if set(offer) - {"reuse"}:
                raise FlowError(f"{name} step {i}: a reused code takes its terms from the earlier step")
            if i == 1:
                raise FlowError(f"{name} step 1: there is no earlier code to reuse")
            continue
        offer_problem = check_offer(offer)
        if offer_problem:
            raise FlowError(f"{name} step {i}: {offer_problem}")
    return {**flow, "name": name, "holdout": float(holdout), "enabled": bool(flow.get("enabled", True))}


def load_flows(db, shop_id) -> dict:
    """The shop's flows in priority order: defaults overlaid with the owner's saved definitions, each
    validated, and the owner's own flows on their segments (`in_priority`)."""
    flows = copy.deepcopy(DEFAULT_FLOWS)
    custom = {}
    if awaiting_review(db, shop_id):  # a newly connected shop: off until the owner reviewed and went live
        flows = {name: {**flow, "enabled": False} for name, flow in flows.items()}
    for key, value in db.execute("SELECT key, value FROM shop_settings WHERE shop_id = ? AND key LIKE 'flow:%'",
                                 [shop_id]):
        name = key.split(":", 1)[1]
        if name in flows:
            flows[name] = json.loads(value)
        else:
            custom[name] = json.loads(value)
    return in_priority({name: validate_flow(name, flows[name]) for name in PRIORITY},
                       {name: validate_flow(name, flow) for name, flow in sorted(custom.items()) if flow.get("custom")})


def in_priority(builtin, custom) -> dict:
    """The built-in flows in PRIORITY order with the owner's own placed among them: each just before the
    built-in flow its "before" names, else after all of them (the owner's own among themselves by name)."""
    out = {}
    for name, flow in builtin.items():
        out.update({n: f for n, f in custom.items() if f.get("before") == name})
        out[name] = flow
    out.update({n: f for n, f in custom.items() if f.get("before") not in builtin})
    return out


def save_flow(db, shop_id, name, flow, now=None):
    """Validate and store the owner's definition of a flow; FlowError keeps the old one.

    Saving a flow turned off withdraws it at once (see `withdraw_flow`)."""
    checked = validate_flow(name, flow)
    checked.pop("name")
    with write_transaction(db):
        if not checked["enabled"]:
            withdraw_flow(db, shop_id, name, now)
        settings.upsert(db, shop_id, f"flow:{name}", json.dumps(checked), to_db(utcnow()))
    return checked


FLOW_OFF = "flow turned off"


def withdraw_flow(db, shop_id, name, now=None) -> dict:
    """End a flow that was turned off: its running enrolments end ("flow turned off") and what it
    had claimed but not yet delivered is withheld. Turning the flow on again resurrects none of them:
    a customer re-enters only with a new purchase, like after any other exit."""
    now_db = to_db(now or utcnow())
    with write_transaction(db):
        withheld = messages.withhold_flow(db, shop_id, name, FLOW_OFF)
        ended = enrolments.withdraw(db, shop_id, name, FLOW_OFF, now_db)
    return {"ended": ended, "withheld": withheld}


def set_enabled(db, shop_id, name, enabled: bool, now=None) -> dict:
    """Turn one flow on or off (off withdraws it at once); returns the flow as saved."""
    flows = load_flows(db, shop_id)
    if name not in flows:
        raise FlowError(f"unknown flow {name!r}; the flows are {', '.join(flows)}")
    flow = {**flows[name], "enabled": bool(enabled)}
    flow.pop("name")
    return save_flow(db, shop_id, name, flow, now=now)

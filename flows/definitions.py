"""Flow definitions as data: the five SPEC flows as defaults, per-shop overrides, validation.

A flow is {"name", "entry" (segment), "kind" ("promotional" | "service"), "enabled", "holdout"
(share held out), "steps": [{"delay_days", "template", "offer"}]}. An offer is None,
{"percent": P, "valid_days": D}, {"free_shipping": true, "valid_days": D} or {"reuse": true} (the
enrolment's code while it is valid). Delays count from the first email of the enrolment.
"""
import copy
import json

from app import settings
from app.db import write_transaction
from app.timeutil import to_db, utcnow

from . import enrolments, messages

PRIORITY = ("replenish", "vip_winback", "winback", "second_order", "sunset")

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
    "second_order": {"entry": "one_time", "kind": "service", "enabled": True, "holdout": 0.10,
                     "min_days_since_order": 14, "max_days_since_order": 180,
                     "steps": [{"delay_days": 0, "template": "second_order", "offer": None}]},
    "sunset": {"entry": "lost", "kind": "promotional", "enabled": True, "holdout": 0.10,
               "no_response_days": 14,
               "steps": [{"delay_days": 0, "template": "sunset", "offer": None}]},
}

class FlowError(ValueError):
    """A flow definition that cannot run, with the reason."""


def validate_flow(name, flow) -> dict:
    """Check one flow definition; returns it normalised or raises FlowError naming the problem."""
    if name not in DEFAULT_FLOWS:
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
        offer = step.get("offer")
        if offer is None:
            continue
        if flow["kind"] == "service":
            raise FlowError(f"{name} step {i}: a service flow carries no offer")
        if offer.get("reuse"):
            if i == 1:
                raise FlowError(f"{name} step 1: there is no earlier code to reuse")
            continue
        valid = offer.get("valid_days")
        if not isinstance(valid, (int, float)) or not 0 < valid <= 365:
            raise FlowError(f"{name} step {i}: a code must be valid between 1 and 365 days")
        if offer.get("free_shipping"):
            continue
        pct = offer.get("percent")
        if not isinstance(pct, (int, float)) or not 0 < pct <= 90:
            raise FlowError(f"{name} step {i}: a discount must be more than 0 % and at most 90 %")
    return {**flow, "name": name, "holdout": float(holdout), "enabled": bool(flow.get("enabled", True))}


def load_flows(db, shop_id) -> dict:
    """The shop's flows: defaults overlaid with the owner's saved definitions, each validated."""
    flows = copy.deepcopy(DEFAULT_FLOWS)
    for key, value in db.execute("SELECT key, value FROM shop_settings WHERE shop_id = ? AND key LIKE 'flow:%'",
                                 [shop_id]):
        name = key.split(":", 1)[1]
        if name in flows:
            flows[name] = json.loads(value)
    return {name: validate_flow(name, flows[name]) for name in PRIORITY}


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
        raise FlowError(f"unknown flow {name!r}; the flows are {', '.join(PRIORITY)}")
    flow = {**flows[name], "enabled": bool(enabled)}
    flow.pop("name")
    return save_flow(db, shop_id, name, flow, now=now)

"""Ending an offer test: the better arm becomes the step's offer, by the owner's click or by Winback.

The decision is taken at the moment of effect: the report is computed again inside the write
transaction that saves the flow, and the arm is made the default only when the test is still the
one the owner looked at (its key) and that arm is still better than the others with confidence.
Each decision is kept in `offer_test_history` (flows/offer_arms.py) with what the report said.
The per-shop setting `offer_test_auto_promote` (off by default) lets the tick do the same.
"""
import copy
import logging

from app.db import write_transaction
from app.settings import get_settings
from app.timeutil import to_db

from . import offer_arms, offer_tests
from .definitions import PRIORITY, load_flows, save_flow

log = logging.getLogger("winback.offers")


class PromotionRefused(ValueError):
    """The arm cannot be made the default (the test changed, or it is not better with confidence)."""


def promote(db, shop, flow_name, step_no, arm, now, *, test=None, decided_by="owner", user_id=None) -> dict:
    """Make arm `arm` of the offer test at step `step_no` (0-based) the step's offer and end the test;
    returns the saved flow. PromotionRefused when the test is not (any more) the one given by `test`
    or that arm is not better than the others with confidence at `now`."""
    settings = get_settings(db, shop["id"])
    with write_transaction(db):
        flows = load_flows(db, shop["id"])
        flow = flows.get(flow_name)
        if flow is None or not 0 <= step_no < len(flow["steps"]) or not flow["steps"][step_no].get("offers"):
            raise PromotionRefused("this step has no offer test (any more)")
        arms = flow["steps"][step_no]["offers"]
        if test is not None and test != offer_arms.arms_key(arms):
            raise PromotionRefused("the offer test has changed since the report was shown")
        doc = offer_tests.step_report(db, shop, flow, step_no, settings["conversion_days"], now)
        if doc["offer_test"]["best"] != arm:
            raise PromotionRefused("that offer is not better than the others with confidence")
        new = copy.deepcopy({k: v for k, v in flow.items() if k != "name"})
        new["steps"][step_no]["offer"] = arms[arm]
        del new["steps"][step_no]["offers"]
        saved = save_flow(db, shop["id"], flow_name, new, now=now)
        offer_arms.record_decision(db, shop["id"], flow_name, step_no, arms, arms[arm], decided_by, user_id,
                                   to_db(now), offer_tests.summary(doc))
    return saved


def auto_promote(db, shop, now) -> list[dict]:
    """With the shop's `offer_test_auto_promote` on: every offer test that has a better arm with
    confidence ends with that arm as the step's offer. Returns what was decided; one test's trouble
    is logged and the others (and the tick) go on."""
    settings = get_settings(db, shop["id"])
    if not settings.get("offer_test_auto_promote"):
        return []
    decided = []
    flows = load_flows(db, shop["id"])
    conversion_days = settings["conversion_days"]
    for name in PRIORITY:
        for step_no in offer_arms.tested_steps(flows[name]):
            try:
                best = offer_tests.step_report(db, shop, flows[name], step_no, conversion_days,
                                               now)["offer_test"]["best"]
                if best is not None:
                    promote(db, shop, name, step_no, best, now, decided_by="auto")
                    decided.append({"flow": name, "step": step_no + 1, "arm": best})
            except Exception as exc:  # noqa: BLE001 - one test's trouble stays with it
                log.warning("offer test %s step %s of shop %s: %s", name, step_no + 1, shop["handle"], exc)
    return decided

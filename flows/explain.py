"""One customer, explained: metrics, segments, scores and the reasons in a shop owner's words."""
import json

from app.money import format_money, from_minor
from app.settings import get_settings
from app.timeutil import from_db

from . import offer_policy
from .definitions import load_flows
from .engine import preview
from .messages import flow_state


def _days(value) -> str:
    value = float(value)
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def find_customer(db, shop_id, customer_ref):
    """The customer with this platform id (or, for guests, email); None if unknown."""
    rows = list(db.query("SELECT * FROM customers WHERE shop_id = ? AND external_id = ?", [shop_id, customer_ref]))
    if not rows and "@" in customer_ref:
        rows = list(db.query("SELECT * FROM customers WHERE shop_id = ? AND email = ? ORDER BY id",
                             [shop_id, customer_ref.strip().lower()]))
    return rows[0] if rows else None


def explain(db, shop, customer, snapshot) -> dict:
    """The `explain` document for one customer from the stored snapshot of `snapshot` (shop level)."""
    settings = get_settings(db, shop["id"])
    row = list(db.query("SELECT * FROM customer_snapshots WHERE customer_id = ?", [customer["id"]]))[0]
    segs = list(db.query("SELECT segment, detail FROM customer_segments WHERE customer_id = ? ORDER BY segment",
                         [customer["id"]]))
    names = [s["segment"] for s in segs]
    currency = shop["currency"]
    money = lambda minor: format_money(minor, currency)  # noqa: E731
    reasons = []
    d = row["days_since_last"]
    factor, lost = settings["lapse_factor"], settings["lost_days"]
    otr = snapshot["one_time_return_days"]

    if row["purchases"] == 0:
        reasons.append(f"no purchases before {snapshot['now_date']}: nothing to judge yet")
    elif row["status"] == "lost":
        reasons.append(f"lost: {d} days since the last order, more than {lost}")
    elif row["purchase_days"] >= 2:
        gap = row["avg_gap_days"]
        limit = factor * gap
        floor = settings["lapse_min_days"]
        rule = f"{factor:g} × their usual {_days(gap)} days is {_days(limit)}"
        if limit < floor:
            rule += f", and never before {floor} days"
        if row["status"] == "lapsed":
            reasons.append(f"lapsed: {d} days since the last order, {rule}")
        elif d > max(limit, floor):  # overdue, but the model expects an order soon (flows.predictions)
            reasons.append(f"overdue but not lapsed: {d} days since the last order, {rule}; an order soon is "
                           "still likely")
        else:
            reasons.append(f"active: {d} days since the last order; they lapse after "
                           f"{_days(max(limit, floor))} days ({rule})")
    else:
        learned = (snapshot.get("model") or {}).get("one_time_return_learned")
        basis = ("80 % of this shop's returning customers come back within" if learned
                 else "one-time buyers are given")
        if row["status"] == "lapsed":
            reasons.append(f"lapsed: bought once, {d} days ago; {basis} {_days(otr)} days")
        else:
            reasons.append(f"one-time buyer: bought once, {d} days ago; {basis} {_days(otr)} days")

    if "new" in names:
        reasons.append(f"new: first order {row['days_since_first']} days ago (within {settings['new_days']})")
    vip = snapshot["vip_threshold_minor"]
    if "vip" in names or "vip_at_risk" in names:
        how = (f"the top {100 - settings['vip_percentile']:g} % of customers"
               if settings.get("vip_min_amount") is None else "the amount you set")
        reasons.append(f"{'VIP at risk' if 'vip_at_risk' in names else 'VIP'}: spent {money(row['clv_minor'])}"
                       f" in total, at least {money(vip)} ({how})")
    for s in segs:
        detail = json.loads(s["detail"]) if s["detail"] else None
        if s["segment"].startswith("brand_loyal:"):
            reasons.append(f"loyal to {s['segment'].split(':', 1)[1]}: every one of their "
                           f"{row['purchases']} orders contained it")
        elif s["segment"].startswith("category_lapsed:"):
            reasons.append(f"stopped buying {detail['category']}: {detail['days_since']} days since the last, "
                           f"{settings['category_lapse_factor']:g} × their usual {_days(detail['usual_gap'])} "
                           f"days is {_days(settings['category_lapse_factor'] * detail['usual_gap'])}")
        elif s["segment"] == "replenish_due":
            for item in detail:
                reasons.append(f"due to run out of {item['title'] or 'a product'}: bought {item['quantity']} on "
                               f"{item['last_date']}, each lasts about {_days(item['cycle_days'])} days, "
                               f"due {item['due_date']}")

    model = snapshot.get("model") or {}
    if row["purchases"] > 0:
        if model.get("status") != "fitted":
            reasons.append(f"purchase model: {model.get('reason', 'not fitted')}; the rules above decide")
        elif row["purchase_days"] < 2:
            reasons.append("purchase model: it cannot tell whether a one-time buyer has left, so the rule above "
                           "decides" + (f"; it expects {row['expected_90d']:.2f} orders in the next 90 days"
                                        if row["expected_90d"] is not None else ""))
        else:
            reasons.append(f"purchase model: {row['p_alive']:.0%} likely still a customer; expects "
                           f"{row['expected_90d']:.2f} orders in the next 90 days"
                           + (f", the next around {row['expected_next_order']}" if row["expected_next_order"] else ""))
    score_reasons, score_keys = offer_policy.explained(row, shop, settings, snapshot)
    reasons.extend(score_reasons)
    if row["stage"]:
        reasons.append(f"RFM {row['r_score']}-{row['f_score']}-{row['m_score']} (recency, frequency, money): "
                       f"{row['stage'].replace('_', ' ')}")

    flow, outlook = flow_outlook(db, shop, customer, snapshot)
    reasons.extend(outlook)

    return {
        "flow": flow,
        "customer": customer["external_id"], "email": customer["email"], "now": snapshot["computed_for"],
        "marketing_inactive": bool(customer["marketing_inactive_at"]),
        "undeliverable": customer["email_failure"] if customer["email_failed_at"] else None,
        "orders": row["purchases"], "purchase_days": row["purchase_days"],
        "clv": float(from_minor(row["clv_minor"], currency)), "aov":
            float(from_minor(row["aov_minor"], currency)) if row["aov_minor"] is not None else None,
        "currency": currency, "first_order": row["first_order_at"], "last_order": row["last_order_at"],
        "avg_gap_days": round(row["avg_gap_days"], 2) if row["avg_gap_days"] is not None else None,
        "days_since_last": row["days_since_last"], "status": row["status"],
        "lapse_after_days": round(row["lapse_after_days"], 2) if row["lapse_after_days"] is not None else None,
        "segments": names, "p_alive": row["p_alive"], "expected_purchases_90d": row["expected_90d"],
        "expected_next_order": row["expected_next_order"],
        "rfm": {"r": row["r_score"], "f": row["f_score"], "m": row["m_score"], "stage": row["stage"]},
        "accepts_marketing": None if customer["accepts_marketing"] is None else bool(customer["accepts_marketing"]),
        "reasons": reasons, **score_keys,
    }


def flow_outlook(db, shop, customer, snapshot) -> tuple[dict | None, list[str]]:
    """The customer's flow (running or last) and, in words, what the flows do or would do now."""
    flows = load_flows(db, shop["id"])
    state = flow_state(db, customer["id"])
    words = []
    if state and state["status"] in ("active", "held_out"):
        steps = len(flows[state["flow"]]["steps"])
        if state["held_out"]:
            words.append(f"in {state['flow']} since {state['entered_at'][:10]} ({state['reason']}), in its control "
                         "group: never emailed, so that the report can show what the emails earn")
        elif state["step"] < steps:
            due = state["next_due_at"]
            words.append(f"in {state['flow']} since {state['entered_at'][:10]} ({state['reason']}): email "
                         f"{state['step'] + 1} of {steps} is due {due}"
                         + (f" (held back by the {state['deferred_reason']})" if state["deferred_reason"] else ""))
        else:
            words.append(f"in {state['flow']}: all emails sent; waiting for an answer until {state['next_due_at']}")
        return state, words
    if state:
        words.append(f"last flow: {state['flow']}, {state['status']}"
                     + (f" ({state['exit_reason'].replace('_', ' ')})" if state["exit_reason"] else "")
                     + (f" on {state['ended_at'][:10]}" if state["ended_at"] else ""))
    now = from_db(snapshot["computed_for"])
    entering = preview(db, shop, now, customer_id=customer["id"])
    if entering:
        e = entering[0]
        words.append(f"would enter {e['flow']} on the next tick ({e['reason']})"
                     + (", in its control group (no email)" if e["held_out"] else ""))
    else:
        why = []
        if customer["unsubscribed_at"]:
            why.append("unsubscribed")
        elif customer["marketing_inactive_at"]:
            why.append("marked inactive after the sunset email")
        elif customer["accepts_marketing"] != 1:
            why.append("no marketing consent (only service emails may reach them)")
        words.append("enters no flow now" + (f": {', '.join(why)}" if why else ""))
    return state, words

"""One customer, explained: metrics, segments, scores and the reasons in a shop owner's words."""
import json

from app.money import from_minor
from app.settings import get_settings
from app.timeutil import from_db
from app.words import N_, Day, Fixed, Moment, Money, Num, Percent

from . import offer_policy
from .definitions import load_flows
from .engine import preview
from .labels import exit_label, flow_label, stage_label, status_label, stored_reason
from .messages import flow_state


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
    reasons = []
    d = row["days_since_last"]
    factor, lost = settings["lapse_factor"], settings["lost_days"]
    otr = snapshot["one_time_return_days"]

    if row["purchases"] == 0:
        reasons.append(N_("no purchases before %(date)s: nothing to judge yet", date=Day(snapshot["now_date"])))
    elif row["status"] == "lost":
        reasons.append(N_("lost: %(days)s days since the last order, more than %(lost)s", days=Num(d), lost=Num(lost)))
    elif row["purchase_days"] >= 2:
        gap = row["avg_gap_days"]
        limit = factor * gap
        floor = settings["lapse_min_days"]
        rule = N_("%(factor)s × their usual %(gap)s days is %(limit)s", factor=Num(factor, 2, f"{factor:g}"),
                  gap=Num(gap), limit=Num(limit))
        if limit < floor:
            rule = N_("%(rule)s, and never before %(floor)s days", rule=rule, floor=Num(floor))
        if row["status"] == "lapsed":
            reasons.append(N_("lapsed: %(days)s days since the last order, %(rule)s", days=Num(d), rule=rule))
        elif d > max(limit, floor):  # overdue, but the model expects an order soon (flows.predictions)
            reasons.append(N_("overdue but not lapsed: %(days)s days since the last order, %(rule)s; an order "
                              "soon is still likely", days=Num(d), rule=rule))
        else:
            reasons.append(N_("active: %(days)s days since the last order; they lapse after %(after)s days (%(rule)s)",
                              days=Num(d), after=Num(max(limit, floor)), rule=rule))
    else:
        learned = (snapshot.get("model") or {}).get("one_time_return_learned")
        if row["status"] == "lapsed":
            reasons.append(N_("lapsed: bought once, %(days)s days ago; 80 %% of this shop's returning customers come "
                              "back within %(otr)s days", days=Num(d), otr=Num(otr)) if learned else
                           N_("lapsed: bought once, %(days)s days ago; one-time buyers are given %(otr)s days",
                              days=Num(d), otr=Num(otr)))
        else:
            reasons.append(N_("one-time buyer: bought once, %(days)s days ago; 80 %% of this shop's returning "
                              "customers come back within %(otr)s days", days=Num(d), otr=Num(otr)) if learned else
                           N_("one-time buyer: bought once, %(days)s days ago; one-time buyers are given %(otr)s days",
                              days=Num(d), otr=Num(otr)))

    if "new" in names:
        reasons.append(N_("new: first order %(days)s days ago (within %(new)s)", days=Num(row["days_since_first"]),
                          new=Num(settings["new_days"])))
    vip = snapshot["vip_threshold_minor"]
    if "vip" in names or "vip_at_risk" in names:
        how = (N_("the top %(share)s %% of customers", share=Num(100 - settings["vip_percentile"], 2,
                                                                 f"{100 - settings['vip_percentile']:g}"))
               if settings.get("vip_min_amount") is None else N_("the amount you set"))
        label = N_("VIP at risk") if "vip_at_risk" in names else N_("VIP")
        reasons.append(N_("%(label)s: spent %(clv)s in total, at least %(vip)s (%(how)s)", label=label,
                          clv=Money(row["clv_minor"], currency), vip=Money(vip, currency), how=how))
    for s in segs:
        detail = json.loads(s["detail"]) if s["detail"] else None
        if s["segment"].startswith("brand_loyal:"):
            reasons.append(N_("loyal to %(brand)s: every one of their %(n)s orders contained it",
                              brand=s["segment"].split(":", 1)[1], n=Num(row["purchases"])))
        elif s["segment"].startswith("category_lapsed:"):
            cf = settings["category_lapse_factor"]
            reasons.append(N_("stopped buying %(category)s: %(days)s days since the last, %(factor)s × their usual "
                              "%(gap)s days is %(limit)s", category=detail["category"], days=Num(detail["days_since"]),
                              factor=Num(cf, 2, f"{cf:g}"), gap=Num(detail["usual_gap"]),
                              limit=Num(cf * detail["usual_gap"])))
        elif s["segment"] == "replenish_due":
            for item in detail:
                reasons.append(N_("due to run out of %(title)s: bought %(qty)s on %(last)s, each lasts about "
                                  "%(cycle)s days, due %(due)s", title=item["title"] or N_("a product"),
                                  qty=Num(item["quantity"]), last=Day(item["last_date"]),
                                  cycle=Num(item["cycle_days"]), due=Day(item["due_date"])))

    model = snapshot.get("model") or {}
    if row["purchases"] > 0:
        if model.get("status") != "fitted":
            why = model.get("reason")
            reasons.append(N_("purchase model: %(why)s; the rules above decide",
                              why=stored_reason(why) if why else N_("not fitted")))
        elif row["purchase_days"] < 2:
            reasons.append(N_("purchase model: it cannot tell whether a one-time buyer has left, so the rule above "
                              "decides; it expects %(n)s orders in the next 90 days", n=Fixed(row["expected_90d"]))
                           if row["expected_90d"] is not None else
                           N_("purchase model: it cannot tell whether a one-time buyer has left, so the rule above "
                              "decides"))
        elif row["expected_next_order"]:
            reasons.append(N_("purchase model: %(p)s likely still a customer; expects %(n)s orders in the next 90 "
                              "days, the next around %(next)s", p=Percent(row["p_alive"]),
                              n=Fixed(row["expected_90d"]), next=Day(row["expected_next_order"])))
        else:
            reasons.append(N_("purchase model: %(p)s likely still a customer; expects %(n)s orders in the next 90 "
                              "days", p=Percent(row["p_alive"]), n=Fixed(row["expected_90d"])))
    score_reasons, score_keys = offer_policy.explained(row, shop, settings, snapshot, gettext=N_)  # said on pages
    reasons.extend(score_reasons)
    if row["stage"]:
        reasons.append(N_("RFM %(r)s-%(f)s-%(m)s (recency, frequency, money): %(stage)s", r=row["r_score"],
                          f=row["f_score"], m=row["m_score"], stage=stage_label(row["stage"])))

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
        flow, since, why = flow_label(state["flow"]), Day(state["entered_at"]), stored_reason(state["reason"])
        if state["held_out"]:
            words.append(N_("in %(flow)s since %(since)s (%(why)s), in its control group: never emailed, so that the "
                            "report can show what the emails earn", flow=flow, since=since, why=why))
        elif state["step"] < steps:
            due = Moment(state["next_due_at"], shop["timezone"])
            if state["deferred_reason"]:
                words.append(N_("in %(flow)s since %(since)s (%(why)s): email %(n)s of %(steps)s is due %(due)s (held "
                                "back by the %(held)s)", flow=flow, since=since, why=why, n=state["step"] + 1,
                                steps=steps, due=due, held=stored_reason(state["deferred_reason"])))
            else:
                words.append(N_("in %(flow)s since %(since)s (%(why)s): email %(n)s of %(steps)s is due %(due)s",
                                flow=flow, since=since, why=why, n=state["step"] + 1, steps=steps, due=due))
        else:
            words.append(N_("in %(flow)s: all emails sent; waiting for an answer until %(until)s", flow=flow,
                            until=Moment(state["next_due_at"], shop["timezone"])))
        return state, words
    if state:
        parts = {"flow": flow_label(state["flow"]), "status": status_label(state["status"])}
        if state["exit_reason"]:
            parts["why"] = exit_label(state["exit_reason"])
        if state["ended_at"]:
            parts["on"] = Day(state["ended_at"])
        if "why" in parts and "on" in parts:
            words.append(N_("last flow: %(flow)s, %(status)s (%(why)s) on %(on)s", **parts))
        elif "why" in parts:
            words.append(N_("last flow: %(flow)s, %(status)s (%(why)s)", **parts))
        elif "on" in parts:
            words.append(N_("last flow: %(flow)s, %(status)s on %(on)s", **parts))
        else:
            words.append(N_("last flow: %(flow)s, %(status)s", **parts))
    now = from_db(snapshot["computed_for"])
    entering = preview(db, shop, now, customer_id=customer["id"])
    if entering:
        e = entering[0]
        flow, why = flow_label(e["flow"]), stored_reason(e["reason"])
        words.append(N_("would enter %(flow)s on the next tick (%(why)s), in its control group (no email)", flow=flow,
                        why=why) if e["held_out"] else
                     N_("would enter %(flow)s on the next tick (%(why)s)", flow=flow, why=why))
    elif customer["unsubscribed_at"]:
        words.append(N_("enters no flow now: unsubscribed"))
    elif customer["marketing_inactive_at"]:
        words.append(N_("enters no flow now: marked inactive after the sunset email"))
    elif customer["accepts_marketing"] != 1:
        words.append(N_("enters no flow now: no marketing consent (only service emails may reach them)"))
    else:
        words.append(N_("enters no flow now"))
    return state, words

"""What each arm of an offer test earned against the holdout, and whether one arm is better.

Per arm, over the entrants whose window has closed (the flow's lift window: last step's delay +
conversion_days, counted from entry, as flows/attribution.py's lift): entrants, converted (any
paid order in the window), revenue (net of refunds, in the shop's currency), discount cost (the
codes of the enrolment those orders used: a percent code's share of the order before it, an amount
code's amount at most the order's net, free shipping 0 since its cost is not in the order data) and
incremental profit against the holdout:

    profit per entrant  = (revenue − discount cost) / entrants of the arm
    holdout per member  = revenue / members of the holdout (who get no email and no code)
    incremental_profit  = (profit per entrant − holdout per member) × entrants of the arm

Only holdout members who entered since the test's first entrant count, so both sides come from the
same weeks.

The interval (ci_low, ci_high) is a normal approximation for the difference of two means with
unequal variances (Welch): d ± z·√(s²_arm/n_arm + s²_holdout/n_holdout), scaled by the arm's
entrants, where s² are the sample variances of the per-customer profit (revenue − discount cost)
and of the holdout's per-customer revenue. With at least MIN_GROUP customers in each group the
central limit theorem makes this fair for order values; below it the report says "not enough data
yet" and names no better arm.

An arm is *better with confidence* when, against every other arm, the same interval for the
difference of their profits per entrant lies above 0. With k arms that is k − 1 comparisons, so
each uses a Bonferroni-corrected level (95 % overall: z for 1 − 0.05 / (2 (k − 1)) each).
"""
import json
import math
from statistics import NormalDist

from app.money import from_minor
from app.timeutil import to_db

from .offer_arms import arms_key

MIN_GROUP = 30
LEVEL = 0.95
Z = NormalDist().inv_cdf(1 - (1 - LEVEL) / 2)

# One row per entrant of the test (matured), with their orders in the window, then per arm.
NET = "CASE WHEN o.currency = :currency THEN o.total_minor - o.refunded_minor ELSE 0 END"
COST = f"""(SELECT SUM(CASE WHEN d.kind = 'percent' AND d.percent < 100 THEN ({NET}) * d.percent / (100 - d.percent)
                         WHEN d.kind = 'amount' AND d.currency = :currency THEN MIN(d.amount_minor, MAX({NET}, 0))
                         ELSE 0 END)
           FROM discount_codes d WHERE d.enrolment_id = t.enrolment_id AND d.used_order_id = o.id)"""
FREE = """(SELECT COUNT(*) FROM discount_codes d WHERE d.enrolment_id = t.enrolment_id AND d.used_order_id = o.id
            AND d.kind = 'free_shipping')"""
WINDOW_ORDERS = """LEFT JOIN orders o ON o.customer_id = t.customer_id AND o.status = 'paid' AND o.is_test = 0
                   AND o.created_at > t.entered_at AND julianday(o.created_at) < julianday(t.entered_at) + :window"""

START = """
SELECT MIN(e.entered_at), COUNT(*) FROM offer_arms a JOIN enrolments e ON e.id = a.enrolment_id
WHERE a.shop_id = :shop AND a.flow = :flow AND a.step = :step AND a.test = :test
"""

ARMS = f"""
WITH t AS (
    SELECT a.arm, e.id AS enrolment_id, e.customer_id, e.entered_at
    FROM offer_arms a JOIN enrolments e ON e.id = a.enrolment_id
    WHERE a.shop_id = :shop AND a.flow = :flow AND a.step = :step AND a.test = :test
      AND julianday(e.entered_at) + :window <= julianday(:now)
),
per AS (
    SELECT t.arm, t.enrolment_id, COUNT(o.id) AS orders, COALESCE(SUM({NET}), 0) AS revenue,
           COALESCE(SUM(COALESCE({COST}, 0)), 0) AS cost, COALESCE(SUM({FREE}), 0) AS free_shipping
    FROM t {WINDOW_ORDERS}
    GROUP BY t.enrolment_id
)
SELECT arm, COUNT(*) AS n, SUM(orders > 0) AS converted, SUM(revenue) AS revenue, SUM(cost) AS cost,
       SUM(revenue - cost) AS profit, SUM((revenue - cost) * 1.0 * (revenue - cost)) AS profit_sq,
       SUM(free_shipping) AS free_shipping
FROM per GROUP BY arm
"""

HOLDOUT = f"""
WITH t AS (
    SELECT e.id AS enrolment_id, e.customer_id, e.entered_at FROM enrolments e
    WHERE e.shop_id = :shop AND e.flow = :flow AND e.held_out = 1 AND e.entered_at >= :start
      AND julianday(e.entered_at) + :window <= julianday(:now)
),
per AS (
    SELECT t.enrolment_id, COUNT(o.id) AS orders, COALESCE(SUM({NET}), 0) AS revenue
    FROM t {WINDOW_ORDERS}
    GROUP BY t.enrolment_id
)
SELECT COUNT(*) AS n, COALESCE(SUM(orders > 0), 0) AS converted, COALESCE(SUM(revenue), 0) AS revenue,
       COALESCE(SUM(revenue * 1.0 * revenue), 0) AS revenue_sq
FROM per
"""


def mean_var(total, total_sq, n) -> tuple[float, float]:
    """Mean and sample variance (n − 1) from a sum and a sum of squares."""
    if n == 0:
        return 0.0, 0.0
    mean = total / n
    var = max(total_sq - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
    return mean, var


def difference_interval(mean_a, var_a, n_a, mean_b, var_b, n_b, z=Z) -> tuple[float, float, float]:
    """(d, low, high): the difference of two means and its normal-approximation interval with
    unequal variances (Welch's standard error)."""
    d = mean_a - mean_b
    se = math.sqrt(var_a / n_a + var_b / n_b)
    return d, d - z * se, d + z * se


def incremental_profit(arm, holdout) -> tuple[float, float, float] | None:
    """(incremental profit, low, high) in minor units for one arm ({"n", "profit", "profit_sq"})
    against the holdout ({"n", "revenue", "revenue_sq"}); None without two of each."""
    if arm["n"] < 2 or holdout["n"] < 2:
        return None
    mean_a, var_a = mean_var(arm["profit"], arm["profit_sq"], arm["n"])
    mean_h, var_h = mean_var(holdout["revenue"], holdout["revenue_sq"], holdout["n"])
    d, low, high = difference_interval(mean_a, var_a, arm["n"], mean_h, var_h, holdout["n"])
    return d * arm["n"], low * arm["n"], high * arm["n"]


def better_arm(groups) -> int | None:
    """The arm whose profit per entrant beats every other arm's with confidence (see the module
    docstring), or None. `groups`: per arm {"n", "profit", "profit_sq"}, each with MIN_GROUP or more."""
    if len(groups) < 2 or any(g["n"] < MIN_GROUP for g in groups):
        return None
    stats = [mean_var(g["profit"], g["profit_sq"], g["n"]) + (g["n"],) for g in groups]
    best = max(range(len(groups)), key=lambda i: stats[i][0])
    z = NormalDist().inv_cdf(1 - (1 - LEVEL) / (2 * (len(groups) - 1)))
    for other in range(len(groups)):
        if other != best and difference_interval(*stats[best], *stats[other], z=z)[1] <= 0:
            return None
    return best


def step_report(db, shop, flow, step_no, conversion_days, now) -> dict:
    """{"arms": [...], "offer_test": {...}} for a step with an offer test; {} for one without."""
    arms = flow["steps"][step_no].get("offers")
    if not arms:
        return {}
    window = flow["steps"][-1]["delay_days"] + conversion_days
    params = {"shop": shop["id"], "flow": flow["name"], "step": step_no, "test": arms_key(arms), "window": window,
              "now": to_db(now), "currency": shop["currency"]}
    start, drawn = db.execute(START, params).fetchone()
    rows = {r["arm"]: r for r in db.query(ARMS, params)} if start else {}
    held = next(db.query(HOLDOUT, {**params, "start": start or params["now"]}))
    money = lambda minor: float(from_minor(round(minor or 0), shop["currency"]))  # noqa: E731
    groups, out = [], []
    for i, offer in enumerate(arms):
        r = rows.get(i) or {"n": 0, "converted": 0, "revenue": 0, "cost": 0, "profit": 0, "profit_sq": 0,
                            "free_shipping": 0}
        groups.append(r)
        inc = incremental_profit(r, held)
        out.append({"offer": offer, "entrants": r["n"], "converted": r["converted"] or 0,
                    "revenue": money(r["revenue"]), "discount_cost": money(r["cost"]), "incremental_profit": money(inc[0]) if inc else None,
                    "ci_low": money(inc[1]) if inc else None, "ci_high": money(inc[2]) if inc else None})
    enough = all(g["n"] >= MIN_GROUP for g in groups) and held["n"] >= MIN_GROUP
    best = better_arm(groups) if enough else None
    test = {"test": params["test"], "window_days": window, "drawn": drawn, "holdout": held["n"],
            "holdout_converted": held["converted"],
            "holdout_revenue_per_member": money(held["revenue"] / held["n"]) if held["n"] else None,
            "min_group": MIN_GROUP, "enough_data": enough, "best": best,
            "free_shipping_orders": sum(g["free_shipping"] or 0 for g in groups)}
    if not enough:
        test["note"] = (f"not enough data yet: each offer needs {MIN_GROUP} customers who have finished the "
                        f"{window:g}-day window, and so does the control group (now "
                        f"{', '.join(str(g['n']) for g in groups)}; control group {held['n']})")
    elif best is None:
        test["note"] = "no offer is better than the others with confidence yet"
    else:
        test["note"] = f"offer {best + 1} ({describe(arms[best])}) earns more than the others with confidence"
    return {"arms": out, "offer_test": test}


def describe(offer) -> str:
    """An offer in a few English words (CLI, history): "15 %", "10 off", "free shipping", "no code"."""
    if not offer:
        return "no code"
    if offer.get("percent"):
        text = f"{offer['percent']:g} %"
    elif offer.get("amount"):
        text = f"{offer['amount']:g} off"
    else:
        text = "free shipping"
    if offer.get("min_order"):
        text += f" from {offer['min_order']:g}"
    return text + f", {offer['valid_days']:g} days"


def arm_lines(steps, currency) -> list[str]:
    """The offer tests of a flow's report steps as lines of text (`winback report`)."""
    lines = []
    for step in steps:
        for n, arm in enumerate(step.get("arms") or (), 1):
            profit = ("not known yet" if arm["incremental_profit"] is None else
                      f"{arm['incremental_profit']:.2f} {currency} (95 % interval {arm['ci_low']:.2f} to "
                      f"{arm['ci_high']:.2f})")
            lines.append(f"email {step['step']}, offer {n} ({describe(arm['offer'])}): {arm['entrants']} customers, "
                         f"{arm['converted']} converted, revenue {arm['revenue']:.2f} {currency}, discounts "
                         f"{arm['discount_cost']:.2f} {currency}, profit vs holdout {profit}")
        if step.get("offer_test"):
            lines.append(f"email {step['step']}: {step['offer_test']['note']}")
    return lines


def summary(doc) -> str:
    """One line of what the report said when a test was decided (kept in the history)."""
    return json.dumps({"arms": doc["arms"], "holdout": doc["offer_test"]["holdout"]})

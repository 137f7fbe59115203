"""Every buyer's predictions and offer decision for one refresh, as numpy arrays (flows.scores stores them).

* Purchase model: the exact BG/NBD fit for large shops, else the shrunk one (flows.shrinkage), so a
  shop of 100-500 customers gets stable numbers too.
* Spend model: Gamma-Gamma (flows.gammagamma) on every buyer's purchase days and their mean value,
  with its weak prior. All purchase days count (the first too): Winback keeps per-customer totals,
  and a shop's first orders are ordinary orders far more often than CDNOW's were.
* Lapse: an overdue repeat buyer (the rule) stays `active` when the model gives an order in the next
  `lapse_horizon_days` a chance of at least `lapse_max_probability`; a one-time buyer lapses by the
  return curve (flows.targeting) when fewer than `one_time_lapse_share` of returning customers came
  back later than they have waited (unless the owner set one_time_return_days: then the rule decides).
  Shops with fewer than targeting.MODEL_LAPSE_MIN_BUYERS buyers keep the rule for repeat buyers, and
  their offers are not judged by the chance of an order (only the owner's worth floor applies).
"""
import numpy as np

from app.settings import get_settings

from . import bgnbd, gammagamma, shrinkage, targeting

EXACT_FROM = 5000  # buyers: from here the exact fit is used as it is (the prior would not move it)

STATUSES = np.array(["active", "lapsed", "lost"])


def predict(db, params, fit, rows) -> dict | None:
    """Arrays aligned with `rows` (flows.scores.BUYERS: its rule status and first-to-second gap in the
    last two columns) and a summary; None when no model can be fitted."""
    gaps = rows[:, 8][rows[:, 8] >= 0]
    return compute(rows[:, :7], STATUSES[rows[:, 7].astype(int)], gaps, get_settings(db, params["shop"]), fit,
                   params["currency"])


def compute(rows, status, gaps, settings, fit, currency) -> dict | None:
    """`predict` on arrays: rows as flows.scores.BUYERS, each buyer's rule status, the shop's
    first-to-second purchase gaps, its settings and exact fit (or NotEnoughHistory)."""
    ids, x, t_x, age, recency, purchases, clv = rows.T
    n = ids.size
    pfit = fit if isinstance(fit, bgnbd.Fit) and n >= EXACT_FROM else shrinkage.fit(
        x, t_x, age, start=fit if isinstance(fit, bgnbd.Fit) else None)
    if pfit is None:
        return None

    horizon = settings["lapse_horizon_days"]
    with np.errstate(all="ignore"):
        alive = bgnbd.p_alive(pfit, x, t_x, age)
        p_next = targeting.p_purchase(pfit, x, t_x, age, horizon)
        p30 = targeting.p_purchase(pfit, x, t_x, age, 30)
        exp90 = bgnbd.expected_purchases(pfit, 90, x, t_x, age)
        exp365 = bgnbd.expected_purchases(pfit, 365, x, t_x, age)
        if_alive365 = np.where(alive > 0, exp365 / alive, 0.0)
        wait = bgnbd.expected_next_purchase_days(pfit, x, t_x, age)

    once = x == 0
    alive = np.where(once, np.nan, alive)
    share = np.full(n, np.nan)
    curve = targeting.return_curve(gaps, age, x + 1, settings["one_time_return_min_returners"])
    if curve is not None and once.any():
        left, back, nxt = curve.one_time(recency[once], horizon)
        share[once], alive[once], p_next[once] = left, back, nxt
        p30[once] = curve.one_time(recency[once], 30)[2]
        exp90[once] *= back
        exp365[once] *= back

    spend_fit = gammagamma.fit(x + 1, clv / (x + 1), prior=True)
    spend = (spend_fit.expected_spend(x + 1, clv / (x + 1)) if spend_fit is not None
             else np.maximum(clv, 0) / (x + 1))
    spend = np.nan_to_num(spend, nan=0.0)
    clv12 = exp365 * spend
    worth = spend * (1.0 + if_alive365)

    model_lapse = n >= targeting.MODEL_LAPSE_MIN_BUYERS
    if model_lapse:
        status = np.where(~once & (status == "lapsed") & (p_next >= settings["lapse_max_probability"]),
                          "active", status)
    if curve is not None and settings.get("one_time_return_days") is None:
        lapsed = once & (status != "lost") & (share < settings["one_time_lapse_share"])
        status = np.where(once & (status != "lost"), np.where(lapsed, "lapsed", "active"), status)

    tiers = targeting.value_tiers(worth)
    floor = targeting.floor_minor(settings, currency)
    kind, percent, rule = targeting.decide_offers(
        p30 if model_lapse else np.full(n, np.nan), worth, skip_probability=settings["discount_skip_probability"],
        floor=floor, min_percent=settings["discount_min_percent"], max_percent=settings["discount_max_percent"],
        tiers=tiers)
    summary = {"fit": "exact" if pfit is fit else "shrunk", "r": pfit.r, "alpha": pfit.alpha, "a": pfit.a,
               "b": pfit.b, "spend": ({"p": spend_fit.p, "q": spend_fit.q, "gamma": spend_fit.gamma}
                                      if spend_fit is not None else None),
               "horizon_days": horizon, "model_lapse": bool(model_lapse), "return_curve": curve is not None,
               "returning_share": curve.returning_share if curve is not None else None,
               "tiers_minor": [None if not np.isfinite(v) else round(v) for v in tiers]}
    return {"p_alive": alive, "expected_90d": exp90, "wait": wait,
            "status": status, "p30": p30, "p_next": p_next, "return_share": share, "clv12": clv12, "worth": worth,
            "kind": kind, "percent": percent, "rule": rule, "summary": summary}

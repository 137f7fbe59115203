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
from dataclasses import asdict

import numpy as np

from app.settings import get_settings

from . import bgnbd, gammagamma, shrinkage, targeting

EXACT_FROM = 5000  # buyers: from here the exact fit is used as it is (the prior would not move it)

STATUSES = np.array(["active", "lapsed", "lost"])


def predict(db, params, fit, rows, learned=None) -> tuple[dict | None, dict | None]:
    """(arrays aligned with `rows`, and a summary; the learned state) for the shop's buyers `rows`
    (flows.scores.BUYERS: its rule status and first-to-second gap in the last two columns).

    `learned` is what an earlier refresh of the day learned from every buyer (see `learn`); without it
    it is learned from `rows`, which must then be every buyer. The arrays are None when no model can
    be fitted."""
    settings = get_settings(db, params["shop"])
    status = STATUSES[rows[:, 7].astype(int)]
    if learned is None:
        learned, chances = learn(rows, status, rows[:, 8][rows[:, 8] >= 0], settings, fit)
    else:
        chances = _chances(learned, rows[:, :7], status, settings) if learned["purchase"] else None
    if chances is None:
        return None, learned
    return _offers(learned, chances, settings, params["currency"]), learned


def compute(rows, status, gaps, settings, fit, currency) -> dict | None:
    """`predict` on arrays: rows as flows.scores.BUYERS, each buyer's rule status, the shop's
    first-to-second purchase gaps, its settings and exact fit (or NotEnoughHistory)."""
    learned, chances = learn(rows, status, gaps, settings, fit)
    return None if chances is None else _offers(learned, chances, settings, currency)


def learn(rows, status, gaps, settings, fit) -> tuple[dict, dict | None]:
    """What every buyer (`rows`) teaches about each of them, as a JSON-able state: the purchase model
    (exact or shrunk), the spend model, the return curve and the value tiers; and the buyers' chances
    (None, and no purchase model in the state, when none can be fitted)."""
    ids, x, t_x, age, recency, purchases, clv = rows[:, :7].T
    n = ids.size
    pfit = fit if isinstance(fit, bgnbd.Fit) and n >= EXACT_FROM else shrinkage.fit(
        x, t_x, age, start=fit if isinstance(fit, bgnbd.Fit) else None)
    if pfit is None:
        return {"purchase": None}, None
    curve = targeting.return_curve(gaps, age, x + 1, settings["one_time_return_min_returners"])
    spend_fit = gammagamma.fit(x + 1, clv / (x + 1), prior=True)
    learned = {"purchase": asdict(pfit), "exact": pfit is fit,
               "spend": asdict(spend_fit) if spend_fit is not None else None,
               "curve": curve.to_state() if curve is not None else None, "buyers": int(n)}
    chances = _chances(learned, rows[:, :7], status, settings)
    learned["tiers"] = [v if np.isfinite(v) else None for v in targeting.value_tiers(chances["worth"])]
    return learned, chances


def _chances(learned, rows, status, settings) -> dict:
    """Per buyer: the chances, values and model-based lapse status under the learned models."""
    ids, x, t_x, age, recency, purchases, clv = rows.T
    n = ids.size
    pfit = bgnbd.Fit(**learned["purchase"])
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
    curve = targeting.ReturnCurve.from_state(learned["curve"]) if learned["curve"] else None
    if curve is not None and once.any():
        left, back, nxt = curve.one_time(recency[once], horizon)
        share[once], alive[once], p_next[once] = left, back, nxt
        p30[once] = curve.one_time(recency[once], 30)[2]
        exp90[once] *= back
        exp365[once] *= back

    spend_fit = gammagamma.SpendFit(**learned["spend"]) if learned["spend"] else None
    spend = (spend_fit.expected_spend(x + 1, clv / (x + 1)) if spend_fit is not None
             else np.maximum(clv, 0) / (x + 1))
    spend = np.nan_to_num(spend, nan=0.0)
    clv12 = exp365 * spend
    worth = spend * (1.0 + if_alive365)

    if _model_lapse(learned):
        status = np.where(~once & (status == "lapsed") & (p_next >= settings["lapse_max_probability"]),
                          "active", status)
    if curve is not None and settings.get("one_time_return_days") is None:
        lapsed = once & (status != "lost") & (share < settings["one_time_lapse_share"])
        status = np.where(once & (status != "lost"), np.where(lapsed, "lapsed", "active"), status)
    return {"p_alive": alive, "expected_90d": exp90, "wait": wait, "status": status, "p30": p30,
            "p_next": p_next, "return_share": share, "clv12": clv12, "worth": worth}


def _model_lapse(learned) -> bool:
    return learned["buyers"] >= targeting.MODEL_LAPSE_MIN_BUYERS


def _offers(learned, chances, settings, currency) -> dict:
    """The chances with each buyer's offer decision (kind, percent, rule) and the summary."""
    n = chances["worth"].size
    model_lapse = _model_lapse(learned)
    tiers = tuple(np.inf if v is None else v for v in learned["tiers"])
    kind, percent, rule = targeting.decide_offers(
        chances["p30"] if model_lapse else np.full(n, np.nan), chances["worth"],
        skip_probability=settings["discount_skip_probability"], floor=targeting.floor_minor(settings, currency),
        min_percent=settings["discount_min_percent"], max_percent=settings["discount_max_percent"], tiers=tiers)
    pfit, spend, curve = learned["purchase"], learned["spend"], learned["curve"]
    summary = {"fit": "exact" if learned["exact"] else "shrunk", "r": pfit["r"], "alpha": pfit["alpha"],
               "a": pfit["a"], "b": pfit["b"],
               "spend": {"p": spend["p"], "q": spend["q"], "gamma": spend["gamma"]} if spend else None,
               "horizon_days": settings["lapse_horizon_days"], "model_lapse": bool(model_lapse),
               "return_curve": curve is not None, "returning_share": curve["share"] if curve else None,
               "tiers_minor": [None if v is None else round(v) for v in learned["tiers"]]}
    return {**chances, "kind": kind, "percent": percent, "rule": rule, "summary": summary}

"""Who is worth winning back, and with what: per-customer chances, values and the offer decision.

Pure functions over numpy arrays (one call for a whole shop, no per-customer Python loop), used by
flows.scores at every refresh:

* `p_purchase`: P(at least one purchase in the next N days) under BG/NBD. Given alive, the wait for
  the next purchase has P(W > w) = ((alpha+T)/(alpha+T+w))^(r+x), and a customer can only drop out
  right after a purchase, so P = p_alive * (1 - ((alpha+T)/(alpha+T+N))^(r+x)) exactly.
* `ReturnCurve`: one-time buyers, whom BG/NBD cannot see leave, are judged against the shop's return
  curve F(d), the share of returning customers whose second purchase came within d days of the first,
  and the share pi of customers who return at all. After d days without a return, the chance they
  still come back is pi (1 - F(d)) / (1 - pi F(d)) (Bayes), and of an order in the next N days
  pi (F(d+N) - F(d)) / (1 - pi F(d)).
* `decide_offers`: the discount guardrails (see the README, "Who gets a discount").

Words for every number are (msgid, params) pairs marked for translation (`N_`), so the CLI prints
English and the web shows the owner's language.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from app.money import to_minor
from app.settings import N_

if TYPE_CHECKING:  # numpy is imported by each function that computes: `explain` uses only the words below
    import numpy as np

GONE_BELOW = 0.2            # p_alive under which a customer is "gone": no expected next order
MODEL_LAPSE_MIN_BUYERS = 100  # below this many buyers the rule alone decides who is lapsed
TOP_SHARE, MIDDLE_SHARE = 0.2, 0.3  # value tiers: the top 20 % of buyers, the next 30 %, the rest


def p_purchase(fit, x, t_x, T, days) -> np.ndarray:
    """P(at least one purchase in the next `days` days | x, t_x, T) under BG/NBD (see above)."""
    import numpy as np

    from . import bgnbd  # scipy is loaded by the refresh only
    r, alpha, _, _ = fit.params
    alive = bgnbd.p_alive(fit, x, t_x, T)
    T = np.asarray(T, dtype=float)
    none = np.exp((r + np.asarray(x, dtype=float)) * (np.log(alpha + T) - np.log(alpha + T + days)))
    return alive * (1.0 - none)


@dataclass(frozen=True)
class ReturnCurve:
    """The shop's first-to-second purchase gaps (sorted) and the share of buyers who ever return."""

    gaps: np.ndarray
    returning_share: float

    def share_by(self, days) -> np.ndarray:
        """F(d): the share of returning customers back within `days` days of their first purchase."""
        import numpy as np
        return np.searchsorted(self.gaps, np.asarray(days, dtype=float), side="right") / self.gaps.size

    def one_time(self, days, horizon) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(share of returners who come back later than `days`, chance of ever coming back, chance
        of an order within `horizon` more days) for one-time buyers `days` after their purchase."""
        import numpy as np
        pi = self.returning_share
        f_now = self.share_by(days)
        rest = 1.0 - pi * f_now
        return 1.0 - f_now, pi * (1.0 - f_now) / rest, pi * (self.share_by(np.asarray(days) + horizon) - f_now) / rest

    def to_state(self) -> dict:
        """The curve as JSON-able numbers (each gap once, with how many returners had it)."""
        import numpy as np
        days, counts = np.unique(self.gaps, return_counts=True)
        return {"days": days.tolist(), "counts": counts.tolist(), "share": self.returning_share}

    @classmethod
    def from_state(cls, state) -> ReturnCurve:
        """The curve `to_state` gave."""
        import numpy as np
        return cls(gaps=np.repeat(np.asarray(state["days"], dtype=float), state["counts"]),
                   returning_share=state["share"])


def return_curve(gaps, ages, purchase_days, min_returners) -> ReturnCurve | None:
    """The shop's return curve from first-to-second gaps, buyers' ages (days since the first purchase)
    and purchase days; None with fewer than `min_returners` gaps. The returning share is measured
    among buyers old enough to have shown it (ages past the 95th percentile gap) when there are at
    least 30 of them, else among all buyers (then it is an underestimate)."""
    import numpy as np
    gaps = np.sort(np.asarray(gaps, dtype=float))
    if gaps.size < max(min_returners, 1):
        return None
    ages = np.asarray(ages, dtype=float)
    returned = np.asarray(purchase_days) >= 2
    old = ages >= np.percentile(gaps, 95)
    pool = old if old.sum() >= 30 else np.ones(ages.size, bool)
    share = float(returned[pool].mean()) if pool.any() else 0.0
    return ReturnCurve(gaps=gaps, returning_share=min(max(share, 1e-3), 0.999))


def floor_minor(settings, currency) -> int | None:
    """The owner's worth floor (`discount_min_worth`) in minor units of the shop's currency (None: no floor)."""
    floor = settings.get("discount_min_worth")
    return None if floor is None else to_minor(Decimal(str(floor)), currency)


def value_tiers(worth) -> tuple[float, float]:
    """The worth at which the top tier and the middle tier start (percentiles over buyers)."""
    import numpy as np
    worth = np.asarray(worth, dtype=float)
    worth = worth[np.isfinite(worth)]
    if worth.size == 0:
        return (np.inf, np.inf)
    return (float(np.percentile(worth, 100 * (1 - TOP_SHARE))),
            float(np.percentile(worth, 100 * (1 - TOP_SHARE - MIDDLE_SHARE))))


# Offer rules, in the order they are tried.
LIKELY_BUYER, BELOW_FLOOR, NO_MODEL = "likely_buyer", "below_floor", "no_model"
TOP, MIDDLE, LOW = "top", "middle", "low"


def decide_offers(p30, worth, *, skip_probability, floor, min_percent, max_percent, tiers):
    """(kind, percent, rule) arrays: the offer each customer may get (see the README).

    No discount ("none") when p30 >= skip_probability (they would likely buy anyway) or worth < floor
    (not worth a discount; floor None: no floor); else a percentage by value tier: the top tier up to
    `max_percent`, the middle tier halfway, the rest `min_percent` (max_percent None: no sizing, the
    percent is NaN and the flow's own offer stands). Without a trusted model estimate
    (p30 NaN: a small shop) the floor still applies, else the flow's own offer stands, capped at
    `max_percent`.
    """
    import numpy as np
    p30 = np.asarray(p30, dtype=float)
    worth = np.asarray(worth, dtype=float)
    top, middle = tiers
    if max_percent is None:  # no bounds: the flows' own percentages, for everyone
        min_percent = mid_percent = max_percent = np.nan
    else:
        mid_percent = round((min_percent + max_percent) / 2.0)
    no_model = ~np.isfinite(p30)
    likely = ~no_model & (p30 >= skip_probability)
    cheap = ~likely & (floor is not None) & (np.nan_to_num(worth, nan=0.0) < (floor or 0))
    rule = np.select([likely, cheap, no_model, worth >= top, worth >= middle],
                     [LIKELY_BUYER, BELOW_FLOOR, NO_MODEL, TOP, MIDDLE], default=LOW)
    percent = np.select([(rule == NO_MODEL) | (rule == TOP), rule == MIDDLE, rule == LOW],
                        [max_percent, mid_percent, min_percent], default=np.nan)
    kind = np.where(likely | cheap, "none", "percent")
    return kind, percent, rule


# ---- words ---------------------------------------------------------------------------------
def half_up(value) -> int:
    """Rounded half away from zero for non-negative values, as SQLite's round() (Python's round() goes to even)."""
    return math.floor(value + 0.5)


def _pct(p) -> str:
    return f"{half_up(100 * p)} %"


def lapse_words(row, horizon) -> tuple[str, dict] | None:
    """(msgid, params) saying why a buyer is or is not lapsed by the model, or None without a model.

    `row` needs purchase_days, avg_gap_days, days_since_last, p_purchase_next, return_share.
    """
    chance = row.get("p_purchase_next")
    if chance is None:
        return None
    if row["purchase_days"] >= 2:
        return (N_("usually orders every %(gap)s days; %(days)s days now; %(chance)s chance of an order in the "
                   "next %(horizon)s days"),
                {"gap": f"{row['avg_gap_days']:.0f}", "days": row["days_since_last"], "chance": _pct(chance),
                 "horizon": horizon})
    if row.get("return_share") is None:
        return None
    return (N_("bought once, %(days)s days ago; %(later)s of returning customers came back later than that; "
               "%(chance)s chance of an order in the next %(horizon)s days"),
            {"days": row["days_since_last"], "later": _pct(row["return_share"]), "chance": _pct(chance),
             "horizon": horizon})


def offer_words(row, money, settings) -> tuple[str, dict]:
    """(msgid, params) of the reason for a customer's offer decision (`money` formats minor units)."""
    rule = row.get("offer_rule")
    if rule == LIKELY_BUYER:
        return (N_("no discount: %(chance)s chance they order in the next 30 days anyway (a discount starts at "
                   "under %(limit)s); they still get the email, without a code"),
                {"chance": _pct(row["p_purchase_30d"]), "limit": _pct(settings["discount_skip_probability"])})
    if rule == BELOW_FLOOR:
        return (N_("no discount: worth about %(worth)s if won back, below your floor of %(floor)s"),
                {"worth": money(row["worth_minor"]), "floor": money(row["floor_minor"])})
    sized = row.get("offer_percent") is not None
    if rule == NO_MODEL:
        if not sized:
            return (N_("not enough history to judge: the flow's own offer"), {})
        return (N_("not enough history to judge: the flow's own offer, at most %(percent)s %%"),
                {"percent": f"{row['offer_percent']:g}"})
    if rule in (TOP, MIDDLE, LOW):
        tier = TIER_WORDS[rule]
        if not sized:
            return (N_("the flow's own offer: worth about %(worth)s if won back (%(tier)s)"),
                    {"worth": money(row["worth_minor"]), "tier": tier})
        return (N_("up to %(percent)s %% off: worth about %(worth)s if won back (%(tier)s)"),
                {"percent": f"{row['offer_percent']:g}", "worth": money(row["worth_minor"]), "tier": tier})
    return (N_("no purchases yet: nothing to offer"), {})


TIER_WORDS = {TOP: N_("the most valuable fifth of customers"), MIDDLE: N_("the next three in ten customers"),
              LOW: N_("the less valuable half of customers")}


def words_text(words, gettext=None) -> str | None:
    """The text of (msgid, params): English, or through `gettext(msgid, **params)` (e.g. flask_babel's),
    which then also translates a tier's words used as a parameter."""
    if words is None:
        return None
    msgid, params = words
    if gettext is None:
        return msgid % params if params else msgid
    params = {k: gettext(v) if v in TIER_WORDS.values() else v for k, v in params.items()}
    return gettext(msgid, **params)

"""Simulated shops with known parameters and a known truth, for the targeting tests and benchmarks.

Customers follow BG/NBD exactly (Poisson buying at a Gamma-distributed rate, a Beta-distributed
drop-out chance after each repeat purchase) and Gamma-Gamma spend per purchase. Each customer joins
on a uniform day of the first `join_days`; the calibration ends on day `end`; the holdout covers
(end, end + holdout]. The truth: who is still alive at `end`, and how many purchases each makes in
the holdout (and within 30 days of `end`).
"""
from dataclasses import dataclass

import numpy as np

BGNBD = (0.6, 25.0, 0.8, 2.5)      # r, alpha (days), a, b
SPEND = (6.0, 4.0, 15.0)           # p, q, gamma (Gamma-Gamma; mean spend p*gamma/(q-1) = 30)


@dataclass
class Shop:
    """One simulated shop: per customer the calibration summary and the truth."""

    x: np.ndarray          # repeat purchase days in the calibration period
    t_x: np.ndarray        # day of the last purchase, counted from the first
    T: np.ndarray          # age at the end of the calibration
    n: np.ndarray          # purchase days (x + 1)
    mean_value: np.ndarray  # mean value per purchase day in the calibration
    alive: np.ndarray      # truth at the end of the calibration
    holdout: np.ndarray    # purchases in the holdout
    within30: np.ndarray   # purchases in the first 30 days of the holdout


def simulate(n, params=BGNBD, spend=SPEND, *, join_days=180, end=365, holdout=180, seed=0) -> Shop:
    """A simulated shop of `n` customers (see the module docstring); times are whole days."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = params
    lam = rng.gamma(r, 1.0 / alpha, n)
    drop = rng.beta(a, b, n)
    p, q, g = spend
    nu = rng.gamma(q, 1.0 / g, n)
    join = rng.integers(0, join_days, n).astype(float)
    t = join.copy()
    alive = np.ones(n, bool)
    x = np.zeros(n)
    last = join.copy()
    total = rng.gamma(p, 1.0 / nu)
    hold = np.zeros(n)
    w30 = np.zeros(n)
    alive_at_end = np.ones(n, bool)
    last_day = join.copy()
    active = np.ones(n, bool)
    while active.any():
        idx = np.flatnonzero(active)
        nxt = t[idx] + rng.exponential(1.0 / lam[idx])
        day = np.floor(nxt)
        in_cal = nxt < end
        in_hold = (nxt >= end) & (nxt < end + holdout)
        new_day = day > last_day[idx]  # same-day purchases are one occasion
        cal = idx[in_cal & new_day]
        x[cal] += 1
        last[cal] = day[in_cal & new_day]
        total[cal] += rng.gamma(p, 1.0 / nu[cal])
        hold[idx[in_hold]] += 1
        w30[idx[in_hold & (nxt < end + 30)]] += 1
        last_day[idx] = np.maximum(last_day[idx], day)
        t[idx] = nxt
        dies = rng.random(idx.size) < drop[idx]
        alive_at_end[idx[in_cal & dies]] = False
        active[idx[dies | ~(in_cal | in_hold)]] = False
        alive[idx[dies]] = False
    T = end - np.floor(join)
    return Shop(x=x, t_x=last - np.floor(join), T=T, n=x + 1, mean_value=total / (x + 1), alive=alive_at_end,
                holdout=hold, within30=w30)

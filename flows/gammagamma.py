"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves for
Customer Base Analysis", Journal of Marketing Research 42, 415-430, section "Adding monetary value").

A customer's repeat purchases have values z ~ Gamma(p, nu); across customers nu ~ Gamma(q, gamma).
Per customer the model sees x (repeat purchases) and m (their mean value). The likelihood of one
customer, FHL 2005 eq. (4) in log space:

    ln G(px+q) - ln G(px) - ln G(q) + q ln gamma + (px-1) ln m + px ln x - (px+q) ln(gamma + m x)

The fit is by (optionally penalised) maximum likelihood over log(p, q, gamma) with scipy's L-BFGS-B
and an analytic gradient. With `prior=True` a weak log-normal prior pulls the estimates towards
`PRIOR` (see `prior_for`), so that a shop with a few dozen repeat buyers still gets sensible
numbers; with many buyers the data outweighs it. lifetimes' GammaGammaFitter does the same fit,
but that package is unmaintained (last release 2020) and pins old pandas; the formula is six lines.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

# Prior medians and spreads (sd of the natural log) of p and q; gamma's median follows from the
# shop's own mean spend so that the prior's expected spend p*gamma/(q-1) equals it. The medians are
# near the published CDNOW estimates (p 6.25, q 3.74); a spread of 1.0 lets each move ~e-fold freely.
PRIOR = {"p": (6.0, 1.0), "q": (4.0, 1.0), "gamma_sd": 1.5}
_LOG_BOX = (math.log(1e-3), math.log(1e5))
MAX_ROWS = 20_000


@dataclass(frozen=True)
class SpendFit:
    """Gamma-Gamma parameters and how many repeat buyers they were fitted on."""

    p: float
    q: float
    gamma: float
    customers: int
    penalised: bool

    @property
    def params(self) -> tuple[float, float, float]:
        """(p, q, gamma)."""
        return (self.p, self.q, self.gamma)

    def expected_spend(self, x, m) -> np.ndarray:
        """See the module function `expected_spend`."""
        return expected_spend(self.params, x, m)


def prior_for(m, x) -> tuple[np.ndarray, np.ndarray]:
    """(means, sds) of the log-normal prior on (p, q, gamma) for a shop whose repeat buyers have
    mean values m over x purchases: gamma is centred so that the prior's mean spend is the shop's."""
    mean_spend = float(np.average(m, weights=x)) if len(m) else 1.0
    p0, sp = PRIOR["p"]
    q0, sq = PRIOR["q"]
    g0 = max(mean_spend, 1e-6) * (q0 - 1.0) / p0
    return np.log([p0, q0, g0]), np.array([sp, sq, PRIOR["gamma_sd"]])


def loglik_per_customer(params, x, m) -> np.ndarray:
    """ln L(p, q, gamma | x, m) per customer (x >= 1, m > 0), FHL 2005 eq. (4)."""
    p, q, g = params
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    px = p * x
    return (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * math.log(g)
            + (px - 1.0) * np.log(m) + px * np.log(x) - (px + q) * np.log(g + m * x))


def _objective(theta, x, m, mu, sd):
    """Minus the mean log-likelihood (plus the prior's minus log density / n) and its gradient."""
    p, q, g = np.exp(theta)
    n = x.size
    px = p * x
    lgm = np.log(g + m * x)
    value = loglik_per_customer((p, q, g), x, m).mean()
    dig = special.digamma(px + q)
    g_p = (x * (dig - special.digamma(px) + np.log(m) + np.log(x) - lgm)).mean()
    g_q = (dig - special.digamma(q) + math.log(g) - lgm).mean()
    g_g = q / g - ((px + q) / (g + m * x)).mean()
    grad = np.array([g_p * p, g_q * q, g_g * g])
    if mu is not None:
        z = (theta - mu) / sd
        value -= 0.5 * (z * z).sum() / n
        grad -= z / sd / n
    if not np.isfinite(value):
        return np.inf, np.zeros(3)
    return -value, -grad


def fit(x, m, prior: bool = True, max_rows: int = MAX_ROWS) -> SpendFit | None:
    """Fit Gamma-Gamma on repeat buyers (x >= 1 repeat purchases, mean value m > 0 each).

    Customers with x < 1 or m <= 0 are left out (the model is about repeat purchase values). None when
    fewer than 2 repeat buyers remain (without a prior: fewer than 10), or the optimiser fails. Above
    `max_rows` customers the fit uses a fixed random sample of that many: three parameters are pinned
    down long before that, and a 200,000-customer refresh would otherwise spend a second here.
    """
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    keep = (x >= 1) & (m > 0) & np.isfinite(m)
    x, m = x[keep], m[keep]
    if x.size > max_rows:
        pick = np.random.default_rng(0).choice(x.size, max_rows, replace=False)
        x, m = x[pick], m[pick]
    if x.size < (2 if prior else 10):
        return None
    mu, sd = prior_for(m, x) if prior else (None, None)
    start = mu if prior else np.log([1.0, 1.0, float(np.mean(m))])
    with np.errstate(all="ignore"):
        result = optimize.minimize(_objective, start, args=(x, m, mu, sd), jac=True, method="L-BFGS-B",
                                   bounds=[_LOG_BOX] * 3, options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9})
    if not np.all(np.isfinite(result.x)):
        return None
    p, q, g = (float(v) for v in np.exp(result.x))
    return SpendFit(p=p, q=q, gamma=g, customers=int(x.size), penalised=prior)


def expected_spend(params, x, m) -> np.ndarray:
    """E[value of a future purchase | x repeat purchases with mean m], FHL 2005 eq. (5).

    = (gamma + m x) (p) / (p x + q - 1): a weighted mean of the shop's mean spend p gamma / (q - 1)
    and the customer's own mean m. For x == 0 (or m missing) it is the shop's mean; q <= 1 (an
    infinite population mean) falls back to m, or for x == 0 to NaN.
    """
    p, q, g = params
    x = np.asarray(x, dtype=float)
    m = np.nan_to_num(np.asarray(m, dtype=float), nan=0.0)
    x = np.where(m > 0, x, 0.0)
    with np.errstate(all="ignore"):
        out = p * (g + m * x) / (p * x + q - 1.0)
    if q <= 1.0:
        out = np.where(x > 0, m, np.nan)
    return out

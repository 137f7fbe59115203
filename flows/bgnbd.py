"""BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way").

While alive a customer buys as a Poisson process with rate lambda ~ Gamma(shape r, rate alpha);
after each repeat purchase they drop out for good with probability p ~ Beta(a, b).  Per customer the
model sees only x (repeat purchases: purchase days after the first), t_x (days from the first to
the last purchase; 0 when x == 0) and T (days from the first purchase to now).

Everything here is a pure function over numpy arrays; time is in days.  `fit` returns a `Fit` or,
for a shop whose history cannot support the model, a `NotEnoughHistory` with a reason in plain
words.  Guards used by `fit` (module constants):

* at least MIN_CUSTOMERS customers and MIN_REPEAT_BUYERS customers with x > 0;
* purchases spread over more than one day and more than one distinct (x, t_x, T) pattern;
* every parameter must end inside [PARAM_MIN, PARAM_MAX]: an estimate running off towards 0 or
  infinity means the data cannot pin the model down (typically a and b growing together when no
  spread in drop-out is visible, or r and alpha together when buying rates do not vary);
* the optimiser must reach a stationary point (gradient of the mean log-likelihood per customer
  below 1e-5 in every log-parameter).

Malformed input (NaN, negative values, t_x > T, fractional x, mismatched lengths) is a caller bug
and raises ValueError.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, special

from app.words import N_

MIN_CUSTOMERS = 20
MIN_REPEAT_BUYERS = 10
PARAM_MIN = 1e-4
PARAM_MAX = 1e6
MAX_DAYS = 3650.0

# The optimiser's box is wider than the accepted range so that an estimate escaping to infinity
# (or zero) is seen leaving the accepted range and rejected, rather than stopping at the guard.
_LOG_BOX = (math.log(PARAM_MIN) - 2.0, math.log(PARAM_MAX) + 2.0)
_GRAD_TOL = 1e-5
_COARSEN_ABOVE = 20_000  # unique rows


@dataclass(frozen=True)
class Fit:
    """Fitted BG/NBD parameters of one shop (time unit: days).

    `loglik` is the total log-likelihood over `customers`; `unique_rows` is how many distinct
    (x, t_x, T) rows the fit evaluated; `iterations` counts optimiser iterations over all starts.
    `converged` is always True for fits returned by `fit` (non-convergence comes back as
    NotEnoughHistory); it is kept for stored records.
    """

    r: float
    alpha: float
    a: float
    b: float
    loglik: float
    customers: int
    converged: bool = True
    unique_rows: int = 0
    iterations: int = 0

    @property
    def params(self) -> tuple[float, float, float, float]:
        """(r, alpha, a, b)."""
        return (self.r, self.alpha, self.a, self.b)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        """See the module function `p_alive`."""
        return p_alive(self, x, t_x, T)

    def expected_purchases(self, t, x, t_x, T) -> np.ndarray:
        """See the module function `expected_purchases`."""
        return expected_purchases(self, t, x, t_x, T)

    def expected_next_purchase_days(self, x, t_x, T, quantile=0.5, max_days=MAX_DAYS) -> np.ndarray:
        """See the module function `expected_next_purchase_days`."""
        return expected_next_purchase_days(self, x, t_x, T, quantile=quantile, max_days=max_days)

    def to_dict(self) -> dict:
        """The `winback model --json` shape (model, time_unit, r, alpha, a, b, loglik, ...)."""
        return {"model": "bgnbd", "time_unit": "days", **asdict(self)}


@dataclass(frozen=True)
class NotEnoughHistory:
    """Why a shop's history cannot support the model, in words a shop owner understands."""

    reason: str
    customers: int = 0
    repeat_buyers: int = 0

    def to_dict(self) -> dict:
        """{"model": "bgnbd", "fitted": False, "reason", "customers", "repeat_buyers"}."""
        return {"model": "bgnbd", "fitted": False, **asdict(self)}


# ---------------------------------------------------------------------------------------------
# input handling


def _as_rows(x, t_x, T):
    """Float arrays of one broadcast shape, validated; t_x is set to 0 where x == 0 (unused)."""
    x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t_x, T)))
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(T).all()):
        raise ValueError("x, t_x and T must be finite numbers")
    if (x < 0).any() or (t_x < 0).any() or (T < 0).any():
        raise ValueError("x, t_x and T must not be negative")
    if (x != np.round(x)).any():
        raise ValueError("x (repeat purchases) must be whole numbers")
    # Float day arithmetic can leave t_x a hair above T; more than that is a caller bug.
    if (t_x - T > 1e-9 * np.maximum(1.0, T)).any():
        raise ValueError("t_x (recency) must not exceed T (age)")
    t_x = np.where(x > 0, np.minimum(t_x, T), 0.0)
    return x, t_x, T


def _unique_rows(x, t_x, T, counts):
    """Distinct (x, t_x, T) rows sorted by x, with summed counts (zero-count rows dropped)."""
    if counts is None:
        counts = np.ones(x.shape)
    else:
        counts = np.broadcast_to(np.asarray(counts, dtype=float), x.shape)
        if not np.isfinite(counts).all() or (counts < 0).any():
            raise ValueError("counts must be finite and non-negative")
    x, t_x, T, counts = (v.ravel() for v in (x, t_x, T, counts))
    keep = counts > 0
    x, t_x, T, counts = x[keep], t_x[keep], T[keep], counts[keep]
    if x.size == 0:
        return x, t_x, T, counts
    if max(x.max(), t_x.max(), T.max()) < 2**21 and all((v == np.round(v)).all() for v in (t_x, T)):
        # Whole days (the usual case): one packed int64 key sorts ~5x faster than a lexsort.
        key = (x.astype(np.int64) << 42) | (t_x.astype(np.int64) << 21) | T.astype(np.int64)
        order = np.argsort(key)
        new = np.r_[True, np.diff(key[order]) != 0]
    else:
        order = np.lexsort((T, t_x, x))
        new = np.r_[True, (np.diff(x[order]) != 0) | (np.diff(t_x[order]) != 0)
                    | (np.diff(T[order]) != 0)]
    x, t_x, T, counts = x[order], t_x[order], T[order], counts[order]
    starts = np.flatnonzero(new)
    return x[starts], t_x[starts], T[starts], np.add.reduceat(counts, starts)


def _params(params):
    if isinstance(params, Fit):
        return params.params
    r, alpha, a, b = (float(v) for v in params)
    return r, alpha, a, b


# ---------------------------------------------------------------------------------------------
# likelihood


def _log_dropout_odds(r, alpha, a, b, x, t_x, T):
    """ln[(a/(b+x-1)) ((alpha+T)/(alpha+t_x))^(r+x)] for x > 0, -inf for x == 0.

    This is ln(A2/A1) in the likelihood and ln[(1 - p_alive) / p_alive].
    """
    repeat = x > 0
    bx1 = np.where(repeat, b + x - 1.0, 1.0)
    d = math.log(a) - np.log(bx1) + (r + x) * np.log1p((T - t_x) / (alpha + t_x))
    return np.where(repeat, d, -np.inf)


def loglik_per_customer(params, x, t_x, T) -> np.ndarray:
    """ln L(r, alpha, a, b | x, t_x, T) for each customer (FHL 2005 eq. 6, in log space).

    `params` is (r, alpha, a, b) or a Fit.  ln L = ln A1 + ln(1 + exp(D)) with
    ln A1 = lnG(r+x) - lnG(r) + r ln(alpha) - (r+x) ln(alpha+T) + ln B(a, b+x) - ln B(a, b) and, for
    x > 0, D = ln a - ln(b+x-1) + (r+x) ln((alpha+T)/(alpha+t_x)), so no term can overflow.
    """
    r, alpha, a, b = _params(params)
    x, t_x, T = _as_rows(x, t_x, T)
    ln_a1 = (special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha)
             - (r + x) * np.log(alpha + T) + special.betaln(a, b + x) - special.betaln(a, b))
    return ln_a1 + np.logaddexp(0.0, _log_dropout_odds(r, alpha, a, b, x, t_x, T))


class _Data:
    """Unique rows prepared for the optimiser.

    Rows come sorted by x (from `_unique_rows`), so the repeat buyers are one slice; per-x terms
    (gamma, beta and digamma functions) are evaluated once per distinct x and summed with the
    customer share of that x.
    """

    def __init__(self, x, t_x, T, counts):
        self.n = counts.sum()
        w = counts / self.n
        self.w, self.wx_ = w, w * x
        self.T = T
        self.xu, ix = np.unique(x, return_inverse=True)
        self.share_x = np.bincount(ix, weights=w, minlength=self.xu.size)
        self.rep = rep = slice(int(np.searchsorted(x, 0.0, side="right")), None)
        self.x_r, self.t_x_r, self.w_r = x[rep], t_x[rep], w[rep]


def _neg_mean_loglik(theta, d: _Data):
    """Minus the count-weighted mean log-likelihood and its gradient in log-parameters.

    Sums are written as (u * v).sum() rather than np.dot: while other processes kept the cores
    busy, BLAS-threaded dot products of long vectors were measured ~100x slower than this.
    """
    r, alpha, a, b = np.exp(theta)
    xu, rep, share = d.xu, d.rep, d.share_x
    w_r, x_r = d.w_r, d.x_r
    log_alpha = math.log(alpha)

    inv_at = 1.0 / (alpha + d.T)
    log_at = np.log(alpha + d.T)
    per_x = (special.gammaln(r + xu) - special.gammaln(r)
             + special.betaln(a, b + xu) - special.betaln(a, b))
    wrx = r * d.w + d.wx_  # w * (r + x)
    value = (share * per_x).sum() + r * log_alpha - (wrx * log_at).sum()

    # Repeat buyers: D = ln(A2/A1); ln(A1 + A2) = ln A1 + max(D, 0) + log1p(exp(-|D|)).
    rx_r = r + x_r
    bx1 = b + x_r - 1.0
    log_gap = log_at[rep] - np.log(alpha + d.t_x_r)
    dd = math.log(a) - np.log(bx1) + rx_r * log_gap
    e = np.exp(-np.abs(dd))
    value += (w_r * (np.maximum(dd, 0.0) + np.log1p(e))).sum()
    ww2 = w_r * np.where(dd >= 0.0, 1.0, e) / (1.0 + e)  # weight x share of the A2 branch

    g_r = ((share * special.digamma(r + xu)).sum() - special.digamma(r) + log_alpha
           - (d.w * log_at).sum() + (ww2 * log_gap).sum())
    g_alpha = (r / alpha - (wrx * inv_at).sum()
               + (ww2 * rx_r * (inv_at[rep] - 1.0 / (alpha + d.t_x_r))).sum())
    psi_abx = (share * special.digamma(a + b + xu)).sum()
    g_a = special.digamma(a + b) - psi_abx + ww2.sum() / a
    g_b = ((share * special.digamma(b + xu)).sum() - psi_abx - special.digamma(b)
           + special.digamma(a + b) - (ww2 / bx1).sum())
    if not np.isfinite(value):
        return np.inf, np.zeros(4)
    return -value, -np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])


# ---------------------------------------------------------------------------------------------
# fitting


def _plural(n, word):
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def fit(x, t_x, T, counts=None) -> Fit | NotEnoughHistory:
    """Fit BG/NBD by maximum likelihood; a Fit, or NotEnoughHistory saying why not.

    x, t_x, T are per-customer arrays in days (repeat purchase days, days from first to last
    purchase, days from first purchase to now).  Pass unique rows with `counts` (customers per
    row) for speed; duplicate rows are merged either way.  Maximises over log(r, alpha, a, b) with
    an analytic gradient (see `_optimise`).  Never raises for degenerate shops (see the module
    docstring for the guards); raises ValueError only for malformed input.
    """
    x, t_x, T = _as_rows(x, t_x, T)
    x, t_x, T, counts = _unique_rows(x, t_x, T, counts)
    customers = int(round(counts.sum())) if counts.size else 0
    repeaters = int(round(counts[x > 0].sum())) if counts.size else 0

    def refuse(reason):
        return NotEnoughHistory(reason, customers, repeaters)

    if customers == 0:
        return refuse(N_("not enough history: there are no customers with purchases yet"))
    if customers < MIN_CUSTOMERS:
        return refuse(f"not enough history: only {_plural(customers, 'customer')} "
                      f"(need at least {MIN_CUSTOMERS})")
    if T.max() == 0:
        return refuse(N_("not enough history: every customer made their first purchase today, "
                         "so there is no buying pattern to learn from yet"))
    if repeaters == 0 or t_x.max() == 0:
        return refuse(N_("not enough history: no customer has come back to buy on a later day yet"))
    if repeaters < MIN_REPEAT_BUYERS:
        return refuse(f"not enough history: only {_plural(repeaters, 'customer')} bought more "
                      f"than once (need at least {MIN_REPEAT_BUYERS})")
    if x.size == 1:
        return refuse(N_("not enough history: every customer has exactly the same purchase "
                         "history, so the model cannot tell customers apart"))

    data = _Data(x, t_x, T, counts)
    with np.errstate(all="ignore"):
        theta, iterations = _optimise(data, x, t_x, T, counts)
        value, grad = _neg_mean_loglik(theta, data)
    params = np.exp(theta)
    if (params < PARAM_MIN).any() or (params > PARAM_MAX).any():
        return refuse(N_("not enough history: the purchase model cannot be estimated from this "
                         "shop's purchases yet (its estimates run off to extremes); it needs more "
                         "customers with varied repeat purchases"))
    if not np.isfinite(value) or np.max(np.abs(grad)) > _GRAD_TOL:
        return refuse(N_("not enough history: the purchase model could not settle on an answer "
                         "for this shop's purchases; it needs more customers with repeat purchases"))
    r, alpha, a, b = (float(v) for v in params)
    return Fit(r=r, alpha=alpha, a=a, b=b, loglik=float(-value * data.n), customers=customers,
               converged=True, unique_rows=int(x.size), iterations=iterations)


def _optimise(data: _Data, x, t_x, T, counts):
    """Log-parameters maximising the likelihood, and the optimiser iterations spent.

    L-BFGS-B from each of `_starting_points`, the best optimum wins.  For large shops the starts
    run on a coarsened copy of the rows and the winner is polished on the exact rows by BFGS
    seeded with the coarse Hessian, which needs a handful of full evaluations instead of ~50.
    """
    coarse = _coarsened(x, t_x, T, counts)
    best, iterations = None, 0
    for start in _starting_points(data):
        result, its = _minimise(start, coarse or data)
        iterations += its
        if best is None or result.fun < best.fun:
            best = result
    if coarse is None:
        return best.x, iterations
    polished = _polish(best.x, coarse, data)
    if polished is not None:
        return polished.x, iterations + int(polished.nit)
    result, its = _minimise(best.x, data)
    return result.x, iterations + its


def _coarsened(x, t_x, T, counts):
    """_Data on days rounded to a grid (T.max()/50, then /20), or None for few rows anyway."""
    if x.size <= _COARSEN_ABOVE:
        return None
    for cells in (50, 20):
        step = T.max() / cells
        # Rounding is monotone, so t_x <= T survives it.
        cx, ct_x, cT, cc = _unique_rows(x, np.round(t_x / step), np.round(T / step), counts)
        if cx.size <= _COARSEN_ABOVE:
            break
    return _Data(cx, ct_x * step, cT * step, cc)


def _polish(theta, coarse: _Data, data: _Data):
    """BFGS on the exact rows from theta with the coarse Hessian as its start; None if unusable."""
    if not np.all((theta > _LOG_BOX[0] + 1.0) & (theta < _LOG_BOX[1] - 1.0)):
        return None
    h = 1e-4
    hess = np.empty((4, 4))
    for i in range(4):
        step = np.zeros(4)
        step[i] = h
        hess[:, i] = (_neg_mean_loglik(theta + step, coarse)[1]
                      - _neg_mean_loglik(theta - step, coarse)[1]) / (2 * h)
    try:
        inverse = np.linalg.inv(0.5 * (hess + hess.T))
        inverse = 0.5 * (inverse + inverse.T)
        np.linalg.cholesky(inverse)
    except np.linalg.LinAlgError:
        return None
    result = optimize.minimize(_neg_mean_loglik, theta, args=(data,), jac=True, method="BFGS",
                               options={"hess_inv0": inverse, "gtol": _GRAD_TOL / 10,
                                        "maxiter": 50})
    if not result.success or not np.all(np.isfinite(result.x)):
        return None
    return result


def _starting_points(d: _Data):
    """Starting points in log space: a rate guess from the data, with mild to strong churn."""
    rate = d.wx_.sum() / max((d.w * d.T).sum(), 1e-9)
    rate = min(max(rate, 1e-4), 10.0)
    for r0, a0, b0 in ((1.0, 1.0, 3.0), (0.3, 0.5, 1.0), (3.0, 2.0, 10.0)):
        yield np.log([r0, r0 / rate, a0, b0])


def _minimise(theta0, d: _Data):
    """L-BFGS-B from theta0, restarted (fresh curvature memory) until the gradient is small."""
    theta = np.clip(theta0, *_LOG_BOX)
    total, result = 0, None
    for _ in range(4):
        result = optimize.minimize(_neg_mean_loglik, theta, args=(d,), jac=True, method="L-BFGS-B",
                                   bounds=[_LOG_BOX] * 4,
                                   options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10})
        total += int(result.nit)
        theta = result.x
        if np.max(np.abs(result.jac)) < _GRAD_TOL / 10:
            break
    return result, total


# ---------------------------------------------------------------------------------------------
# predictions


def p_alive(fit, x, t_x, T) -> np.ndarray:
    """P(customer still alive | x, t_x, T), FHL 2005 eq. 11, in (0, 1].

    1 / (1 + [x > 0] (a/(b+x-1)) ((alpha+T)/(alpha+t_x))^(r+x)), evaluated as a logistic of the
    log-odds so it never overflows.  `fit` is a Fit or (r, alpha, a, b).  It is exactly 1 for
    x == 0: BG/NBD customers can only drop out right after a repeat purchase, so one-time buyers
    need rule-based treatment.
    """
    r, alpha, a, b = _params(fit)
    x, t_x, T = _as_rows(x, t_x, T)
    return special.expit(-_log_dropout_odds(r, alpha, a, b, x, t_x, T))


def _expected_if_alive(r, alpha, a, b, t, x, T):
    """E[purchases in (T, T+t] | alive at T, x, T] (the bracket of FHL 2005 eq. 10).

    = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)],
    z = t/(alpha+T+t).  With c = a+b+x-1 that 2F1 diverges as z -> 1 when c-(r+x)-(b+x) < 0, so
    there Euler's transformation is used instead:
    (1-z)^(r+x) 2F1(r+x, b+x; c; z) = (1-z)^(a-1) 2F1(c-r-x, a-1; c; z), whose 2F1 stays finite.
    """
    k = r + x
    c = a + b + x - 1.0
    log1mz = np.log(alpha + T) - np.log(alpha + T + t)
    z = -np.expm1(log1mz)
    euler = (a - 1.0 - k) <= 0
    f = np.where(euler, special.hyp2f1(c - k, a - 1.0, c, z), special.hyp2f1(k, b + x, c, z))
    term = np.exp(np.where(euler, (a - 1.0) * log1mz, k * log1mz)) * f
    return c / (a - 1.0) * (1.0 - term)


def expected_purchases(fit, t, x, t_x, T) -> np.ndarray:
    """Expected number of purchases in the next t days given x, t_x, T (FHL 2005 eq. 10).

    = p_alive * E[purchases in t days | alive].  Uses scipy.special.hyp2f1 in whichever of two
    equivalent forms stays finite as t/(alpha+T+t) -> 1; at the removable singularities a == 1 and
    a+b+x-1 == 0 (and wherever hyp2f1 fails) it averages the values at a -/+ 1e-4.  The result is
    clipped to its exact bounds [0, p_alive * (r+x) t/(alpha+T)] (the upper one is the no-drop-out
    limit), so it is always finite and non-negative.  `fit` is a Fit or (r, alpha, a, b); t may be
    a scalar or an array broadcastable against x.
    """
    r, alpha, a, b = _params(fit)
    x, t_x, T = _as_rows(x, t_x, T)
    t = np.asarray(t, dtype=float)
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError("t must be finite and non-negative")
    t, x, t_x, T = np.broadcast_arrays(t, x, t_x, T)
    delta = 1e-4
    with np.errstate(all="ignore"):
        e = np.array(_expected_if_alive(r, alpha, a, b, t, x, T), dtype=float)
        bad = (abs(a - 1.0) < delta) | (np.abs(a + b + x - 1.0) < delta) | ~np.isfinite(e)
        if bad.any():
            # Smooth in a, so the mean of the values at a -/+ delta is within O(delta^2).
            lo = _expected_if_alive(r, alpha, a - delta, b, t[bad], x[bad], T[bad])
            hi = _expected_if_alive(r, alpha, a + delta, b, t[bad], x[bad], T[bad])
            e[bad] = 0.5 * (lo + hi)
        upper = (r + x) * t / (alpha + T)
        e = np.clip(np.nan_to_num(e, nan=0.0), 0.0, upper)
    return p_alive((r, alpha, a, b), x, t_x, T) * e


def expected_next_purchase_days(fit, x, t_x, T, quantile=0.5, max_days=MAX_DAYS) -> np.ndarray:
    """Days from now to the next purchase of a customer who is still alive (median by default).

    Given alive at T, the wait W for the next purchase has an exact closed form under BG/NBD:
    lambda's posterior is Gamma(r+x, rate alpha+T) and drop-out can only follow a purchase, so
    P(W > w) = ((alpha+T)/(alpha+T+w))^(r+x) and the q-quantile is
    (alpha+T) * ((1-q)^(-1/(r+x)) - 1).  The median is the default because the mean is infinite
    when r+x <= 1.  Values are clipped to [0, max_days], never inf or NaN.  t_x is accepted for a
    uniform signature; given alive the answer does not depend on it.  Combine with `p_alive` for
    whether the customer is likely to buy at all.
    """
    r, alpha, a, b = _params(fit)
    x, t_x, T = _as_rows(x, t_x, T)
    if not 0.0 < quantile < 1.0:
        raise ValueError("quantile must be between 0 and 1")
    with np.errstate(over="ignore"):
        days = (alpha + T) * np.expm1(-math.log1p(-quantile) / (r + x))
    return np.clip(np.nan_to_num(days, nan=max_days, posinf=max_days), 0.0, max_days)

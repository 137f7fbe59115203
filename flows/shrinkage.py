"""BG/NBD with shrinkage: a penalised (maximum a posteriori) fit for shops of any size.

The exact fit (flows.bgnbd.fit) needs hundreds of repeat buyers before its four parameters settle: on
a 300-customer shop `a` and `b` often run off together. Here the log-likelihood gets a weak
log-normal prior on each parameter, so a small shop's estimates stay near sensible values and a
large shop's are the data's (the prior counts as one customer's worth of evidence among thousands).

Priors (medians, and the spread as the sd of the natural log), in days:

* r ~ median 0.5, sd 1.0: buying rates vary a lot between customers (published fits: 0.24 CDNOW,
  0.1-2 in retail);
* alpha ~ median 0.5 / (the shop's mean buying rate), sd 1.5: it sets the time scale, so it is
  centred on the shop's own purchases per day (sum of repeat purchases / sum of ages);
* a ~ median 1.0, sd 1.0 and b ~ median 3.0, sd 1.0: a drop-out chance after each purchase of about
  a / (a + b) = 25 % (CDNOW: 0.79 / (0.79 + 2.43) = 25 %), with room either way.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize

from . import bgnbd

PRIOR = {"r": (0.5, 1.0), "alpha_rate_ratio": (0.5, 1.5), "a": (1.0, 1.0), "b": (3.0, 1.0)}
_LOG_BOX = (math.log(1e-5), math.log(1e7))


def prior_for(data) -> tuple[np.ndarray, np.ndarray]:
    """(means, sds) of the log-normal priors on (r, alpha, a, b) for the prepared rows `data`."""
    rate = data.wx_.sum() / max((data.w * data.T).sum(), 1e-9)
    rate = min(max(rate, 1e-5), 10.0)
    r0, sr = PRIOR["r"]
    k, salpha = PRIOR["alpha_rate_ratio"]
    a0, sa = PRIOR["a"]
    b0, sb = PRIOR["b"]
    return np.log([r0, k / rate, a0, b0]), np.array([sr, salpha, sa, sb])


def _objective(theta, data, mu, sd):
    value, grad = bgnbd._neg_mean_loglik(theta, data)
    z = (theta - mu) / sd
    return value + 0.5 * (z * z).sum() / data.n, grad + z / sd / data.n


def fit(x, t_x, T, start: bgnbd.Fit | None = None) -> bgnbd.Fit | None:
    """The penalised BG/NBD fit of buyers (x, t_x, T in days); None when there is nothing to fit
    (no buyer, or every buyer bought today). `start` (an exact fit) seeds the optimiser."""
    x, t_x, T = bgnbd._as_rows(x, t_x, T)
    x, t_x, T, counts = bgnbd._unique_rows(x, t_x, T, None)
    if counts.size == 0 or T.max() <= 0:
        return None
    data = bgnbd._Data(x, t_x, T, counts)
    mu, sd = prior_for(data)
    starts = [np.log(start.params)] if start is not None else []
    starts += [mu, *bgnbd._starting_points(data)]
    best = None
    with np.errstate(all="ignore"):
        for theta0 in starts:
            result = optimize.minimize(_objective, np.clip(theta0, *_LOG_BOX), args=(data, mu, sd), jac=True,
                                       method="L-BFGS-B", bounds=[_LOG_BOX] * 4,
                                       options={"maxiter": 1000, "ftol": 1e-14, "gtol": 1e-9})
            if np.all(np.isfinite(result.x)) and (best is None or result.fun < best.fun):
                best = result
            if start is not None and best is not None:
                break  # from the exact optimum the prior only nudges; one start is enough
    if best is None:
        return None
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    loglik = float(bgnbd.loglik_per_customer((r, alpha, a, b), x, t_x, T) @ counts)
    return bgnbd.Fit(r=r, alpha=alpha, a=a, b=b, loglik=loglik, customers=int(round(counts.sum())),
                     converged=bool(best.success), unique_rows=int(x.size), iterations=int(best.nit))

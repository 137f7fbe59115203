"""BG/NBD: parameter recovery on simulated shops, the likelihood and predictions against direct
numerical integration of the individual-level model, and degenerate shops."""
import math
import warnings

import numpy as np
import pytest
from scipy import integrate, special

from flows import bgnbd

TRUE = (0.5, 20.0, 0.8, 2.5)  # r, alpha (days), a, b


def simulate(n, r, alpha, a, b, seed, T_min=30.0, T_max=700.0, horizon=0.0, integer_days=False):
    """Customers from the BG/NBD generative process, acquired at varied times before now.

    Returns x, t_x, T and, for the `horizon` days after now: purchases within 90 days, whether the
    customer was alive at T, and the wait from T to the next purchase (inf if none within horizon).
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(T_min, T_max, n)
    if integer_days:
        T = np.floor(T)
    x, t_x, t = np.zeros(n), np.zeros(n), np.zeros(n)
    next_90 = np.zeros(n)
    alive = np.ones(n, bool)
    wait = np.full(n, np.inf)
    active = np.arange(n)
    while active.size:
        t_new = t[active] + rng.exponential(1.0 / lam[active])
        within = t_new <= T[active] + horizon
        idx, t_new = active[within], t_new[within]
        past = t_new <= T[idx]
        x[idx[past]] += 1
        t_x[idx[past]] = t_new[past]
        later, gap = idx[~past], t_new[~past] - T[idx[~past]]
        wait[later] = np.minimum(wait[later], gap)
        next_90[later] += gap <= 90.0
        t[idx] = t_new
        dies = rng.random(idx.size) < p[idx]
        alive[idx[past & dies]] = False
        active = idx[~dies]
    if integer_days:
        t_x = np.floor(t_x)
    return x, t_x, T, next_90, alive, wait


@pytest.fixture(scope="module")
def shop():
    return simulate(20_000, *TRUE, seed=2005, horizon=3650.0)


@pytest.fixture(scope="module")
def fitted(shop):
    x, t_x, T = shop[:3]
    return bgnbd.fit(x, t_x, T)


# --- 1. parameter recovery -------------------------------------------------------------------

def test_recovers_known_parameters(shop, fitted):
    x, t_x, T = shop[:3]
    assert isinstance(fitted, bgnbd.Fit)
    assert fitted.converged and fitted.customers == 20_000
    # Over 20 seeds at this size the relative errors had sd 1.3 % (r), 2.1 % (alpha), 4.0 % (a),
    # 5.1 % (b) and worst cases 2.7 %, 4.1 %, 9.8 %, 12.2 %: the tolerances are ~4-8 sd.
    for name, true, tol in zip(("r", "alpha", "a", "b"), TRUE, (0.10, 0.10, 0.20, 0.20)):
        got = getattr(fitted, name)
        assert abs(got / true - 1) < tol, (name, got, true)
    at_truth = bgnbd.loglik_per_customer(TRUE, x, t_x, T).sum()
    assert fitted.loglik >= at_truth
    assert fitted.loglik == pytest.approx(bgnbd.loglik_per_customer(fitted, x, t_x, T).sum(),
                                          rel=1e-12)


def test_large_shop_recovers_through_the_coarse_grid_path():
    # More than 20,000 distinct rows: fitted on a coarse grid first, then refined on the exact rows.
    x, t_x, T = simulate(200_000, 0.25, 60.0, 0.8, 2.5, seed=7, T_max=730.0,
                         integer_days=True)[:3]
    fit = bgnbd.fit(x, t_x, T)
    assert isinstance(fit, bgnbd.Fit) and fit.customers == 200_000
    assert 20_000 < fit.unique_rows < 200_000
    for got, true, tol in zip(fit.params, (0.25, 60.0, 0.8, 2.5), (0.1, 0.1, 0.15, 0.15)):
        assert abs(got / true - 1) < tol


def test_to_dict_has_the_cli_shape(fitted):
    data = fitted.to_dict()
    assert data["model"] == "bgnbd" and data["time_unit"] == "days"
    assert {"r", "alpha", "a", "b", "loglik", "customers"} <= data.keys()


# --- 2. likelihood against direct integration over lambda and p ------------------------------

def _integrate_posterior(r, alpha, a, b, integrand_lambda):
    """Integral over lambda ~ Gamma(r, rate alpha) and p ~ Beta(a, b) of integrand_lambda(p)(lam).

    Nested adaptive quadrature on the individual-level model; the prior kernels lam^(r-1) and
    p^(a-1) (1-p)^(b-1) are handled exactly by QUADPACK's algebraic weights.
    """
    def over_lambda(p):
        f = integrand_lambda(p)
        split = 0.1 / alpha
        lo = integrate.quad(f, 0.0, split, weight="alg", wvar=(r - 1.0, 0.0),
                            epsabs=0.0, epsrel=1e-12, limit=200)[0]
        hi = integrate.quad(lambda lam: f(lam) * lam ** (r - 1.0), split, np.inf,
                            epsabs=0.0, epsrel=1e-12, limit=200)[0]
        return lo + hi

    total = integrate.quad(over_lambda, 0.0, 1.0, weight="alg", wvar=(a - 1.0, b - 1.0),
                           epsabs=0.0, epsrel=1e-11, limit=200)[0]
    return total * alpha ** r / math.gamma(r) / special.beta(a, b)


def _individual_terms(x, t_x, T, alpha):
    """The two branches of L(lambda, p | x, t_x, T), times the Gamma kernel exp(-alpha lam)."""
    def alive(p):
        return lambda lam: (1 - p) ** x * lam ** x * math.exp(-lam * (T + alpha))

    def dropped(p):
        if x == 0:
            return lambda lam: 0.0
        return lambda lam: p * (1 - p) ** (x - 1) * lam ** x * math.exp(-lam * (t_x + alpha))
    return alive, dropped


def direct_likelihood(params, x, t_x, T):
    r, alpha, a, b = params
    alive, dropped = _individual_terms(x, t_x, T, alpha)
    return _integrate_posterior(r, alpha, a, b, lambda p: (lambda lam: alive(p)(lam)
                                                           + dropped(p)(lam)))


LIKELIHOOD_CASES = [
    (TRUE, 0, 0, 300),
    (TRUE, 1, 40, 300),
    (TRUE, 5, 250, 400),
    ((0.24, 4.41, 0.79, 2.43), 2, 30.43, 38.86),  # CDNOW-scale (weeks)
    ((0.24, 4.41, 0.79, 2.43), 0, 0, 38.86),
    ((2.0, 90.0, 3.0, 12.0), 8, 600, 650),
    ((0.7, 35.0, 0.4, 0.9), 3, 20, 500),
]


@pytest.mark.parametrize("params,x,t_x,T", LIKELIHOOD_CASES)
def test_loglik_matches_direct_integration(params, x, t_x, T):
    closed = bgnbd.loglik_per_customer(params, x, t_x, T)
    direct = direct_likelihood(params, x, t_x, T)
    assert closed == pytest.approx(math.log(direct), abs=1e-9)  # i.e. 1e-9 relative in L


def test_loglik_has_no_overflow_for_extreme_rows():
    ll = bgnbd.loglik_per_customer(TRUE, [0, 500, 2000, 1], [0, 1, 3000, 0], [1e5, 1e5, 3000, 5e4])
    assert np.isfinite(ll).all()


# --- 3. p_alive ------------------------------------------------------------------------------

def test_p_alive_properties(fitted):
    assert np.all(bgnbd.p_alive(fitted, 0, 0, [0, 10, 700]) == 1.0)
    recency = np.arange(0, 301, 10)
    p = bgnbd.p_alive(fitted, 3, recency, 300)
    assert np.all(np.diff(p) > 0)  # the longer ago the last purchase, the less alive
    x, t_x, T = (np.array(v) for v in ([1, 5, 50, 400, 3], [1, 100, 10, 10, 500], [600] * 5))
    p = bgnbd.p_alive(fitted, x, t_x, T)
    assert np.isfinite(p).all() and np.all(p <= 1)
    # 400 purchases in the first 10 days, then silence for 590: exp(-thousands) underflows to 0.
    assert np.all(p[[0, 1, 2, 4]] > 0) and p[3] == 0.0


def test_p_alive_is_calibrated_on_simulated_repeat_buyers(shop):
    x, t_x, T, _, alive, _ = shop
    repeat = x > 0
    predicted = bgnbd.p_alive(TRUE, x[repeat], t_x[repeat], T[repeat]).mean()
    assert predicted == pytest.approx(alive[repeat].mean(), abs=0.015)


# --- 4. expected purchases and next purchase --------------------------------------------------

def test_expected_purchases_is_non_negative_and_increasing(fitted):
    t = np.array([0, 1, 7, 30, 90, 365, 3650, 36500])
    for x, t_x, T in [(0, 0, 30), (1, 5, 10), (4, 200, 700), (40, 300, 320)]:
        e = bgnbd.expected_purchases(fitted, t, x, t_x, T)
        assert np.isfinite(e).all() and e[0] == 0 and np.all(np.diff(e) > 0)


def direct_expected_purchases(params, t, x, t_x, T):
    """E[purchases in (T, T+t]]: alive branch times (1 - exp(-lam p t))/p, over the likelihood."""
    r, alpha, a, b = params
    alive, _ = _individual_terms(x, t_x, T, alpha)

    def future(p):
        g = alive(p)
        return lambda lam: g(lam) * (lam * t if p == 0 else -math.expm1(-lam * p * t) / p)
    return (_integrate_posterior(r, alpha, a, b, future)
            / direct_likelihood(params, x, t_x, T))


@pytest.mark.parametrize("params,t,x,t_x,T", [
    (TRUE, 90, 0, 0, 300),
    (TRUE, 90, 5, 250, 400),
    (TRUE, 3650, 2, 100, 120),
    ((2.0, 90.0, 3.0, 12.0), 30, 8, 600, 650),
    ((0.7, 35.0, 0.4, 0.9), 365, 3, 20, 500),
])
def test_expected_purchases_matches_direct_integration(params, t, x, t_x, T):
    closed = bgnbd.expected_purchases(params, t, x, t_x, T)
    assert closed == pytest.approx(direct_expected_purchases(params, t, x, t_x, T), rel=1e-9)


def test_expected_purchases_reproduces_the_papers_worked_example():
    # FHL 2005, CDNOW in weeks: x=2, t_x=30.43, T=38.86 expects 1.226 purchases in 39 weeks.
    cdnow = (0.243, 4.414, 0.793, 2.426)
    assert bgnbd.expected_purchases(cdnow, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)


def test_expected_purchases_near_removable_singularities():
    # a == 1 and a + b + x - 1 == 0 are removable; values must be continuous across them.
    for params, x in [((0.5, 20.0, 1.0, 2.5), 3), ((0.5, 20.0, 0.6, 0.4), 0)]:
        r, alpha, a, b = params
        at = bgnbd.expected_purchases(params, 90, x, 50 * (x > 0), 300)
        near = bgnbd.expected_purchases((r, alpha, a + 1e-3, b), 90, x, 50 * (x > 0), 300)
        assert np.isfinite(at) and at == pytest.approx(near, rel=1e-2)


def test_expected_purchases_match_simulated_future(shop):
    x, t_x, T, next_90, _, _ = shop
    predicted = bgnbd.expected_purchases(TRUE, 90, x, t_x, T)
    assert predicted.sum() == pytest.approx(next_90.sum(), rel=0.05)
    repeat = x >= 3
    assert predicted[repeat].sum() == pytest.approx(next_90[repeat].sum(), rel=0.05)


def test_next_purchase_days_is_the_median_wait_of_alive_customers(shop):
    x, t_x, T, _, alive, wait = shop
    days = bgnbd.expected_next_purchase_days(TRUE, x, t_x, T)
    assert np.isfinite(days).all() and np.all(days > 0) and np.all(days <= bgnbd.MAX_DAYS)
    usable = alive & (days < bgnbd.MAX_DAYS)
    assert usable.sum() > 5000
    assert np.mean(wait[usable] <= days[usable]) == pytest.approx(0.5, abs=0.02)


def test_next_purchase_days_clipped_and_finite(fitted):
    days = bgnbd.expected_next_purchase_days((0.01, 20.0, 0.8, 2.5), [0, 1, 100], [0, 5, 9], 10)
    assert np.isfinite(days).all() and days.max() <= bgnbd.MAX_DAYS
    assert days[0] == bgnbd.MAX_DAYS
    frequent = fitted.expected_next_purchase_days(60, 590, 600)
    rare = fitted.expected_next_purchase_days(1, 500, 600)
    assert 0 < frequent < rare


# --- 5. degenerate shops ---------------------------------------------------------------------

DEGENERATE = {
    "empty": ([], [], []),
    "three customers": ([1, 0, 2], [5, 0, 9], [10, 12, 30]),
    "no repeat buyers": (np.zeros(50), np.zeros(50), np.arange(50.0)),
    "everyone bought today": (np.zeros(50), np.zeros(50), np.zeros(50)),
    "nine repeat buyers": (np.r_[np.ones(9), np.zeros(40)], np.r_[np.full(9, 4.0), np.zeros(40)],
                           np.full(49, 30.0)),
    "identical rows": (np.full(100, 2), np.full(100, 10), np.full(100, 30)),
    "three patterns": ([2, 1, 0] * 40, [10, 5, 0] * 40, [30] * 120),
}


@pytest.mark.parametrize("name", DEGENERATE)
def test_degenerate_shops_get_a_reason_not_an_exception(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = bgnbd.fit(*DEGENERATE[name])
    assert isinstance(result, bgnbd.NotEnoughHistory), result
    assert result.reason.startswith("not enough history")
    assert result.to_dict()["fitted"] is False


def test_degenerate_reasons_say_what_is_missing():
    assert "only 3 customers" in bgnbd.fit(*DEGENERATE["three customers"]).reason
    assert "only 9 customers bought more than once" in bgnbd.fit(
        *DEGENERATE["nine repeat buyers"]).reason
    assert "come back" in bgnbd.fit(*DEGENERATE["no repeat buyers"]).reason


def test_shop_without_visible_drop_out_is_refused():
    # Everyone buys at the same steady rate and nobody leaves: a and b (and r, alpha) run off.
    rng = np.random.default_rng(3)
    T = rng.uniform(100, 700, 2000)
    x = rng.poisson(0.05 * T)
    t_x = T * rng.beta(np.maximum(x, 1), 1) * (x > 0)
    assert isinstance(bgnbd.fit(x, t_x, T), bgnbd.NotEnoughHistory)


def test_malformed_input_raises():
    with pytest.raises(ValueError):
        bgnbd.fit([1, 2], [5, 50], [10, 20])  # t_x > T
    with pytest.raises(ValueError):
        bgnbd.fit([1, np.nan], [5, 5], [10, 20])
    with pytest.raises(ValueError):
        bgnbd.p_alive(TRUE, [1.5], [5], [10])


# --- 6. dedup path ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [3_000, 60_000])  # the second takes the coarse-then-polish path
def test_unique_rows_with_counts_match_expanded_arrays(n):
    x, t_x, T = simulate(n, *TRUE, seed=11, integer_days=True)[:3]
    rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    assert len(rows) < n
    expanded = bgnbd.fit(x, t_x, T)
    grouped = bgnbd.fit(rows[:, 0], rows[:, 1], rows[:, 2], counts=counts)
    shuffled = np.random.default_rng(0).permutation(n)
    reordered = bgnbd.fit(x[shuffled], t_x[shuffled], T[shuffled])
    assert grouped.customers == expanded.customers == n
    assert grouped.unique_rows == expanded.unique_rows == len(rows)
    np.testing.assert_allclose(grouped.params, expanded.params, rtol=1e-9)
    np.testing.assert_allclose(reordered.params, expanded.params, rtol=1e-9)
    assert grouped.loglik == pytest.approx(expanded.loglik, rel=1e-12)

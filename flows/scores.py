"""Model scores for every customer: BG/NBD p_alive, expected purchases in 90 days, next order date.

The model is fitted on the unique (x, t_x, T) rows of the shop's buyers with their counts, which is
what makes a 200,000-customer shop fast. One-time buyers keep their rule-based status: BG/NBD says
p_alive = 1 for them whatever the time, so their p_alive is left empty.
"""
import numpy as np
from scipy.stats import rankdata
from threadpoolctl import threadpool_limits

from . import bgnbd

# One row per buyer: model inputs (x repeat purchase days, t_x recency, age T) and RFM inputs.
BUYERS = """
SELECT customer_id, purchase_days - 1,
       CAST(julianday(last_date) - julianday(first_date) AS INTEGER), days_since_first,
       days_since_last, purchases, clv_minor
FROM customer_snapshots WHERE shop_id = ? AND purchases > 0
"""

STORE = """
UPDATE customer_snapshots SET r_score = ?, f_score = ?, m_score = ?, stage = ?, p_alive = ?,
    expected_90d = ?, expected_next_order = ?
WHERE customer_id = ?
"""

# Without a model, a repeat buyer's next order is expected one usual gap after the last.
RULE_BASED_NEXT = """
UPDATE customer_snapshots SET
    expected_next_order = date(last_date, '+' || CAST(round(avg_gap_days) AS INTEGER) || ' days')
WHERE shop_id = :shop AND purchase_days >= 2 AND status = 'active'
"""

STAGES = ("champions", "loyal", "potential", "at_risk", "hibernating", "lost")


def rfm(recency_days, purchases, clv):
    """RFM scores 1–5 by percent rank (ties share a score; one-time buyers all get F = 1) and the
    named stage of each buyer."""
    def score(values):
        n = len(values)
        if n < 2:
            return np.full(n, 3)
        pct = (rankdata(values, method="min") - 1) / (n - 1)
        return 1 + np.minimum(4, (pct * 5).astype(int))
    r, f, m = score(-recency_days), score(purchases), score(clv)
    stage = np.select([(r >= 4) & (f >= 4), (r >= 3) & (f >= 3), r >= 3, f >= 3, r == 2],
                      list(STAGES[:5]), default=STAGES[5])
    return r, f, m, stage


def fit_shop(db, shop_id):
    """Fit BG/NBD on the shop's buyers; returns (fit or NotEnoughHistory, buyer rows)."""
    rows = np.array(db.execute(BUYERS, [shop_id]).fetchall(), dtype=float).reshape(-1, 7)
    x, t_x, age = rows[:, 1], rows[:, 2], rows[:, 3]
    # BLAS threads fight over two cores inside the optimiser's small matrix work: one is faster.
    with threadpool_limits(limits=1):
        return bgnbd.fit(x, t_x, age), rows


def model_summary(fit, customers) -> dict:
    """The `winback model` JSON document for a fit (or the reason there is none)."""
    if isinstance(fit, bgnbd.NotEnoughHistory):
        return {"model": "bgnbd", "time_unit": "days", "status": "not_enough_history",
                "reason": fit.reason, "r": None, "alpha": None, "a": None, "b": None,
                "loglik": None, "customers": customers}
    return {"model": "bgnbd", "time_unit": "days", "status": "fitted",
            "r": fit.r, "alpha": fit.alpha, "a": fit.a, "b": fit.b, "loglik": fit.loglik,
            "customers": customers, "converged": fit.converged}


def score(db, params) -> dict:
    """Fit the shop's model and store every buyer's RFM and model scores (caller holds the transaction)."""
    fit, rows = fit_shop(db, params["shop"])
    ids, x, t_x, age, recency, purchases, clv = rows.T
    r, f, m, stage = rfm(recency, purchases, clv)
    n = len(ids)
    none = [None] * n
    if isinstance(fit, bgnbd.Fit) and n:
        alive = bgnbd.p_alive(fit, x, t_x, age)
        alive = np.where(x > 0, alive, np.nan)  # BG/NBD cannot see a one-time buyer leave
        exp90 = bgnbd.expected_purchases(fit, 90, x, t_x, age)
        wait = bgnbd.expected_next_purchase_days(fit, x, t_x, age)
        next_date = np.datetime64(params["now_date"]) + np.round(wait).astype("timedelta64[D]")
        next_dates = np.where(wait < bgnbd.MAX_DAYS, np.datetime_as_string(next_date, unit="D"), None)
        cols = (_nullable(alive), exp90.tolist(), next_dates.tolist())
    else:
        cols = (none, none, none)
    db.conn.executemany(STORE, zip(r.tolist(), f.tolist(), m.tolist(), stage.tolist(), *cols,
                                   ids.astype(int).tolist()))
    if not isinstance(fit, bgnbd.Fit):
        db.execute(RULE_BASED_NEXT, params)
    return model_summary(fit, n)


def _nullable(values):
    return [None if v != v else v for v in values.tolist()]  # NaN → NULL

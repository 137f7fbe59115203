"""Model scores for every customer: BG/NBD p_alive, expected purchases in 90 days, next order date.

The model is fitted on the unique (x, t_x, T) rows of the shop's buyers with their counts, which is
what makes a 200,000-customer shop fast. One-time buyers keep their rule-based status: BG/NBD says
p_alive = 1 for them whatever the time, so their p_alive is left empty.
"""
import numpy as np
from threadpoolctl import threadpool_limits

from . import bgnbd

UNIQUE_ROWS = """
SELECT purchase_days - 1 AS x,
       CAST(julianday(last_date) - julianday(first_date) AS INTEGER) AS t_x,
       days_since_first AS age, COUNT(*) AS n
FROM customer_snapshots WHERE shop_id = ? AND purchases > 0
GROUP BY 1, 2, 3
"""

APPLY = """
UPDATE customer_snapshots SET
    p_alive = CASE WHEN customer_snapshots.purchase_days >= 2 THEN m.p_alive END,
    expected_90d = m.expected_90d,
    expected_next_order = CASE WHEN m.next_days IS NOT NULL
        THEN date(:now_date, '+' || CAST(round(m.next_days) AS INTEGER) || ' days') END
FROM temp.model_scores AS m
WHERE customer_snapshots.shop_id = :shop AND customer_snapshots.purchases > 0
  AND m.x = customer_snapshots.purchase_days - 1
  AND m.t_x = CAST(julianday(customer_snapshots.last_date) - julianday(customer_snapshots.first_date) AS INTEGER)
  AND m.age = customer_snapshots.days_since_first
"""

# Without a model, a repeat buyer's next order is expected one usual gap after the last.
RULE_BASED_NEXT = """
UPDATE customer_snapshots SET p_alive = NULL, expected_90d = NULL,
    expected_next_order = CASE WHEN purchase_days >= 2 AND status = 'active'
        THEN date(last_date, '+' || CAST(round(avg_gap_days) AS INTEGER) || ' days') END
WHERE shop_id = :shop
"""


def fit_shop(db, shop_id):
    """Fit BG/NBD on the shop's snapshot; returns (fit or NotEnoughHistory, x, t_x, T, counts)."""
    rows = np.array(db.execute(UNIQUE_ROWS, [shop_id]).fetchall(), dtype=float).reshape(-1, 4)
    x, t_x, age, n = rows.T
    # BLAS threads fight over two cores inside the optimiser's small matrix work: one is faster.
    with threadpool_limits(limits=1):
        return bgnbd.fit(x, t_x, age, counts=n), x, t_x, age, n


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
    """Fit the shop's model and store every buyer's scores (caller holds the transaction)."""
    fit, x, t_x, age, n = fit_shop(db, params["shop"])
    customers = int(n.sum()) if n.size else 0
    if isinstance(fit, bgnbd.NotEnoughHistory):
        db.execute(RULE_BASED_NEXT, params)
        return model_summary(fit, customers)
    alive = bgnbd.p_alive(fit, x, t_x, age)
    exp90 = bgnbd.expected_purchases(fit, 90, x, t_x, age)
    next_days = bgnbd.expected_next_purchase_days(fit, x, t_x, age)
    next_days[next_days >= bgnbd.MAX_DAYS] = np.nan  # "ten years from now" is no date to show
    db.execute("DROP TABLE IF EXISTS temp.model_scores")
    db.execute("CREATE TEMP TABLE model_scores (x INTEGER, t_x INTEGER, age INTEGER, p_alive REAL,"
               " expected_90d REAL, next_days REAL, PRIMARY KEY (x, t_x, age))")
    db.conn.executemany(
        "INSERT INTO temp.model_scores VALUES (?, ?, ?, ?, ?, ?)",
        [(int(a), int(b), int(c), float(d), float(e), float(f) if np.isfinite(f) else None)
         for a, b, c, d, e, f in zip(x, t_x, age, alive, exp90, next_days)])
    db.execute(APPLY, params)
    db.execute("DROP TABLE temp.model_scores")
    return model_summary(fit, customers)

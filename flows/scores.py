"""Model scores for every customer: BG/NBD p_alive, expected purchases in 90 days, next order date.

The model is fitted on the unique (x, t_x, T) rows of the shop's buyers with their counts, which is
what makes a 200,000-customer shop fast. One-time buyers keep their rule-based status: BG/NBD says
p_alive = 1 for them whatever the time, so their p_alive is left empty.
"""
from contextlib import nullcontext

import numpy as np
from threadpoolctl import threadpool_limits

from . import bgnbd, predictions, targeting
from .metrics import narrowed
from .segments import rule_status

# One row per buyer: model inputs (x repeat purchase days, t_x recency, age T), RFM inputs, and for
# flows.predictions the rule's status (0 active, 1 lapsed, 2 lost; read as the usual gap in days and
# replaced by `with_rule`) and the first-to-second purchase gap (-1: none), as numbers so that the
# rows load as one float array; then the rule's lapse day (from `with_rule`). The rule
# (flows.segments.rule_status) is applied here and stored with the scores: one write of each row
# instead of two; the same rows give the shop's rhythm (`rhythm_inputs`), read once for both.
# The days since the first and last purchase are counted to :now_date here and stored with them too:
# a refresh on a new day rewrites only the changed customers' metrics (flows/refresh.py). Last, the
# stored status (-1: none): only a changed status is written, as it is indexed.
BUYERS = """
SELECT customer_id, purchase_days - 1,
       CAST(julianday(last_date) - julianday(first_date) AS INTEGER),
       CAST(julianday(:now_date) - julianday(first_date) AS INTEGER),
       CAST(julianday(:now_date) - julianday(last_date) AS INTEGER), purchases, clv_minor, avg_gap_days,
       COALESCE(julianday(second_date) - julianday(first_date), -1), NULL,
       CASE status WHEN 'active' THEN 0 WHEN 'lapsed' THEN 1 WHEN 'lost' THEN 2 ELSE -1 END
FROM customer_snapshots WHERE shop_id = :shop AND purchases > 0 {only}
"""

STORE = """
UPDATE customer_snapshots SET r_score = ?, f_score = ?, m_score = ?, stage = ?, p_alive = ?,
    expected_90d = ?, expected_next_order = ?, lapse_after_days = ?, days_since_first = ?,
    days_since_last = ?, p_purchase_30d = NULL, p_purchase_next = NULL, return_share = NULL,
    predicted_clv_12m_minor = NULL, worth_minor = NULL, offer_kind = NULL, offer_percent = NULL, offer_rule = NULL
WHERE customer_id = ?
"""

STORE_SLICE = 20_000
# Updating an indexed column rewrites its index entry even when the value stays: ~0.6 s for 200k rows.
# So a status is written on its own where it changed (a new row is written as 'active', see
# metrics.SCORE_ROOM), unless most changed (the first refresh of a shop where most buyers have lapsed or
# are lost): then with the scores, in the same pass over the table (a second pass costs half a second
# at 200k).
STORE_STATUS = "UPDATE customer_snapshots SET status = ? WHERE customer_id = ?"
STATUS_WITH_SCORES = 0.5  # the share of changed statuses above which they are written with the scores
STORE_PREDICTED = """
UPDATE customer_snapshots SET r_score = ?, f_score = ?, m_score = ?, stage = ?, p_alive = ?,
    expected_90d = ?, expected_next_order = ?, p_purchase_30d = ?, p_purchase_next = ?, return_share = ?,
    predicted_clv_12m_minor = ?, worth_minor = ?, offer_kind = ?, offer_percent = ?, offer_rule = ?,
    lapse_after_days = ?, days_since_first = ?, days_since_last = ?
WHERE customer_id = ?
"""

# Without a model, a repeat buyer's next order is expected one usual gap after the last.
RULE_BASED_NEXT = """
UPDATE customer_snapshots SET
    expected_next_order = date(last_date, '+' || CAST(round(avg_gap_days) AS INTEGER) || ' days')
WHERE shop_id = :shop AND purchase_days >= 2 AND status = 'active' {only}
"""

STAGES = ("champions", "loyal", "potential", "at_risk", "hibernating", "lost")


def rfm_cutpoints(recency_days, purchases, clv) -> dict:
    """What RFM scoring learns from every buyer: per dimension the value a buyer must exceed for each
    score above 1. Scores are 1-5 by percent rank (ties share the lowest rank; one-time buyers all
    get F = 1); a score of k + 1 needs at least m_k buyers below, i.e. a value above the m_k-th
    smallest, so four numbers per dimension score any buyer exactly as ranking among these would."""
    n = len(recency_days)
    if n < 2:
        return {"n": n}
    # The percent rank of a value with `below` buyers under it, as ranking computes it.
    score = 1 + np.minimum(4, ((np.arange(n) / (n - 1)) * 5).astype(int))
    below = np.searchsorted(score, np.arange(2, 6), side="left")
    cuts = {}
    for name, values in (("r", -np.asarray(recency_days, dtype=float)), ("f", purchases), ("m", clv)):
        ordered = np.sort(np.asarray(values, dtype=float))
        cuts[name] = [float(ordered[k - 1]) if k < n else None for k in below.tolist()]
    return {"n": n, **cuts}


def rfm(cuts, recency_days, purchases, clv):
    """RFM scores 1-5 of buyers against the learned cut points (`rfm_cutpoints`), and the named stage
    of each buyer."""
    def score(name, values):
        values = np.asarray(values, dtype=float)
        if cuts["n"] < 2:
            return np.full(values.size, 3)
        return np.ones(values.size, dtype=int) + sum(
            ((values > cut).astype(int) for cut in cuts[name] if cut is not None), np.zeros(values.size, dtype=int))
    r, f, m = score("r", -np.asarray(recency_days, dtype=float)), score("f", purchases), score("m", clv)
    stage = np.select([(r >= 4) & (f >= 4), (r >= 3) & (f >= 3), r >= 3, f >= 3, r == 2],
                      list(STAGES[:5]), default=STAGES[5])
    return r, f, m, stage


def buyer_rows(db, params, only="") -> np.ndarray:
    """The BUYERS rows (of the customers `only` selects, a SQL condition; default every buyer) as
    one float array in customer order, before `with_rule` (`params`: :shop and :now_date)."""
    rows = np.array(db.execute(narrowed(BUYERS, only), params).fetchall(), dtype=float).reshape(-1, 11)
    # In key order, so that the per-customer updates go through the table's B-tree in order.
    return rows[np.argsort(rows[:, 0], kind="stable")]


def rhythm_inputs(rows) -> dict:
    """What metrics.shop_rhythm learns the shop's rhythm from, out of `buyer_rows`: the repeat
    buyers' usual gaps, the returners' first-to-second gaps, every buyer's value and purchase days."""
    gaps, firsts = rows[:, 7], rows[:, 8]
    return {"gaps": gaps[~np.isnan(gaps)], "first_gaps": firsts[firsts >= 0], "clv": rows[:, 6],
            "purchase_days": rows[:, 1] + 1}


def with_rule(rows, params) -> np.ndarray:
    """`buyer_rows` with the rule's status code and lapse day (flows.segments.rule_status) in place."""
    rows = rows.copy()
    rows[:, 7], rows[:, 9] = rule_status(rows[:, 1] + 1, rows[:, 4], rows[:, 7], params)
    return rows


def fit_shop(rows):
    """Fit BG/NBD on the shop's `buyer_rows`; returns the fit or NotEnoughHistory."""
    x, t_x, age = rows[:, 1], rows[:, 2], rows[:, 3]
    # BLAS threads fight over two cores inside the optimiser's small matrix work: one is faster.
    with threadpool_limits(limits=1):
        return bgnbd.fit(x, t_x, age)


def model_summary(fit, customers) -> dict:
    """The `winback model` JSON document for a fit (or the reason there is none)."""
    if isinstance(fit, bgnbd.NotEnoughHistory):
        return {"model": "bgnbd", "time_unit": "days", "status": "not_enough_history",
                "reason": fit.reason, "r": None, "alpha": None, "a": None, "b": None,
                "loglik": None, "customers": customers}
    return {"model": "bgnbd", "time_unit": "days", "status": "fitted",
            "r": fit.r, "alpha": fit.alpha, "a": fit.a, "b": fit.b, "loglik": fit.loglik,
            "customers": customers, "converged": fit.converged}


def score(db, params, learned=None, only="", rows=None) -> tuple[dict | None, dict]:
    """Store every buyer's RFM and model scores, the model-based lapse and the offer decision (caller
    holds the transaction; flows.targeting explains the numbers); returns (the model summary, what was
    learned).

    Without `learned` the shop's models and cut points are first learned from every buyer (the model
    summary is then returned); with it, what an earlier refresh of the day learned scores the buyers
    (`only`: a SQL condition on customer_id, e.g. the changed customers; no summary is returned).
    `rows`: their `buyer_rows` when already read."""
    rows = with_rule(buyer_rows(db, params, only) if rows is None else rows, params)
    if learned is None:
        fit, cuts = fit_shop(rows), rfm_cutpoints(*rows[:, 4:7].T)
    else:
        fit, cuts = None, learned["rfm"]
    ids, x, t_x, age, recency, purchases, clv = rows[:, :7].T
    r, f, m, stage = rfm(cuts, recency, purchases, clv)
    n = len(ids)
    none = [None] * n
    # Finding the BLAS libraries to limit costs 60 ms: worth it only for a whole shop's arrays.
    with threadpool_limits(limits=1) if n > STORE_SLICE else nullcontext():
        predicted, taught = (predictions.predict(db, params, fit, rows, learned and learned["predictions"])
                             if n else (None, learned["predictions"] if learned else {"purchase": None}))
    if predicted is not None:
        alive, exp90, wait = predicted["p_alive"], predicted["expected_90d"], predicted["wait"]
        next_date = np.datetime64(params["now_date"]) + np.round(np.nan_to_num(wait)).astype("timedelta64[D]")
        # Never an expected next order for a customer the model rates as gone.
        shown = (wait < bgnbd.MAX_DAYS) & ~(alive < targeting.GONE_BELOW)
        next_dates = np.where(shown, np.datetime_as_string(next_date, unit="D"), None)
        cols = (_nullable(alive), _nullable(exp90), next_dates.tolist())
    else:
        cols = (none, none, none)
    rfm_cols = (r.tolist(), f.tolist(), m.tolist(), stage.tolist())
    status = predictions.STATUSES[rows[:, 7].astype(int)] if predicted is None else predicted["status"]
    changed = _status_code(status) != rows[:, 10]
    with_scores = n and changed.mean() > STATUS_WITH_SCORES
    if with_scores:
        rfm_cols = (status.tolist(), *rfm_cols)
    if predicted is None:
        lapse_after = rows[:, 9].tolist()
        days = (age.astype(int).tolist(), recency.astype(int).tolist())
        db.conn.executemany(_storing_status(STORE) if with_scores else STORE,
                            zip(*rfm_cols, *cols, lapse_after, *days, ids.astype(int).tolist()))
    else:  # one statement per customer for everything: a second pass over 200k rows costs a second
        p = predicted
        as_list = np.ndarray.tolist
        more = ((p["p30"], _nullable), (p["p_next"], _nullable), (p["return_share"], _nullable),
                (p["clv12"], _minor), (p["worth"], _minor), (p["kind"], as_list), (p["percent"], _nullable),
                (p["rule"], as_list), (rows[:, 9], as_list), (age.astype(int), as_list),
                (recency.astype(int), as_list), (ids.astype(int), as_list))
        store = _storing_status(STORE_PREDICTED) if with_scores else STORE_PREDICTED
        # In slices: Python objects for 17 columns of 200k customers at once would cost ~100 MB.
        for start in range(0, n, STORE_SLICE):
            part = slice(start, start + STORE_SLICE)
            db.conn.executemany(store, zip(*(c[part] for c in rfm_cols), *(c[part] for c in cols),
                                           *(convert(c[part]) for c, convert in more)))
    if not with_scores:
        db.conn.executemany(STORE_STATUS, zip(status[changed].tolist(), ids[changed].astype(int).tolist()))
    if predicted is None:
        db.execute(narrowed(RULE_BASED_NEXT, only), params)  # for the active: after their statuses are written
    taught = {"rfm": cuts, "predictions": taught}
    if learned is not None:
        return None, taught
    summary = model_summary(fit, n)
    if predicted is not None:
        summary["targeting"] = predicted["summary"]
    return summary, taught


def _status_code(status):
    """Statuses as the codes BUYERS reads the stored ones as (-1: none)."""
    return np.select([status == "active", status == "lapsed", status == "lost"], [0, 1, 2], default=-1)


def _storing_status(store):
    """A STORE statement that writes the status too, as its first value."""
    return store.replace("UPDATE customer_snapshots SET ", "UPDATE customer_snapshots SET status = ?, ", 1)


def _minor(values):
    """Whole minor units, NaN → NULL (in numpy: a Python loop over 200k values costs a tenth of a second)."""
    missing = np.isnan(values)
    out = np.where(missing, 0, np.round(values)).astype(np.int64).astype(object)
    out[missing] = None
    return out.tolist()


def _nullable(values):
    values = np.asarray(values, dtype=float)
    out = values.astype(object)
    out[np.isnan(values)] = None  # NaN → NULL
    return out.tolist()

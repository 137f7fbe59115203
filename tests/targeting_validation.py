"""Validation of the model-based lapse on a public order history and on simulated shops.

A calibration/holdout split: customers are scored as of the end of the calibration period exactly as
a refresh scores them (flows.predictions.compute on the same arrays), and the truth is whether they
bought again in the holdout. The `lapsed` set is compared with "no purchase in the last 90 days" and
with the same number of customers picked by recency alone, at picking who does not come back.

CDNOW (tests/fixtures/cdnow): 23,570 customers' CD purchases from January 1997 to June 1998; the
calibration is the first 39 weeks (to 1997-09-30), the holdout the next 39 weeks.
"""
from datetime import date
from pathlib import Path

import numpy as np

from app.settings import SETTINGS
from flows import bgnbd, predictions

CDNOW = Path(__file__).resolve().parent / "fixtures" / "cdnow"


def load_cdnow(name="CDNOW_master.txt"):
    """(customer index, day number since 1997-01-01, value) arrays, one row per purchase day."""
    header = not (CDNOW / name).read_text().lstrip()[:1].isdigit()
    raw = np.loadtxt(CDNOW / name, dtype=str, skiprows=int(header))
    customer, day, value = raw[:, 0], raw[:, -3], raw[:, -1].astype(float)
    ordinal = np.array([date(int(d[:4]), int(d[4:6]), int(d[6:])).toordinal() for d in np.unique(day)])
    days = ordinal[np.searchsorted(np.unique(day), day)] - date(1997, 1, 1).toordinal()
    ids = np.unique(customer, return_inverse=True)[1]
    key = ids.astype(np.int64) * 100000 + days
    uniq, inverse = np.unique(key, return_inverse=True)
    return uniq // 100000, uniq % 100000, np.bincount(inverse, weights=value)


def split(customer, day, value, end, holdout):
    """Per customer (who bought before `end`): calibration x, t_x, T, recency, purchase days, value
    and first-to-second gap; and the truth: purchase days in [end, end + holdout)."""
    cal = day < end
    c, d, v = customer[cal], day[cal], value[cal]
    ids, first_ix, counts = np.unique(c, return_index=True, return_counts=True)
    first = d[first_ix]
    last = d[first_ix + counts - 1]
    clv = np.add.reduceat(v, first_ix)
    second = np.where(counts >= 2, d[np.minimum(first_ix + 1, d.size - 1)], -1)
    hold = (day >= end) & (day < end + holdout)
    later = np.bincount(customer[hold], minlength=customer.max() + 1)[ids]
    x = counts - 1.0
    return {"x": x, "t_x": (last - first).astype(float), "T": (end - first).astype(float),
            "recency": (end - last).astype(float), "clv": clv, "gap": np.where(second >= 0, second - first, np.nan),
            "returned": later > 0}


def rule_status(x, t_x, recency, settings, one_time_return_days):
    """The SPEC rule (flows.segments.CLASSIFY) on arrays."""
    gap = np.where(x > 0, t_x / np.maximum(x, 1), np.nan)
    repeat_lapsed = (x > 0) & (recency > settings["lapse_factor"] * gap) & (recency >= settings["lapse_min_days"])
    once_lapsed = (x == 0) & (recency > one_time_return_days)
    return np.where(recency > settings["lost_days"], "lost",
                    np.where(repeat_lapsed | once_lapsed, "lapsed", "active"))


def score(data, settings=None, currency="USD"):
    """flows.predictions.compute on a split's customers; returns its result."""
    settings = settings or {k: s.default for k, s in SETTINGS.items()}
    gaps = data["gap"][np.isfinite(data["gap"])]
    otr = float(np.percentile(gaps, 80)) if gaps.size >= settings["one_time_return_min_returners"] else 90.0
    status = rule_status(data["x"], data["t_x"], data["recency"], settings, otr)
    n = data["x"].size
    rows = np.column_stack([np.arange(n), data["x"], data["t_x"], data["T"], data["recency"], data["x"] + 1,
                            np.round(data["clv"] * 100)])
    fit = bgnbd.fit(data["x"], data["t_x"], data["T"])
    return predictions.compute(rows, status, gaps, settings, fit, currency), status


def figures(chosen, gone) -> dict:
    """Size, precision, recall and F1 of a chosen set at picking the customers who do not come back."""
    hits = int((chosen & gone).sum())
    size = int(chosen.sum())
    precision = hits / size if size else 0.0
    recall = hits / int(gone.sum()) if gone.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"size": size, "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def compare(data, result) -> dict:
    """The model's lapsed set against "no purchase in 90 days" and against as many customers picked by
    recency; the truth is no purchase in the holdout."""
    gone = ~data["returned"]
    lapsed = result["status"] == "lapsed"
    ninety = data["recency"] > 90
    # Ties in recency make an exact same-size set by recency impossible; take the most recent-less
    # customers, in a stable order, up to the lapsed set's size.
    by_recency = np.zeros(gone.size, bool)
    by_recency[np.argsort(-data["recency"], kind="stable")[:int(lapsed.sum())]] = True
    # The model's own ranking (chance of an order in the lapse horizon, lowest first) cut at the size of
    # the 90-day set: the same-size comparison.
    by_model = np.zeros(gone.size, bool)
    by_model[np.argsort(result["p_next"], kind="stable")[:int(ninety.sum())]] = True
    return {"customers": int(gone.size), "lapsed": figures(lapsed, gone), "no_purchase_90d": figures(ninety, gone),
            "recency_same_size_as_lapsed": figures(by_recency, gone),
            "model_same_size_as_90d": figures(by_model, gone)}


def cdnow_comparison(name="CDNOW_master.txt") -> dict:
    """The comparison on CDNOW, 39-week calibration and 39-week holdout."""
    customer, day, value = load_cdnow(name)
    end = (date(1997, 10, 1) - date(1997, 1, 1)).days
    data = split(customer, day, value, end, 273)
    result, _ = score(data)
    return {"data": name, **compare(data, result)}

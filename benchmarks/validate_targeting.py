"""Validation: does the `lapsed` set pick who does not come back better than "no purchase in 90 days"?

    .venv/bin/python benchmarks/validate_targeting.py

On the CDNOW order history (tests/fixtures/cdnow; 39-week calibration, 39-week holdout) and on three
simulated shops with a known truth (tests/simulated.py), customers are scored as a refresh scores
them. Prints one JSON line per data set: size, precision, recall and F1 of the lapsed set, of "no
purchase in 90 days", of as many customers picked by recency alone, and of the model's ranking cut at
the 90-day set's size (on simulated shops also the share of repeat buyers truly gone). Target: the
lapsed set is no larger and more precise than the 90-day set, and at least as precise as the same
number of customers picked by recency.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    import numpy as np

    from tests.simulated import simulate
    from tests.targeting_validation import cdnow_comparison, compare, score

    def verdict(figures):
        lapsed, ninety = figures["lapsed"], figures["no_purchase_90d"]
        return bool(lapsed["size"] <= ninety["size"] and lapsed["precision"] > ninety["precision"]
                    and lapsed["precision"] >= figures["recency_same_size_as_lapsed"]["precision"])

    target = "lapsed no larger and more precise than no_purchase_90d, and as precise as recency at its size"
    for name in ("CDNOW_master.txt", "CDNOW_sample.txt"):
        figures = cdnow_comparison(name)
        print(json.dumps({"benchmark": "validate_targeting", **figures, "met": verdict(figures), "target": target}))
    for seed in (1, 2, 3):
        shop = simulate(5000, seed=seed)
        data = {"x": shop.x, "t_x": shop.t_x, "T": shop.T, "recency": shop.T - shop.t_x,
                "clv": shop.mean_value * shop.n, "gap": np.full(shop.x.size, np.nan), "returned": shop.holdout > 0}
        result, _ = score(data)
        figures = compare(data, result)
        repeat = shop.x > 0
        lapsed = (result["status"] == "lapsed") & repeat
        figures["repeat_buyers_truly_gone"] = {
            "lapsed": round(float((~shop.alive[lapsed]).mean()), 4),
            "no_purchase_90d": round(float((~shop.alive[(data["recency"] > 90) & repeat]).mean()), 4)}
        print(json.dumps({"benchmark": "validate_targeting", "data": f"simulated seed {seed}", **figures,
                          "met": verdict(figures), "target": target}))


if __name__ == "__main__":
    main()

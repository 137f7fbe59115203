"""Stability of the purchase model on small shops: parameter error of the exact and the shrunk fit.

    .venv/bin/python benchmarks/bench_shrinkage.py [--repeats 20]

Simulates BG/NBD shops of 100, 300 and 1,000 customers with known parameters (tests/simulated.py) and
prints one JSON line per size: the median and worst absolute error of log(r, alpha, a, b) over the
repeats for the exact fit (flows.bgnbd; failures counted) and the shrunk one (flows.shrinkage), and
the same for Gamma-Gamma's log(p, q, gamma) with its prior. Target: the shrunk fit's worst error below
1.2 (a factor of 3.3) at every size.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    import numpy as np

    from flows import bgnbd, gammagamma, shrinkage
    from tests.simulated import BGNBD, SPEND, simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    truth, spend_truth = np.log(BGNBD), np.log(SPEND)
    for n in (100, 300, 1000):
        exact, shrunk, spend, failed = [], [], [], 0
        for seed in range(args.repeats):
            s = simulate(n, seed=seed)
            e = bgnbd.fit(s.x, s.t_x, s.T)
            if isinstance(e, bgnbd.Fit):
                exact.append(np.abs(np.log(e.params) - truth))
            else:
                failed += 1
            shrunk.append(np.abs(np.log(shrinkage.fit(s.x, s.t_x, s.T).params) - truth))
            g = gammagamma.fit(s.n, s.mean_value)
            spend.append(np.abs(np.log(g.params) - spend_truth))

        def summary(errors, names):
            errors = np.array(errors)
            if not errors.size:
                return None
            return {name: {"median": round(float(np.median(errors[:, i])), 3),
                           "max": round(float(errors[:, i].max()), 3)} for i, name in enumerate(names)}

        worst = float(np.max(shrunk))
        print(json.dumps({"benchmark": "shrinkage", "customers": n, "repeats": args.repeats,
                          "exact_fit": summary(exact, ("r", "alpha", "a", "b")), "exact_failed": failed,
                          "shrunk_fit": summary(shrunk, ("r", "alpha", "a", "b")),
                          "gamma_gamma": summary(spend, ("p", "q", "gamma")),
                          "worst_log_error": round(worst, 3), "target": "< 1.2", "met": worst < 1.2}))


if __name__ == "__main__":
    main()

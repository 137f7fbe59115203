"""Benchmark: how fast the everyday commands answer on a large shop, from its stored snapshot.

    .venv/bin/python benchmarks/bench_cli.py [--customers 200000] [--orders 1000000] [--runs 5]

Uses the shop bench_refresh.py builds (benchmarks/out/refresh_<customers>_<orders>.db), refreshes it
once as of its --now, then times in fresh processes (the median of --runs, wall clock):
`winback --help`, `explain` of one customer and `segments` later the same day (answered from the
stored snapshot), and `scores --json` (every customer) when the command exists. One JSON line each,
with its target (--help, explain and segments < 0.3 s, scores < 3 s) and the CPU seconds beside.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import bench_refresh  # noqa: E402 - after the path it needs

WINBACK = str(Path(sys.executable).with_name("winback"))
LATER = bench_refresh.NOW + "T15:00:00Z"  # the same day as the stored snapshot, hours later


def timed(args, env, runs):
    """Median wall seconds of `winback args` in fresh processes, and the median CPU seconds (user and
    system) they took: on a shared machine the wall clock also counts the other processes' turns."""
    seconds, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([WINBACK, *args], env=env, check=True, stdout=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return round(statistics.median(seconds), 3), round(statistics.median(cpu), 3)


def report(name, timing, target, **extra):
    seconds, cpu = timing
    print(json.dumps({"benchmark": f"cli_{name}", "seconds": seconds, "target_seconds": target,
                      "met": seconds < target, "cpu_seconds": cpu, **extra}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = bench_refresh.shop_database(args.customers, args.orders)
    env = {**os.environ, "WINBACK_DATABASE": str(path), "WINBACK_INSTANCE_PATH": str(out / "cli_instance")}
    subprocess.run([WINBACK, "init-db"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([WINBACK, "refresh", "--shop", "bench", "--now", bench_refresh.NOW], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    report("help", timed(["--help"], env, args.runs), 0.3)
    report("explain", timed(["explain", "--shop", "bench", "--customer", "C12345", "--now", LATER, "--json"],
                            env, args.runs), 0.3, customers=args.customers)
    report("segments", timed(["segments", "--shop", "bench", "--now", LATER, "--json"], env, args.runs), 0.3,
           customers=args.customers)
    has_scores = subprocess.run([WINBACK, "scores", "--help"], env=env, capture_output=True).returncode == 0
    if has_scores:
        report("scores", timed(["scores", "--shop", "bench", "--now", LATER, "--json"], env, max(1, args.runs // 2)),
               3.0, customers=args.customers)


if __name__ == "__main__":
    main()

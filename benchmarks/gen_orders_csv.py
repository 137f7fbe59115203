"""Write a deterministic `generic`-format order CSV for the import benchmark.

About five order lines per customer (200,000 customers ≈ 1,000,000 lines), in created_at order as a
shop's export would be, written row by row: memory stays small whatever the size.

    python benchmarks/gen_orders_csv.py --customers 200000 --out benchmarks/out/orders_200000.csv
"""
from __future__ import annotations

import argparse
import csv
import heapq
import os
import random
from datetime import datetime, timedelta, timezone

HEADER = ["order_id", "created_at", "customer_id", "email", "first_name", "locale",
          "accepts_marketing", "currency", "status", "total", "refunded_amount", "product_id", "sku",
          "title", "brand", "category", "quantity", "price"]

START = datetime(2021, 1, 1, tzinfo=timezone.utc)
DAYS = 4 * 365
FIRST_NAMES = ["Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Greta", "Hugo", "Ines", "Jonas",
               "Karin", "Luca", "Mia", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sven", "Zoë"]
BRANDS = ["Acme", "Northwind", "Blue Fjord", "Kettle & Co", "Sunleaf", "Urban Oak", "Velvet", "Zest"]
CATEGORIES = ["Coffee", "Tea", "Skincare", "Supplements", "Pet food", "Candles", "Socks", "Books"]
LOCALES = ["en", "de", "fr", "nl", "it"]


def _catalog(rng: random.Random, size: int = 2000) -> list[tuple]:
    products = []
    for i in range(1, size + 1):
        brand, category = rng.choice(BRANDS), rng.choice(CATEGORIES)
        price = rng.choice([4.5, 7.9, 9.99, 12.5, 14.9, 19.99, 24.0, 29.9, 39.0, 59.0])
        products.append((f"P{i:05d}", f"SKU-{i:05d}", f"{category} {brand} #{i}", brand, category,
                         f"{price:.2f}"))
    return products


def _customer(rng: random.Random, n: int) -> dict:
    registered = rng.random() < 0.8
    first_name = rng.choice(FIRST_NAMES)
    return {
        "customer_id": f"C{n:07d}" if registered else "",
        "email": f"{first_name.lower()}.{n}@example.{rng.choice(['com', 'de', 'org'])}",
        "first_name": first_name,
        "locale": rng.choice(LOCALES),
        # Mean days between orders, and the chance of ordering again after each order.
        "gap": rng.lognormvariate(4.0, 0.7),
        "stay": rng.choice([0.4, 0.55, 0.65, 0.75]),
    }


def generate(customers: int, out: str, seed: int = 1) -> int:
    """Write the CSV to `out`; returns the number of order lines written."""
    rng = random.Random(seed)
    catalog = _catalog(rng)
    popular = catalog[: len(catalog) // 10]
    people = {}
    heap = []
    for n in range(1, customers + 1):
        people[n] = _customer(rng, n)
        heapq.heappush(heap, (rng.random() * DAYS, n))
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    lines = orders = 0
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        while heap:
            day, n = heapq.heappop(heap)
            person = people[n]
            orders += 1
            created = START + timedelta(days=day)
            created = created.replace(microsecond=0)
            # Mixed offsets and formats, as files merged from several tools have.
            created_text = (created.strftime("%Y-%m-%dT%H:%M:%SZ") if orders % 3 else
                            created.astimezone(timezone(timedelta(hours=2))).isoformat())
            items = []
            for _ in range(1 + min(int(rng.expovariate(0.7)), 8)):
                product = rng.choice(popular) if rng.random() < 0.5 else rng.choice(catalog)
                items.append((product, 1 if rng.random() < 0.8 else rng.randint(2, 4)))
            total = sum(float(p[5]) * q for p, q in items) + (4.95 if rng.random() < 0.4 else 0)
            roll = rng.random()
            status, refunded = "paid", ""
            if roll < 0.03:
                status, refunded = "refunded", f"{total:.2f}"
            elif roll < 0.05:
                status = "cancelled"
            elif roll < 0.08:
                status = "pending"
            elif roll < 0.11:
                refunded = f"{total / 3:.2f}"
            consent = rng.random()
            consent_text = "" if consent < 0.2 else ("true" if consent < 0.7 else "false")
            # Now and then a registered customer checks out as a guest (same email, no id).
            customer_id = person["customer_id"] if rng.random() >= 0.05 else ""
            for product, qty in items:
                writer.writerow([f"O{orders:08d}", created_text, customer_id,
                                 person["email"], person["first_name"], person["locale"],
                                 consent_text, "EUR", status, f"{total:.2f}", refunded,
                                 product[0], product[1], product[2], product[3], product[4], qty,
                                 product[5]])
                lines += 1
            if rng.random() < person["stay"]:
                next_day = day + rng.expovariate(1 / person["gap"])
                if next_day < DAYS:
                    heapq.heappush(heap, (next_day, n))
    return lines


def default_path(customers: int, seed: int = 1) -> str:
    """benchmarks/out/orders_<customers>[_seed<seed>].csv"""
    suffix = "" if seed == 1 else f"_seed{seed}"
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "out",
                        f"orders_{customers}{suffix}.csv")


def main(argv=None):
    """Command line: --customers N --out PATH --seed S."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--out", default=None, help="default: benchmarks/out/orders_<customers>.csv")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    out = args.out or default_path(args.customers, args.seed)
    lines = generate(args.customers, out, args.seed)
    print(f"wrote {lines} lines to {out}")


if __name__ == "__main__":
    main()

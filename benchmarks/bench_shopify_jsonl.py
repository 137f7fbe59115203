"""Benchmark: ingest of a Shopify bulk export (orders + line items JSONL) into SQLite.

    .venv/bin/python benchmarks/bench_shopify_jsonl.py [--lines 1000000] [--http]

Generates benchmarks/out/bulk_<lines>.jsonl once (orders with 3 line items each, lines linked by
`__parentId`, a few of them before their parent, customers of 8 orders each on average), then times
the connector's real path: stream the lines (from the file, or with --http from a loopback HTTP
server through `bulk.stream_lines`), stitch them (`bulk.stitch_orders`) and write them with
ShopWriter into a fresh database, the parsing in a second process as a sync of a large export
does (`--serial`: all in this process). Prints one JSON line: lines, orders, seconds, lines_per_s,
cpu_seconds of the writer and of the reading process, peak_rss_mb of both, the targets
(≥ 50,000 lines/s, ≤ 500 MB together) and whether they are met.
"""
import argparse
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"
TARGET_LINES_PER_S = 50_000
TARGET_PEAK_MB = 500  # this process and the reading process together
BATCH = 2000  # orders per write transaction


def generate(path: Path, lines: int, seed: int = 3):
    rng = random.Random(seed)
    orders = lines // 4
    customers = max(1, orders // 8)
    statuses = ["PAID"] * 8 + ["PARTIALLY_REFUNDED", "REFUNDED", "PENDING"]
    written = 0
    held = []
    with open(path, "w") as f:
        for n in range(1, orders + 1):
            cid = rng.randint(1, customers)
            day = 1 + n * 700 // orders
            when = f"2024-{1 + day // 60 % 12:02d}-{1 + day % 28:02d}T10:{n % 60:02d}:00Z"
            oid = f"gid://shopify/Order/{n}"
            order = {"id": oid, "name": f"#{1000 + n}", "email": f"c{cid}@example.com", "createdAt": when,
                     "processedAt": when, "updatedAt": when, "cancelledAt": None, "test": False,
                     "currencyCode": "USD", "displayFinancialStatus": rng.choice(statuses),
                     "totalPriceSet": {"shopMoney": {"amount": "89.97", "currencyCode": "USD"}},
                     "totalRefundedSet": {"shopMoney": {"amount": "0.0", "currencyCode": "USD"}},
                     "discountCodes": ["WB-ABC"] if n % 50 == 0 else [],
                     "customer": {"id": f"gid://shopify/Customer/{cid}"}}
            children = []
            for k in range(3):
                pid = rng.randint(1, 400)
                children.append({"id": f"gid://shopify/LineItem/{n * 3 + k}", "title": f"Product {pid}",
                                 "sku": f"SKU-{pid}", "vendor": f"Brand {pid % 12}", "quantity": 1 + k % 2,
                                 "originalUnitPriceSet": {"shopMoney": {"amount": "29.99", "currencyCode": "USD"}},
                                 "product": {"id": f"gid://shopify/Product/{pid}", "productType": f"Type {pid % 9}",
                                             "vendor": f"Brand {pid % 12}", "category": None},
                                 "variant": {"id": f"gid://shopify/ProductVariant/{pid}"}, "__parentId": oid})
            if n % 100 == 0:  # some children before their parent, as groupObjects:false allows
                f.write(json.dumps(children.pop()) + "\n")
                written += 1
            f.write(json.dumps(order) + "\n")
            for obj in held:
                f.write(json.dumps(obj) + "\n")
            written += 1 + len(held)
            held = children
            if written + len(held) >= lines:
                break
        for obj in held:
            f.write(json.dumps(obj) + "\n")


def serve_file(path: Path):
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *a, **kw):
            pass

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/jsonl"),
                                  ("Content-Length", str(path.stat().st_size))])
        def chunks():
            with open(path, "rb") as f:
                while chunk := f.read(1 << 16):
                    yield chunk
        return chunks()

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/bulk.jsonl"


def main():
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--serial", action="store_true", help="parse in this process (no pipeline)")
    parser.add_argument("--http", action="store_true", help="download over loopback HTTP, as in a sync")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"bulk_{args.lines}.jsonl"
    if not path.exists():
        generate(path, args.lines)

    from app.db import connect
    from app.migrations import init_db
    from app.shops import create_shop
    from connectors.pipeline import Pipeline
    from connectors.shopify import bulk
    from connectors.store import ShopWriter

    with tempfile.TemporaryDirectory() as tmp:
        db = connect(os.path.join(tmp, "bench.db"))
        init_db(db)
        shop = create_shop(db, "bench.myshopify.com", "shopify", currency="USD")
        writer = ShopWriter(db, shop)
        server = url = None
        if args.http:
            server, url = serve_file(path)
            objects = bulk.stream_lines(url)
        else:
            objects = (line.rstrip(b"\n") for line in open(path, "rb"))
        counted = 0

        def counting(it):
            nonlocal counted
            for obj in it:
                counted += 1
                yield obj

        started, cpu_started = time.perf_counter(), time.process_time()
        orders = 0
        if args.serial:
            stitched = bulk.stitch_orders(counting(objects))
            while batch := list(islice(stitched, BATCH)):
                writer.upsert_orders(batch)
                orders += len(batch)
        else:  # the sync's path for a large export (ShopifyConnector.prepared_orders)
            pipeline = Pipeline(bulk.read_orders, (url if args.http else str(path),), timezone=shop["timezone"],
                                currency=shop["currency"], batch_size=BATCH)
            for batch in pipeline:
                writer.write_prepared(batch)
                orders += len(batch.orders)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        if not args.serial:
            with open(path, "rb") as f:
                counted = sum(1 for _ in f)
        if server:
            server.shutdown()
        stored = db.execute("SELECT COUNT(*) FROM order_lines").fetchone()[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    rate = round(counted / seconds)
    reader_cpu = children.ru_utime + children.ru_stime
    cpu_rate = round(counted / max(cpu, reader_cpu))
    memory_met = peak + children.ru_maxrss / 1024 <= TARGET_PEAK_MB
    print(json.dumps({"lines": counted, "orders": orders, "lines_stored": stored, "seconds": round(seconds, 2),
                      "lines_per_s": rate, "target_lines_per_s": TARGET_LINES_PER_S,
                      "cpu_seconds": round(cpu, 2), "reader_cpu_seconds": round(reader_cpu, 2),
                      # with a free core for each process (the slower one sets the pace)
                      "cpu_bound_lines_per_s": cpu_rate,
                      "http": args.http, "serial": args.serial, "peak_rss_mb": round(peak),
                      "reader_peak_rss_mb": round(children.ru_maxrss / 1024), "target_peak_mb": TARGET_PEAK_MB,
                      "met": rate >= TARGET_LINES_PER_S and memory_met,
                      # the same with the CPU-bound rate (wall time on a shared machine waits for others)
                      "met_cpu_bound": cpu_rate >= TARGET_LINES_PER_S and memory_met}))


if __name__ == "__main__":
    main()

"""Bulk operations: start (or resume) one, wait for it, stream its JSONL, stitch children to parents."""
from __future__ import annotations

import logging
import time
from collections import OrderedDict, defaultdict
from dataclasses import replace
from typing import Iterable, Iterator

import orjson
import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from .errors import ShopifyError
from .graphql import BACKOFF, document, user_errors
from .mapping import line_from_graphql, order_from_graphql, product_from_graphql

log = logging.getLogger("winback.shopify")
FAILED = ("FAILED", "CANCELED", "CANCELLED", "EXPIRED")


class BulkGone(ShopifyError):
    """A bulk operation that cannot be resumed (failed, expired, or its file gone): start anew."""


def state_key(resource: str) -> str:
    """The sync_state key holding the id of a resource's running bulk operation."""
    return f"shopify_bulk_{resource}"


def start_or_resume(client, state, resource: str) -> str:
    """The id of this resource's bulk operation: the one persisted by a crashed run, else a new one."""
    op_id = state.get(state_key(resource))
    if op_id:
        log.info("resuming bulk operation %s (%s)", op_id, resource)
        return op_id
    data = client.execute(document("bulk_run"), {"query": document(f"bulk_{resource}")})
    payload = data.get("bulkOperationRunQuery") or {}
    user_errors(payload, f"bulk export of {resource}")
    op_id = payload["bulkOperation"]["id"]
    state.set(state_key(resource), op_id)
    return op_id


def wait(client, op_id: str, sleep, interval: float = 2.0, max_interval: float = 30.0) -> dict:
    """Poll a bulk operation until it ends; returns the finished operation (ShopifyError on failure)."""
    while True:
        op = (client.execute(document("poll"), {"id": op_id}) or {}).get("node")
        if not op:
            raise BulkGone(f"bulk operation {op_id} not found")
        if op["status"] == "COMPLETED":
            return op
        if op["status"] in FAILED:
            raise BulkGone(f"bulk operation {op_id} {op['status'].lower()}"
                               + (f" ({op['errorCode']})" if op.get("errorCode") else ""))
        sleep(interval)
        interval = min(max_interval, interval * 1.5)


class _ServerError(Exception):
    """The file server answered 5xx: worth asking again."""

    def __init__(self, resp):
        super().__init__(f"HTTP {resp.status_code}")
        self.resp = resp


def _download_failed(state):
    """tenacity retry_error_callback: every attempt failed."""
    exc = state.outcome.exception()
    if isinstance(exc, _ServerError):
        raise ShopifyError(f"bulk result download answered HTTP {exc.resp.status_code}")
    raise ShopifyError(f"cannot download the bulk result after {state.attempt_number} attempts") from None


def stream_lines(url: str | None, http=None, sleep=None, retries: int = 4) -> Iterator[bytes]:
    """The raw JSONL lines of a bulk result file, read as the download arrives.

    Network errors and 5xx answers are retried with exponential backoff (waiting with `sleep`, not
    at all without it). tenacity rather than urllib3's Retry: the wait goes through the injected
    `sleep`, so tests move a fake clock.
    """
    if not url:  # an export with no objects has no file
        return
    http = http or requests

    def get():
        resp = http.get(url, stream=True, timeout=60)
        if resp.status_code >= 500:
            resp.close()
            raise _ServerError(resp)
        return resp

    resp = Retrying(retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout, _ServerError)),
                    stop=stop_after_attempt(retries + 1), wait=BACKOFF, sleep=sleep or (lambda _: None),
                    retry_error_callback=_download_failed)(get)
    if resp.status_code in (403, 404, 410):  # the signed URL expired (after 7 days)
        raise BulkGone(f"bulk result file is gone (HTTP {resp.status_code})")
    if resp.status_code != 200:
        raise ShopifyError(f"bulk result download answered HTTP {resp.status_code}")
    with resp:
        for line in resp.iter_lines(chunk_size=1 << 16):
            if line:
                yield line


def objects(lines: Iterable[bytes]) -> Iterator[dict]:
    """Parsed objects of raw JSONL lines."""
    for line in lines:
        yield orjson.loads(line)


def stitch_products(lines: Iterable[bytes]) -> Iterator:
    """Products with their first variant from raw bulk JSONL lines (variants are lines of their own,
    linked by `__parentId`, in any order). A catalogue is small next to the orders: it is held whole."""
    nodes: dict[str, dict] = {}
    first: dict[str, dict] = {}
    for raw in lines:
        obj = orjson.loads(raw)
        parent = obj.get("__parentId")
        if parent is None:
            nodes[obj["id"]] = obj
        else:
            first.setdefault(parent, obj)
    for key, node in nodes.items():
        yield product_from_graphql(node, first.get(key))


def stitch_orders(lines: Iterable[bytes], window: int = 20000):
    """Orders with their lines from raw bulk JSONL lines linked by `__parentId`, in any order.

    Lines usually follow their order closely, so orders wait in a window of `window` until their
    lines arrive; lines that turn up after their order left the window are emitted later as a
    merge (`merge_lines`) of that order. Orders that left the window are remembered as their raw
    bytes only (compact, and invisible to the garbage collector), the line items not at all.
    """
    pending: OrderedDict[str, tuple[dict, bytes, list]] = OrderedDict()
    early: dict[str, list] = defaultdict(list)
    flushed: dict[str, bytes] = {}
    late: dict[str, list] = defaultdict(list)
    for raw in lines:
        obj = orjson.loads(raw)
        parent = obj.get("__parentId")
        if parent is None:
            pending[obj["id"]] = (obj, raw, early.pop(obj["id"], []))
            if len(pending) > window:
                key, (node, node_raw, children) = pending.popitem(last=False)
                flushed[key] = node_raw
                yield order_from_graphql(node, children)
            continue
        line = line_from_graphql(obj)
        if parent in pending:
            pending[parent][2].append(line)
        elif parent in flushed:
            late[parent].append(line)
        else:
            early[parent].append(line)
    for node, _, children in pending.values():
        yield order_from_graphql(node, children)
    for key, children in late.items():
        yield replace(order_from_graphql(orjson.loads(flushed[key]), children), merge_lines=True)
    if early:
        log.warning("bulk export: lines of %d unknown orders ignored", len(early))


def read_orders(source: str):
    """Pipeline source (connectors/pipeline.py, run in the reading process): the stitched orders of
    a bulk result, downloaded from its URL (a local file path also does, for benchmarks), and a
    summary function (nothing to report)."""
    if source.startswith(("http://", "https://")):
        lines = stream_lines(source, sleep=time.sleep)
    else:
        lines = (line.rstrip(b"\n") for line in open(source, "rb"))  # noqa: SIM115 - read to the end
    return stitch_orders(lines), lambda: None

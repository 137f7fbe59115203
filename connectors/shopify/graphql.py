"""The Admin GraphQL client: cost throttling, retries with backoff, token refresh on expiry."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import requests

from .errors import ShopifyError

log = logging.getLogger("winback.shopify")
DOCUMENTS = Path(__file__).with_name("graphql")
RETRY_STATUS = (429, 500, 502, 503, 504)
TIMEOUT = 30


def document(name: str) -> str:
    """A GraphQL document shipped with the connector (connectors/shopify/graphql/NAME.graphql)."""
    return (DOCUMENTS / f"{name}.graphql").read_text()


class GraphQL:
    """Posts GraphQL documents to one shop.

    `token()` returns a valid access token (refreshing it when due); `on_unauthorized()` forces a
    refresh after a 401. `sleep` is injectable so tests can move a fake clock instead of waiting.
    """

    def __init__(self, url: str, token, *, on_unauthorized=None, sleep=time.sleep,
                 max_retries: int = 5, max_throttles: int = 20, session=None):
        self.url = url
        self.token = token
        self.on_unauthorized = on_unauthorized
        self.sleep = sleep
        self.max_retries = max_retries
        self.max_throttles = max_throttles
        self.http = session or requests.Session()
        self.last_cost = None

    def execute(self, query: str, variables: dict | None = None) -> dict:
        """Run a query or mutation; returns `data`. Raises ShopifyError on errors that remain."""
        failures = throttles = 0
        refreshed = False
        while True:
            try:
                resp = self.http.post(self.url, json={"query": query, "variables": variables or {}},
                                      headers={"X-Shopify-Access-Token": self.token()}, timeout=TIMEOUT)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failures += 1
                if failures > self.max_retries:
                    raise ShopifyError(f"Shopify unreachable after {failures} attempts: {type(exc).__name__}") from None
                self._backoff(failures)
                continue
            if resp.status_code == 401 and self.on_unauthorized and not refreshed:
                refreshed = True
                self.on_unauthorized()
                continue
            if resp.status_code in RETRY_STATUS:
                failures += 1
                if failures > self.max_retries:
                    raise ShopifyError(f"Shopify answered HTTP {resp.status_code} {failures} times")
                retry_after = resp.headers.get("Retry-After")
                self.sleep(float(retry_after)) if retry_after else self._backoff(failures)
                continue
            if resp.status_code != 200:
                raise ShopifyError(f"Shopify answered HTTP {resp.status_code}")
            body = resp.json()
            cost = (body.get("extensions") or {}).get("cost") or {}
            self.last_cost = cost
            errors = body.get("errors") or []
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                throttles += 1
                if throttles > self.max_throttles:
                    raise ShopifyError("Shopify kept throttling the request")
                self.sleep(self._throttle_wait(cost))
                continue
            if errors:
                raise ShopifyError("GraphQL error: " + "; ".join(e.get("message", "?") for e in errors))
            return body.get("data") or {}

    def _backoff(self, attempt: int):
        self.sleep(min(30.0, 0.5 * 2 ** (attempt - 1)))

    @staticmethod
    def _throttle_wait(cost: dict) -> float:
        # Wait until the bucket holds what the query needs, at the rate the shop's plan restores.
        status = cost.get("throttleStatus") or {}
        needed = cost.get("requestedQueryCost") or 50
        available = status.get("currentlyAvailable") or 0
        rate = status.get("restoreRate") or 50
        return max(0.1, (needed - available) / rate)


def user_errors(payload: dict, what: str):
    """Raise ShopifyError when a mutation answered with userErrors."""
    errors = (payload or {}).get("userErrors") or []
    if errors:
        detail = "; ".join(f"{'.'.join(e.get('field') or []) or '-'}: {e.get('message')}" for e in errors)
        raise ShopifyError(f"{what} refused by Shopify: {detail}")

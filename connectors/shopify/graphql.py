"""The Admin GraphQL client: cost throttling, retries with backoff, token refresh on expiry.

Why not the `shopifyapp` package the SPEC names: it builds every address as
`https://{shop}.myshopify.com`, so it cannot talk to the local fake (or any other admin URL) that
WINBACK_SHOPIFY_ADMIN_URL points to, and it does not back off when Shopify throttles a query by its
cost. What Winback takes from it: during a rotation of the app's client secret, webhooks and signed
OAuth requests are accepted under the previous secret too (WINBACK_SHOPIFY_CLIENT_SECRET_PREVIOUS,
checked by connectors/signing.py).

Retries use tenacity, in two layers: the inner one repeats a request that got no answer (a network
error, HTTP 429 or 5xx) with exponential backoff or the server's Retry-After; the outer one repeats
a query Shopify answered with THROTTLED, after waiting as long as the shop's bucket needs to hold
the query's cost. `sleep` is injectable so tests move a fake clock instead of waiting.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from .errors import ShopifyError

log = logging.getLogger("winback.shopify")
DOCUMENTS = Path(__file__).with_name("graphql")
RETRY_STATUS = (429, 500, 502, 503, 504)
TIMEOUT = 30
BACKOFF = wait_exponential(multiplier=0.5, max=30)  # 0.5 s, 1 s, 2 s, ... at most 30 s


def document(name: str) -> str:
    """A GraphQL document shipped with the connector (connectors/shopify/graphql/NAME.graphql)."""
    return (DOCUMENTS / f"{name}.graphql").read_text()


class _Unavailable(Exception):
    """Shopify answered 429 or 5xx: worth asking again (after `retry_after` seconds if it said so)."""

    def __init__(self, resp):
        super().__init__(f"HTTP {resp.status_code}")
        self.status = resp.status_code
        try:
            self.retry_after = float(resp.headers.get("Retry-After") or "")
        except ValueError:
            self.retry_after = None


class _Throttled(Exception):
    """Shopify answered THROTTLED: ask again after `wait` seconds."""

    def __init__(self, wait: float):
        super().__init__(f"throttled; waiting {wait:.1f} s")
        self.wait = wait


def _backoff(state) -> float:
    """tenacity wait: the server's Retry-After when it gave one, else exponential backoff."""
    exc = state.outcome.exception()
    retry_after = getattr(exc, "retry_after", None)
    return retry_after if retry_after is not None else BACKOFF(state)


def _unanswered(state):
    """tenacity retry_error_callback: the request never got a usable answer."""
    exc, attempts = state.outcome.exception(), state.attempt_number
    if isinstance(exc, _Unavailable):
        raise ShopifyError(f"Shopify answered HTTP {exc.status} {attempts} times")
    raise ShopifyError(f"Shopify unreachable after {attempts} attempts: {type(exc).__name__}")


def _kept_throttling(state):
    """tenacity retry_error_callback: Shopify throttled every attempt."""
    raise ShopifyError("Shopify kept throttling the request")


class GraphQL:
    """Posts GraphQL documents to one shop.

    `token()` returns a valid access token (refreshing it when due); `on_unauthorized()` forces a
    refresh after a 401. `sleep` is injectable so tests can move a fake clock instead of waiting.
    `max_retries` bounds the retries of a request without an answer in a row, `max_throttles` the
    retries of a throttled query.
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

    def execute(self, query: str, variables: dict | None = None) -> dict:
        """Run a query or mutation; returns `data`. Raises ShopifyError on errors that remain."""
        body = {"query": query, "variables": variables or {}}
        refresh = [self.on_unauthorized] if self.on_unauthorized else []  # one refresh per call
        throttled = Retrying(retry=retry_if_exception_type(_Throttled), stop=stop_after_attempt(self.max_throttles + 1),
                             wait=lambda state: state.outcome.exception().wait, sleep=self.sleep,
                             retry_error_callback=_kept_throttling)
        return throttled(self._query, body, refresh)

    def _query(self, body: dict, refresh: list) -> dict:
        """One query with an answer: `data`, or _Throttled, or ShopifyError."""
        unanswered = Retrying(retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout, _Unavailable)),
                              stop=stop_after_attempt(self.max_retries + 1), wait=_backoff, sleep=self.sleep,
                              retry_error_callback=_unanswered)
        resp = unanswered(self._post, body, refresh)
        if resp.status_code != 200:
            raise ShopifyError(f"Shopify answered HTTP {resp.status_code}")
        answer = resp.json()
        errors = answer.get("errors") or []
        if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
            raise _Throttled(self._throttle_wait((answer.get("extensions") or {}).get("cost") or {}))
        if errors:
            raise ShopifyError("GraphQL error: " + "; ".join(e.get("message", "?") for e in errors))
        return answer.get("data") or {}

    def _post(self, body: dict, refresh: list) -> requests.Response:
        """One POST; after a 401, one token refresh and a second POST. _Unavailable on 429 and 5xx."""
        resp = self.http.post(self.url, json=body, headers={"X-Shopify-Access-Token": self.token()}, timeout=TIMEOUT)
        if resp.status_code == 401 and refresh:
            refresh.pop()()
            resp = self.http.post(self.url, json=body, headers={"X-Shopify-Access-Token": self.token()},
                                  timeout=TIMEOUT)
        if resp.status_code in RETRY_STATUS:
            raise _Unavailable(resp)
        return resp

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

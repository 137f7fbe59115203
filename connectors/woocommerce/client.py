"""A small WooCommerce REST (wc/v3) client on `requests`: Basic auth, retries, pagination.

Why not the `woocommerce` package: it picks OAuth 1.0a for every `http://` URL, never raises on
errors, has no retries or pagination and cannot take per-call timeouts; wrapping it would leave
little of it. This client keeps its URL scheme (`{store}/wp-json/wc/v3/{endpoint}`).
"""
from __future__ import annotations

from typing import Iterator
from urllib.parse import urlsplit

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from app.money import check_currency
from app.timeutil import zone

USER_AGENT = "Winback/0.1 (+WooCommerce connector)"
RETRY_STATUSES = (429, 500, 502, 503, 504)
PER_PAGE = 100  # WooCommerce's maximum; more is a 400, not clamped


class _Busy(Exception):
    """The store answered 429 or 5xx: worth asking again."""

    def __init__(self, resp):
        super().__init__(f"HTTP {resp.status_code}")
        self.resp = resp


class WooError(RuntimeError):
    """A store request that failed; `status` is the HTTP status (None for a connection error)."""

    def __init__(self, message, status=None, code=None):
        super().__init__(message)
        self.status, self.code = status, code


def normalise_store_url(url: str) -> str:
    """`shop.example/` → `https://shop.example` (scheme added when missing, no trailing slash)."""
    value = (url or "").strip()
    if not value:
        raise ValueError("a store URL is required")
    if "://" not in value:
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a store URL (https://your-store.example)")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class WooClient:
    """Calls one store's REST API with its consumer key and secret."""

    def __init__(self, store_url, consumer_key, consumer_secret, *, timeout=30.0, retries=4,
                 backoff=1.0, session=None):
        self.store_url = normalise_store_url(store_url)
        self.base = f"{self.store_url}/wp-json/wc/v3/"
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.session = session or requests.Session()
        self.session.auth = (consumer_key, consumer_secret)
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})

    def request(self, method, endpoint, *, params=None, json=None) -> requests.Response:
        """One call, retried with exponential backoff on 429, 5xx and connection errors.

        Raises WooError with the store's own message on any other error status. `retries` is read
        at each call: the inbox sets it to 0 so that one event makes one attempt.
        """
        url = self.base + endpoint.lstrip("/")

        def attempt():
            resp = self.session.request(method, url, params=params, json=json, timeout=self.timeout)
            if resp.status_code in RETRY_STATUSES:
                raise _Busy(resp)
            return resp

        def give_up(state):
            exc = state.outcome.exception()
            if isinstance(exc, _Busy):
                raise _error(exc.resp, method, endpoint, self.store_url)
            raise WooError(f"cannot reach {self.store_url}: {type(exc).__name__}") from exc

        # tenacity rather than urllib3's Retry on the session: urllib3 retries no POST by default,
        # and the inbox changes `retries` on a client whose session is already built.
        retrying = Retrying(retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout, _Busy)),
                            stop=stop_after_attempt(self.retries + 1), wait=self._wait, retry_error_callback=give_up)
        resp = retrying(attempt)
        if resp.status_code >= 400:
            raise _error(resp, method, endpoint, self.store_url)
        return resp

    def _wait(self, state) -> float:
        """tenacity wait: `backoff` doubling from the first retry, or longer when the store's
        Retry-After asks for it (at most 60 s)."""
        delay = self.backoff * 2 ** (state.attempt_number - 1)
        exc = state.outcome.exception()
        if isinstance(exc, _Busy) and exc.resp.headers.get("Retry-After"):
            try:
                delay = max(delay, min(float(exc.resp.headers["Retry-After"]), 60.0))
            except ValueError:
                pass
        return delay

    def get(self, endpoint, **params):
        """GET one resource as JSON."""
        return self.request("GET", endpoint, params=params or None).json()

    def post(self, endpoint, data):
        """POST a JSON body; returns the JSON answer."""
        return self.request("POST", endpoint, json=data).json()

    def paginate(self, endpoint, **params) -> Iterator[dict]:
        """Every item of a list endpoint, 100 per page, following X-WP-TotalPages."""
        params = {**params, "per_page": PER_PAGE}
        page = 1
        while True:
            resp = self.request("GET", endpoint, params={**params, "page": page})
            items = resp.json()
            if not isinstance(items, list):
                raise WooError(f"GET {endpoint}: the store answered with no list")
            yield from items
            total_pages = int(resp.headers.get("X-WP-TotalPages") or 1)
            if page >= total_pages or not items:
                return
            page += 1


def _error(resp, method, endpoint, store_url="") -> WooError:
    code = message = None
    try:
        body = resp.json()
        if isinstance(body, dict):
            code, message = body.get("code"), body.get("message")
    except ValueError:
        pass
    if resp.status_code in (401, 403):
        hint = "the store refused the API keys (check the consumer key and secret and their read/write permission)"
        if store_url.startswith("http://"):
            # WooCommerce ignores Basic auth unless the request came over TLS.
            hint += "; WooCommerce accepts keys only over https, so use the store's https:// address"
        return WooError(f"{hint}: {message or resp.reason}", resp.status_code, code)
    detail = message or (resp.text or "")[:200] or resp.reason
    return WooError(f"{method} {endpoint} failed with HTTP {resp.status_code}: {detail}",
                    resp.status_code, code)


def store_settings(client) -> tuple[str | None, str | None]:
    """(currency, time zone) of the store; checks the keys on the way (WooError if refused)."""
    currency = client.get("data/currencies/current").get("code") or None
    if currency:
        try:
            currency = check_currency(currency)
        except ValueError:
            currency = None
    timezone = None
    try:  # the unauthenticated index; a store hiding it is no reason to fail
        index = requests.get(f"{client.store_url}/wp-json/", timeout=client.timeout).json()
        timezone = index.get("timezone_string") or None
    except (requests.RequestException, ValueError, AttributeError):
        pass
    if timezone:
        try:
            zone(timezone)
        except ValueError:
            timezone = None
    return currency, timezone

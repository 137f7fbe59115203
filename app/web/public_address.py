"""The installation's public address: where unsubscribe links, `List-Unsubscribe`, click links and
the Shopify install link point.

`WINBACK_APP_URL` sets it. Without it, `winback serve` (and so `make run`) takes the address it
serves on (`serve_address`), so `PORT=8000 make run` links to :8000, not to the default :5000. A
wildcard host (0.0.0.0, ::) names no address anyone can reach, so 127.0.0.1 stands in for it and
the check below tells the owner to set `WINBACK_APP_URL`.

Once the address is known (given, or taken from `serve`), a page request that arrives on another
host is remembered and the dashboard warns: links in emails would point somewhere else than the
owner is looking. The log says it once per host.
"""
import logging
from urllib.parse import urlsplit

from flask import Blueprint, current_app, request
from flask_babel import gettext as _

bp = Blueprint("public_address", __name__)
log = logging.getLogger("winback.address")
SEEN = "winback_other_hosts"
WILDCARDS = ("0.0.0.0", "::", "", "[::]")


def serve_address(app, host, port) -> str:
    """Take `http://host:port` as the public address unless WINBACK_APP_URL gave one; returns the
    address in use."""
    if not app.config.get("APP_URL_GIVEN"):
        shown = "127.0.0.1" if host in WILDCARDS else (f"[{host}]" if ":" in host else host)
        app.config["APP_URL"] = f"http://{shown}:{port}"
    app.config["APP_URL_KNOWN"] = True
    return app.config["APP_URL"]


def _public_host(app) -> str:
    parts = urlsplit(app.config["APP_URL"])
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = (parts.hostname or "").lower()
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def _request_host() -> str:
    host = request.host.lower()
    default = ":443" if request.scheme == "https" else ":80"
    return host[: -len(default)] if host.endswith(default) else host


@bp.before_app_request
def notice_other_host():
    """Remember a request on another host than the public address (once the address is known)."""
    app = current_app._get_current_object()
    if not app.config.get("APP_URL_KNOWN") and not app.config.get("APP_URL_GIVEN"):
        return
    host = _request_host()
    if host == _public_host(app):
        return
    seen = app.extensions.setdefault(SEEN, {})
    if host not in seen:
        seen[host] = True
        log.warning("a request arrived on %s, but the public address (WINBACK_APP_URL) is %s: links in emails "
                    "point there", host, app.config["APP_URL"])


def warnings(app) -> list[dict]:
    """The dashboard's warning when it is opened on another host than the public address (an owner
    on the right address is not told about another visitor's host: the log has that)."""
    host = _request_host()
    if host not in app.extensions.get(SEEN, {}):
        return []
    return [{"kind": "public_address", "link": None,
             "text": _("This page was opened at %(host)s, but links in emails (unsubscribe, the shop button) and the "
                       "Shopify install link point at %(url)s. Set WINBACK_APP_URL to the address customers and "
                       "platforms can reach.", host=host, url=app.config["APP_URL"])}]

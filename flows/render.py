"""Rendering a flow step into the email a customer receives (subject and text body).

Templates live in templates/emails/<template>.txt: the first line is the subject, the rest the
body. The expiry shown is the stored one, in the shop's time zone.
"""
from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app import ROOT
from app.timeutil import from_db, zone


@lru_cache(maxsize=1)
def _env():
    return Environment(loader=FileSystemLoader(str(ROOT / "templates" / "emails")), autoescape=False,
                       undefined=StrictUndefined, keep_trailing_newline=True)


@lru_cache(maxsize=64)
def _template(name):
    return _env().get_template(f"{name}.txt")


def format_expiry(expires_at: str, tz: str) -> str:
    """`Friday 27 November 2026, 14:05` in the shop's time zone, from the stored UTC expiry."""
    local = from_db(expires_at).astimezone(zone(tz))
    return local.strftime("%A %-d %B %Y, %H:%M")


def render(template, *, shop, customer, code=None, products=None, links=None) -> tuple[str, str]:
    """(subject, text body) of one email; `links` are the email's personal URLs (keep, unsubscribe)."""
    context = {
        **(links or {}),
        "shop_name": shop["name"], "first_name": customer.get("first_name"),
        "code": code["code"] if code else None,
        "percent": (f"{code['percent']:g}" if code and code.get("percent") is not None else None),
        "expires": format_expiry(code["expires_at"], shop["timezone"]) if code else None,
        "products": ", ".join(products) if products else "your favourites",
    }
    text = _template(template).render(**context)
    subject, _, body = text.partition("\n")
    return subject.strip(), body.lstrip("\n")

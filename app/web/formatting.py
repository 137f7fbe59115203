"""Numbers, money, percentages, dates and times on the pages, as the viewer's language writes them
(Babel), times in the shop's time zone; and the flows' sentences (app.words.Text) said in that language.

Jinja filters: `say` (a Text or label in the page's language), `num`, `pct`, `points` (a lift in
percentage points, signed), `day` (a date), `when` (a stored UTC time in the shop's zone, with `shop`).
The `money` filter (app.web.pages) uses the same locale.
"""
from datetime import date, datetime

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from flask_babel import get_locale, gettext

from app.settings import Message
from app.timeutil import from_db, zone
from app.words import Text, Value
from flows.labels import stored_reason


def locale() -> str:
    """The page's language (en, nl, pl)."""
    return str(get_locale() or "en")


def _translate(msgid):
    return gettext(msgid) if msgid else msgid


def say(value):
    """A flows sentence or label in the page's language; anything else as it is."""
    if isinstance(value, Text):
        return value.say(locale(), _translate)
    if isinstance(value, Value):
        return value.format(locale(), _translate)
    if isinstance(value, Message):  # a settings validator's refusal
        return gettext(value.msgid, **value.params)
    return "" if value is None else value


def num(value, digits=0):
    """A number with up to `digits` decimals (1.234,5 in Dutch)."""
    if value is None:
        return "—"
    return format_decimal(value, format="#,##0" + ("." + "#" * digits if digits else ""), locale=locale())


def pct(value, digits=1):
    """A share (0.125) as a percentage with `digits` decimals (12,5 % in Polish)."""
    if value is None:
        return "—"
    return format_percent(value, format="#,##0" + ("." + "0" * digits if digits else "") + "%", locale=locale())


def points(value):
    """A difference of two shares (0.031) in signed percentage points (+3,1)."""
    if value is None:
        return "—"
    return format_decimal(value * 100, format="+#,##0.0;-#,##0.0", locale=locale())


def _moment(value):
    if isinstance(value, datetime):
        return value
    text = str(value)
    try:
        return from_db(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))


def when(value, shop, length="short"):
    """A stored UTC time in the shop's time zone and the page's language (`1 jun 2026 14:00`); a bare date
    is shown as a date."""
    if not value:
        return "—"
    if isinstance(value, str) and len(value) == 10:
        return day(value)
    try:
        moment = _moment(value)
    except ValueError:
        return value
    tz = zone(shop["timezone"] or "UTC") if shop else zone("UTC")
    pattern = {"short": "d MMM y HH:mm", "long": "d MMMM y HH:mm zzzz"}.get(length, length)
    return format_datetime(moment, pattern, tzinfo=tz, locale=locale())


def day(value, length="medium"):
    """A calendar date (`2026-06-01` or the date of a stored time) in the page's language."""
    if not value:
        return "—"
    try:
        d = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        return value
    return format_date(d, length, locale=locale())


def init_app(app):
    """Install the filters."""
    app.jinja_env.filters.update(stored_reason=stored_reason, say=say, num=num, pct=pct, points=points, when=when,
                                 day=day)

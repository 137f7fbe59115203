"""Time as Winback stores and reads it: UTC text in the database, shop time zones for calendars."""
from datetime import date, datetime, time, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
DB_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The time zone called `name`; ValueError if there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def to_db(dt: datetime) -> str:
    """Format an aware datetime for storage (UTC, seconds)."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime cannot be stored")
    return dt.astimezone(UTC).strftime(DB_FORMAT)


def from_db(text: str) -> datetime:
    """Parse a stored UTC time."""
    return datetime.strptime(text, DB_FORMAT).replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, aware, whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


def parse_timestamp(text: str, tz: str = "UTC") -> datetime:
    """Parse an ISO 8601 date or time (also Shopify's `2025-03-20 05:20:57 -0700`).

    A time without an offset is in the shop's time zone `tz`; a bare date means 00:00 there.
    Raises ValueError with a readable message.
    """
    value = (text or "").strip()
    if not value:
        raise ValueError("empty date")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        try:
            dt = datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z")
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(tz))
    return dt.astimezone(UTC).replace(microsecond=0)


def parse_now(text: str | None, tz: str = "UTC") -> datetime:
    """The `--now` of a command: None is the current time, a date is 00:00 of it in shop time."""
    if text is None or str(text).strip() == "":
        return utcnow()
    return parse_timestamp(str(text), tz)


def local_date(dt: datetime, tz: str) -> str:
    """The calendar date (YYYY-MM-DD) of `dt` in time zone `tz`."""
    return dt.astimezone(zone(tz)).date().isoformat()


def start_of_day(d: date, tz: str) -> datetime:
    """00:00 of date `d` in time zone `tz`, as UTC."""
    return datetime.combine(d, time(0), tzinfo=zone(tz)).astimezone(UTC)

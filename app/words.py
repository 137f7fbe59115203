"""Sentences said in the reader's language, built where no request (and so no language) is known.

The flows explain a customer, and the report judges a lift, in code that the CLI also runs. They
build each sentence as `N_("lapsed: %(days)s days since the last order", days=Num(96))`: a `Text`
is a `str` (the English sentence, so JSON output, logs and the CLI stay as they were) that also keeps
its msgid and values, so that a page can say it again in the owner's language with `Text.say`,
numbers, money and dates formatted by Babel for that language. `N_` is one of Babel's default
extraction keywords, so `pybabel extract` finds the msgids.

app.settings.Message is the same idea for a validator's one-line refusal; a Text also formats its
values for the language (numbers, money, dates) and nests (a rule inside a reason, a label inside both).
"""
from babel.numbers import format_decimal, format_percent

from .money import format_money
from .timeutil import from_db, zone


class Value:
    """A value inside a sentence: its English text as the CLI always showed it, and its form per locale."""

    def __init__(self, value, english: str | None = None):
        self.value = value
        self.english = str(value) if english is None else english

    def format(self, locale: str, translate) -> str:
        """The value as `locale` writes it (plain values: as they are)."""
        return self.english


class Num(Value):
    """A number: `digits` after the decimal point at most (1.5, 52.4, 78)."""

    def __init__(self, value, digits: int = 1, english: str | None = None):
        value = float(value)
        if english is None:
            english = f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.{digits}f}"
        super().__init__(value, english)
        self.digits = digits

    def format(self, locale, translate):
        return format_decimal(round(self.value, self.digits), format="#,##0." + "#" * self.digits, locale=locale)


class Fixed(Num):
    """A number with exactly `digits` after the decimal point (0.70 orders)."""

    def __init__(self, value, digits: int = 2):
        super().__init__(value, digits, english=f"{float(value):.{digits}f}")

    def format(self, locale, translate):
        return format_decimal(self.value, format="#,##0." + "0" * self.digits, locale=locale)


class Percent(Value):
    """A share (0.56) shown as a percentage (56%)."""

    def __init__(self, value):
        super().__init__(float(value), f"{float(value):.0%}")

    def format(self, locale, translate):
        return format_percent(self.value, locale=locale)


class Money(Value):
    """An amount in minor units of `currency`."""

    def __init__(self, minor, currency):
        super().__init__(minor, format_money(minor, currency))
        self.currency = currency

    def format(self, locale, translate):
        return format_money(self.value, self.currency, locale)


class Day(Value):
    """A calendar date (`2026-05-01`, or the date part of a stored UTC time)."""

    def __init__(self, text):
        super().__init__(str(text)[:10])

    def format(self, locale, translate):
        from datetime import date

        from babel.dates import format_date  # only a page needs it: the CLI says dates as they are stored
        try:
            return format_date(date.fromisoformat(self.english), format="medium", locale=locale)
        except ValueError:
            return self.english


class Moment(Value):
    """A stored UTC time (`2026-06-15T12:00:00Z`), shown in the shop's time zone `tz`."""

    def __init__(self, text, tz):
        super().__init__(text)
        self.tz = tz or "UTC"

    def format(self, locale, translate):
        try:
            moment = from_db(self.english)
        except ValueError:
            return self.english
        from babel.dates import format_datetime
        return format_datetime(moment, "d MMM y HH:mm", tzinfo=zone(self.tz), locale=locale)


class Text(str):
    """An English sentence that remembers its msgid and values (see the module's docstring)."""

    def __new__(cls, msgid: str, **values):
        english = msgid % {k: v.english if isinstance(v, Value) else v for k, v in values.items()}
        text = super().__new__(cls, english)
        text.msgid, text.values = msgid, values
        return text

    def say(self, locale: str, translate) -> str:
        """The sentence in `locale`: `translate` (gettext) gives the msgid's translation; each value is
        formatted for the locale, a nested Text said in it too."""
        def one(v):
            if isinstance(v, Text):
                return v.say(locale, translate)
            if isinstance(v, Value):
                return v.format(locale, translate)
            return v
        if not self.msgid:
            return ""
        return translate(self.msgid) % {k: one(v) for k, v in self.values.items()}


def N_(msgid: str, **values) -> Text:  # noqa: N802 - Babel's keyword for a marked, later-translated string
    """Mark `msgid` for translation and keep it with its values (an English `Text` until said)."""
    return Text(msgid, **values)


def joined(parts, separator=", ") -> Text:
    """Several sentences as one (each said in the reader's language)."""
    values = {f"p{i}": part for i, part in enumerate(parts)}
    return Text(separator.replace("%", "%%").join(f"%(p{i})s" for i in range(len(parts))), **values) \
        if parts else Text("")

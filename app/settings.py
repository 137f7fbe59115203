"""Per-shop settings: every business-rule default from SPEC, validated, stored in `shop_settings`.

A feature declares its settings here with a default and a validator; `get_settings` returns the
defaults overlaid with what the owner saved; `save_setting` refuses a bad value with a message and
leaves the old one in place.
"""
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from .db import write_transaction
from .timeutil import to_db, utcnow


@dataclass(frozen=True)
class Setting:
    """A declared setting. `kind` (number, integer, text, multiline, url, email, colour, choice, secret)
    and `bounds` ({"lo", "hi"} or {"max_len"}) are what a form needs to build its field; `parse` stays
    the one judge of what a value may be (the forms, the CLI and the flows all call it)."""
    key: str
    default: Any
    parse: Callable[[Any], Any]
    label: str
    secret: bool = False  # stored encrypted; read back as a Secret, never shown
    kind: str = "text"
    bounds: dict = field(default_factory=dict)


def N_(message: str) -> str:
    """Mark an English message for the translation catalogues (Babel extracts `N_` by default)."""
    return message


class Message(str):
    """A refusal in English that keeps its msgid and parameters, so the web can show it translated.

    This module sits at the bottom of the layers and runs without a request (CLI, scheduler), where
    English is right; flask_babel's lazy strings would ask the request's locale selector when turned
    into text and fail there. So a message is plain English text that the form layer translates with
    `gettext(message.msgid, **message.params)` (app/web/forms.py `translated`).
    """

    def __new__(cls, msgid: str, **params):
        self = super().__new__(cls, msgid % params if params else msgid)
        self.msgid, self.params = msgid, params
        return self


def refusal(exc: ValueError):
    """The message of a validator's ValueError, as a Message when it has one (str(exc) would lose it)."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], Message) else str(exc)


def _describe(parse, kind, **bounds):
    """Tell a form what kind of field a validator wants, and its bounds."""
    parse.kind, parse.bounds = kind, bounds
    return parse


class Secret:
    """A secret setting as read from the database: printed only as `<secret>`; `reveal(app)` decrypts it."""

    __slots__ = ("_stored",)

    def __init__(self, stored):
        self._stored = stored

    def reveal(self, app) -> str:
        """The plain value; ValueError when the installation's key cannot decrypt it."""
        if isinstance(self._stored, dict):
            return keys.decrypt(app, self._stored["encrypted"])
        return self._stored  # saved in plain text before migration 0011 and not saved since

    def __repr__(self):
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other):
        return isinstance(other, Secret) and other._stored == self._stored

    __hash__ = None


def _stored_json(app, setting, value) -> str:
    """The JSON text to store for a parsed value: secrets encrypted with the installation's key."""
    if not setting.secret or value is None:
        return json.dumps(value)
    if app is None:
        from flask import current_app, has_app_context  # only a save needs the app; reading needs no Flask
        if not has_app_context():
            raise ValueError(f"{setting.key}: saving a secret needs the app (its encryption key)")
        app = current_app
    return json.dumps({"encrypted": keys.encrypt(app, value)})


def encrypt_plain_secrets(app, db):
    """Encrypt secret settings still stored in plain text (from before they were secret)."""
    for setting in SETTINGS.values():
        if not setting.secret:
            continue
        for shop_id, value in list(db.execute("SELECT shop_id, value FROM shop_settings WHERE key = ?", [setting.key])):
            plain = json.loads(value)
            if isinstance(plain, str):
                db.execute("UPDATE shop_settings SET value = ? WHERE shop_id = ? AND key = ?",
                           [_stored_json(app, setting, plain), shop_id, setting.key])


def number(lo=None, hi=None, *, integer=False, optional=False):
    """A validator for a number within [lo, hi] (None allowed when optional)."""
    def parse(value):
        if value is None or (isinstance(value, str) and value.strip() == ""):
            if optional:
                return None
            raise ValueError(Message(N_("a value is required")))
        try:
            num = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(Message(N_("%(value)s is not a number"), value=repr(value))) from None
        if not num.is_finite():
            raise ValueError(Message(N_("%(value)s is not a number"), value=repr(value)))
        if integer and num != num.to_integral_value():
            raise ValueError(Message(N_("%(value)s is not a whole number"), value=repr(value)))
        if lo is not None and num < lo:
            raise ValueError(Message(N_("must be at least %(n)s"), n=lo))
        if hi is not None and num > hi:
            raise ValueError(Message(N_("must be at most %(n)s"), n=hi))
        return int(num) if integer else float(num)
    return _describe(parse, "integer" if integer else "number", lo=lo, hi=hi)


SETTINGS: dict[str, Setting] = {}


# What else must change when a setting changes: {key: hook(db, shop_id, old, new)}, run in the
# saving transaction. Told by the app factory (a platform's hooks, connectors/platforms.py), so
# that this module, at the bottom of the layers, calls up without importing upwards.
CHANGE_HOOKS: dict[str, Callable[[Any, int, Any, Any], None]] = {}


def init_app(app, hooks: dict):
    """Take the change hooks the platforms declare (see CHANGE_HOOKS)."""
    unknown = set(hooks) - set(SETTINGS)
    if unknown:
        raise ValueError(f"change hooks for unknown settings: {', '.join(sorted(unknown))}")
    CHANGE_HOOKS.update(hooks)


def declare(key, default, parse, label, secret=False, kind=None):
    """Declare a per-shop setting: its default, its validator and what the owner reads. A `secret`
    one is stored encrypted and read back as a `Secret`. The field kind and bounds come from the
    validator (number(), text(), ...) unless `kind` is given."""
    kind = kind or ("secret" if secret else getattr(parse, "kind", "text"))
    SETTINGS[key] = Setting(key, default, parse, label, secret, kind, dict(getattr(parse, "bounds", {})))


def upsert(db, shop_id, key, stored: str, now: str):
    """Write one stored (JSON) value of a shop's setting: the one statement that writes shop_settings
    (settings, flow definitions and email copy alike). Call inside a write transaction."""
    db.execute("INSERT INTO shop_settings (shop_id, key, value, updated_at) VALUES (?, ?, ?, ?)"
               " ON CONFLICT (shop_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
               [shop_id, key, stored, now])


def remove(db, shop_id, key):
    """Remove one stored value of a shop's setting (back to its default). Call inside a write
    transaction."""
    db.execute("DELETE FROM shop_settings WHERE shop_id = ? AND key = ?", [shop_id, key])


# Customer intelligence (SPEC "Business rules and defaults").
declare("lapse_factor", 1.5, number(1, 10), "A repeat buyer lapses after this many times their usual gap")
declare("lapse_min_days", 30, number(1, 3650, integer=True), "…and at least this many days")
declare("lost_days", 365, number(30, 3650, integer=True), "Lost after this many days without a purchase")
declare("new_days", 30, number(1, 365, integer=True), "New: first order within this many days")
declare("one_time_return_days", None, number(1, 3650, optional=True),
        "One-time buyers lapse after this many days (empty: learned from the shop)")
declare("one_time_return_min_returners", 30, number(1, 100000, integer=True),
        "Learn it only from at least this many returning customers")
declare("one_time_return_fallback_days", 90, number(1, 3650), "…otherwise use this many days")
declare("vip_percentile", 90, number(50, 99.9), "VIP: lifetime value at or above this percentile")
declare("vip_min_amount", None, number(0, optional=True),
        "VIP: lifetime value at or above this amount (replaces the percentile when set)")
declare("category_lapse_factor", 1.5, number(1, 10), "A category lapses after this many times its usual gap")
declare("replenish_lead_days", 5, number(0, 60, integer=True), "Replenishment reminder: days before the due date")

# Flow engine (SPEC "Flows" rules).
declare("cap_per_day", 1, number(1, 10, integer=True), "Marketing emails per customer per 24 hours")
declare("cap_per_week", 3, number(1, 50, integer=True), "Marketing emails per customer per 7 days")
declare("window_start", 9, number(0, 23, integer=True), "Send from this hour (shop time)")
declare("window_end", 20, number(1, 24, integer=True), "Send until this hour (shop time)")
declare("discount_cooldown_days", 90, number(0, 365, integer=True), "At most one discounted flow per customer in this many days")
declare("conversion_days", 5, number(1, 60, integer=True), "A purchase this many days after an email converts it")
declare("max_lateness_hours", 24, number(1, 168, integer=True),
        "An email that could not leave within this many hours of its plan is withheld, never sent late")
declare("send_rate_per_minute", None, number(1, 100000, integer=True, optional=True),
        "At most this many emails per minute from this shop (empty: as fast as the mail server takes them)")


# Rules that tie settings together: each returns a problem in words, or None.
CHECKS = [
    lambda v: Message(N_("the send window must end after it starts")) if v["window_end"] <= v["window_start"] else None,
    lambda v: Message(N_("the weekly cap cannot be below the daily cap")) if v["cap_per_week"] < v["cap_per_day"] else None,
]


def consent_source(value):
    """WooCommerce consent source: "none", "meta:<key>" or "soft_opt_in"."""
    text = str(value or "").strip()
    if text in ("none", "soft_opt_in"):
        return text
    if text.startswith("meta:") and text[5:].strip():
        return "meta:" + text[5:].strip()
    raise ValueError(Message(N_('choose "none", "meta:<meta key>" or "soft_opt_in"')))


# A free choice with a pattern ("meta:<key>"), so a text field rather than a list of options.
_describe(consent_source, "text", max_len=200)


# WooCommerce core records no marketing consent, so the owner says where it comes from (issue #7):
# "none" = nobody consents (promotional flows send nothing); "meta:<key>" = a customer/order meta key
# such as "mailchimp_woocommerce_is_subscribed", truthy values consent; "soft_opt_in" = everyone who
# bought, on the EU soft opt-in basis for existing customers. Winback's own unsubscribes always win.
# Changing it forgets the consent read under the old source (connectors.woocommerce.consent).
declare("woo_consent_source", "none", consent_source,
        "WooCommerce: where marketing consent comes from (none, meta:<key> or soft_opt_in)")


def get_settings(db, shop_id) -> dict:
    """Every setting of the shop: saved values over the defaults."""
    values = {k: s.default for k, s in SETTINGS.items()}
    for key, value in db.execute("SELECT key, value FROM shop_settings WHERE shop_id = ?", [shop_id]):
        if key in SETTINGS:
            values[key] = json.loads(value)
            if SETTINGS[key].secret and values[key] is not None:
                values[key] = Secret(values[key])
    return values


def save_setting(db, shop_id, key, value, app=None):
    """Validate and save one setting; ValueError (with a message) leaves the stored value as it was."""
    if key not in SETTINGS:
        raise ValueError(f"unknown setting {key!r}")
    parsed, errors = save_settings(db, shop_id, {key: value}, app=app)
    if errors:
        raise ValueError(f"{key}: {errors.get(key) or next(iter(errors.values()))}")
    return parsed[key]


# --- Email branding and sender (issue #5: email content and rendering; used by flows/render.py) ---
import re as _re
from urllib.parse import urlsplit as _urlsplit

_CONTROL = _re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

from . import keys
from .addresses import EMAIL as _EMAIL


def _blank(value):
    return value is None or (isinstance(value, str) and value.strip() == "")


def _unless_blank(check, optional, empty=None):
    """Wrap a validator of a stripped string: blank input is `empty` when optional, else refused."""
    def parse(value):
        if _blank(value):
            if optional:
                return empty
            raise ValueError(Message(N_("a value is required")))
        return check(str(value).strip())
    return _describe(parse, getattr(check, "kind", "text"), **getattr(check, "bounds", {}))


def text(max_len, *, multiline=False, optional=True):
    """A validator for free text up to max_len characters (one line unless multiline)."""
    def parse(value):
        if _blank(value):
            if optional:
                return "" if multiline else None
            raise ValueError(Message(N_("a value is required")))
        if not isinstance(value, str):
            raise ValueError(Message(N_("must be text")))
        value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
        if not multiline and "\n" in value:
            raise ValueError(Message(N_("must be a single line")))
        if _CONTROL.search(value):
            raise ValueError(Message(N_("must not contain control characters")))
        if len(value) > max_len:
            raise ValueError(Message(N_("must be at most %(n)s characters"), n=max_len))
        return value
    return _describe(parse, "multiline" if multiline else "text", max_len=max_len)


def https_url(*, optional=True):
    """A validator for an https:// URL (an image to show in emails)."""
    def check(value):
        parts = _urlsplit(value)
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise ValueError(Message(N_("%(value)s is not an https:// URL"), value=repr(value)))
        if len(value) > 2000 or _re.search(r"[\s\"'<>\\]", value) or _CONTROL.search(value):
            raise ValueError(Message(N_("%(value)s is not a valid URL"), value=repr(value)))
        return value
    return _unless_blank(_describe(check, "url", max_len=2000), optional)


def store_url(*, optional=True):
    """A validator for a storefront address: https://, or http:// on this machine (a local test shop)."""
    def check(value):
        parts = _urlsplit(value)
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if not parts.hostname or not (parts.scheme.lower() == "https" or (parts.scheme.lower() == "http" and local)):
            raise ValueError(Message(N_("%(value)s is not an https:// URL"), value=repr(value)))
        if len(value) > 2000 or _re.search(r"[\s\"'<>\\]", value) or _CONTROL.search(value):
            raise ValueError(Message(N_("%(value)s is not a valid URL"), value=repr(value)))
        return value.rstrip("/")
    return _unless_blank(_describe(check, "url", max_len=2000), optional)


def color():
    """A validator for a #rrggbb colour."""
    def parse(value):
        value = str(value or "").strip()
        if not _re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise ValueError(Message(N_("%(value)s is not a colour like #2f7d5b"), value=repr(value)))
        return value.lower()
    return _describe(parse, "colour")


def email_address(*, optional=True):
    """A validator for one bare email address (name@example.com)."""
    def check(value):
        if len(value) > 254 or not _EMAIL.fullmatch(value) or ".." in value:
            raise ValueError(Message(N_("%(value)s is not an email address"), value=repr(value)))
        return value
    return _unless_blank(_describe(check, "email", max_len=254), optional)


def smtp_url(*, optional=True):
    """A validator for an smtp:// or smtps:// server URL (smtps://user:password@host:465)."""
    def check(value):
        if _re.search(r"\s", value) or _CONTROL.search(value):
            raise ValueError(Message(N_("an SMTP URL must not contain spaces")))
        parts = _urlsplit(value)
        if parts.scheme.lower() not in ("smtp", "smtps"):
            raise ValueError(Message(N_("must start with smtp:// or smtps://")))
        try:
            port = parts.port
        except ValueError:
            raise ValueError(Message(N_("the port must be a number between 1 and 65535"))) from None
        if not parts.hostname:
            raise ValueError(Message(N_("needs a server name, like smtps://user:password@mail.example.com:465")))
        if port is not None and not 0 < port < 65536:
            raise ValueError(Message(N_("the port must be a number between 1 and 65535")))
        return value
    return _unless_blank(_describe(check, "url"), optional)


DEFAULT_BRAND_COLOR = "#2f7d5b"  # a calm green
declare("brand_logo_url", None, https_url(), "Logo shown at the top of emails (an https:// image URL)")
declare("brand_color", DEFAULT_BRAND_COLOR, color(), "Brand colour of emails (#rrggbb)")
declare("sender_name", None, text(100), "Sender name of emails (empty: the shop's name)")
declare("sender_email", None, email_address(), "Sender address of emails (empty: WINBACK_MAIL_FROM)")
declare("postal_address", "", text(500, multiline=True),
        "Postal address in every email footer (required by anti-spam law: CAN-SPAM)")
declare("smtp_url", None, smtp_url(), "SMTP server for this shop (smtp:// or smtps://; empty: WINBACK_SMTP_URL)",
        secret=True)
declare("store_url", None, store_url(),
        "Your storefront's address, where the button in every email leads (empty: the platform's store address)")
# --- end of email branding and sender ---


def save_settings(db, shop_id, values: dict, app=None) -> tuple[dict, dict]:
    """Validate and save several settings at once (a form): ({key: parsed}, {key: message}).

    Each value is parsed on its own, then the cross-field CHECKS run on the result as a whole (so a
    send window may move in one go); when anything is refused nothing is saved and the stored values
    stay as they were. A cross-field problem is reported under the last key of its rule. Secret
    settings are encrypted with `app`'s key (default: the current app's).
    """
    parsed, errors = {}, {}
    for key, value in values.items():
        if key not in SETTINGS:
            errors[key] = f"unknown setting {key!r}"
            continue
        try:
            parsed[key] = SETTINGS[key].parse(value)
        except ValueError as exc:
            errors[key] = refusal(exc)
    if errors:
        return parsed, errors
    merged = {**get_settings(db, shop_id), **parsed}
    for check, key in zip(CHECKS, CHECK_FIELDS):
        problem = check(merged)
        if problem:
            errors[key] = problem
    if errors:
        return parsed, errors
    with write_transaction(db):
        old_values = get_settings(db, shop_id)
        now = to_db(utcnow())
        for key, value in parsed.items():
            upsert(db, shop_id, key, _stored_json(app, SETTINGS[key], value), now)
            if key in CHANGE_HOOKS and old_values[key] != value:
                CHANGE_HOOKS[key](db, shop_id, old_values[key], value)
    return parsed, {}


# The field each CHECKS rule is reported under, in the same order.
CHECK_FIELDS = ["window_end", "cap_per_week"]


def flag():
    """A validator for on/off (true/false, yes/no, on/off, 1/0)."""
    def parse(value):
        if isinstance(value, bool):
            return value
        text = str(value if value is not None else "").strip().lower()
        if text in ("true", "yes", "on", "y", "1"):
            return True
        if text in ("false", "no", "off", "0", ""):
            return False
        raise ValueError(Message(N_("choose on or off")))
    return _describe(parse, "flag")


# Offer tests (flows/offer_promotion.py): when on, the tick makes an arm that is better than the
# others with confidence the step's offer by itself. Off: the owner decides on the report page.
declare("offer_test_auto_promote", False, flag(),
        "Offer tests: make an offer that is better with confidence the default by itself")


# --- Who is worth winning back (issue #15: flows/targeting.py, flows/offer_policy.py) ---
declare("lapse_horizon_days", 30, number(7, 365, integer=True),
        "An overdue repeat buyer lapses when an order in this many days is unlikely")
declare("lapse_max_probability", 0.1, number(Decimal("0.01"), Decimal("0.99")),
        "…that is, when the model's chance of an order in that time is below this (0.01 to 0.99)")
declare("one_time_lapse_share", 0.2, number(Decimal("0.01"), Decimal("0.99")),
        "A one-time buyer lapses when fewer than this share of returning customers came back later")
declare("discount_skip_probability", 0.05, number(Decimal("0.01"), 1),
        "No discount for a customer at least this likely to order in 30 days anyway (0.01 to 1)")
declare("discount_min_percent", 5, number(1, 90),
        "Smallest discount (percent), for the less valuable customers, when the largest is set")
declare("discount_max_percent", None, number(1, 90, optional=True),
        "Largest discount (percent), for the most valuable customers (empty: the flows' percentages, for everyone)")
declare("discount_min_worth", None, number(0, optional=True),
        "No discount for a customer worth less than this if won back (empty: no floor)")
CHECKS.append(lambda v: Message(N_("the smallest discount cannot be above the largest"))
              if v["discount_max_percent"] is not None and v["discount_min_percent"] > v["discount_max_percent"]
              else None)
CHECK_FIELDS.append("discount_max_percent")

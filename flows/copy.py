"""The owner's own words per email step and language: subject, preheader, heading, intro, reason
block, button label, and how many products the email shows.

Stored in `shop_settings` under `copy:<template>:<locale>` as JSON {"subject", "preheader", "heading",
"intro", "reason", "button": str, "products": int}; any may be absent, and then the template's
default applies. flows.render puts the owner's text in place of the default in both the HTML part
(escaped like any data) and the text part.

The text is not a template: the only thing done to it is replacing the placeholders {first_name},
{shop_name}, {code} and {expires} with their values (`fill`), a plain string replacement; any other
{name} is refused when saved. The product count lives here, with the text, because the owner sets it
in the same per-language form as the words around it (a shorter email in one language), and a flow
definition stays about timing and offers.
"""
import json
import re

from app import settings
from app.db import write_transaction
from app.settings import N_, Message
from app.timeutil import to_db, utcnow

# The emails that exist, in the languages that ship (flows/render.py renders them).
LOCALES = ("en", "nl", "pl")
DEFAULT_LOCALE = "en"
TEMPLATES = ("winback_1", "winback_2", "winback_3", "vip_winback_1", "vip_winback_2", "vip_winback_3",
             "replenish_reminder", "second_order", "sunset",
             "category_winback_1", "category_winback_2", "journey_how_to", "journey_care")
# No offer, no promotional footer: the after-purchase journey (second_order is its "how was it").
SERVICE_TEMPLATES = frozenset({"second_order", "journey_how_to", "journey_care"})
TEMPLATES += ("vip_early_access", "brand_launch", "thank_you")  # one-off campaigns (flows/campaigns.py)

SUBJECT_MAX = 150
INTRO_MAX = 2000
PREHEADER_MAX = 200
HEADING_MAX = 150
REASON_MAX = 1000
BUTTON_MAX = 60
PRODUCTS_MAX = 6
PRODUCTS_DEFAULT = 3
# The owner's text fields; single-line ones are refused with a line break in them.
TEXT_FIELDS = ("subject", "preheader", "heading", "intro", "reason", "button")
MULTILINE = frozenset({"intro", "reason"})
PLACEHOLDERS = ("first_name", "shop_name", "code", "expires")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MAX = {"subject": SUBJECT_MAX, "preheader": PREHEADER_MAX, "heading": HEADING_MAX, "intro": INTRO_MAX,
        "reason": REASON_MAX, "button": BUTTON_MAX}


class CopyError(ValueError):
    """A refused value; `field` names the field, the message (a settings Message) says why."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


def check_placeholders(value):
    """ValueError (a Message) for a {name} that is not one of PLACEHOLDERS; the value otherwise."""
    for name in _PLACEHOLDER.findall(value or ""):
        if name not in PLACEHOLDERS:
            raise ValueError(Message(N_("{%(name)s} is not a placeholder (use %(known)s)"), name=name,
                                     known=", ".join("{%s}" % p for p in PLACEHOLDERS)))
    return value


def fill(value, values) -> str | None:
    """The owner's text with each known placeholder replaced by its value (empty when the email has
    none, e.g. {code} without an offer). A plain replacement, never a template engine: the values are
    not looked at again, and the result is escaped by the HTML layout like any text."""
    if value is None:
        return None
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1)) or "") if m.group(1) in PLACEHOLDERS
                            else m.group(0), value)


def copy_key(template, locale) -> str:
    return f"copy:{template}:{locale}"


# A step of the owner's own flow (flows/owner_flows.py) is "<flow>.<n>": it has its own words under that
# name and renders with the generic first win-back email, whose text works with a code and without.
OWNER_LAYOUT = "winback_1"
_OWNER_TEMPLATE = re.compile(r"^[a-z][a-z0-9_]*\.[1-9][0-9]?$")


def owner_template(template) -> bool:
    """Whether `template` names a step of the owner's own flow ("<flow>.<n>")."""
    return isinstance(template, str) and _OWNER_TEMPLATE.match(template) is not None


def layout_of(template) -> str:
    """The email file `template` renders with: its own, or OWNER_LAYOUT for an owner's flow's step."""
    return OWNER_LAYOUT if owner_template(template) else template


def _check_target(template, locale):
    if template not in TEMPLATES and not owner_template(template):
        raise ValueError(f"unknown email template {template!r}")
    if locale not in LOCALES:
        raise ValueError(f"unknown language {locale!r} (one of {', '.join(LOCALES)})")


def _clean_subject(subject):
    if subject is None:
        return None
    if not isinstance(subject, str):
        raise ValueError("subject: must be text")
    if "\n" in subject or "\r" in subject:
        raise ValueError("subject: must be a single line")
    subject = subject.strip()
    if not 1 <= len(subject) <= SUBJECT_MAX:
        raise ValueError(f"subject: must be 1 to {SUBJECT_MAX} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in subject):
        raise ValueError("subject: must not contain control characters")
    return subject


def _clean_intro(intro):
    if intro is None:
        return None
    if not isinstance(intro, str):
        raise ValueError("intro: must be text")
    intro = intro.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not intro:
        return None  # empty: the default intro
    if len(intro) > INTRO_MAX:
        raise ValueError(f"intro: must be at most {INTRO_MAX} characters")
    if any((ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127 for ch in intro):
        raise ValueError("intro: must not contain control characters")
    return intro


def _clean_text(field, value):
    """One of the newer text fields: None when empty (the default), else the checked text."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise CopyError(field, Message(N_("must be text")))
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not value:
        return None
    if field not in MULTILINE and "\n" in value:
        raise CopyError(field, Message(N_("must be a single line")))
    if _CONTROL.search(value):
        raise CopyError(field, Message(N_("must not contain control characters")))
    if len(value) > _MAX[field]:
        raise CopyError(field, Message(N_("must be at most %(n)s characters"), n=_MAX[field]))
    try:
        return check_placeholders(value)
    except ValueError as exc:
        raise CopyError(field, exc.args[0]) from None


def _clean_products(value):
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= PRODUCTS_MAX:
        raise CopyError("products", Message(N_("enter a whole number from %(lo)s to %(hi)s"), lo=0,
                                            hi=PRODUCTS_MAX))
    return value


def get_copy(db, shop_id, template, locale) -> dict:
    """{"subject", "preheader", "heading", "intro", "reason", "button": str | None, "products": int |
    None}: the owner's choices, None where the default applies."""
    _check_target(template, locale)
    row = db.execute("SELECT value FROM shop_settings WHERE shop_id = ? AND key = ?",
                     [shop_id, copy_key(template, locale)]).fetchone()
    stored = {}
    if row:
        try:
            stored = json.loads(row[0])
        except ValueError:
            stored = {}
        if not isinstance(stored, dict):
            stored = {}
    out = {name: stored.get(name) or None for name in TEXT_FIELDS}
    count = stored.get("products")
    out["products"] = count if isinstance(count, int) and 0 <= count <= PRODUCTS_MAX else None
    return out


def product_count(copy) -> int:
    """How many products the email shows: the owner's count, else PRODUCTS_DEFAULT (0 hides the block)."""
    count = (copy or {}).get("products")
    return PRODUCTS_DEFAULT if count is None else count


def clean_copy(subject=None, intro=None, **fields) -> dict:
    """The checked values (None: the default), as save_copy stores them; CopyError names the field refused."""
    unknown = set(fields) - set(TEXT_FIELDS) - {"products"}
    if unknown:
        raise ValueError(f"unknown copy fields: {', '.join(sorted(unknown))}")
    try:
        value = {"subject": _clean_subject(subject), "intro": _clean_intro(intro)}
    except ValueError as exc:
        raise CopyError(str(exc).partition(":")[0], str(exc)) from None
    for name in ("subject", "intro"):
        if value[name] is not None:
            try:
                check_placeholders(value[name])
            except ValueError as exc:
                raise CopyError(name, exc.args[0]) from None
    for name in ("preheader", "heading", "reason", "button"):
        value[name] = _clean_text(name, fields.get(name))
    value["products"] = _clean_products(fields.get("products"))
    return value


def save_copy(db, shop_id, template, locale, subject=None, intro=None, **fields) -> dict:
    """Validate and save the owner's copy for one step and language (each field None: the default;
    the fields as get_copy returns them).

    Raises ValueError (a CopyError naming the field) and keeps the stored copy as it was when a value
    is refused. Saving all as None removes the override.
    """
    _check_target(template, locale)
    value = clean_copy(subject, intro, **fields)
    stored = {k: v for k, v in value.items() if v is not None}
    key = copy_key(template, locale)
    with write_transaction(db):
        if not stored:
            settings.remove(db, shop_id, key)
        else:
            settings.upsert(db, shop_id, key, json.dumps(stored, ensure_ascii=False), to_db(utcnow()))
    return value

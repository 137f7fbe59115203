"""The owner's own subject and intro per email step and language.

Stored in `shop_settings` under `copy:<template>:<locale>` as JSON {"subject": str, "intro": str};
either may be absent, and then the template's default applies. flows.render puts the owner's text
in place of the default in both the HTML part (escaped like any data) and the text part. The text is
used as written: it is not a template.
"""
import json

from app import settings
from app.db import write_transaction
from app.timeutil import to_db, utcnow

# The emails that exist, in the languages that ship (flows/render.py renders them).
LOCALES = ("en", "nl", "pl")
DEFAULT_LOCALE = "en"
TEMPLATES = ("winback_1", "winback_2", "winback_3", "vip_winback_1", "vip_winback_2", "vip_winback_3",
             "replenish_reminder", "second_order", "sunset")
SERVICE_TEMPLATES = frozenset({"second_order"})  # no offer, no promotional footer

SUBJECT_MAX = 150
INTRO_MAX = 2000


def copy_key(template, locale) -> str:
    return f"copy:{template}:{locale}"


def _check_target(template, locale):
    if template not in TEMPLATES:
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


def get_copy(db, shop_id, template, locale) -> dict:
    """{"subject": str | None, "intro": str | None}: the owner's text, None where the default applies."""
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
    return {"subject": stored.get("subject") or None, "intro": stored.get("intro") or None}


def save_copy(db, shop_id, template, locale, subject=None, intro=None) -> dict:
    """Validate and save the owner's subject/intro for one step and language (None: the default).

    Raises ValueError with a message and keeps the stored text as it was when a value is refused.
    Saving both as None removes the override.
    """
    _check_target(template, locale)
    value = {"subject": _clean_subject(subject), "intro": _clean_intro(intro)}
    value = {k: v for k, v in value.items() if v is not None}
    key = copy_key(template, locale)
    with write_transaction(db):
        if not value:
            settings.remove(db, shop_id, key)
        else:
            settings.upsert(db, shop_id, key, json.dumps(value, ensure_ascii=False), to_db(utcnow()))
    return {"subject": value.get("subject"), "intro": value.get("intro")}

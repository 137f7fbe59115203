"""Email addresses: which ones Winback may hand to a mail server.

An address arrives from webhooks, syncs and CSV files; one with a line break, a control character
or no domain would break the message headers (or inject new ones), so it is refused at intake and
the customer is marked undeliverable with the reason, instead of failing a delivery run later.
"""
import re

EMAIL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
INVALID_PREFIX = "invalid address"


def address_problem(value) -> str | None:
    """None when `value` is one plain deliverable address (name@example.com), else why not."""
    if value is None or not str(value).strip():
        return f"{INVALID_PREFIX}: empty"
    value = str(value)
    if re.search(r"[\x00-\x1f\x7f]", value):
        return f"{INVALID_PREFIX}: contains a line break or control character"
    value = value.strip()
    if len(value) > 254:
        return f"{INVALID_PREFIX}: longer than 254 characters"
    if not EMAIL.fullmatch(value) or ".." in value or value.startswith(".") or ".@" in value:
        return f"{INVALID_PREFIX}: {value[:80]!r} is not an email address"
    return None

"""Delivery feedback from the mail service: hard bounces and spam complaints suppress the address.

A feedback event names a recipient address, not a shop: Winback suppresses the address in every
shop that mailed it (each customer with that address who was sent a message). A hard bounce marks
the customer undeliverable (no more mail of any kind); a complaint does that and also unsubscribes
them from marketing. Soft or transient bounces change nothing (the SMTP retries handle those).
Replaying an event changes nothing more, so events need no store of their own beyond the
customer's `email_failure`, which says what happened and where it came from.
"""
import hmac
import json
import logging
from dataclasses import dataclass
from email.utils import parseaddr

from app.timeutil import utcnow
from connectors.store import suppress_mailed_address

from .consent import unsubscribe

log = logging.getLogger("winback.feedback")

# Postmark bounce types that mean the address will not take mail (postmarkapp.com/developer/api/bounce-api).
POSTMARK_HARD = {"HardBounce", "BadEmailAddress"}


class FeedbackError(ValueError):
    """The payload is not a feedback event Winback understands (a 400)."""


@dataclass(frozen=True)
class Event:
    """One recipient's feedback: `kind` is 'hard_bounce', 'complaint' or 'other'."""
    kind: str
    email: str
    reason: str


def postmark_credential_ok(secret, password) -> bool:
    """Whether the basic-auth password Postmark sent is the installation's webhook secret (a
    comma-separated setting holds several while the URL in Postmark is being changed)."""
    secrets = [s.strip() for s in str(secret or "").split(",") if s.strip()]
    if not secrets or password is None:
        return False
    given = str(password).encode()
    # Every secret is compared (no early exit), each in constant time.
    return sum(hmac.compare_digest(given, s.encode()) for s in secrets) > 0


def parse_json(body):
    """The JSON object in `body` (bytes or str), or FeedbackError."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise FeedbackError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise FeedbackError("the body is not a JSON object")
    return data


def postmark_events(payload: dict) -> list[Event]:
    """The event in a Postmark bounce or spam-complaint webhook (other record types: none)."""
    record = payload.get("RecordType")
    if not isinstance(record, str):
        raise FeedbackError("a Postmark webhook needs a RecordType")
    if record not in ("Bounce", "SpamComplaint"):
        return []  # deliveries, opens, clicks: a webhook pointed here for more than feedback is not an error
    email = _address(payload.get("Email"), "a Postmark bounce or complaint needs an Email")
    kind_of = payload.get("Type")
    if record == "SpamComplaint" or (record == "Bounce" and kind_of == "SpamComplaint"):
        return [Event("complaint", email, "spam complaint (Postmark)")]
    if record == "Bounce" and kind_of in POSTMARK_HARD:
        detail = _text(payload.get("Details")) or _text(payload.get("Description")) or kind_of
        return [Event("hard_bounce", email, f"hard bounce (Postmark): {detail}")]
    return [Event("other", email, f"{record} {kind_of or ''}".strip())]


def ses_events(message: str) -> list[Event]:
    """The events in an SES bounce or complaint notification (the SNS `Message`, a JSON string);
    both the notification (`notificationType`) and the event-publishing (`eventType`) forms."""
    if not isinstance(message, str):
        raise FeedbackError("the SNS notification has no Message")
    data = parse_json(message)
    kind_of = data.get("notificationType") or data.get("eventType")
    if kind_of == "Bounce":
        bounce = _object(data, "bounce")
        permanent = bounce.get("bounceType") == "Permanent"
        return [Event("hard_bounce" if permanent else "other", email,
                      f"hard bounce (SES): {detail or bounce.get('bounceSubType') or 'Permanent'}"
                      if permanent else f"{bounce.get('bounceType')} bounce (SES)")
                for email, detail in _recipients(bounce, "bouncedRecipients", "diagnosticCode")]
    if kind_of == "Complaint":
        complaint = _object(data, "complaint")
        # A recipient's "this is not spam" report arrives as a complaint of this type.
        kind = "other" if complaint.get("complaintFeedbackType") == "not-spam" else "complaint"
        return [Event(kind, email, "spam complaint (SES)")
                for email, _ in _recipients(complaint, "complainedRecipients", None)]
    return []


def apply(db, events: list[Event], now=None) -> dict:
    """Suppress the addresses of the hard bounces and complaints (complaints also unsubscribe);
    returns counts of events and of customers suppressed."""
    now = now or utcnow()
    counts = {"events": len(events), "suppressed": 0, "unsubscribed": 0}
    for event in events:
        if event.kind not in ("hard_bounce", "complaint"):
            continue
        customers = suppress_mailed_address(db, event.email, event.reason, now)
        counts["suppressed"] += len(customers)
        if event.kind == "complaint":
            for customer in customers:
                counts["unsubscribed"] += unsubscribe(db, customer["shop_id"], customer["id"], now)
        log.info("%s: %d customer(s) suppressed", event.reason.split(":")[0], len(customers))
    return counts


def _object(data: dict, name: str) -> dict:
    value = data.get(name)
    if not isinstance(value, dict):
        raise FeedbackError(f"the SES notification has no {name}")
    return value


def _recipients(block: dict, name: str, detail_key):
    recipients = block.get(name)
    if not isinstance(recipients, list):
        raise FeedbackError(f"the SES notification has no {name}")
    out = []
    for r in recipients:
        email = _address(r.get("emailAddress") if isinstance(r, dict) else None,
                         f"a recipient in {name} has no emailAddress")
        out.append((parseaddr(email)[1] or email, _text(r.get(detail_key)) if detail_key else None))
    return out


def _address(value, problem: str) -> str:
    if not isinstance(value, str) or "@" not in value or len(value) > 320:
        raise FeedbackError(problem)
    try:
        value.encode()
    except UnicodeEncodeError:  # lone surrogates from JSON escapes: no address, and SQLite would refuse it
        raise FeedbackError(problem) from None
    return value


def _text(value) -> str:
    if not isinstance(value, str):
        return ""
    return " ".join(value.encode(errors="replace").decode().split())[:300]

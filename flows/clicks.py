"""Clicks on the links in emails, counted honestly. This module owns the `clicks` table.

Every tracked link is `/c/<token>`: the token carries the message, the link's name (shop, keep, ...)
and its target, signed with the installation's secret key (itsdangerous, which also compares the
signature in constant time), so the redirect goes only where Winback itself pointed it (never an
open redirect: the target never comes from the query). A token is good for TOKEN_DAYS: after that
the link still takes the customer to the shop but records nothing.

Mail scanners follow links before a person does. Not counted:
* HEAD requests, requests without a user agent and known scanner user agents (SCANNER_AGENTS):
  not recorded at all;
* a click within SCANNER_SECONDS of delivery, or within BURST_SECONDS of a click on another link of
  the same message (scanners open every link at once; a person clicks one): recorded as `suspect`,
  the earlier click of such a burst too. A later click on the same link still counts.
A counted click is recorded once per message and link.
"""
import re
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.db import write_transaction
from app.timeutil import from_db, to_db

TOKEN_DAYS = 180
SCANNER_SECONDS = 10
BURST_SECONDS = 2
LINK_KINDS = ("shop", "product", "reorder", "unsubscribe", "keep")
# Link checkers that announce themselves in their user agent. Sources: "How can I identify bot user
# agents in my email click data?" (suped.com, 2025: automation libraries such as python-requests,
# aiohttp, Wget, curl, Java, Apache-HttpClient; link previews such as Slackbot-LinkExpanding and
# facebookexternalhit) and "Bot clicks from security scanners: a field guide" (Barracuda, Proofpoint,
# Cisco Secure Email, Trend Micro's TMES, Microsoft's Office/SafeLinks fetchers). An Office app
# fetches a link itself ("Microsoft Office Existence Discovery", "ms-office") before it opens the
# browser, whose own request then counts. Agents that pose as browsers are caught by the timing rules.
SCANNER_AGENTS = re.compile(
    r"barracuda|proofpoint|mimecast|ciscosecureemail|\btmes\b|safelinks|microsoft office|ms-office"
    r"|python-requests|aiohttp|wget|curl/|^java/|apache-httpclient|go-http-client|slackbot-linkexpanding"
    r"|facebookexternalhit|bot\b|crawler|spider", re.I)


def _serializer(app):
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="winback-click")


def make_token(app, message_id, link, target) -> str:
    """A token for one link of one message: `link` is its name, `target` where it leads."""
    if link not in LINK_KINDS:
        raise ValueError(f"unknown link kind {link!r}")
    return _serializer(app).dumps([message_id, link, target])


def tracked_url(app, message_id, link, target) -> str:
    """The URL of `target` as it goes into an email of `message_id` (a message not sent yet, such as
    a preview, has None: its link redirects and records nothing)."""
    return f"{app.config['APP_URL']}/c/{make_token(app, message_id, link, target)}"


def read_token(app, token) -> tuple[int | None, str, str, bool] | None:
    """(message id, link, target, fresh) of a token; None when it is forged, altered or malformed.
    `fresh` is False for an expired token (its click is not recorded)."""
    serializer = _serializer(app)
    fresh = True
    try:
        payload = serializer.loads(token, max_age=TOKEN_DAYS * 86400)
    except SignatureExpired as exc:  # the signature is good, only its age is over
        payload, fresh = serializer.load_payload(exc.payload), False
    except (BadSignature, ValueError, TypeError, UnicodeError):
        return None
    try:
        message_id, link, target = payload
    except (ValueError, TypeError):
        return None
    if link not in LINK_KINDS or not isinstance(target, str) or not re.match(r"^https?://", target):
        return None
    return (int(message_id) if message_id is not None else None), link, target, fresh


def is_scanner(method: str, user_agent: str | None) -> bool:
    """A request that is a prefetch by its form: HEAD, no user agent (every browser sends one; the
    field guide above sees SafeLinks fetch without), or a known scanner's user agent."""
    return method.upper() == "HEAD" or not (user_agent or "").strip() or bool(SCANNER_AGENTS.search(user_agent))


def record(db, message_id, link, now) -> str | None:
    """Record a click on `link` of a sent message at `now`: "counted", "suspect", "repeat" (already
    counted for this message and link) or None (no such sent message)."""
    now_db = to_db(now)
    with write_transaction(db):
        row = db.execute("SELECT shop_id, sent_at FROM messages WHERE id = ? AND status = 'sent'",
                         [message_id]).fetchone()
        if row is None or row[1] is None:
            return None
        shop_id, sent_at = row
        reason = None
        if now - from_db(sent_at) < timedelta(seconds=SCANNER_SECONDS):
            reason = f"within {SCANNER_SECONDS} s of delivery"
        burst = db.execute("SELECT id FROM clicks WHERE message_id = ? AND link != ? AND clicked_at >= ?",
                           [message_id, link, to_db(now - timedelta(seconds=BURST_SECONDS))]).fetchall()
        if burst:
            reason = reason or "other links of the message clicked at the same moment"
            db.execute(f"UPDATE clicks SET suspect = 1, reason = ? WHERE id IN ({','.join('?' * len(burst))})",
                       [reason, *[b[0] for b in burst]])
        if reason:
            db.execute("INSERT INTO clicks (shop_id, message_id, link, clicked_at, suspect, reason)"
                       " VALUES (?, ?, ?, ?, 1, ?)", [shop_id, message_id, link, now_db, reason])
            return "suspect"
        done = db.execute("INSERT OR IGNORE INTO clicks (shop_id, message_id, link, clicked_at, suspect)"
                          " VALUES (?, ?, ?, ?, 0)", [shop_id, message_id, link, now_db]).rowcount
        return "counted" if done else "repeat"


CLICKED = """
SELECT m.flow, m.step, COUNT(DISTINCT k.message_id) AS clicked
FROM clicks k JOIN messages m ON m.id = k.message_id
WHERE k.shop_id = :shop AND k.suspect = 0 AND k.clicked_at <= :now AND m.created_at >= :since
GROUP BY m.flow, m.step
"""


def clicked_messages(db, shop_id, now_db, since_db="") -> dict:
    """{(flow, step): messages with at least one counted click before `now_db`} (of the messages
    made from `since_db` on, when given)."""
    return {(r["flow"], r["step"]): r["clicked"]
            for r in db.query(CLICKED, {"shop": shop_id, "now": now_db, "since": since_db or ""})}


def forget_shop(db, shop_id) -> int:
    """Delete every click of the shop (the demo's simulated history, before it is made again)."""
    return db.execute("DELETE FROM clicks WHERE shop_id = ?", [shop_id]).rowcount

"""Delivering the outbox over SMTP.

`WINBACK_SMTP_URL` (or a shop's own `smtp_url` setting) is `smtp://user:pass@host:port` (STARTTLS
when the server offers it) or `smtps://…` (TLS from the start); unset, messages stay in the outbox.
One connection serves a whole batch. A temporary failure (a 4xx answer, a refused or dropped
connection, a timeout) is retried with backoff, first within the run and then at later ticks; a
permanent one (5xx) is recorded on the message and on the customer, and never retried.

What is sent, when, and whether at all is decided in flows/delivery.py; this module only speaks SMTP.
"""
import io
import smtplib
import ssl
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, getaddresses, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

from tenacity import Retrying, retry, retry_if_exception, retry_if_exception_type, stop_after_attempt, wait_exponential

from . import dkim, tokens
from .timeutil import utcnow

TIMEOUT = 30
# RFC 5322 allows 998 characters a line; folding the unsubscribe URL at 78 would split it.
HEADER_POLICY = compat32.clone(max_line_length=998)
MAX_ATTEMPTS = 6  # across ticks; each tick also retries a connection a few times
RETRY_AFTER = (60, 300, 900, 3600, 3 * 3600)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool  # smtps: TLS from the first byte

    @classmethod
    def parse(cls, url: str) -> "SmtpConfig":
        """Read `smtp://user:pass@host:port` or `smtps://…`; ValueError with a reason otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"SMTP URL {url!r} must look like smtp://user:pass@host:port or smtps://…")
        return cls(host=parts.hostname, port=parts.port or (465 if parts.scheme == "smtps" else 25),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   tls=parts.scheme == "smtps")


class TemporaryFailure(Exception):
    """Worth trying again later; `unreachable` when the server could not be reached at all."""

    def __init__(self, text, unreachable=False):
        super().__init__(text)
        self.unreachable = unreachable


class PermanentFailure(Exception):
    """The server refused for good (5xx)."""


def classify(exc) -> Exception:
    """Sort an SMTP or network error into temporary or permanent."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        if 500 <= code < 600:
            return PermanentFailure(f"recipient refused: {code} {text}")
        return TemporaryFailure(f"recipient deferred: {code} {text}")
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        if 500 <= exc.smtp_code < 600:
            return PermanentFailure(f"{exc.smtp_code} {text}")
        return TemporaryFailure(f"{exc.smtp_code} {text}")
    unreachable = isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)
    return TemporaryFailure(f"{type(exc).__name__}: {exc}", unreachable=unreachable or
                            isinstance(exc, smtplib.SMTPConnectError))


class Connection:
    """One SMTP session reused for many messages, reopened when the server drops it."""

    def __init__(self, config: SmtpConfig):
        self.config = config
        self.smtp = None

    @retry(retry=retry_if_exception(lambda e: isinstance(e, (OSError, smtplib.SMTPServerDisconnected))),
           stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
    def open(self):
        cfg = self.config
        context = ssl.create_default_context()
        if cfg.tls:
            smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=TIMEOUT, context=context)
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=TIMEOUT)
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
        if cfg.username:
            smtp.login(cfg.username, cfg.password or "")
        self.smtp = smtp

    def send(self, message):
        """Send one message; raises TemporaryFailure or PermanentFailure.

        A session the server closed while idle is reopened once, at once (the second attempt)."""
        reconnect = Retrying(retry=retry_if_exception_type(smtplib.SMTPServerDisconnected),
                             stop=stop_after_attempt(2), reraise=True)
        try:
            reconnect(self._send_once, message)
        except (smtplib.SMTPException, OSError) as exc:  # socket.timeout is an OSError
            raise classify(exc) from exc

    def _send_once(self, message):
        if self.smtp is None:
            self.open()
        try:
            transmit(self.smtp, message)
        except smtplib.SMTPServerDisconnected:
            self.smtp = None
            raise
        except OSError as exc:
            if not isinstance(exc, smtplib.SMTPException):  # the connection itself broke
                self.smtp = None
            raise

    def close(self):
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self.smtp = None


def smtp_url_for(app, settings) -> str | None:
    """The shop's own SMTP URL, else the installation's, else None (outbox only)."""
    return (s.reveal(app) if hasattr(s := settings.get("smtp_url"), "reveal") else s) or app.config.get("SMTP_URL") or None


def sender_for(app, shop, settings) -> str:
    """The From header: the shop's sender name and address, else WINBACK_MAIL_FROM."""
    default_name, default_addr = parseaddr(app.config["MAIL_FROM"])
    name = settings.get("sender_name") or shop["name"] or default_name
    return formataddr((name, settings.get("sender_email") or default_addr))


def build(app, shop, settings, row):
    """The MIME message for one stored message row (text, and HTML when there is one).

    Built with the compat32 `email.mime` classes: the modern EmailMessage API parses every header
    through its registry and made delivery four times slower.
    """
    text = MIMEText(row["body_text"], "plain", "utf-8", policy=HEADER_POLICY)
    if row["body_html"]:
        msg = MIMEMultipart("alternative", policy=HEADER_POLICY)
        msg.attach(text)
        msg.attach(MIMEText(row["body_html"], "html", "utf-8", policy=HEADER_POLICY))
    else:
        msg = text
    name, address = parseaddr(sender_for(app, shop, settings))
    msg["From"] = formataddr((name, address), charset="utf-8")
    msg["To"] = row["email"]
    msg["Subject"] = Header(row["subject"], "utf-8")
    msg["Date"] = format_datetime(utcnow())
    domain = address.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = row["message_id"] or make_msgid(idstring=f"wb{row['id']}", domain=domain)
    if row["is_marketing"]:
        url = f"{app.config['APP_URL']}/u/{tokens.make(app, 'unsubscribe', shop['id'], row['customer_id'])}"
        msg["List-Unsubscribe"] = f"<{url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    key = dkim.stored_key(app, shop)
    if key is not None:
        # Signed over the exact bytes the server gets (transmit() sends them as they are): flattening
        # the message again could fold or encode a header differently and break the signature.
        msg.signed_bytes = dkim.sign(key, wire_bytes(msg))
    return msg


def wire_bytes(msg) -> bytes:
    """The message as smtplib's send_message would put it on the wire: CRLF line ends, no Bcc."""
    out = io.BytesIO()
    BytesGenerator(out, policy=msg.policy.clone(linesep="\r\n")).flatten(msg, linesep="\r\n")
    return out.getvalue()


def transmit(smtp, msg):
    """Hand one message to an open smtplib session: its signed bytes exactly as signed when build()
    signed it, else as send_message flattens it."""
    signed = getattr(msg, "signed_bytes", None)
    if signed is None:
        return smtp.send_message(msg)
    sender = parseaddr(msg["From"])[1]
    recipients = [addr for _name, addr in getaddresses(msg.get_all("To", []))]
    options = ["SMTPUTF8"] if not (sender + "".join(recipients)).isascii() else []
    return smtp.sendmail(sender, recipients, signed, mail_options=options)


def delivery_health(db, shop_id) -> dict:
    """For the dashboard: what waits, what failed, what is stuck mid-send or unknown, what was
    withheld, and the last error."""
    row = db.execute(
        "SELECT COUNT(*) FILTER (WHERE status = 'outbox'), COUNT(*) FILTER (WHERE status = 'failed'),"
        " COUNT(*) FILTER (WHERE status IN ('sending', 'unknown')),"
        " COUNT(*) FILTER (WHERE status = 'outbox' AND error IS NOT NULL),"
        " COUNT(*) FILTER (WHERE status = 'withheld'),"
        " (SELECT error FROM messages WHERE shop_id = :s AND error IS NOT NULL ORDER BY id DESC LIMIT 1)"
        " FROM messages WHERE shop_id = :s", {"s": shop_id}).fetchone()
    return {"outbox": row[0], "failed": row[1], "stuck_sending": row[2], "retrying": row[3], "withheld": row[4],
            "last_error": row[5]}

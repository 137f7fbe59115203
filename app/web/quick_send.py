"""Send one message now, for "send me a test": bounded in time, and saying little about other hosts.

The outbox's `mailer.Connection` retries and waits up to 30 s per step, which is right for a
background tick but held a web worker thread for minutes on an unreachable server. Here the connection
and the whole conversation get TIMEOUT seconds in all: a timer shuts the socket when they run out.
Only the server configured for the shop (or the installation) is ever used, never one from the form;
and when no SMTP server answers there, the reason is one generic sentence, not the peer's banner, so
the form cannot be used to fingerprint services on other ports.
"""
import smtplib
import socket
import ssl
import threading

from flask_babel import gettext as _

from ..mailer import SmtpConfig, transmit

TIMEOUT = 10  # seconds: to connect, and for the whole conversation


class SendFailed(Exception):
    """The test message was not sent; the message says why, in the UI's language."""


def send_now(url, message, timeout=None):
    """Send one message through the SMTP server at `url` within `timeout` (default TIMEOUT) seconds;
    SendFailed otherwise."""
    timeout = timeout or TIMEOUT
    cfg = SmtpConfig.parse(url)
    server = f"{cfg.host}:{cfg.port}"
    context = ssl.create_default_context()
    smtp = smtplib.SMTP_SSL(context=context, timeout=timeout) if cfg.tls else smtplib.SMTP(timeout=timeout)
    expired = threading.Event()

    def stop():
        expired.set()
        sock = getattr(smtp, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, stop)
    timer.daemon = True
    timer.start()
    try:
        code, _greeting = smtp.connect(cfg.host, cfg.port)
        if code != 220:  # as smtplib.SMTP(host) itself checks
            raise smtplib.SMTPConnectError(code, _greeting)
        smtp.ehlo()
        if not cfg.tls and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        if cfg.username:
            smtp.login(cfg.username, cfg.password or "")
        transmit(smtp, message)  # as signed, when the shop has a DKIM key
    except smtplib.SMTPAuthenticationError:
        raise SendFailed(_("the SMTP server %(server)s refused the user name or password", server=server)) from None
    except ssl.SSLCertVerificationError:
        raise SendFailed(_("the certificate of the SMTP server %(server)s could not be verified", server=server)) from None
    except (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected, OSError) as exc:
        # smtplib turns a read timeout into SMTPServerDisconnected; the timeout is its context.
        if expired.is_set() or isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
            raise SendFailed(_("the SMTP server %(server)s did not answer within %(seconds)s seconds",
                               server=server, seconds=timeout)) from None
        raise SendFailed(_("no SMTP server answered at %(server)s", server=server)) from None
    except smtplib.SMTPResponseException as exc:
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise SendFailed(_("the SMTP server %(server)s answered: %(reply)s", server=server,
                           reply=f"{exc.smtp_code} {reply}"[:300])) from None
    except smtplib.SMTPException as exc:  # recipients refused, an extension missing, …
        raise SendFailed(_("the SMTP server %(server)s refused the message: %(reply)s", server=server,
                           reply=str(exc)[:300])) from None
    finally:
        timer.cancel()
        try:
            smtp.close()
        except OSError:
            pass

"""Amazon SNS HTTP(S) notifications: verify their signature, confirm a subscription.

SNS signs the canonical string of a message's fields with the key of the X.509 certificate at
`SigningCertURL` (SignatureVersion 1: RSA with SHA1, 2: RSA with SHA256). The certificate URL is
only trusted when it matches `SNS_CERT_URL_PATTERN` (https on sns.<region>.amazonaws.com); tests
point that, and `SNS_CERT_FETCH`, at a loopback server.

Hand-written on `cryptography` (already a dependency): the Python SNS validators on PyPI are small,
seldom released, and either depend on another crypto stack or skip the certificate-host check.
"""
import base64
import re
import threading
from datetime import datetime, timezone

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CERT_URL_PATTERN = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
TIMEOUT = 10
_CACHE_SIZE = 32
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}


class SnsError(Exception):
    """The message is not a genuine SNS message (`status` 401), or cannot be checked now (503)."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status


def canonical_string(envelope: dict) -> bytes:
    """The bytes SNS signs: each present field of the message's type as `name\\nvalue\\n`, in order."""
    fields = _FIELDS.get(envelope.get("Type"))
    if fields is None:
        raise SnsError(f"unknown SNS message type {envelope.get('Type')!r}")
    out = []
    for name in fields:
        value = envelope.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise SnsError(f"the SNS message has no {name}")
        out.append(f"{name}\n{value}\n")
    try:
        return "".join(out).encode()
    except UnicodeEncodeError:  # lone surrogates: SNS never signs such a message
        raise SnsError("the SNS message is not valid text") from None


def trusted_url(app, url) -> bool:
    """Whether `url` is on the host SNS serves certificates and confirmations from."""
    pattern = app.config.get("SNS_CERT_URL_PATTERN") or CERT_URL_PATTERN
    return isinstance(url, str) and re.match(pattern, url) is not None


def verify(app, envelope: dict, now=None) -> None:
    """Raise SnsError unless `envelope` carries a valid SNS signature from a trusted certificate."""
    hash_type = _HASHES.get(str(envelope.get("SignatureVersion")))
    if hash_type is None:
        raise SnsError("unsupported SNS SignatureVersion")
    message = canonical_string(envelope)
    try:
        signature = base64.b64decode(envelope.get("Signature") or "", validate=True)
    except (ValueError, TypeError):
        raise SnsError("the SNS signature is not base64") from None
    url = envelope.get("SigningCertURL")
    if not trusted_url(app, url):
        raise SnsError("the signing certificate is not on an SNS host")
    cert = _certificate(app, url)
    now = now or datetime.now(timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise SnsError("the signing certificate is not valid now")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsError("the signing certificate has no RSA key")
    try:
        key.verify(signature, message, padding.PKCS1v15(), hash_type())
    except InvalidSignature:
        raise SnsError("the SNS signature does not match") from None


def confirm_subscription(app, envelope: dict) -> None:
    """GET the SubscribeURL of a verified SubscriptionConfirmation (network: call outside any transaction)."""
    url = envelope.get("SubscribeURL")
    if not trusted_url(app, url):
        raise SnsError("the SubscribeURL is not on an SNS host")
    try:
        requests.get(url, timeout=TIMEOUT, allow_redirects=False).raise_for_status()
    except requests.RequestException as exc:
        raise SnsError(f"confirming the subscription failed: {exc}", status=503) from None


def _fetch(url: str) -> bytes:
    response = requests.get(url, timeout=TIMEOUT, allow_redirects=False)
    response.raise_for_status()
    return response.content


def _certificate(app, url: str):
    """The certificate at `url`, fetched once per app (a small cache: SNS rotates them rarely)."""
    cache, lock = app.extensions.setdefault("winback.sns_certs", ({}, threading.Lock()))
    with lock:
        cert = cache.get(url)
    if cert is not None:
        return cert
    fetch = app.config.get("SNS_CERT_FETCH") or _fetch
    try:
        cert = x509.load_pem_x509_certificate(fetch(url))
    except requests.RequestException as exc:
        raise SnsError(f"the signing certificate could not be fetched: {exc}", status=503) from None
    except ValueError:
        raise SnsError("the signing certificate is not a PEM certificate") from None
    with lock:
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[url] = cert
    return cert

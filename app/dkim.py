"""A shop's DKIM key: created once, kept encrypted, and used to sign every email of the shop.

The key lives in the shop's `dkim_key` column (app/shops.py stores it, encrypted with the
installation's key like the platform credentials, so that `mailer.build` finds it on the shop row
it is given): JSON holding the signing domain, the selector and the RSA private key in PEM. Only the
public half is ever printed, as the TXT record to publish. Signing is done by dkimpy (`dkim.sign`),
over the exact bytes handed to the SMTP server.
"""
import base64
import re
import secrets
from email.utils import parseaddr
from functools import lru_cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .settings import N_, Message, get_settings
from .shops import get_shop, load_dkim_key, store_dkim_key
from .timeutil import utcnow

KEY_BITS = 2048
# Header fields the signature covers when present (RFC 6376 §5.4.1 and RFC 8058 §4: the one-click
# unsubscribe headers must be signed); From is signed once more so that a second From added on
# the way breaks the signature (oversigning).
SIGNED = ("from", "to", "subject", "date", "message-id", "reply-to", "mime-version", "content-type",
          "list-unsubscribe", "list-unsubscribe-post")
_DOMAIN = re.compile(r"(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+")


def domain_name(value) -> str:
    """A domain name (lower case, no trailing dot); ValueError otherwise."""
    text = str(value or "").strip().lower().rstrip(".")
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    if not _DOMAIN.fullmatch(text):
        raise ValueError(Message(N_("%(value)s is not a domain name"), value=repr(str(value or ""))))
    return text


class DkimError(ValueError):
    """A DKIM key could not be made or read; the message says why in one line (a ValueError, as
    for other stored values this installation cannot read)."""


def _new_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    # PKCS#1 ("BEGIN RSA PRIVATE KEY"): the form dkimpy's parse_pem_private_key reads.
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode("ascii")


def public_key_b64(private_pem: str) -> str:
    """The p= value of the DNS record: the public key (SubjectPublicKeyInfo, DER) in base64."""
    key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def record(doc: dict) -> dict:
    """What to publish for a key: {"domain", "selector", "txt_name", "txt_record"} (no secret in it)."""
    return {"domain": doc["domain"], "selector": doc["selector"],
            "txt_name": f"{doc['selector']}._domainkey.{doc['domain']}",
            "txt_record": f"v=DKIM1; k=rsa; p={public_key_b64(doc['private_key'])}"}


def stored_key(app, shop) -> dict | None:
    """The shop's key as {"domain", "selector", "private_key"}, or None when the shop has none.

    DkimError when it is stored but this installation's encryption key cannot read it."""
    try:
        return load_dkim_key(app, shop)
    except ValueError as exc:
        raise DkimError(f"the shop's DKIM key cannot be read: {exc}") from None


def sender_domain(app, settings) -> str:
    """The domain of the shop's sender address (`sender_email`, else WINBACK_MAIL_FROM's)."""
    address = settings.get("sender_email") or parseaddr(app.config["MAIL_FROM"])[1]
    return address.rpartition("@")[2].lower()


def ensure_key(app, db, shop, domain=None, rotate=False) -> dict:
    """Create the shop's DKIM key unless it has one (or `rotate`: a new key under a new selector), and
    return the record to publish. The domain is `domain`, else the stored one, else the sender's.

    A new `domain` for an existing key keeps the key (it may be published under several domains);
    only the record's name changes. The RSA key is made outside the write (it takes a moment); a key
    another process saved meanwhile is kept, and its record returned.
    """
    try:
        domain = domain_name(domain) if domain is not None else None
    except ValueError as exc:
        raise DkimError(str(exc)) from None
    try:
        current = stored_key(app, shop)
    except DkimError:
        if not rotate:
            raise
        current = None  # a key this installation cannot read: rotating replaces it
    if current is not None and not rotate and domain in (None, current["domain"]):
        return record(current)
    if current is not None and not rotate:
        doc = {**current, "domain": domain}
    else:
        try:
            domain = domain or (current or {}).get("domain") or domain_name(
                sender_domain(app, get_settings(db, shop["id"])))
        except ValueError as exc:
            raise DkimError(f"{exc}: give the signing domain with --domain") from None
        doc = {"domain": domain, "selector": f"wb{utcnow():%Y%m}{secrets.token_hex(2)}",
               "private_key": _new_private_pem()}
    if not store_dkim_key(app, db, shop["id"], doc, replacing=shop.get("dkim_key")):
        fresh = stored_key(app, get_shop(db, shop["handle"]))  # another run was quicker: its key stands
        if fresh is None:
            raise DkimError("the shop's DKIM key changed meanwhile: run the command again")
        return record(fresh)
    return record(doc)


def remove_key(app, db, shop) -> bool:
    """Forget the shop's key: its mail goes out unsigned (for an ESP that signs). True if there was one."""
    if not shop.get("dkim_key"):
        return False
    store_dkim_key(app, db, shop["id"], None, replacing=shop["dkim_key"])
    return True


@lru_cache(maxsize=64)
def _openssl_key(n, e, d, p, q, dmp1, dmq1, iqmp):
    return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(e, n)).private_key()


def _rsassa_pkcs1_v1_5_sign(digest, pk: dict) -> bytes:
    """dkimpy's RSASSA-PKCS1-v1_5 signing step, done by OpenSSL (through `cryptography`).

    dkimpy computes it with Python's own big-integer `pow`: 6.7 ms a signature, which took delivery
    from 390 to 107 emails a second. PKCS#1 v1.5 signatures are deterministic, so OpenSSL's result is
    byte for byte the one dkimpy would compute (tests/test_dkim.py checks that), in a tenth of a
    millisecond; dkimpy still does the canonicalization, hashing and the header."""
    key = _openssl_key(pk["modulus"], pk["publicExponent"], pk["privateExponent"], pk["prime1"], pk["prime2"],
                       pk["exponent1"], pk["exponent2"], pk["coefficient"])
    algorithm = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}[digest.name]()
    return key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(algorithm))


def sign(key: dict, wire: bytes) -> bytes:
    """`wire` (a message with CRLF line ends) with a DKIM-Signature header in front, relaxed/relaxed."""
    head = wire.split(b"\r\n\r\n", 1)[0]
    present = {name.decode("ascii").lower() for name in re.findall(rb"^([!-9;-~]+):", head, re.M)}
    headers = [h for h in SIGNED if h in present] + ["from"]
    import dkim  # dkimpy loads dnspython: only a process that signs pays for it, not every command

    # dkimpy offers no hook for its RSA step; its module-level function is the one it calls.
    dkim.RSASSA_PKCS1_v1_5_sign = _rsassa_pkcs1_v1_5_sign
    signature = dkim.sign(wire, key["selector"].encode("ascii"), key["domain"].encode("ascii"),
                          key["private_key"].encode("ascii"), canonicalize=(b"relaxed", b"relaxed"),
                          include_headers=[h.encode("ascii") for h in headers], linesep=b"\r\n")
    return signature + wire

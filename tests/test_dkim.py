"""Authenticated mail: the shop's DKIM key (`winback dkim`), signed delivery, and the rules page's
SPF, DKIM and DMARC checks (a stub resolver: no network)."""
import html
import json
import re
import threading

import dkim
import pytest

from app.settings import save_setting
from app.shops import create_shop, get_shop
from flows.engine import tick
from tests.test_flows import at, lapsed_shop

DOMAIN = "beanandleaf.com"


def make_key(runner, shop, *extra):
    result = runner.invoke(args=["dkim", "--shop", shop, "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def dns_from(records):
    """A dkimpy DNS lookup answering the published records (name -> TXT text)."""
    def lookup(name, timeout=5):
        text = records.get(name.decode().rstrip("."))
        return text.encode() if text else None
    return lookup


def db_bytes(app):
    path = app.config["DATABASE"]
    data = b""
    for name in (path, path + "-wal"):
        try:
            with open(name, "rb") as f:
                data += f.read()
        except FileNotFoundError:
            pass
    return data


def test_the_command_makes_the_key_once_and_prints_the_record(app, db, runner):
    create_shop(db, "acme", "import")
    save_setting(db, 1, "sender_email", f"hello@{DOMAIN}")
    first = make_key(runner, "acme")
    assert set(first) == {"domain", "selector", "txt_name", "txt_record"}
    assert first["domain"] == DOMAIN
    assert first["txt_name"] == f"{first['selector']}._domainkey.{DOMAIN}"
    assert re.fullmatch(r"v=DKIM1; k=rsa; p=[A-Za-z0-9+/]{300,}=*", first["txt_record"])
    assert make_key(runner, "acme") == first  # the same key again
    rotated = make_key(runner, "acme", "--rotate")
    assert rotated["selector"] != first["selector"] and rotated["txt_record"] != first["txt_record"]
    moved = make_key(runner, "acme", "--domain", "Mail.BeanAndLeaf.com")
    assert moved["domain"] == "mail.beanandleaf.com" and moved["txt_record"] == rotated["txt_record"]
    text = runner.invoke(args=["dkim", "--shop", "acme"]).output
    assert moved["txt_name"] in text and moved["txt_record"] in text and "PRIVATE" not in text


def test_the_private_key_is_encrypted_at_rest(app, db, runner):
    from app.dkim import stored_key
    create_shop(db, "acme", "import")
    make_key(runner, "acme", "--domain", DOMAIN)
    pem = stored_key(app, get_shop(db, "acme"))["private_key"]
    body = pem.splitlines()[-3]  # from the private exponents (the first lines hold the public modulus)
    assert len(body) == 64
    assert body.encode() not in db_bytes(app)
    assert b"PRIVATE KEY" not in db_bytes(app)


def test_two_runs_at_once_make_one_key(app, db, runner):
    from app.dkim import ensure_key
    create_shop(db, "acme", "import")
    seen_before = get_shop(db, "acme")  # read by a run that then takes its time making a key
    quicker = make_key(runner, "acme", "--domain", DOMAIN)
    assert ensure_key(app, db, seen_before, domain=DOMAIN) == quicker
    assert make_key(runner, "acme") == quicker


def test_a_bad_domain_is_one_clear_line(app, db, runner):
    create_shop(db, "acme", "import")  # sender: WINBACK_MAIL_FROM noreply@localhost: not a domain to sign for
    result = runner.invoke(args=["dkim", "--shop", "acme"])
    assert result.exit_code != 0 and "--domain" in result.output and "Traceback" not in result.output
    result = runner.invoke(args=["dkim", "--shop", "acme", "--domain", "not a domain"])
    assert result.exit_code != 0 and "is not a domain name" in result.output


def delivered_winback(app, db, smtp, runner=None, key=True):
    shop = lapsed_shop(db)
    published = make_key(runner, shop["handle"], "--domain", DOMAIN) if key else None
    tick(app, db, get_shop(db, shop["handle"]), at(101))
    assert len(smtp.recorder.raw) == 1
    return smtp.recorder.raw[0], published


def test_delivered_mail_is_signed_and_covers_the_unsubscribe_headers(app, db, smtp, runner):
    raw, published = delivered_winback(app, db, smtp, runner)
    dns = dns_from({published["txt_name"]: published["txt_record"]})
    assert dkim.verify(raw, dnsfunc=dns)
    message = smtp.messages[0]
    assert message["List-Unsubscribe"] and message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    tags = dict(re.findall(r"(\w+)=([^;]*)", re.sub(r"\s+", "", str(message["DKIM-Signature"]))))
    assert tags["d"] == DOMAIN and tags["s"] == published["selector"] and tags["c"] == "relaxed/relaxed"
    signed = tags["h"].lower().split(":")
    for header in ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"):
        assert header in signed
    # A changed body, a changed unsubscribe link or another key: the signature fails.
    head, body = raw.split(b"\r\n\r\n", 1)
    middle = len(body) // 2
    flipped = body[:middle] + (b"B" if body[middle:middle + 1] == b"A" else b"A") + body[middle + 1:]
    assert not dkim.verify(head + b"\r\n\r\n" + flipped, dnsfunc=dns)
    assert not dkim.verify(raw + b"Reply to http://evil.example/\r\n", dnsfunc=dns)
    assert not dkim.verify(raw.replace(b"List-Unsubscribe: <http", b"List-Unsubscribe: <https"), dnsfunc=dns)
    from app.dkim import record
    other = record({"domain": DOMAIN, "selector": "x", "private_key": _other_pem()})
    assert not dkim.verify(raw, dnsfunc=dns_from({published["txt_name"]: other["txt_record"]}))


def test_without_a_key_mail_is_not_signed(app, db, smtp, runner):
    raw, _ = delivered_winback(app, db, smtp, key=False)
    assert b"DKIM-Signature" not in raw


def test_removing_the_key_stops_signing(app, db, smtp, runner):
    shop = lapsed_shop(db)
    make_key(runner, shop["handle"], "--domain", DOMAIN)
    result = runner.invoke(args=["dkim", "--shop", shop["handle"], "--remove"])
    assert result.exit_code == 0 and "removed" in result.output
    tick(app, db, get_shop(db, shop["handle"]), at(101))
    assert len(smtp.recorder.raw) == 1 and b"DKIM-Signature" not in smtp.recorder.raw[0]


def test_the_test_send_is_signed(app, db, smtp, runner):
    from app.mailer import build
    from app.settings import get_settings
    from app.web.quick_send import send_now
    shop = lapsed_shop(db)
    published = make_key(runner, shop["handle"], "--domain", DOMAIN)
    shop = get_shop(db, shop["handle"])
    row = {"id": 0, "email": "owner@example.com", "subject": "[TEST] Hello ✓", "body_text": "Hi", "body_html": "<p>Hi</p>",
           "message_id": None, "is_marketing": 0, "customer_id": None}
    send_now(smtp.url, build(app, shop, get_settings(db, shop["id"]), row))
    assert dkim.verify(smtp.recorder.raw[0], dnsfunc=dns_from({published["txt_name"]: published["txt_record"]}))


def test_a_key_this_installation_cannot_read_fails_one_shop_and_rotating_mends_it(app, db, smtp, runner):
    from cryptography.fernet import Fernet
    shop = lapsed_shop(db)
    make_key(runner, shop["handle"], "--domain", DOMAIN)
    foreign = Fernet(Fernet.generate_key()).encrypt(b'{"domain": "x"}').decode()
    db.execute("UPDATE shops SET dkim_key = ? WHERE id = ?", [foreign, shop["id"]])
    result = runner.invoke(args=["dkim", "--shop", shop["handle"]])
    assert result.exit_code != 0 and "DKIM key cannot be read" in result.output and "Traceback" not in result.output
    tick(app, db, get_shop(db, shop["handle"]), at(101))
    assert smtp.recorder.raw == []  # never sent unsigned by surprise: the message failed, with the reason
    error = db.execute("SELECT status, error FROM messages").fetchone()
    assert error[0] == "failed" and "DKIM key cannot be read" in error[1]
    fresh = make_key(runner, shop["handle"], "--rotate", "--domain", DOMAIN)
    assert make_key(runner, shop["handle"]) == fresh


# ---- the rules page ---------------------------------------------------------------------------

def rules_page(app, db, client, login, answers, key=True, runner=None):
    """The rules page of shop acme (sender hello@beanandleaf.com) with DNS answering `answers`
    (name -> list of TXT strings, or an exception to raise)."""
    create_shop(db, "acme", "import")
    save_setting(db, 1, "sender_email", f"hello@{DOMAIN}")
    published = make_key(app.test_cli_runner(), "acme") if key else None
    asked = []

    def lookup(name):
        asked.append(name)
        answer = answers(published).get(name, [])
        if isinstance(answer, Exception):
            raise answer
        return answer

    app.config["DNS_TXT_LOOKUP"] = lookup
    login()
    page = client.get("/shops/acme/settings")
    assert page.status_code == 200
    text = html.unescape(re.sub(r"\s+", " ", page.get_data(as_text=True)))
    return text, published, asked


def test_the_rules_page_shows_the_record_and_good_records(app, db, client, login):
    text, published, asked = rules_page(app, db, client, login, lambda p: {
        DOMAIN: ["v=spf1 include:_spf.example.net ~all", "google-site-verification=abc"],
        p["txt_name"]: [p["txt_record"].replace("; p=", "; t=s; p=")],
        f"_dmarc.{DOMAIN}": ["v=DMARC1; p=quarantine; rua=mailto:d@beanandleaf.com"]})
    assert sorted(asked) == sorted([DOMAIN, published["txt_name"], f"_dmarc.{DOMAIN}"])
    assert published["txt_name"] in text and published["txt_record"] in text
    assert "SPF record found: v=spf1 include:_spf.example.net ~all" in text
    assert "The DKIM record at " + published["txt_name"] + " matches the key." in text
    assert "DMARC record found (policy quarantine)" in text
    assert "PRIVATE KEY" not in text and "could not check" not in text
    from app.dkim import stored_key
    pem = stored_key(app, get_shop(db, "acme"))["private_key"]
    assert pem.splitlines()[-3] not in text  # the private half (the first lines hold the public modulus)


def test_the_rules_page_advises_on_missing_and_mismatching_records(app, db, client, login):
    from app.dkim import record
    other = record({"domain": DOMAIN, "selector": "x", "private_key": _other_pem()})
    text, published, _ = rules_page(app, db, client, login, lambda p: {p["txt_name"]: [other["txt_record"]]})
    assert "No SPF record: add a TXT record v=spf1 include:<your mail provider> ~all" in text
    assert f"The DKIM record at {published['txt_name']} does not match the key" in text
    assert f"No DMARC record: add a TXT record at _dmarc.{DOMAIN}: v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}" in text


def test_the_rules_page_says_could_not_check_when_dns_fails(app, db, client, login):
    text, published, _ = rules_page(app, db, client, login, lambda p: {
        DOMAIN: LookupError("SERVFAIL"), p["txt_name"]: TimeoutError(), f"_dmarc.{DOMAIN}": LookupError("timeout")})
    assert text.count("could not check") == 3
    assert published["txt_record"] in text  # the record to publish is shown all the same


def test_a_hung_resolver_does_not_hang_the_page(app, db, client, login, monkeypatch):
    import app.mail_dns as mail_dns
    monkeypatch.setattr(mail_dns, "TIMEOUT", 0.3)
    release = threading.Event()

    def hang(published):
        release.wait(10)
        return {}

    try:
        text, _, _ = rules_page(app, db, client, login, hang)
    finally:
        release.set()
    assert text.count("could not check") == 3


def test_without_a_key_the_page_says_who_signs(app, db, client, login):
    text, _, asked = rules_page(app, db, client, login, lambda p: {}, key=False)
    assert "Winback does not sign this shop's mail" in text and "winback dkim --shop acme" in text
    assert sorted(asked) == sorted([DOMAIN, f"_dmarc.{DOMAIN}"])


def test_the_rules_page_translates_the_advice(app, db, client, login):
    text, _, _ = rules_page(app, db, client, login, lambda p: {})
    page = client.get("/shops/acme/settings").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    client.post("/language", data={"lang": "nl", "next": "/", "csrf_token": token})
    dutch = client.get("/shops/acme/settings").get_data(as_text=True)
    assert "No DMARC record" not in dutch and "DMARC" in dutch


def _other_pem():
    from app.dkim import _new_private_pem
    return _new_private_pem()


def test_the_openssl_signing_step_gives_dkimpys_own_signature():
    """The fast RSA step (OpenSSL) is a drop-in: the same bytes as dkimpy's pure-Python one."""
    import hashlib

    import dkim as dkimpy
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from app.dkim import _rsassa_pkcs1_v1_5_sign
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    pk = dkimpy.crypto.parse_pem_private_key(pem)
    for name in ("sha256", "sha1"):
        digest = hashlib.new(name, b"the canonical header and body hash")
        assert _rsassa_pkcs1_v1_5_sign(digest, pk) == dkimpy.crypto.RSASSA_PKCS1_v1_5_sign(digest, pk)

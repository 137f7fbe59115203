"""Delivery feedback: Postmark and SES (through SNS) bounces and complaints suppress the address."""
import base64
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from connectors.sns import canonical_string
from flows.engine import tick
from tests.test_flows import at, lapsed_shop

SECRET = "pm-webhook-secret-0123456789"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:winback-ses-feedback"


def _basic(password, user="postmark"):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _key_and_cert():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


KEY, CERT_PEM = _key_and_cert()
OTHER_KEY, _ = _key_and_cert()


class _AwsStandIn(BaseHTTPRequestHandler):
    """Serves the signing certificate and counts calls of the subscription URL."""
    cert_fetches = 0
    confirmations = []

    def do_GET(self):
        if self.path.startswith("/cert.pem"):
            type(self).cert_fetches += 1
            body = CERT_PEM
        elif self.path.startswith("/confirm"):
            type(self).confirmations.append(self.path)
            body = b"<ConfirmSubscriptionResponse/>"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def aws():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AwsStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def feedback_app(app, smtp, aws):
    """Feedback configured; SNS certificates may come from the loopback stand-in (and nowhere else)."""
    _AwsStandIn.confirmations.clear()
    _AwsStandIn.cert_fetches = 0
    app.config.update(POSTMARK_WEBHOOK_SECRET=SECRET, SES_TOPIC_ARNS=[TOPIC],
                      SNS_CERT_URL_PATTERN=r"^" + aws.replace(".", r"\.") + "/")
    return app


def _sns(aws, message, type_="Notification", version="1", key=None, cert_url=None, **extra):
    envelope = {"Type": type_, "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", "TopicArn": TOPIC,
                "Message": message if isinstance(message, str) else json.dumps(message),
                "Timestamp": "2026-04-12T10:05:00.000Z", "SignatureVersion": version,
                "SigningCertURL": cert_url or f"{aws}/cert.pem", **extra}
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = (key or KEY).sign(canonical_string(envelope), padding.PKCS1v15(), algorithm)
    envelope["Signature"] = base64.b64encode(signature).decode()
    return envelope


def _post_ses(client, envelope):
    # SNS posts JSON with Content-Type text/plain.
    return client.post("/feedback/ses", data=json.dumps(envelope), content_type="text/plain; charset=UTF-8")


def _customer(db, email="a@example.com"):
    [row] = db.query("SELECT email_failed_at, email_failure, unsubscribed_at FROM customers WHERE email = ?",
                     [email])
    return row


def _to(smtp, email="a@example.com"):
    return [m for m in smtp.messages if email in m["To"]]


def _postmark_bounce(type_="HardBounce", **extra):
    return {"RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807, "Type": type_,
            "TypeCode": 1, "Name": "Hard bounce", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "Email": "a@example.com", "From": "noreply@localhost", "BouncedAt": "2026-04-12T10:04:00Z",
            "Inactive": type_ == "HardBounce", **extra}


def test_postmark_hard_bounce_suppresses_and_the_next_step_is_not_sent(feedback_app, db, smtp):
    shop = lapsed_shop(db)
    client = feedback_app.test_client()
    tick(feedback_app, db, shop, at(101))
    assert len(_to(smtp)) == 1  # the first win-back email went out

    answer = client.post("/feedback/postmark", json=_postmark_bounce(), headers=_basic(SECRET))
    assert answer.status_code == 200 and answer.get_json()["suppressed"] == 1
    row = _customer(db)
    assert row["email_failed_at"] and row["email_failure"].startswith("hard bounce (Postmark): smtp;550 5.1.1")
    assert row["unsubscribed_at"] is None  # a bounce is not an unsubscribe

    tick(feedback_app, db, shop, at(104))  # when the second email would go
    tick(feedback_app, db, shop, at(111))
    assert len(_to(smtp)) == 1
    [withheld] = db.query("SELECT withheld_reason FROM messages WHERE status = 'withheld'")
    assert "undeliverable (hard bounce (Postmark)" in withheld["withheld_reason"]


def test_postmark_soft_bounce_changes_nothing(feedback_app, db, smtp):
    shop = lapsed_shop(db)
    tick(feedback_app, db, shop, at(101))
    answer = feedback_app.test_client().post("/feedback/postmark", json=_postmark_bounce("SoftBounce"),
                                             headers=_basic(SECRET))
    assert answer.status_code == 200 and answer.get_json()["suppressed"] == 0
    assert _customer(db)["email_failed_at"] is None
    tick(feedback_app, db, shop, at(104))
    assert len(_to(smtp)) == 2


def test_postmark_spam_complaint_suppresses_and_unsubscribes(feedback_app, db, smtp):
    shop = lapsed_shop(db)
    tick(feedback_app, db, shop, at(101))
    complaint = {"RecordType": "SpamComplaint", "MessageStream": "outbound", "ID": 42, "Type": "SpamComplaint",
                 "TypeCode": 512, "MessageID": "00000000-0000-0000-0000-000000000000", "Email": "a@example.com",
                 "BouncedAt": "2026-04-12T10:04:00Z"}
    answer = feedback_app.test_client().post("/feedback/postmark", json=complaint, headers=_basic(SECRET))
    assert answer.get_json() == {"events": 1, "suppressed": 1, "unsubscribed": 1}
    row = _customer(db)
    assert row["email_failure"] == "spam complaint (Postmark)" and row["unsubscribed_at"]


def test_a_bounce_for_an_address_winback_never_mailed_touches_nobody(feedback_app, db, smtp):
    lapsed_shop(db)  # r0@example.com exists but was never sent anything
    answer = feedback_app.test_client().post("/feedback/postmark", json=_postmark_bounce(Email="r0@example.com"),
                                             headers=_basic(SECRET))
    assert answer.status_code == 200 and answer.get_json()["suppressed"] == 0
    assert _customer(db, "r0@example.com")["email_failed_at"] is None


@pytest.mark.parametrize("headers", [_basic("wrong"), _basic(SECRET[:-1]), {}, {"Authorization": "Bearer " + SECRET}])
def test_postmark_without_the_credential_is_refused(feedback_app, db, smtp, headers):
    shop = lapsed_shop(db)
    tick(feedback_app, db, shop, at(101))
    answer = feedback_app.test_client().post("/feedback/postmark", json=_postmark_bounce(), headers=headers)
    assert answer.status_code == 401
    assert _customer(db)["email_failed_at"] is None


def test_postmark_other_record_types_are_accepted_and_ignored(feedback_app, db, smtp):
    shop = lapsed_shop(db)
    tick(feedback_app, db, shop, at(101))
    delivery = {"RecordType": "Delivery", "MessageID": "883953f4", "Recipient": "a@example.com",
                "DeliveredAt": "2026-04-12T10:01:00Z", "Details": "Test delivery webhook details"}
    answer = feedback_app.test_client().post("/feedback/postmark", json=delivery, headers=_basic(SECRET))
    assert answer.status_code == 200 and answer.get_json()["suppressed"] == 0
    assert _customer(db)["email_failed_at"] is None


def test_postmark_secret_rotation_accepts_old_and_new(feedback_app, db, smtp):
    feedback_app.config["POSTMARK_WEBHOOK_SECRET"] = "new-secret-abcdefghijkl, " + SECRET
    client = feedback_app.test_client()
    for password in ("new-secret-abcdefghijkl", SECRET):
        assert client.post("/feedback/postmark", json=_postmark_bounce(), headers=_basic(password)).status_code == 200
    assert client.post("/feedback/postmark", json=_postmark_bounce(), headers=_basic("")).status_code == 401


def test_postmark_endpoint_is_off_until_a_secret_is_set(app, client):
    assert client.post("/feedback/postmark", json=_postmark_bounce(), headers=_basic("")).status_code == 404


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", json.dumps({"RecordType": "Bounce"}).encode(),
                                  json.dumps({"Email": "a@example.com"}).encode(), b"\xff\xfe",
                                  b'{"RecordType": "Bounce", "Type": "HardBounce", "Email": "a\\ud800@example.com"}'])
def test_postmark_malformed_is_400(feedback_app, body):
    answer = feedback_app.test_client().post("/feedback/postmark", data=body, content_type="application/json",
                                             headers=_basic(SECRET))
    assert answer.status_code == 400


def _ses_complaint(email="a@example.com"):
    return {"notificationType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": email}], "timestamp": "2026-04-12T10:04:00Z",
                          "feedbackId": "0100018f-feedback", "complaintFeedbackType": "abuse"},
            "mail": {"timestamp": "2026-04-12T10:00:00Z", "source": "noreply@localhost",
                     "messageId": "0100018f-mail", "destination": [email]}}


def _ses_bounce(bounce_type="Permanent", email="a@example.com"):
    return {"notificationType": "Bounce",
            "bounce": {"bounceType": bounce_type, "bounceSubType": "General", "timestamp": "2026-04-12T10:04:00Z",
                       "bouncedRecipients": [{"emailAddress": email, "action": "failed", "status": "5.1.1",
                                              "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
            "mail": {"messageId": "0100018f-mail", "destination": [email]}}


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_complaint_signed_by_sns_suppresses_and_unsubscribes(feedback_app, db, smtp, aws, version):
    shop = lapsed_shop(db)
    client = feedback_app.test_client()
    tick(feedback_app, db, shop, at(101))
    answer = _post_ses(client, _sns(aws, _ses_complaint(), version=version))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json() == {"events": 1, "suppressed": 1, "unsubscribed": 1}
    row = _customer(db)
    assert row["email_failure"] == "spam complaint (SES)" and row["unsubscribed_at"]
    tick(feedback_app, db, shop, at(104))
    assert len(_to(smtp)) == 1


def test_ses_permanent_bounce_suppresses_transient_does_not(feedback_app, db, smtp, aws):
    shop = lapsed_shop(db)
    client = feedback_app.test_client()
    tick(feedback_app, db, shop, at(101))
    assert _post_ses(client, _sns(aws, _ses_bounce("Transient"))).get_json()["suppressed"] == 0
    assert _customer(db)["email_failed_at"] is None
    assert _post_ses(client, _sns(aws, _ses_bounce(), version="2")).get_json()["suppressed"] == 1
    row = _customer(db)
    assert row["email_failure"] == "hard bounce (SES): smtp; 550 5.1.1 user unknown"
    assert row["unsubscribed_at"] is None
    assert _AwsStandIn.cert_fetches == 1  # the certificate was fetched once and cached


def _refused(feedback_app, db, envelope):
    shop = lapsed_shop(db)
    tick(feedback_app, db, shop, at(101))
    answer = _post_ses(feedback_app.test_client(), envelope)
    assert answer.status_code == 401, answer.get_data(as_text=True)
    assert _customer(db)["email_failed_at"] is None


def test_ses_forged_signature_is_refused(feedback_app, db, smtp, aws):
    _refused(feedback_app, db, _sns(aws, _ses_complaint(), key=OTHER_KEY))


def test_ses_tampered_message_is_refused(feedback_app, db, smtp, aws):
    envelope = _sns(aws, _ses_bounce("Transient", email="b@example.com"))
    envelope["Message"] = json.dumps(_ses_complaint())
    _refused(feedback_app, db, envelope)


def test_ses_certificate_from_elsewhere_is_refused(feedback_app, db, smtp, aws):
    # Signed by the key of a certificate served by a host that is not SNS's: never fetched.
    other_host = aws.replace("127.0.0.1", "localhost")
    _refused(feedback_app, db, _sns(aws, _ses_complaint(), cert_url=f"{other_host}/cert.pem"))
    assert _AwsStandIn.cert_fetches == 0


def test_ses_topic_not_listed_is_refused(feedback_app, db, smtp, aws):
    envelope = _sns(aws, _ses_complaint(), TopicArn="arn:aws:sns:eu-west-1:999999999999:someone-else")
    _refused(feedback_app, db, envelope)


def test_production_rule_accepts_only_sns_hosts_over_https(app):
    from connectors.sns import trusted_url
    assert trusted_url(app, "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem")
    for url in ("http://sns.eu-west-1.amazonaws.com/x.pem", "https://sns.eu-west-1.amazonaws.com.evil.test/x.pem",
                "https://evil.test/sns.eu-west-1.amazonaws.com/x.pem", "https://s3.amazonaws.com/x.pem", None):
        assert not trusted_url(app, url), url


def test_ses_subscription_confirmation_is_confirmed_once(feedback_app, aws):
    client = feedback_app.test_client()
    envelope = _sns(aws, "You have chosen to subscribe to the topic.", type_="SubscriptionConfirmation",
                    Token="2336412f37f", SubscribeURL=f"{aws}/confirm?Action=ConfirmSubscription&Token=2336412f37f")
    answer = _post_ses(client, envelope)
    assert answer.status_code == 200 and answer.get_json() == {"confirmed": True}
    assert _AwsStandIn.confirmations == ["/confirm?Action=ConfirmSubscription&Token=2336412f37f"]


def test_ses_subscription_confirmation_with_a_bad_signature_is_not_followed(feedback_app, aws):
    envelope = _sns(aws, "You have chosen to subscribe to the topic.", type_="SubscriptionConfirmation",
                    Token="2336412f37f", SubscribeURL=f"{aws}/confirm?Token=2336412f37f", key=OTHER_KEY)
    assert _post_ses(feedback_app.test_client(), envelope).status_code == 401
    assert _AwsStandIn.confirmations == []


@pytest.mark.parametrize("body", [b"{not json", b"\"a string\"", b""])
def test_ses_malformed_json_is_400(feedback_app, body):
    answer = feedback_app.test_client().post("/feedback/ses", data=body, content_type="text/plain")
    assert answer.status_code == 400


def test_ses_signed_notification_with_a_malformed_message_is_400(feedback_app, aws):
    answer = _post_ses(feedback_app.test_client(), _sns(aws, "{\"notificationType\": \"Bounce\"}"))
    assert answer.status_code == 400


def test_ses_message_that_is_not_valid_text_is_refused_not_a_500(feedback_app, aws):
    envelope = _sns(aws, _ses_complaint())
    envelope["Message"] = "\ud800"
    assert _post_ses(feedback_app.test_client(), envelope).status_code == 401


def test_ses_endpoint_is_off_until_topics_are_listed(app, client, aws):
    assert _post_ses(client, _sns(aws, _ses_complaint())).status_code == 404

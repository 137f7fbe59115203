"""Delivery feedback endpoints: Postmark's and Amazon SES's (through SNS) bounce and complaint webhooks.

Postmark does not sign its webhooks: its URL carries basic-auth credentials, and the password must
be the installation's `POSTMARK_WEBHOOK_SECRET`. SNS signs each message; only topics listed in
`SES_TOPIC_ARNS` are heard (anyone can sign for a topic of their own). Either endpoint answers 404
until it is configured.
"""
from flask import Blueprint, abort, current_app, jsonify, request

from connectors.sns import SnsError, confirm_subscription, verify
from flows.feedback import FeedbackError, apply, parse_json, postmark_credential_ok, postmark_events, ses_events

from ..db import get_db
from .limits import WEBHOOK_BYTES, body_limit

bp = Blueprint("feedback", __name__)


@bp.record_once
def _exempt_from_csrf(state):
    # The mail services, not a browser form, post here: a shared secret or a signature authorises them.
    csrf = state.app.extensions["csrf"]
    csrf.exempt(postmark)
    csrf.exempt(ses)


@bp.post("/feedback/postmark")
@body_limit(WEBHOOK_BYTES)
def postmark():
    """A Postmark bounce or spam-complaint webhook, authorised by the basic-auth password."""
    secret = current_app.config.get("POSTMARK_WEBHOOK_SECRET")
    if not secret:
        abort(404)
    auth = request.authorization
    if not postmark_credential_ok(secret, auth.password if auth else None):
        return jsonify(error="wrong or missing credentials"), 401, {"WWW-Authenticate": 'Basic realm="winback"'}
    try:
        events = postmark_events(parse_json(request.get_data()))
    except FeedbackError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(apply(get_db(), events))


@bp.post("/feedback/ses")
@body_limit(WEBHOOK_BYTES)
def ses():
    """An SNS message for an SES topic: a subscription to confirm, or bounce and complaint notifications."""
    topics = _topics(current_app.config.get("SES_TOPIC_ARNS"))
    if not topics:
        abort(404)
    try:
        envelope = parse_json(request.get_data())
    except FeedbackError as exc:
        return jsonify(error=str(exc)), 400
    if envelope.get("TopicArn") not in topics:
        return jsonify(error="this topic is not one Winback listens to"), 401
    try:
        verify(current_app._get_current_object(), envelope)
        if envelope.get("Type") == "SubscriptionConfirmation":
            confirm_subscription(current_app._get_current_object(), envelope)
            return jsonify(confirmed=True)
    except SnsError as exc:
        return jsonify(error=str(exc)), exc.status
    if envelope.get("Type") != "Notification":
        return jsonify(ignored=envelope.get("Type"))
    try:
        events = ses_events(envelope.get("Message"))
    except FeedbackError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(apply(get_db(), events))


def _topics(setting) -> set:
    """SES_TOPIC_ARNS as a set: a JSON list from the environment, or a comma- or space-separated string."""
    if isinstance(setting, str):
        setting = setting.replace(",", " ").split()
    return {str(t) for t in setting or ()}

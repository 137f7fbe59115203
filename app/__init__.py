"""Winback's Flask application factory."""
import os
from pathlib import Path

from . import db, keys, settings, webhooks

ROOT = Path(__file__).resolve().parent.parent

DEFAULTS = {
    "APP_URL": "http://127.0.0.1:5000",
    "SHOPIFY_CLIENT_ID": None,
    "SHOPIFY_CLIENT_SECRET": None,
    "SHOPIFY_API_VERSION": "2026-10",
    "SHOPIFY_ADMIN_URL": "https://{shop}",
    "SMTP_URL": None,
    "MAIL_FROM": "Winback <noreply@localhost>",
    "ADMIN_PASSWORD": None,
    "TICK_SECONDS": 900,
    "DELIVERY_SECONDS": 60,
    "FLOW_LEASE_SECONDS": 60,
    "WEBHOOK_RETENTION_DAYS": 7,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "PROXIES": 0,  # reverse proxies in front (X-Forwarded-For hops to trust), for login throttling
    "PASSWORD_HASH_METHOD": None,  # werkzeug's default (scrypt); tests may choose a cheaper one
    "POSTMARK_WEBHOOK_SECRET": None,  # the basic-auth password in Postmark's bounce/complaint webhook URL
    "SES_TOPIC_ARNS": None,  # the SNS topics of SES feedback Winback listens to (list or comma-separated)
    "SNS_CERT_URL_PATTERN": None,  # where SNS signing certificates may come from (default: sns.*.amazonaws.com, https)
    "SNS_CERT_FETCH": None,  # fetches a certificate URL's bytes (default: requests); tests inject loopback
    "DNS_TXT_LOOKUP": None,  # name -> TXT strings, for the rules page's SPF/DKIM/DMARC checks (default: dnspython)
}

# Settings that are strings even when they look like JSON (from_prefixed_env parses values).
_STRING_SETTINGS = ("ADMIN_PASSWORD", "SECRET_KEY", "ENCRYPTION_KEY", "SHOPIFY_CLIENT_ID",
                    "SHOPIFY_CLIENT_SECRET", "SHOPIFY_API_VERSION", "DATABASE", "MAIL_FROM",
                    "SHOPIFY_CLIENT_SECRET_PREVIOUS", "POSTMARK_WEBHOOK_SECRET")


def create_app(test_config=None, *, web=True):
    """Create the Winback app.

    Settings come from the defaults, then the `WINBACK_*` environment variables, then `test_config`
    (which may also name an `INSTANCE_PATH`). Keys not configured are generated once into the
    instance folder. `web=False` leaves out the pages, for command-line work that serves nothing.
    """
    from flask import Flask  # here, not at the top: `winback explain` answers without Flask (app/entry.py)
    instance_path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("WINBACK_INSTANCE_PATH")
    app = Flask(
        __name__,
        instance_path=str(Path(instance_path).resolve()) if instance_path else None,
        instance_relative_config=True,
        template_folder=str(ROOT / "templates"),
    )
    app.config.from_mapping(DEFAULTS)
    app.config["DATABASE"] = os.path.join(app.instance_path, "winback.db")
    app.config.from_prefixed_env("WINBACK")
    if test_config:
        app.config.from_mapping(test_config)
    for key in _STRING_SETTINGS:
        if app.config.get(key) is not None:
            app.config[key] = str(app.config[key])
    app.config["APP_URL"] = str(app.config["APP_URL"]).rstrip("/")
    # Without WINBACK_APP_URL, `winback serve` takes the address it serves on (app/web/public_address.py).
    app.config["APP_URL_GIVEN"] = "WINBACK_APP_URL" in os.environ or "APP_URL" in (test_config or {})

    # The higher layers are imported here, not at the top: Python runs this file before any module of
    # the package (app.db, ...), which connectors/ and flows/ import; at the top, `import flows.engine`
    # would come back round to itself half-loaded.
    from connectors import platforms, registry
    from connectors.shopify import privacy
    from flows import codes, messages

    from . import cli

    os.makedirs(app.instance_path, exist_ok=True)
    keys.init_app(app)

    db.init_app(app)

    # Explicit registration: the platforms' connector factories and webhook handlers.
    registry.init_app(app, platforms.connector_factories())
    webhooks.init_app(app, platforms.webhook_handlers())
    settings.init_app(app, platforms.setting_hooks())
    # An erasure (Shopify's privacy topics) also reaches the tables flows/ owns, above the connectors.
    privacy.init_app(app, {"messages_of_person": messages.erase_person, "messages_of_shop": messages.erase_shop,
                           "code_errors": codes.blank_errors})

    cli.init_app(app)
    if web:
        from . import web as pages
        pages.register(app)

    return app

"""The shop dashboard's parts: the days-since-last-order chart (server-side SVG), the warnings that
need the owner's action, sync status; and the connect page."""
from datetime import timedelta
from statistics import median

from flask import Blueprint, current_app, g, render_template, url_for
from flask_babel import gettext as _
from markupsafe import Markup, escape

from flows.attribution import report

from ..mailer import delivery_health, smtp_url_for
from ..runs import recent_runs
from ..shops import load_credentials
from ..timeutil import from_db, utcnow
from ..webhooks import health
from . import formatting, public_address
from .auth import login_required

bp = Blueprint("dashboard", __name__)

BIN_DAYS = 15
LAST_BIN = 360  # customers at 360 days or more share the last bar ("360+")
TOKEN_WARN_DAYS = 14


def recency_histogram(db, shop_id) -> dict:
    """Customers (with a purchase) by days since their last order in 15-day bins, and the lapse lines.

    The lapse lines: the median personal threshold of repeat buyers (`lapse_after_days`) and the
    one-time buyers' threshold from the shop snapshot.
    """
    counts = [0] * (LAST_BIN // BIN_DAYS + 1)
    for days, n in db.execute(
            "SELECT MIN(days_since_last / ?, ?), COUNT(*) FROM customer_snapshots"
            " WHERE shop_id = ? AND purchases > 0 AND days_since_last IS NOT NULL GROUP BY 1",
            [BIN_DAYS, LAST_BIN // BIN_DAYS, shop_id]):
        counts[int(max(days, 0))] = n
    repeat = [r[0] for r in db.execute(
        "SELECT lapse_after_days FROM customer_snapshots WHERE shop_id = ? AND purchase_days >= 2"
        " AND lapse_after_days IS NOT NULL", [shop_id])]
    snap = db.execute("SELECT one_time_return_days FROM shop_snapshots WHERE shop_id = ?", [shop_id]).fetchone()
    return {"counts": counts, "repeat_lapse": round(median(repeat)) if repeat else None,
            "one_time_lapse": round(snap[0]) if snap and snap[0] else None}


def histogram_svg(hist: dict) -> Markup:
    """The histogram as an accessible inline SVG (no JavaScript), the lapse lines drawn and named in
    a legend below it.

    Horizontal positions are percentages of the width and vertical ones pixels, with no viewBox: the
    chart stretches to any width while its labels keep their size in CSS pixels (a 720-unit viewBox
    shrank them to 5 px on a phone)."""
    counts = hist["counts"]
    height, bottom, top = 250, 34, 16
    left, right = 10.0, 98.5  # percent of the width: the y labels sit left of the plot
    plot_w, plot_h = right - left, height - bottom - top
    peak = max(counts) or 1
    bar_w = plot_w / len(counts)
    x_of = lambda days: left + min(days, LAST_BIN + BIN_DAYS) / (LAST_BIN + BIN_DAYS) * plot_w  # noqa: E731
    title, x_title = escape(_("Customers by days since their last order")), escape(_("days since the last order"))
    parts = [f'<svg class="chart" data-fluid width="100%" height="{height}" role="img" aria-labelledby="chart-title" '
             f'xmlns="http://www.w3.org/2000/svg"><title id="chart-title">{title}</title>']
    for i in range(5):  # gridlines and y labels
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}%" x2="{right}%" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 1}%" y="{y + 4:.1f}" class="axis" text-anchor="end">{round(value)}</text>')
    for i, n in enumerate(counts):
        h = plot_h * n / peak
        label = f"{i * BIN_DAYS}+" if i == len(counts) - 1 else f"{i * BIN_DAYS}–{(i + 1) * BIN_DAYS - 1}"
        parts.append(f'<rect class="bar" x="{left + (i + .1) * bar_w:.2f}%" y="{top + plot_h - h:.1f}" '
                     f'width="{bar_w * .8:.2f}%" height="{h:.1f}" data-bin="{label}" data-count="{n}">'
                     f'<title>{label}: {n}</title></rect>')
        if i == len(counts) - 1:  # the last label ends at the plot's edge: centred, it would be cut off
            parts.append(f'<text x="{right}%" y="{height - bottom + 16}" class="axis" text-anchor="end">{label}</text>')
        elif i % 4 == 0:
            parts.append(f'<text x="{left + (i + .5) * bar_w:.2f}%" y="{height - bottom + 16}" class="axis" '
                         f'text-anchor="middle">{i * BIN_DAYS}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.2f}%" y="{height - 4}" class="axis" text-anchor="middle">'
                 f'{x_title}</text>')
    lines = [("repeat_lapse", _("repeat buyers lapse: %(days)s d")), ("one_time_lapse", _("one-time buyers lapse: %(days)s d"))]
    legend = []
    for n, (key, text) in enumerate(lines):
        days = hist.get(key)
        if days is None:
            continue
        x = x_of(days)
        parts.append(f'<line class="lapse lapse-{n}" data-lapse="{key}" x1="{x:.2f}%" x2="{x:.2f}%" y1="{top - 4}" '
                     f'y2="{top + plot_h}"><title>{escape(text % {"days": days})}</title></line>')
        # The lines are named in a legend below the chart, in HTML: it wraps on a phone, where a label
        # beside a line would run off the picture.
        legend.append(f'<li class="lapse-{n}" data-lapse-label="{key}">{escape(text % {"days": days})}</li>')
    parts.append("</svg>")
    if legend:
        parts.append(f'<ul class="chart-legend">{"".join(legend)}</ul>')
    return Markup("".join(parts))


def warnings(app, db, shop, settings) -> list[dict]:
    """What needs the owner's action: [{"kind", "text", "link"}] (link: where to fix it, or None)."""
    out = []
    handle = shop["handle"]
    rules = url_for("settings_pages.edit", handle=handle)
    if shop["platform"] == "woocommerce" and settings.get("woo_consent_source") == "none":
        out.append({"kind": "consent", "link": rules + "#woo_consent_source",
                    "text": _("No consent source is chosen: promotional emails go to nobody until you say where "
                              "marketing consent comes from.")})
    if not (settings.get("postal_address") or "").strip():
        out.append({"kind": "postal_address", "link": rules + "#postal_address",
                    "text": _("No postal address: the law requires one in every marketing email.")})
    try:
        smtp_ok = bool(smtp_url_for(app, settings))
    except ValueError:  # the shop's SMTP server was saved under another encryption key
        smtp_ok = False
    if not smtp_ok:
        out.append({"kind": "no_smtp", "link": rules + "#smtp_url",
                    "text": _("Preview mode: no email delivery is configured, so the flows send nothing, create no "
                              "codes and change no consent. They start from the moment an SMTP server is set.")})
    mail = delivery_health(db, shop["id"])
    if mail["stuck_sending"]:
        out.append({"kind": "unknown", "link": url_for("outbox_pages.index", handle=handle, status="unknown"),
                    "text": _("%(n)s emails were interrupted while being sent: they may or may not have arrived and "
                              "are not sent again. Settle them on the outbox page.", n=mail["stuck_sending"])})
    if mail["failed"] or mail["retrying"]:
        out.append({"kind": "smtp", "link": url_for("outbox_pages.index", handle=handle, status="failed"),
                    "text": _("Sending email is failing: %(failed)s failed, %(retrying)s retrying. "
                              "Last error: %(error)s", failed=mail["failed"], retrying=mail["retrying"],
                              error=mail["last_error"] or "—")})
    hooks = health(db, shop["id"])
    if hooks["failed"] or hooks["retrying"]:
        out.append({"kind": "webhooks", "link": None,
                    "text": _("Webhooks from the shop are failing: %(failed)s failed, %(retrying)s retrying. "
                              "Last error: %(error)s", failed=hooks["failed"], retrying=hooks["retrying"],
                              error=hooks["last_error"] or "—")})
    if shop["platform"] == "shopify":
        try:
            creds = load_credentials(app, shop)
        except Exception:  # noqa: BLE001 - an unreadable token is itself a warning
            creds = {"expires_at": "1970-01-01T00:00:00Z"}
        # An access token with a refresh token renews itself; what ends is the refresh token.
        key = "refresh_token_expires_at" if creds.get("refresh_token") else "expires_at"
        if creds.get(key) and from_db(creds[key]) < utcnow() + timedelta(days=TOKEN_WARN_DAYS):
            out.append({"kind": "token", "link": url_for("dashboard.connect"),
                        "text": _("The Shopify access expires on %(when)s: reconnect the shop.",
                                  when=formatting.day(creds[key]))})
    out.extend(public_address.warnings(app))
    last = db.execute("SELECT status, error, started_at FROM sync_runs WHERE shop_id = ? ORDER BY id DESC LIMIT 1",
                      [shop["id"]]).fetchone()
    if last and last[0] == "failed":
        out.append({"kind": "sync", "link": None,
                    "text": _("The last sync failed (%(when)s): %(error)s", when=formatting.when(last[2], shop),
                              error=last[1] or "—")})
    return out


def sync_status(db, shop) -> dict:
    """The latest sync or import: status, when, and its progress counters when it is still running."""
    runs = recent_runs(db, shop["id"], 1)
    run = runs[0] if runs else None
    progress = {k: v for k, v in (run or {}).get("stats", {}).items() if isinstance(v, (int, float))}
    return {"run": run, "progress": progress, "last_sync_at": shop.get("last_sync_at")}


def flow_summary(db, shop) -> list[dict]:
    """Per flow: sent, conversion rate, revenue, discount cost and lift (from flows.attribution)."""
    return report(db, shop, utcnow())


@bp.get("/connect")
@login_required
def connect():
    """Connect a shop: the Shopify install link, WooCommerce's permission screen or manual keys."""
    app_url = current_app.config["APP_URL"]
    return render_template("connect.html", shopify_install=f"{app_url}/shopify/install",
                           shopify_callback=f"{app_url}/shopify/callback",
                           shopify_ready=bool(current_app.config.get("SHOPIFY_CLIENT_ID")), user=g.user)

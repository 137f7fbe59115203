"""The report page's date range and its weekly trend chart (server-side SVG, like the dashboard's
histogram: no JavaScript library)."""
from flask import request
from flask_babel import gettext as _
from markupsafe import Markup, escape

from flows.attribution import report
from flows.trend import date_range, weekly_trend

from ..db import get_db
from ..settings import refusal
from ..timeutil import local_date, utcnow
from .forms import translated


def report_context(shop) -> dict:
    """What the report page shows for the range in the query string (?from=&to=, shop time)."""
    now = utcnow()
    first, last = request.args.get("from", ""), request.args.get("to", "")
    error = None
    try:
        since, until = date_range(shop, first, last, now)
    except ValueError as exc:
        error, since, until = translated(refusal(exc)), None, now
        first = last = ""
    db = get_db()
    trend = weekly_trend(db, shop, until, since)
    return {"doc": report(db, shop, until, since), "trend": trend, "trend_chart": trend_svg(trend) if trend else None,
            "range": {"from": first, "to": last, "error": error, "until": local_date(until, shop["timezone"])}}


def trend_svg(weeks: list[dict]) -> Markup:
    """Three small charts over the same weeks: emails sent, conversions, incremental revenue."""
    width, left, right, panel, gap, top = 720, 60, 10, 70, 26, 8
    height = top + 3 * (panel + gap) + 18
    plot_w = width - left - right
    step = plot_w / max(len(weeks), 1)
    title = escape(_("Per week: emails sent, conversions and incremental revenue"))
    parts = [f'<svg class="chart trend" viewBox="0 0 {width} {height}" role="img" aria-labelledby="trend-title" '
             f'xmlns="http://www.w3.org/2000/svg"><title id="trend-title">{title}</title>']
    series = (("sent", _("Emails sent")), ("converted", _("Conversions")),
              ("incremental_revenue", _("Incremental revenue")))
    for row, (key, label) in enumerate(series):
        y0 = top + row * (panel + gap) + 14
        values = [w[key] or 0 for w in weeks]
        peak = max(max(values), 0) or 1
        low = min(min(values), 0)
        span = (peak - low) or 1
        base = y0 + panel * peak / span
        parts.append(f'<text x="{left}" y="{y0 - 3}" class="axis">{escape(label)}</text>'
                     f'<text x="{left - 6}" y="{y0 + 8}" class="axis" text-anchor="end">{round(peak)}</text>'
                     f'<line x1="{left}" x2="{width - right}" y1="{base:.1f}" y2="{base:.1f}" class="grid"/>')
        for i, (w, v) in enumerate(zip(weeks, values)):
            h = panel * abs(v) / span
            y = base - h if v >= 0 else base
            parts.append(f'<rect class="bar trend-{key}" x="{left + i * step + 1:.1f}" y="{y:.1f}" '
                         f'width="{max(step - 2, 1):.1f}" height="{h:.1f}" data-week="{w["week"]}" '
                         f'data-{key.replace("_", "-")}="{v:g}"><title>{w["week"]}: {v:g}</title></rect>')
    for i, w in enumerate(weeks):
        if i % max(len(weeks) // 6, 1) == 0:
            parts.append(f'<text x="{left + (i + .5) * step:.1f}" y="{height - 4}" class="axis" '
                         f'text-anchor="middle">{w["week"][5:]}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))

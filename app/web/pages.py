"""The shop owner's pages: shop list, shop overview, customers and one customer."""
from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext as _

from flows import customer_list, nps
from flows.delivery import channel_for
from flows.explain import explain
from flows.messages import message_log
from flows.offer_policy import customer_scores
from flows.refresh import refresh as run_refresh, segment_counts, stored_snapshot

from ..db import get_db
from ..money import format_money
from ..runs import recent_runs
from ..settings import get_settings
from ..shops import list_shops
from ..timeutil import utcnow
from . import dashboard, formatting, guided_start, report_range
from .auth import login_required, owned_shop_or_404

bp = Blueprint("pages", __name__)
PAGE_SIZE = 50
MAX_PAGE = 1_000_000


@bp.app_template_filter("money")
def money_filter(minor, currency):
    """An amount in minor units as the page's language writes it (€ 1.234,50 in Dutch)."""
    return format_money(minor, currency, formatting.locale())


@bp.get("/")
@login_required
def index():
    shops = list_shops(get_db(), g.user)
    if len(shops) == 1:
        return redirect(url_for("pages.shop", handle=shops[0]["handle"]))
    return render_template("shops.html", shops=shops)


@bp.get("/shops/<handle>")
@login_required
def shop(handle):
    shop = owned_shop_or_404(handle)
    db = get_db()
    totals = db.execute("""
        SELECT (SELECT COUNT(*) FROM customers WHERE shop_id = :s),
               COUNT(*),
               COUNT(*) FILTER (WHERE status = 'paid' AND NOT is_test),
               MIN(order_date), MAX(order_date)
        FROM orders WHERE shop_id = :s""", {"s": shop["id"]}).fetchone()
    revenue = list(db.query("""
        SELECT currency, SUM(total_minor - refunded_minor) AS net, COUNT(*) AS orders
        FROM orders WHERE shop_id = ? AND status = 'paid' AND NOT is_test
        GROUP BY currency ORDER BY net DESC""", [shop["id"]]))
    snapshot = stored_snapshot(db, shop)
    settings = get_settings(db, shop["id"])
    hist = dashboard.recency_histogram(db, shop["id"]) if snapshot else None
    return render_template("shop.html", shop=shop, customers=totals[0], orders=totals[1],
                           purchases=totals[2], first_order=totals[3], last_order=totals[4],
                           revenue=revenue, runs=recent_runs(db, shop["id"], 5), snapshot=snapshot,
                           segments=segment_counts(db, shop["id"]) if snapshot else None,
                           chart=dashboard.histogram_svg(hist) if hist else None, hist=hist,
                           warnings=dashboard.warnings(current_app, db, shop, settings),
                           sync=dashboard.sync_status(db, shop), doc=dashboard.flow_summary(db, shop),
                           live=channel_for(current_app, settings) is not None,
                           checklist=guided_start.items(shop))


@bp.post("/shops/<handle>/refresh")
@login_required
def refresh(handle):
    """Recompute the shop's segments and scores now (the scheduler also does this)."""
    shop = owned_shop_or_404(handle)
    result = run_refresh(get_db(), shop, utcnow(), full=True)
    flash(_("Segments refreshed for %(n)s customers in %(s)s s.", n=formatting.num(result["customers"]),
            s=formatting.num(result["seconds"], 2)))
    return redirect(url_for("pages.shop", handle=handle))


@bp.get("/shops/<handle>/customers")
@login_required
def customers(handle):
    """The customers: search, segment, sort by any column, with the total and pages."""
    shop = owned_shop_or_404(handle)
    db = get_db()
    args = list_args(request.args)
    # Clamped: a page beyond MAX_PAGE (or an offset SQLite cannot hold) is just an empty page.
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)
    rows = customer_list.page(db, shop["id"], args["q"], args["segment"], args["sort"], args["dir"],
                              limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    total = customer_list.count(db, shop["id"], args["q"], args["segment"])
    return render_template("customers.html", shop=shop, rows=rows, page=page, total=total, page_size=PAGE_SIZE,
                           has_next=page * PAGE_SIZE < total, segments=segment_counts(db, shop["id"]),
                           snapshot=stored_snapshot(db, shop), **args)


def list_args(values) -> dict:
    """The customer list's search, segment and sort from the query string (the sort whitelisted)."""
    sort, direction = customer_list.normalise(values.get("sort", ""), values.get("dir", ""))
    return {"q": values.get("q", "").strip()[:200], "segment": values.get("segment", "").strip()[:200],
            "sort": sort, "dir": direction}


@bp.get("/shops/<handle>/customers/<customer_id>")
@login_required
def customer(handle, customer_id):
    shop = owned_shop_or_404(handle)
    db = get_db()
    found = list(db.query("SELECT * FROM customers WHERE shop_id = ? AND external_id = ?",
                          [shop["id"], customer_id]))
    if not found:
        abort(404)
    cust = found[0]
    orders = list(db.query("""
        SELECT o.*, (SELECT group_concat(COALESCE(l.title, l.sku, '?') ||
                         CASE WHEN l.quantity <> 1 THEN ' ×' || l.quantity ELSE '' END, ', ')
                     FROM order_lines l WHERE l.order_id = o.id) AS line_summary
        FROM orders o WHERE o.customer_id = ? ORDER BY o.created_at DESC""", [cust["id"]]))
    snapshot = stored_snapshot(db, shop)
    why = explain(db, shop, cust, snapshot) if snapshot else None
    messages = message_log(db, shop, limit=50, customer_id=cust["id"])
    scores = (customer_scores(db, shop, cust["id"], snapshot, gettext=_, locale=str(get_locale()))
              if snapshot else None)
    return render_template("customer.html", shop=shop, customer=cust, orders=orders, why=why, messages=messages,
                           scores=scores, nps_answers=nps.for_customer(db, cust["id"]))


@bp.get("/shops/<handle>/report")
@login_required
def report(handle):
    """What each flow earned, and the lift against its holdout."""
    shop = owned_shop_or_404(handle)
    return render_template("report.html", shop=shop, **report_range.report_context(shop))

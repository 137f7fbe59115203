"""The outbox and activity page: what goes out next, what went out, what was withheld and why,
what is stuck; searchable by customer. An email whose delivery is unknown (interrupted mid-send)
is settled here by the owner."""
from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from flows.definitions import load_flows
from flows.delivery import channel_for
from flows.engine import paused_flows, preview
from flows.list_exports import message_count
from flows.messages import STATUSES, count_messages, message_log, settle_unknown, upcoming
from flows.refresh import stored_snapshot

from ..db import get_db
from ..settings import get_settings
from ..timeutil import from_db, to_db, utcnow
from .auth import login_required, owned_shop_or_404
from .forms import SettleForm

bp = Blueprint("outbox_pages", __name__)
PAGE_SIZE = 50
MAX_PAGE = 100_000


@bp.get("/shops/<handle>/outbox")
@login_required
def index(handle):
    shop = owned_shop_or_404(handle)
    db = get_db()
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        abort(400)
    q = request.args.get("q", "").strip()[:200]
    try:
        page = int(request.args.get("page", 1))
    except ValueError:
        abort(400)
    if not 1 <= page <= MAX_PAGE:
        abort(400)
    settings = get_settings(db, shop["id"])
    live = channel_for(current_app, settings) is not None
    rows = message_log(db, shop, limit=PAGE_SIZE + 1, status=status, search=q or None, offset=(page - 1) * PAGE_SIZE)
    now = utcnow()
    return render_template(
        "outbox.html", shop=shop, rows=rows[:PAGE_SIZE], has_next=len(rows) > PAGE_SIZE, page=page, q=q,
        status=status, statuses=STATUSES, counts={s: count_messages(db, shop, s) for s in STATUSES},
        upcoming=upcoming(db, shop, to_db(now + timedelta(days=7))),
        live=live, would=None if live else would_enter(db, shop),
        paused=paused_flows(load_flows(db, shop["id"]), settings), form=SettleForm(),
        total=message_count(db, shop, status, q or None), page_size=PAGE_SIZE)


def would_enter(db, shop) -> dict | None:
    """In preview mode: {flow: customers} who would get its first email, as of the stored snapshot
    (the dry run of the real rules; None before the first refresh)."""
    snap = stored_snapshot(db, shop)
    if snap is None:
        return None
    counts = {}
    for row in preview(db, shop, from_db(snap["computed_for"])):
        if not row["held_out"]:
            counts[row["flow"]] = counts.get(row["flow"], 0) + 1
    return counts


@bp.post("/shops/<handle>/outbox/<int:message_id>/settle")
@login_required
def settle(handle, message_id):
    shop = owned_shop_or_404(handle)
    form = SettleForm()
    if not form.validate_on_submit():
        abort(400)
    delivered = form.delivered.data == "yes"
    if settle_unknown(get_db(), shop["id"], message_id, delivered):
        flash(_("Marked as delivered.") if delivered else _("Marked as not delivered."))
    return redirect(url_for("outbox_pages.index", handle=handle, status="unknown"))

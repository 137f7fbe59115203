"""The guided start on the dashboard: the checklist of a newly connected shop, and "go live"
(flows/guided.py decides; this module only shows and posts)."""
from flask import Blueprint, current_app, flash, redirect, url_for
from flask_babel import gettext as _

from flows.guided import NothingReviewed, checklist, go_live, is_guided

from ..db import get_db
from ..shops import mark_flow_reviewed, mark_test_sent
from ..timeutil import to_db, utcnow
from .auth import TokenForm, login_required, owned_shop_or_404

bp = Blueprint("guided_start", __name__)


def items(shop) -> list[dict] | None:
    """The checklist with each item's words and link, or None when the shop is not guided or all is done."""
    if not is_guided(shop):
        return None
    rows = checklist(current_app, get_db(), shop)
    if all(r["done"] for r in rows):
        return None
    handle = shop["handle"]
    rules = url_for("settings_pages.edit", handle=handle)
    text = {
        "connect": (_("Connect your store and run the first sync"), url_for("dashboard.connect")),
        "sender": (_("Set the sender address and your postal address"), rules + "#sender_email"),
        "email": (_("Set up email delivery (SMTP) and send yourself a test"), rules + "#smtp_url"),
        "review": (_("Review the flows (%(detail)s opened)"), url_for("flow_pages.index", handle=handle)),
        "live": (_("Go live: turn on the flows you reviewed"), "#go-live"),
    }
    out = []
    for r in rows:
        label, link = text[r["key"]]
        out.append({**r, "text": label % {"detail": r["detail"]} if "%(detail)s" in label else label, "link": link})
    return out


def note_review(shop, flow_name):
    """The owner opened a flow's page: while the shop's flows wait for review, that reviews it."""
    if shop.get("flows_review"):
        mark_flow_reviewed(get_db(), shop["id"], flow_name)


def note_test_sent(shop):
    """A test email reached the mail server: the checklist's email step can tick."""
    mark_test_sent(get_db(), shop["id"], to_db(utcnow()))


@bp.post("/shops/<handle>/go-live")
@login_required
def live(handle):
    """Turn on the reviewed flows; the others stay off."""
    shop = owned_shop_or_404(handle)
    form = TokenForm()
    if not form.validate():
        flash(_("The form expired; please try again."), "error")
        return redirect(url_for("pages.shop", handle=handle))
    try:
        on = go_live(get_db(), shop, utcnow())
    except NothingReviewed:
        flash(_("Open at least one flow's page to review it before going live."), "error")
        return redirect(url_for("pages.shop", handle=handle))
    flash(_("You are live: %(n)s reviewed flows are on. Flows you did not review stay off.", n=len(on)))
    return redirect(url_for("pages.shop", handle=handle))

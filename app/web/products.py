"""The products page: every product (searchable, a page at a time) with the cycle learned from the
history, which ones are replenishable and their cycle, and the candidates the shop's history suggests
(≥ 20 repurchase gaps with a steady cycle, flows.product_list)."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from connectors.store import set_replenishable
from flows import product_list
from flows.refresh import stored_snapshot

from ..db import get_db, write_transaction
from ..timeutil import to_db, utcnow
from .auth import TokenForm, login_required, owned_shop_or_404
from .forms import ProductForm

bp = Blueprint("product_pages", __name__)
PAGE_SIZE = 50
MAX_PAGE = 100_000


def _page(shop, errors=None, values=None, status=200):
    db = get_db()
    q = request.args.get("q", "").strip()[:200]
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)
    rows = product_list.page(db, shop["id"], q, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    total = product_list.count(db, shop["id"], q)
    snapshot = stored_snapshot(db, shop)
    learned = product_list.learned_for_snapshot(db, shop, snapshot, utcnow())
    candidates = product_list.suggestions(db, shop["id"], learned)
    return render_template("products.html", shop=shop, rows=rows, total=total, q=q, page=page, page_size=PAGE_SIZE,
                           has_next=page * PAGE_SIZE < total, learned=learned, candidates=candidates,
                           in_use=product_list.cycles_in_use(snapshot), form=TokenForm(),
                           errors=errors or {}, values=values or {}), status


@bp.get("/shops/<handle>/products")
@login_required
def index(handle):
    """Replenishable products and suggested candidates."""
    return _page(owned_shop_or_404(handle))


@bp.post("/shops/<handle>/products/<int:product_id>")
@login_required
def update(handle, product_id):
    """Mark a product replenishable (cycle in days, empty: learned) or unmark it."""
    shop = owned_shop_or_404(handle)
    form = ProductForm()
    valid = form.validate()
    if form.csrf_token.errors:
        abort(400)
    db = get_db()
    if not db.execute("SELECT 1 FROM products WHERE id = ? AND shop_id = ?", [product_id, shop["id"]]).fetchone():
        abort(404)
    if not valid:
        return _page(shop, {product_id: str(form.days.errors[0])}, {product_id: (form.days.data or "").strip()}, 422)
    on, days = form.replenishable.data, form.days.parsed
    with write_transaction(db):
        set_replenishable(db, product_id, on, days, to_db(utcnow()))
    flash(_("Saved. The changes apply from the next run of the flows."))
    return redirect(url_for("product_pages.index", handle=handle, q=request.args.get("q") or None,
                            page=request.args.get("page", type=int)) + f"#product-{product_id}")

"""The products page: which products are replenishable and their cycle, with the candidates the
shop's history suggests (≥ 20 repurchase gaps with a steady cycle, flows.segments)."""
from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from connectors.store import set_replenishable
from flows.segments import replenish_candidates

from ..db import get_db, write_transaction
from ..timeutil import to_db, utcnow
from .auth import TokenForm, login_required, owned_shop_or_404
from .forms import ProductForm

bp = Blueprint("product_pages", __name__)


def _page(shop, errors=None, values=None, status=200):
    db = get_db()
    marked = list(db.query("SELECT id, title, sku, replenish_days FROM products WHERE shop_id = ? AND replenishable = 1"
                           " ORDER BY title", [shop["id"]]))
    candidates = [c for c in replenish_candidates(db, shop, utcnow())
                  if c["product_id"] not in {m["id"] for m in marked}]
    return render_template("products.html", shop=shop, marked=marked, candidates=candidates, form=TokenForm(),
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
    return redirect(url_for("product_pages.index", handle=handle))

"""Brand and category of the products on WooCommerce order lines, without calling the store from a
webhook handler: a delivered order is written with what the database knows, its unknown products are
marked `details_pending`, and `fill_pending` (run by the scheduler round and `reconcile`, outside
any write lock) asks the store for them and fills the products and the order lines in.
"""
from __future__ import annotations

import json

from app.settings import get_settings

from ..store import ShopWriter
from . import mapping

FILL_BATCH = 100  # the store's `include=` page


def known(db, shop_id, product_ids) -> dict[str, tuple[str | None, str | None]]:
    """{product id: (brand, category)} of the products whose store details are already stored."""
    rows = db.execute("SELECT external_id, brand, category FROM products WHERE shop_id = ?"
                      " AND details_pending = 0 AND external_id IN (SELECT value FROM json_each(?))",
                      [shop_id, json.dumps(sorted(product_ids))]).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def store_products(db, shop, records, gone=()) -> None:
    """Write products read from the store, clear their mark and fill the order lines that lack them."""
    ShopWriter(db, shop).fill_details(records, gone)


def fill_pending(connector, db, limit=1000) -> int:
    """Ask the store for the products marked pending (network first, then one short write per page);
    returns how many were filled. Store errors propagate: the marks stay for the next round."""
    shop = connector.shop
    pending = [r[0] for r in db.execute(
        "SELECT external_id FROM products WHERE shop_id = ? AND details_pending = 1 ORDER BY id LIMIT ?",
        [shop["id"], limit])]
    filled = 0
    for start in range(0, len(pending), FILL_BATCH):
        chunk = pending[start:start + FILL_BATCH]
        records = [connector.map_product(data)
                   for data in connector.client.paginate("products", include=",".join(chunk))]
        found = {r.external_id for r in records}
        store_products(db, shop, records, gone=[p for p in chunk if p not in found])
        filled += len(chunk)
    return filled


def consent_of(db, shop_id) -> mapping.Consent:
    """The shop's consent source setting."""
    return mapping.Consent(get_settings(db, shop_id).get("woo_consent_source", "none"))

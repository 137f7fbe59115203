"""What changed since a shop's stored snapshot (owner of `snapshot_marks`).

A mark names a customer whose orders, lines or details changed, or the whole shop (customer 0:
settings, products, a customer removed). The stored snapshot holds while its shop has no mark
(flows/refresh.py); a refresh clears them. Updates and deletions are marked by the triggers of
migration 0026, so no writer can forget them; new rows are marked by the writer (connectors/store.py)
once per batch, because a trigger per inserted row doubled the cost of a bulk import.
"""
import json

WHOLE_SHOP = 0

_MARK = """
INSERT OR IGNORE INTO snapshot_marks (shop_id, customer_id)
SELECT DISTINCT ?, value FROM json_each(?) WHERE value IS NOT NULL
"""


def mark_customers(db, shop_id: int, customer_ids) -> None:
    """Mark these customers (row ids) of the shop as changed (inside the writer's transaction)."""
    ids = sorted({int(c) for c in customer_ids if c is not None})
    if ids:
        db.execute(_MARK, [shop_id, json.dumps(ids)])


def mark_shop(db, shop_id: int) -> None:
    """Mark the whole shop as changed: its next snapshot is computed anew."""
    mark_customers(db, shop_id, [WHOLE_SHOP])


def has_marks(db, shop_id: int) -> bool:
    """Whether anything changed since the shop's stored snapshot."""
    return db.execute("SELECT 1 FROM snapshot_marks WHERE shop_id = ? LIMIT 1", [shop_id]).fetchone() is not None


def clear(db, shop_id: int) -> None:
    """Forget the shop's marks: the snapshot being stored has seen all of them."""
    db.execute("DELETE FROM snapshot_marks WHERE shop_id = ?", [shop_id])


def marked(db, shop_id: int) -> list[int]:
    """The shop's marked customers (WHOLE_SHOP among them when the whole shop changed)."""
    return [row[0] for row in db.execute("SELECT customer_id FROM snapshot_marks WHERE shop_id = ?", [shop_id])]

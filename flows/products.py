"""The products an email shows, from the synced catalogue.

Win-back emails (winback_*, vip_winback_*) show what fits the customer, in this order until PICKS
are found: the shop's bestsellers (units in paid orders) of the customer's most-bought category
that they have not bought, then those of their most-bought brand, then what is new in the shop
since their last order. The replenishment reminder shows the products due (its segment's detail),
each with a one-click reorder link that fills the cart. The category win-back (category_winback_*)
shows the shop's bestsellers of the category the customer stopped buying, what they bought of it
before first. Other emails show none.

An email never shows a product that is not known to be published and in stock (`published = 1 AND
in_stock = 1`, from the last sync): a product whose state is unknown (a CSV import) is not shown.
The shop's ranking is one SQL statement over the shop, made once per delivery batch; each email
adds a few small queries over the customer's own orders.
"""
from .storefront import reorder_url

PICKS = 3
WINBACK_TEMPLATES = frozenset({"winback_1", "winback_2", "winback_3", "vip_winback_1", "vip_winback_2",
                               "vip_winback_3"})
REORDER_TEMPLATES = frozenset({"replenish_reminder"})
CATEGORY_TEMPLATES = frozenset({"category_winback_1", "category_winback_2"})
_SHOWABLE = "p.published = 1 AND p.in_stock = 1 AND p.url IS NOT NULL"
_COLUMNS = "p.id, p.external_id, p.title, p.price_minor, p.url, p.image_url, p.variant_id"

# The shop's showable products, bestsellers (units in paid orders) first: one statement over the
# shop, computed once per delivery batch (`cache`), not per email.
_RANKING = f"""
SELECT {_COLUMNS}, p.category, p.brand, p.created_at FROM products p
LEFT JOIN (SELECT l.product_id, SUM(l.quantity) AS units FROM order_lines l JOIN orders o ON o.id = l.order_id
           WHERE o.shop_id = :shop AND o.status = 'paid' AND o.is_test = 0 AND l.product_id IS NOT NULL
           GROUP BY l.product_id) s ON s.product_id = p.id
WHERE p.shop_id = :shop AND {_SHOWABLE}
ORDER BY COALESCE(s.units, 0) DESC, p.title, p.id
"""
# The customer's side, from their own orders only: what they bought, their most-bought category and
# brand (units over paid, non-test orders) and when they last ordered.
# The unary `+` keeps the planner on the customer's own orders (orders_customer), not the whole shop's.
_BOUGHT = """
SELECT DISTINCT l.product_id FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE +o.shop_id = :shop AND o.customer_id = :customer AND l.product_id IS NOT NULL
"""
_FAVOURITE = """
SELECT l.{col} FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE o.shop_id = :shop AND o.customer_id = :customer AND o.status = 'paid' AND o.is_test = 0
  AND l.{col} IS NOT NULL
GROUP BY l.{col} ORDER BY SUM(l.quantity) DESC, MAX(o.created_at) DESC, l.{col} LIMIT 1
"""
_LAST_ORDER = """
SELECT MAX(created_at) FROM orders WHERE +shop_id = :shop AND customer_id = :customer AND status = 'paid'
"""
_DUE = f"""
SELECT {_COLUMNS}, CAST(COALESCE(json_extract(d.value, '$.quantity'), 1) AS INTEGER) AS quantity
FROM customer_segments cs, json_each(cs.detail) d JOIN products p ON p.id = json_extract(d.value, '$.product_id')
WHERE cs.shop_id = :shop AND cs.customer_id = :customer AND cs.segment = 'replenish_due'
  AND p.shop_id = :shop AND {_SHOWABLE}
ORDER BY json_extract(d.value, '$.due_date'), p.id LIMIT :limit
"""


def _ranking(db, shop_id, cache):
    key = ("product_ranking", shop_id)
    if cache is None or key not in cache:
        rows = list(db.query(_RANKING, {"shop": shop_id}))
        if cache is None:
            return rows
        cache[key] = rows
    return cache[key]


def favourite(db, shop_id, customer_id, col) -> str | None:
    """The customer's most-bought `col` ("category" or "brand") over their paid orders, or None."""
    if col not in ("category", "brand"):
        raise ValueError(f"no favourite by {col!r}")
    found = db.execute(_FAVOURITE.format(col=col), {"shop": shop_id, "customer": customer_id}).fetchone()
    return found[0] if found else None


def last_order(db, shop_id, customer_id) -> str | None:
    """When the customer last placed a paid order (as stored), or None."""
    return db.execute(_LAST_ORDER, {"shop": shop_id, "customer": customer_id}).fetchone()[0]


def bought_ids(db, shop_id, customer_id) -> set:
    """The ids of the products the customer has ordered."""
    return {row[0] for row in db.execute(_BOUGHT, {"shop": shop_id, "customer": customer_id})}


def winback_picks(db, shop_id, customer_id, limit=PICKS, cache=None) -> list[dict]:
    """Up to `limit` published, in-stock products that fit the customer (see the module's docstring).
    `cache` (a dict kept for one batch) keeps the shop's ranking between emails."""
    ranking = _ranking(db, shop_id, cache)
    if not ranking:
        return []
    params = {"shop": shop_id, "customer": customer_id}
    bought = {row[0] for row in db.execute(_BOUGHT, params)}
    fresh = [row for row in ranking if row["id"] not in bought]
    picks: dict[int, dict] = {}
    for col in ("category", "brand"):
        found = db.execute(_FAVOURITE.format(col=col), params).fetchone()
        if found:
            for row in fresh:
                if len(picks) >= limit:
                    break
                if row[col] == found[0]:
                    picks.setdefault(row["id"], row)
    last = db.execute(_LAST_ORDER, params).fetchone()[0]
    if len(picks) < limit and last:
        new = sorted((row for row in fresh if row["created_at"] and row["created_at"] > last),
                     key=lambda row: (row["created_at"], row["id"]), reverse=True)
        for row in new[:limit]:
            picks.setdefault(row["id"], row)
    return list(picks.values())[:limit]


def reorder_picks(db, shop_id, customer_id, limit=PICKS) -> list[dict]:
    """The customer's products due for reordering (published and in stock), with `quantity`: how many
    they bought last time."""
    return list(db.query(_DUE, {"shop": shop_id, "customer": customer_id, "limit": limit}))


def category_picks(db, shop_id, customer_id, category, limit=PICKS, cache=None) -> list[dict]:
    """Up to `limit` published, in-stock products of `category`: those the customer bought before
    first, then the shop's bestsellers of it. `cache` as for winback_picks."""
    if not category:
        return []
    ranking = [row for row in _ranking(db, shop_id, cache) if row["category"] == category]
    bought = bought_ids(db, shop_id, customer_id) if customer_id is not None else set()
    return sorted(ranking, key=lambda row: row["id"] not in bought)[:limit]  # stable: rank kept


def picks_for(db, shop_id, customer_id, template, limit=PICKS, cache=None, category=None) -> list[dict]:
    """The products the email of `template` shows the customer (none for other emails or without a
    customer); `cache` as for winback_picks; `category` the category win-back's category."""
    if template in CATEGORY_TEMPLATES:
        return category_picks(db, shop_id, customer_id, category, limit, cache)
    if customer_id is None:
        return []
    if template in WINBACK_TEMPLATES:
        return winback_picks(db, shop_id, customer_id, limit, cache)
    if template in REORDER_TEMPLATES:
        return reorder_picks(db, shop_id, customer_id, limit)
    return []


def _absolute(url, app_url):
    """A path (the demo shop's pictures and pages, served by this installation) made absolute."""
    if url and url.startswith("/") and app_url:
        return app_url.rstrip("/") + url
    return url


def blocks(rows, shop, settings, app_url=None, code=None) -> list[dict]:
    """What the email shows of each product: {"title", "url", "image", "price_minor", "currency",
    "reorder_url"} (the targets; flows.delivery.email_links makes them tracked). `reorder_url` only
    for rows with a `quantity` (the reminder's), with the step's `code` where the platform applies it."""
    out = []
    for row in rows:
        url = _absolute(row["url"], app_url)
        again = None
        if row.get("quantity") is not None:
            again = reorder_url(shop, settings, row["variant_id"] or row["external_id"], row["quantity"], code,
                                app_url=app_url)
            again = again or url
        out.append({"title": row["title"] or "", "url": url, "image": _absolute(row["image_url"], app_url),
                    "price_minor": row["price_minor"], "currency": shop.get("currency"), "reorder_url": again})
    return out


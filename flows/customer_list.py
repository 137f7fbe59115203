"""The customer list: search, segment filter, sort, total, one page, or every match (the CSV export).

One statement over the shop, the figures (orders, lifetime value, last order, status) from the stored
snapshot (flows.refresh), so sorting 200,000 customers by value is an indexed join and a top-N sort,
not an aggregate over every order. The sort column comes from a whitelist, never from the request.
"""
from app.db import casefold_function
from app.money import from_minor

# sort key -> the ORDER BY expression; the request names the key, only these reach the SQL.
SORTS = {
    "customer": "COALESCE(c.email, c.external_id) COLLATE NOCASE",
    "id": "c.external_id COLLATE NOCASE",
    "name": "NULLIF(TRIM(COALESCE(c.first_name, '') || ' ' || COALESCE(c.last_name, '')), '') COLLATE NOCASE",
    "orders": "s.purchases",
    "clv": "s.clv_minor",
    "last_order": "s.last_date",
    "status": "s.status",
}
DEFAULT_SORT, DEFAULT_DIR = "last_order", "desc"

_COLUMNS = """c.id, c.external_id, c.email, c.first_name, c.last_name, c.accepts_marketing, c.locale,
    s.purchases, s.clv_minor, s.last_date AS last_order, s.status"""
_FROM = "FROM customers c LEFT JOIN customer_snapshots s ON s.customer_id = c.id"


def _like(text):
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def where(db, shop_id, q="", segment="") -> tuple[str, dict]:
    """The WHERE clause and its parameters: the shop, a segment, and `q` anywhere in the email, the
    customer id or the name, case-insensitively.

    SQLite's LIKE ignores the case of ASCII letters only. A search with other letters (Zoë, Łukasz)
    compares Python's casefold of both sides instead: a function called for every customer, so only
    then."""
    sql, params = "c.shop_id = :shop", {"shop": shop_id}
    if segment:
        sql += " AND c.id IN (SELECT customer_id FROM customer_segments WHERE shop_id = :shop AND segment = :segment)"
        params["segment"] = segment
    if q:
        name = "(COALESCE(c.first_name, '') || ' ' || COALESCE(c.last_name, ''))"
        if q.isascii():
            sql += (f" AND (c.email LIKE :q ESCAPE '\\' OR c.external_id LIKE :q ESCAPE '\\'"
                    f" OR {name} LIKE :q ESCAPE '\\')")
            params["q"] = _like(q)
        else:
            casefold_function(db)
            sql += (f" AND (instr(wb_casefold(c.email), :q) > 0 OR instr(wb_casefold(c.external_id), :q) > 0"
                    f" OR instr(wb_casefold({name}), :q) > 0)")
            params["q"] = q.casefold()
    return sql, params


def order_by(sort, direction) -> str:
    """ORDER BY for a whitelisted `sort` (else the default) and "asc"/"desc"; blanks last either way,
    the internal id breaking ties so that pages never overlap."""
    expr = SORTS.get(sort, SORTS[DEFAULT_SORT])
    way = "ASC" if direction == "asc" else "DESC"
    return f"{expr} {way} NULLS LAST, c.id {way}"


def normalise(sort, direction) -> tuple[str, str]:
    """The sort key and direction actually used for a request's values."""
    sort = sort if sort in SORTS else DEFAULT_SORT
    return sort, direction if direction in ("asc", "desc") else (DEFAULT_DIR if sort == DEFAULT_SORT else "asc")


def count(db, shop_id, q="", segment="") -> int:
    """How many customers match."""
    sql, params = where(db, shop_id, q, segment)
    return db.execute(f"SELECT COUNT(*) FROM customers c WHERE {sql}", params).fetchone()[0]


def page(db, shop_id, q="", segment="", sort=DEFAULT_SORT, direction=DEFAULT_DIR, limit=50, offset=0) -> list[dict]:
    """One page of matching customers, sorted."""
    sql, params = where(db, shop_id, q, segment)
    order = order_by(sort, direction)
    # The sort runs over (sort key, id) pairs only, not whole rows: the page's 50 rows are read after.
    return list(db.query(f"""
        SELECT {_COLUMNS} FROM (SELECT c.id AS page_id {_FROM} WHERE {sql} ORDER BY {order}
                                LIMIT :limit OFFSET :offset) p
        JOIN customers c ON c.id = p.page_id LEFT JOIN customer_snapshots s ON s.customer_id = c.id
        ORDER BY {order}""", {**params, "limit": limit, "offset": offset}))


CSV_HEADER = ["customer_id", "email", "first_name", "last_name", "orders", "lifetime_value", "currency",
              "last_order", "status", "segments", "accepts_marketing", "locale"]


def export_rows(db, shop, q="", segment="", sort=DEFAULT_SORT, direction=DEFAULT_DIR):
    """Every matching customer as a CSV row (CSV_HEADER), one statement read row by row: nothing is
    held in memory but the row being written."""
    sql, params = where(db, shop["id"], q, segment)
    cursor = db.execute(f"""
        SELECT c.external_id, c.email, c.first_name, c.last_name, s.purchases, s.clv_minor, s.last_date, s.status,
               (SELECT group_concat(segment, ' ') FROM customer_segments cs WHERE cs.customer_id = c.id),
               c.accepts_marketing, c.locale
        {_FROM} WHERE {sql} ORDER BY {order_by(sort, direction)}""", params)
    currency = shop["currency"]
    marketing = {1: "yes", 0: "no"}
    for ext, email, first, last, orders, clv, last_order, status, segments, accepts, locale in cursor:
        yield [ext, email, first, last, orders, from_minor(clv, currency) if clv is not None else None, currency,
               last_order, status, segments, marketing.get(accepts, ""), locale]

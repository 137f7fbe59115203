"""The segment rules over purchased lines (SPEC "Business rules and defaults"), on numpy arrays.

A refresh's `temp.purchase_lines` (flows/metrics.py: one row per line of a paid order before `now`,
for every customer it holds) is read in one pass into integer arrays (`read_lines`); the rules group
those arrays by sorting packed integer keys instead of asking SQLite for three GROUP BYs with
COUNT(DISTINCT) over a million lines, which cost four times as much. What the rules compute is the
SQL they replaced (kept in benchmarks/bench_line_rules.py, which compares the two):

- brand_loyal:<brand>: every paid order of the customer before `now` (two or more) held the brand.
- category_lapsed:<category>: bought on two or more days, and the days since the last are more than
  `category_lapse_factor` × the usual gap ((last − first) / (days − 1)).
- replenish_due: a replenishable product's due date (last day bought + cycle × quantity bought that
  day) is at most `replenish_lead_days` away, or passed less than a cycle ago.

Their numbers are SQLite's: each day is SQLite's julianday (day + EPOCH_JD), every division and
comparison the same IEEE operation on the same doubles, and what SQLite formats (round, the JSON text
of a number, a quoted title) is formatted by SQLite, once per distinct value.
"""
import json
from dataclasses import dataclass

import numpy as np

# SQLite's julianday('1970-01-01'), the origin of numpy's datetime64[D].
EPOCH_JD = 2440587.5
_KEY_LIMIT = 2 ** 62

# One pass, each column one string: Python's sqlite3 builds a tuple per row, which at a million lines
# costs more than everything else here. Numbers (never NULL here) and the fixed-width days through
# group_concat; the line's own brand and category (NULL where they are its product's, as nearly always;
# the product's are read from products) through json_group_array, which keeps NULLs and any character.
READ_LINES = """
SELECT COUNT(*), group_concat(customer_id), group_concat(order_date, ''), group_concat(order_id),
       group_concat(IFNULL(product_id, 0)), group_concat(quantity),
       json_group_array(own_brand), json_group_array(own_category)
FROM temp.purchase_lines
"""

# Every paid order of the customer before now: a brand is loyal when it was in all of them.
ORDER_COUNTS = """
SELECT c.value, (SELECT COUNT(*) FROM orders o
                 WHERE o.shop_id = :shop AND o.customer_id = c.value AND o.status = 'paid' AND o.is_test = 0
                   AND +o.created_at < :now)
FROM json_each(:customers) c
"""


@dataclass
class Lines:
    """The purchased lines as arrays (one element a line). `customers`: the distinct customer ids, sorted;
    `rank`: each line's customer as an index into them. Texts as codes into `brands`/`categories` (-1:
    none or empty)."""
    customer: np.ndarray
    day: np.ndarray          # days since 1970-01-01 of the order's date
    order: np.ndarray
    product: np.ndarray      # 0: no product
    quantity: np.ndarray
    brand: np.ndarray
    category: np.ndarray
    brands: list
    categories: list
    customers: np.ndarray
    rank: np.ndarray


def read_lines(db) -> Lines:
    """The connection's `temp.purchase_lines` as arrays, in one pass."""
    row = list(db.execute(READ_LINES).fetchone())
    n = row[0]

    def take(i):  # each column's string is let go once read (tens of MB at a million lines)
        text, row[i] = row[i], None
        return text

    customer, order, product, quantity = (_ints(take(i), n) for i in (1, 3, 4, 5))
    days = take(2)
    if n and len(days) != 10 * n:
        raise ValueError("an order date is not YYYY-MM-DD")
    day = (np.frombuffer(days.encode("ascii"), dtype="S10").astype("datetime64[D]").astype(np.int64) if n
           else np.zeros(0, dtype=np.int64))
    del days
    ids, at = _rank(product)
    attrs = {pid: (brand, category) for pid, brand, category in db.execute(
        "SELECT id, brand, category FROM products WHERE id IN (SELECT value FROM json_each(?))",
        [json.dumps(ids.tolist())])}
    of_product = [attrs.get(pid, (None, None)) for pid in ids.tolist()]
    brand, brands = _texts(json.loads(take(6)), [b for b, _ in of_product], at)
    category, categories = _texts(json.loads(take(7)), [c for _, c in of_product], at)
    return Lines(customer, day, order, product, quantity, brand, category, brands, categories, *_rank(customer))


def _ints(text, n) -> np.ndarray:
    if not n:
        return np.zeros(0, dtype=np.int64)
    out = np.fromstring(text, dtype=np.int64, sep=",")
    if out.size != n:
        raise ValueError("a purchased line holds a value that is not an integer")
    return out


def _texts(own, of_product, at) -> tuple[np.ndarray, list]:
    """Codes of each line's text: its own where it has one, else its product's (COALESCE)."""
    names: dict[str, int] = {}

    def code(text):
        return -1 if text is None or text == "" else names.setdefault(text, len(names))

    codes = np.array([code(t) for t in of_product], dtype=np.int64)[at]
    if own.count(None) < len(own):
        where = np.flatnonzero(np.array(own, dtype=object) != None)  # noqa: E711 (elementwise)
        codes[where] = [code(own[i]) for i in where.tolist()]
    return codes, list(names)


# Sorting, not np.unique: numpy 2.3+ finds the distinct values of a plain call with a hash table, ten
# times slower here than a sort.
def _distinct(keys) -> np.ndarray:
    """The distinct keys, sorted."""
    keys = np.sort(keys)
    return keys[_starts(keys)]


def _starts(ordered) -> np.ndarray:
    """True where a sorted array's value differs from the one before."""
    flag = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=flag[1:])
    return flag


def _rank(values) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct values, sorted; each value's index into them)."""
    if np.all(values[1:] >= values[:-1]):  # the lines come by customer: no sort for those
        flag = _starts(values)
        return values[flag], np.cumsum(flag) - 1
    perm = np.argsort(values)
    ordered = values[perm]
    flag = _starts(ordered)
    rank = np.empty(len(values), dtype=np.int64)
    rank[perm] = np.cumsum(flag) - 1
    return ordered[flag], rank


def _pack(key, size, value, value_size) -> tuple[np.ndarray, int]:
    """key * value_size + value (keys in [0, size), values in [0, value_size)) and its size."""
    if size * value_size >= _KEY_LIMIT:  # customers × categories × days: never near 2**62 in practice
        raise ValueError("too many customers, categories, orders or days for the line rules' keys")
    return key * value_size + value, size * value_size


def _runs(group) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of equal values in a sorted array."""
    starts = np.flatnonzero(_starts(group))
    return starts, np.r_[starts[1:], len(group)].astype(np.int64)


def brand_loyal(db, lines, params) -> list:
    """(customer_id, 'brand_loyal:<brand>', None) for each brand in every paid order (two or more)."""
    has = lines.brand >= 0
    if not has.any():
        return []
    customers, nb = len(lines.customers), len(lines.brands)
    low = int(lines.order.min())
    span = int(lines.order.max()) - low + 1
    # Distinct (customer, brand, order), then its runs: how many orders per (customer, brand).
    key, _ = _pack(*_pack(lines.rank[has], customers, lines.brand[has], nb), lines.order[has] - low, span)
    group = _distinct(key) // span
    starts, ends = _runs(group)
    group, held = group[starts], ends - starts
    key, _ = _pack(lines.rank, customers, lines.order - low, span)
    with_lines = np.bincount(_distinct(key) // span, minlength=customers)  # orders with lines, per customer
    # Orders without lines are not in the lines: the candidates' order counts come from the orders.
    candidate = (held >= 2) & (held == with_lines[group // nb])
    if not candidate.any():
        return []
    group, held = group[candidate], held[candidate]
    ids = lines.customers[group // nb]
    total = dict(db.execute(ORDER_COUNTS, {**params, "customers": json.dumps(_distinct(ids).tolist())}).fetchall())
    return [(cid, "brand_loyal:" + lines.brands[b], None)
            for cid, b, n in zip(ids.tolist(), (group % nb).tolist(), held.tolist()) if total.get(cid) == n]


def category_lapsed(db, lines, params) -> list:
    """(customer_id, 'category_lapsed:<category>', detail) for each category bought on two or more
    days whose days since the last exceed `category_factor` × its usual gap."""
    has = lines.category >= 0
    if not has.any():
        return []
    nc = len(lines.categories)
    first_day = int(lines.day[has].min())
    span = int(lines.day[has].max()) - first_day + 1
    key, _ = _pack(*_pack(lines.rank[has], len(lines.customers), lines.category[has], nc),
                   lines.day[has] - first_day, span)
    key = _distinct(key)
    group, day = key // span, key % span + first_day
    starts, ends = _runs(group)
    days = ends - starts
    keep = days >= 2
    starts, ends, days, group = starts[keep], ends[keep], days[keep], group[starts[keep]]
    first, last = day[starts], day[ends - 1]
    gap = (last - first).astype(np.float64) / (days - 1).astype(np.float64)
    since = _day(params["now_date"]) - last
    lapsed = since > params["category_factor"] * gap
    group, days, since, apart = group[lapsed], days[lapsed], since[lapsed], (last - first)[lapsed]
    # round(gap, 1) as SQLite rounds and prints it, once per distinct (days apart, days - 1).
    pair, _ = _pack(apart, span, days - 1, span)
    pairs = _distinct(pair)
    gap_text = np.array(_sql_json(db, "round(CAST(value / :n AS REAL) / (value % :n), 1)", pairs.tolist(),
                                  n=span), dtype=object)[np.searchsorted(pairs, pair)]
    quoted = np.array(_sql_json(db, "value", lines.categories), dtype=object)
    category = group % nc
    return [(cid, "category_lapsed:" + name,
             f'{{"category":{q},"days_since":{s},"usual_gap":{g},"purchase_days":{d}}}')
            for cid, name, q, s, g, d in zip(lines.customers[group // nc].tolist(),
                                             np.array(lines.categories, dtype=object)[category].tolist(),
                                             quoted[category].tolist(), since.tolist(), gap_text.tolist(),
                                             days.tolist())]


def bought_days(lines, product_ids) -> tuple:
    """Per customer, product (of `product_ids`) and day: the quantity bought, sorted by customer, product
    and day; returns (customer ids, product ids, days, quantities, run starts, run ends) where a run is one
    customer's days of one product."""
    products = np.asarray(sorted(product_ids), dtype=np.int64)
    wanted = np.isin(lines.product, products)
    if not wanted.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, empty, empty
    day = lines.day[wanted]
    first_day = int(day.min())
    span = int(day.max()) - first_day + 1
    key, _ = _pack(*_pack(lines.rank[wanted], len(lines.customers), np.searchsorted(products, lines.product[wanted]),
                          len(products)), day - first_day, span)
    perm = np.argsort(key)
    key = key[perm]
    flag = _starts(key)
    quantity = np.add.reduceat(lines.quantity[wanted][perm], np.flatnonzero(flag))
    key = key[flag]
    group = key // span
    starts, ends = _runs(group)
    return (lines.customers[group // len(products)], products[group % len(products)], key % span + first_day,
            quantity, starts, ends)


def repurchase_gaps(lines, product_ids=None) -> dict[int, np.ndarray]:
    """Per product: the gaps in days between a customer's consecutive purchase days of it, each divided
    by the quantity bought on the earlier day (at least 1)."""
    if product_ids is None:
        product_ids = _distinct(lines.product[lines.product != 0]).tolist()
    customer, product, day, quantity, starts, ends = bought_days(lines, product_ids)
    later = np.ones(len(day), dtype=bool)
    later[starts] = False  # a run's first day has no earlier one
    gap = (day[1:] - day[:-1]).astype(np.float64) / np.maximum(quantity[:-1], 1).astype(np.float64)
    gap, of = gap[later[1:]], product[1:][later[1:]]
    perm = np.argsort(of, kind="stable")
    of, gap = of[perm], gap[perm]
    starts, ends = _runs(of)
    return {int(of[a]): gap[a:b] for a, b in zip(starts.tolist(), ends.tolist())}


def replenish_due(db, lines, params, cycles) -> list:
    """(customer_id, 'replenish_due', detail) for each customer with a replenishable product due: the
    detail lists them (product id, title, last date, quantity, cycle, due date) by product id."""
    if not cycles:
        return []
    customer, product, day, quantity, starts, ends = bought_days(lines, cycles)
    if not len(starts):
        return []
    last = ends - 1
    customer, product, day, quantity = customer[last], product[last], day[last], np.maximum(quantity[last], 1)
    cycles_json = json.dumps({str(k): v for k, v in cycles.items()})
    cycle = {int(pid): (value, text) for pid, value, text in db.execute(
        "SELECT CAST(key AS INTEGER), value, json_array(value) FROM json_each(?)", [cycles_json])}
    pairs = sorted(set(zip(product.tolist(), quantity.tolist())))
    after = {(pid, qty): n for pid, qty, n in db.execute(
        "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
        " CAST(round(json_extract(:cycles, '$.\"' || json_extract(value, '$[0]') || '\"')"
        " * json_extract(value, '$[1]')) AS INTEGER) FROM json_each(:pairs)",
        {"cycles": cycles_json, "pairs": json.dumps(pairs)})}
    due = day + np.array([after[p] for p in zip(product.tolist(), quantity.tolist())], dtype=np.int64)
    value = np.array([cycle[p][0] for p in product.tolist()], dtype=np.float64)
    now_jd = _day(params["now_date"]) + EPOCH_JD
    due_jd = due.astype(np.float64) + EPOCH_JD
    hit = (now_jd >= due_jd - params["lead"]) & (now_jd <= due_jd + value)
    titles = {pid: text for pid, text in db.execute(
        "SELECT id, json_quote(title) FROM products WHERE id IN (SELECT value FROM json_each(?))",
        [json.dumps(sorted(set(product[hit].tolist())))])}
    by_customer: dict[int, list] = {}
    for cid, pid, d, qty, due_day in zip(customer[hit].tolist(), product[hit].tolist(), _dates(day[hit]),
                                         quantity[hit].tolist(), _dates(due[hit])):
        by_customer.setdefault(cid, []).append(
            (pid, f'{{"product_id":{pid},"title":{titles[pid]},"last_date":"{d}","quantity":{qty},'
                  f'"cycle_days":{cycle[pid][1][1:-1]},"due_date":"{due_day}"}}'))
    return [(cid, "replenish_due", "[" + ",".join(text for _, text in sorted(items)) + "]")
            for cid, items in by_customer.items()]


def _day(date_text) -> int:
    return int(np.datetime64(date_text, "D").astype(np.int64))


def _dates(days) -> list[str]:
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D").tolist()


def _sql_json(db, expression, values, **params) -> list[str]:
    """SQLite's JSON text of `expression` over each of `values` (as `value`), in order."""
    if not values:
        return []
    rows = db.execute(f"SELECT json_array({expression}) FROM json_each(:values) ORDER BY key",
                      {**params, "values": json.dumps(list(values), ensure_ascii=False)}).fetchall()
    return [text[1:-1] for text, in rows]

"""The reason to come back a win-back email gives by default, from the shop's data, per customer.

In this order: the number of published, in-stock products created since the customer's last order in
their most-bought category ("12 new products in Coffee since your last order"), else the shop's
bestseller in that category that they have not bought, else nothing (the email has no reason block).
The owner's own reason (flows.copy) replaces it. Plural forms are the language's (Babel's CLDR plural
rules: Polish "1 nowy produkt", "2 nowe produkty", "12 nowych produktów").
"""
from babel import Locale

from .products import WINBACK_TEMPLATES, bought_ids, favourite, last_order

# Per language, per CLDR plural category ({n}: the count, {c}: the category).
_NEW = {
    "en": {"one": "{n} new product in {c} since your last order",
           "other": "{n} new products in {c} since your last order"},
    "nl": {"one": "{n} nieuw product in {c} sinds je laatste bestelling",
           "other": "{n} nieuwe producten in {c} sinds je laatste bestelling"},
    "pl": {"one": "{n} nowy produkt w kategorii {c} od Twojego ostatniego zamówienia",
           "few": "{n} nowe produkty w kategorii {c} od Twojego ostatniego zamówienia",
           "many": "{n} nowych produktów w kategorii {c} od Twojego ostatniego zamówienia",
           "other": "{n} nowego produktu w kategorii {c} od Twojego ostatniego zamówienia"},
}
_BESTSELLER = {
    "en": "{t} is one of our bestsellers in {c}.",
    "nl": "{t} is een van onze bestsellers in {c}.",
    "pl": "{t} to jeden z naszych bestsellerów w kategorii {c}.",
}
_NEW_SINCE = """
SELECT COUNT(*) FROM products WHERE shop_id = :shop AND category = :category AND published = 1 AND in_stock = 1
  AND created_at > :since
"""
_BEST = """
SELECT p.id, p.title FROM products p
JOIN order_lines l ON l.product_id = p.id JOIN orders o ON o.id = l.order_id
WHERE p.shop_id = :shop AND p.category = :category AND p.published = 1 AND p.in_stock = 1
  AND o.shop_id = :shop AND o.status = 'paid' AND o.is_test = 0
GROUP BY p.id ORDER BY SUM(l.quantity) DESC, p.title, p.id
"""


def new_products_line(count, category, locale) -> str:
    """"12 new products in Coffee since your last order" in `locale`, in the right plural form."""
    forms = _NEW[locale]
    form = Locale.parse(locale).plural_form(count)
    return forms.get(form, forms["other"]).format(n=count, c=category)


def default_reason(db, shop_id, customer_id, template, locale, cache=None) -> str | None:
    """The data's reason for a win-back email to the customer (see the module's docstring); None for
    other emails, a customer without paid orders in a category, or nothing to say. `cache` (a dict
    kept for one delivery batch) keeps each category's bestsellers between emails."""
    if template not in WINBACK_TEMPLATES or customer_id is None:
        return None
    category = favourite(db, shop_id, customer_id, "category")
    if category is None:
        return None
    since = last_order(db, shop_id, customer_id)
    if since:
        count = db.execute(_NEW_SINCE, {"shop": shop_id, "category": category, "since": since}).fetchone()[0]
        if count:
            return new_products_line(count, category, locale)
    bought = bought_ids(db, shop_id, customer_id)
    key = ("category_bestsellers", shop_id, category)
    best = cache.get(key) if cache is not None else None
    if best is None:
        best = db.execute(_BEST, {"shop": shop_id, "category": category}).fetchall()
        if cache is not None:
            cache[key] = best
    for row in best:
        if row[0] not in bought and row[1]:
            return _BESTSELLER[locale].format(t=row[1], c=category)
    return None

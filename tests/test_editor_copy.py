"""The owner's copy of each email step (flows.copy) as the customer reads it: the reason to come back
(the data's default per customer, or the owner's), placeholders filled in safely, every owner field
escaped, and the number of products shown."""
import html
from datetime import datetime, timezone

import pytest

from flows.copy import CopyError, get_copy, save_copy
from flows.reason import new_products_line
from flows.render import render
from tests.test_products import catalogue, coffee_shop
from tests.test_render import a_code, parse

NEW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def _customer(db, ref, locale="en", first_name="Anna"):
    cid = db.execute("SELECT id FROM customers WHERE external_id = ?", [ref]).fetchone()[0]
    return {"id": cid, "first_name": first_name, "locale": locale, "email": f"{ref}@example.com"}


def _new_coffees(db, shop, n):
    catalogue(db, shop, *[(f"N{i}", f"New coffee {i}", "Coffee", "Roast", True, True, NEW) for i in range(n)])


def _reason(email):
    """The reason block's text in the HTML part, or None when the email has none."""
    start = email.html.find('<div class="reason"')
    if start < 0:
        return None
    return " ".join(parse(email.html[start:email.html.index("</div>", start)]).text.split())


def test_winback_gives_the_number_of_new_products_in_their_category_since_their_last_order(db):
    shop = coffee_shop(db)
    _new_coffees(db, shop, 12)
    # Not counted: unpublished, sold out, another category.
    catalogue(db, shop, ("X1", "New draft", "Coffee", "Roast", False, True, NEW),
              ("X2", "New, sold out", "Coffee", "Roast", True, False, NEW),
              ("X3", "New tea", "Tea", "Leaf", True, True, NEW))
    email = render("winback_1", shop=shop, customer=_customer(db, "A"), db=db)
    assert _reason(email) == "12 new products in Coffee since your last order"
    # In the text part too, between the intro and the rest of the email.
    text = email.text
    assert text.index("It has been a while") < text.index("12 new products in Coffee") < text.index("Drop by")
    nl = render("winback_1", shop=shop, customer=_customer(db, "A", "nl"), db=db)
    assert _reason(nl) == "12 nieuwe producten in Coffee sinds je laatste bestelling"
    pl = render("winback_2", shop=shop, customer=_customer(db, "A", "pl"), code=a_code(), db=db)
    assert _reason(pl) == "12 nowych produktów w kategorii Coffee od Twojego ostatniego zamówienia"
    # Emails that are not win-backs have no reason from the data.
    assert _reason(render("sunset", shop=shop, customer=_customer(db, "A"), db=db)) is None


@pytest.mark.parametrize("count, words", [
    (1, "1 nowy produkt"), (2, "2 nowe produkty"), (4, "4 nowe produkty"), (5, "5 nowych produktów"),
    (12, "12 nowych produktów"), (22, "22 nowe produkty"), (25, "25 nowych produktów")])
def test_polish_counts_take_their_plural_form(count, words):
    assert new_products_line(count, "Kawa", "pl").startswith(words + " w kategorii Kawa")


def test_english_and_dutch_singular():
    assert new_products_line(1, "Coffee", "en") == "1 new product in Coffee since your last order"
    assert new_products_line(1, "Koffie", "nl") == "1 nieuw product in Koffie sinds je laatste bestelling"


def test_without_new_products_a_bestseller_they_have_not_bought_else_no_reason(db):
    shop = coffee_shop(db)
    email = render("winback_1", shop=shop, customer=_customer(db, "A"), db=db)
    # C3 sells best among the showable coffees A has not bought; its title is escaped like any data.
    assert _reason(email) == "Mocha <b>Java</b> is one of our bestsellers in Coffee."
    assert "Mocha &lt;b&gt;Java&lt;/b&gt;" in email.html and "<b>Java" not in email.html
    # R0 bought every coffee that sells and is still for sale: nothing to say, no block.
    catalogue(db, shop, ("C2", "Decaf", "Coffee", "Roast", False, True))
    plain = render("winback_1", shop=shop, customer=_customer(db, "R0"), db=db)
    assert _reason(plain) is None and 'class="reason"' not in plain.html


def test_the_owners_reason_replaces_the_default_per_step_and_language(db):
    shop = coffee_shop(db)
    _new_coffees(db, shop, 2)
    save_copy(db, shop["id"], "winback_1", "en", reason="Our {shop_name} roastery moved, {first_name}!")
    email = render("winback_1", shop=shop, customer=_customer(db, "A"), db=db)
    assert _reason(email) == f"Our {shop['name']} roastery moved, Anna!"
    assert "2 new products" not in email.text and "roastery moved, Anna!" in email.text
    # Other steps and languages keep the data's reason.
    assert _reason(render("winback_1", shop=shop, customer=_customer(db, "A", "pl"), db=db)) == \
        "2 nowe produkty w kategorii Coffee od Twojego ostatniego zamówienia"
    assert _reason(render("winback_2", shop=shop, customer=_customer(db, "A"), code=a_code(), db=db)) == \
        "2 new products in Coffee since your last order"


def test_placeholders_are_filled_in_once_and_unknown_ones_refused(db):
    shop = coffee_shop(db)
    save_copy(db, shop["id"], "winback_2", "en", subject="{first_name}, {code} is yours",
              heading="Until {expires}", button="Shop {shop_name}")
    # A first name that looks like a placeholder stays as written (the values are not read again).
    email = render("winback_2", shop=shop, customer=_customer(db, "A", first_name="{code}"), code=a_code(), db=db,
                   links={"shop_url": "https://bean.example/"})
    assert email.subject == "{code}, WB-7Q2X9K is yours"
    assert "Until Thursday 16 April 2026" in parse(email.html).text
    assert f"Shop {shop['name']}:" in email.text
    with pytest.raises(CopyError) as refused:
        save_copy(db, shop["id"], "winback_2", "en", subject="Fine", heading="Hi {naam}")
    assert refused.value.field == "heading"
    assert str(refused.value) == "{naam} is not a placeholder (use {first_name}, {shop_name}, {code}, {expires})"
    assert get_copy(db, shop["id"], "winback_2", "en")["heading"] == "Until {expires}"  # kept as it was


@pytest.mark.parametrize("field, value, message", [
    ("preheader", "two\nlines", "must be a single line"),
    ("heading", "x" * 151, "must be at most 150 characters"),
    ("button", "Go\x07", "must not contain control characters"),
    ("reason", "x" * 1001, "must be at most 1000 characters"),
    ("products", 7, "enter a whole number from 0 to 6"),
    ("intro", "Hello {name}", "{name} is not a placeholder"),
])
def test_bad_fields_are_refused_with_the_field_named(db, field, value, message):
    shop = coffee_shop(db)
    with pytest.raises(CopyError, match=message.replace("{", r"\{").replace("}", r"\}")) as refused:
        save_copy(db, shop["id"], "winback_1", "en", **{field: value})
    assert refused.value.field == field


def test_every_owner_field_is_escaped_in_the_html(db):
    shop = coffee_shop(db)
    fields = {name: f'<i id="{name}">{name}</i> & "q"' for name in
              ("subject", "preheader", "heading", "intro", "reason", "button")}
    save_copy(db, shop["id"], "winback_2", "en", **fields)
    email = render("winback_2", shop=shop, customer=_customer(db, "A"), code=a_code(), db=db,
                   links={"shop_url": "https://bean.example/"})
    assert "<i " not in email.html  # no field became markup...
    shown = html.unescape(email.html)
    for name in fields:  # ...and each is there as text, in both parts (the preheader: HTML only)
        assert f'<i id="{name}">{name}</i> & "q"' in shown, name
        assert f'<i id="{name}">{name}</i> & "q"' in (email.subject + email.text) or name == "preheader"
    assert f'&lt;i id="heading"&gt;heading&lt;/i&gt; &amp; "q"' in email.html or \
        "&lt;i id=&#34;heading&#34;&gt;heading&lt;/i&gt; &amp; &#34;q&#34;" in email.html


def _items(n):
    return [{"title": f"Bean {i}", "url": f"https://bean.example/p/{i}", "image": None,
             "price_minor": 900, "currency": "EUR"} for i in range(n)]


def test_the_product_count_limits_the_block_and_0_hides_it(db):
    shop = coffee_shop(db)
    full = render("winback_1", shop=shop, customer=_customer(db, "A"), items=_items(3), db=db)
    assert full.html.count('class="product"') == 3
    save_copy(db, shop["id"], "winback_1", "en", products=2)
    two = render("winback_1", shop=shop, customer=_customer(db, "A"), items=_items(3), db=db)
    assert two.html.count('class="product"') == 2 and "Bean 2" not in two.text
    save_copy(db, shop["id"], "winback_1", "en", products=0)
    none = render("winback_1", shop=shop, customer=_customer(db, "A"), items=_items(3), db=db)
    assert 'class="product"' not in none.html and "products-heading" not in none.html and "Bean 0" not in none.text
    # Dutch keeps its own count (the default).
    nl = render("winback_1", shop=shop, customer=_customer(db, "A", "nl"), items=_items(3), db=db)
    assert nl.html.count('class="product"') == 3


def test_winback_preview_picks_as_many_products_as_the_owner_asked(app, db):
    from flows.email_preview import preview
    shop = coffee_shop(db)
    _new_coffees(db, shop, 5)
    ref = "A"
    assert len(preview(app, db, shop, "winback", 1, ref, "en")["products"]) == 3
    save_copy(db, shop["id"], "winback_1", "en", products=5)
    assert len(preview(app, db, shop, "winback", 1, ref, "en")["products"]) == 5
    save_copy(db, shop["id"], "winback_1", "en", products=0)
    shown = preview(app, db, shop, "winback", 1, ref, "en")
    assert shown["products"] == [] and "products-heading" not in shown["html"]
    assert html.unescape(shown["html"]).count("Coffee since your last order") == 1

"""Their products in the emails: what fits the customer in a win-back, the product due with a
one-click reorder link in the reminder (Shopify's cart permalink with the code, WooCommerce's
add-to-cart), never a product that is unpublished or out of stock, and `winback preview` listing them."""
import copy
import json
import re
from datetime import datetime, timezone
from decimal import Decimal

from app.settings import save_setting
from connectors.base import ProductRecord
from connectors.store import ShopWriter
from flows.definitions import DEFAULT_FLOWS, save_flow
from flows.engine import tick
from flows.products import winback_picks
from flows.refresh import refresh
from flows.render import render
from tests.builders import History, at, make_shop, ready_to_send
from tests.test_render import parse

APP = "http://127.0.0.1:5000"
STORE = "https://bean.example"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
OLD = datetime(2020, 1, 1, tzinfo=timezone.utc)


def catalogue(db, shop, *products):
    """Products as a sync writes them: (id, title, category, brand, published, in stock[, created])."""
    ShopWriter(db, shop).upsert_products([
        ProductRecord(external_id=pid, title=title, category=cat, brand=brand, price=Decimal(9),
                      url=f"{STORE}/products/{pid.lower()}", image_url=f"{STORE}/img/{pid.lower()}.jpg",
                      published=published, in_stock=stock, variant_id=f"v{pid}", created_at=rest[0] if rest else OLD)
        for pid, title, cat, brand, published, stock, *rest in products])


def coffee_shop(db, platform="import", handle="s"):
    """A bought two coffees and a tea; others bought the shop's bestsellers."""
    shop = make_shop(db, handle, platform, currency="EUR")

    def line(pid, cat, qty=1):
        return {"product": pid, "title": pid, "category": cat, "brand": "Roast", "qty": qty}

    h = History(db, shop=shop)
    h.order("A", 0, lines=[line("C1", "Coffee", 3), line("T1", "Tea")]).order("A", 40, lines=[line("C2", "Coffee")])
    for i in range(3):  # the shop's bestsellers: C4 (unpublished), C3, C5 (sold out), then C6
        h.order(f"R{i}", 10, lines=[line("C4", "Coffee", 9), line("C3", "Coffee", 5), line("C5", "Coffee", 4),
                                    line("C1", "Coffee", 3), line("C6", "Coffee", 1)])
    h.write()
    catalogue(db, shop, ("C1", "Espresso", "Coffee", "Roast", True, True),
              ("C2", "Decaf", "Coffee", "Roast", True, True),
              ("C3", "Mocha <b>Java</b>", "Coffee", "Roast", True, True),
              ("C4", "Draft beans", "Coffee", "Roast", False, True),
              ("C5", "Sold out beans", "Coffee", "Roast", True, False),
              ("C6", "Kenya", "Coffee", "Roast", True, True),
              ("C7", "Unsold blend", "Coffee", "Roast", True, True),
              ("T1", "Earl Grey", "Tea", "Leaf", True, True))
    return shop


def test_winback_shows_bestsellers_of_their_category_they_have_not_bought_and_never_unavailable(db):
    shop = coffee_shop(db)
    customer = db.execute("SELECT id FROM customers WHERE external_id = 'A'").fetchone()[0]
    picks = winback_picks(db, shop["id"], customer)
    assert [p["external_id"] for p in picks] == ["C3", "C6", "C7"]  # bestsellers first; bought, draft, sold out never
    assert len(winback_picks(db, shop["id"], customer, limit=1)) == 1


def test_winback_falls_back_to_their_brand_then_to_what_is_new_since_their_last_order(db):
    shop = make_shop(db, "s", currency="EUR")
    History(db, shop=shop).order("B", 0, lines=[{"product": "S1", "category": "Solo", "brand": "Solo"}]).write()
    after = datetime(2030, 1, 1, tzinfo=timezone.utc)
    catalogue(db, shop, ("S1", "Solo", "Solo", "Solo", True, True), ("N0", "Old news", "Other", "Other", True, True),
              ("N1", "New mug", "Other", "Other", True, True, after),
              ("N2", "New draft", "Other", "Other", False, True, after),
              ("N3", "New, sold out", "Other", "Other", True, False, after))
    customer = db.execute("SELECT id FROM customers WHERE external_id = 'B'").fetchone()[0]
    assert [p["external_id"] for p in winback_picks(db, shop["id"], customer)] == ["N1"]
    catalogue(db, shop, ("B1", "Solo's cup", "Cups", "Solo", True, True))  # their brand, another category
    assert [p["external_id"] for p in winback_picks(db, shop["id"], customer)] == ["B1", "N1"]


def test_the_winback_email_has_product_blocks_escaped_with_prices_in_the_locale(app, db, smtp):
    shop = ready_to_send(db, coffee_shop(db))
    save_setting(db, shop["id"], "store_url", STORE)
    db.execute("UPDATE customers SET locale = 'nl' WHERE external_id = 'A'")
    tick(app, db, shop, at(101))
    [mail] = [m for m in smtp.messages if m["To"] == "a@example.com"]
    html = mail.get_body(preferencelist=("html",)).get_content()
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert ">Mocha &lt;b&gt;Java&lt;/b&gt;</a>" in html  # escaped: shown as text, no <b> element
    assert not re.search(r">\s*<b>Java", html)
    assert "Speciaal voor jou" in html and f'src="{STORE}/img/c3.jpg"' in html
    assert "€&nbsp;9,00" in html and "- Mocha <b>Java</b>, €\xa09,00" in text  # Babel's Dutch euro format
    assert "Draft beans" not in html and "Sold out beans" not in html and "Espresso" not in html
    tracked = {link for link in parse(html).links if link.startswith(APP + "/c/")}
    assert len(tracked) == 4  # three products and the shop button, each tracked
    assert all(link in text for link in tracked)


def replenish_shop(db, platform, handle, store=STORE, offer=None):
    """B buys 2 bags of coffee beans every 40 days (replenishable, cycle 20 days per bag)."""
    shop = make_shop(db, handle, platform, currency="EUR")
    beans = {"product": "77", "title": "Beans", "category": "Coffee", "qty": 2}
    h = History(db, shop=shop).order("B", 0, lines=[beans]).order("B", 40, lines=[beans])
    for i in range(9):
        h.repeat(f"R{i}", [0, 40, 90], total="100")
    h.write()
    catalogue(db, shop, ("77", "Beans", "Coffee", "Roast", True, True))
    db.execute("UPDATE products SET replenishable = 1, replenish_days = 20, variant_id = '4455'"
               " WHERE external_id = '77'")
    ready_to_send(db, shop)
    if offer:
        flow = copy.deepcopy(DEFAULT_FLOWS["replenish"])
        flow["holdout"], flow["steps"][0]["offer"] = 0, offer
        save_flow(db, shop["id"], "replenish", flow)
    save_setting(db, shop["id"], "store_url", store)
    refresh(db, shop, at(80))
    return shop


def preview_json(runner, *args):
    result = runner.invoke(args=["preview", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_shopify_reorder_link_fills_the_cart_with_the_code(app, db, runner, client):
    replenish_shop(db, "shopify", "bean.myshopify.com", offer={"percent": 10, "valid_days": 3})
    doc = preview_json(runner, "--shop", "bean.myshopify.com", "--flow", "replenish", "--step", "1", "--customer", "B")
    [product] = doc["products"]
    assert product == {"title": "Beans", "url": product["url"], "image": f"{STORE}/img/77.jpg", "price": "€9.00"}
    kinds = {link["kind"]: link for link in doc["links"]}
    assert kinds["product"]["url"] == product["url"] and kinds["product"]["target"] == f"{STORE}/products/77"
    assert kinds["reorder"]["target"] == f"{STORE}/cart/4455:2?discount=WB-PREVIEW"
    assert kinds["reorder"]["url"] in parse(doc["html"]).links and kinds["reorder"]["url"] in doc["text"]
    followed = client.get(kinds["reorder"]["url"][len(APP):], headers={"User-Agent": BROWSER})
    assert followed.status_code == 302 and followed.headers["Location"] == f"{STORE}/cart/4455:2?discount=WB-PREVIEW"


def test_woocommerce_reorder_link_adds_to_the_cart(app, db, runner):
    replenish_shop(db, "woocommerce", "woo", store="https://woo.example/shop")
    doc = preview_json(runner, "--shop", "woo", "--flow", "replenish", "--step", "1", "--customer", "B", "--lang", "pl")
    kinds = {link["kind"]: link for link in doc["links"]}
    assert kinds["reorder"]["target"] == "https://woo.example/shop/?add-to-cart=4455&quantity=2"
    assert "Zamów ponownie" in doc["html"] and "Twoje ulubione" in doc["text"]
    assert doc["products"][0]["price"] == "9,00\xa0€"


def test_a_sold_out_product_due_is_not_shown(app, db, runner):
    shop = replenish_shop(db, "woocommerce", "woo", store="https://woo.example")
    db.execute("UPDATE products SET in_stock = 0 WHERE shop_id = ?", [shop["id"]])
    doc = preview_json(runner, "--shop", "woo", "--flow", "replenish", "--step", "1", "--customer", "B")
    assert doc["products"] == [] and {link["kind"] for link in doc["links"]} == {"shop", "unsubscribe"}
    assert "Beans" in doc["subject"]  # the reminder still names what is due


def test_emails_without_products_have_no_block():
    shop = {"id": None, "name": "Bean", "handle": "s", "platform": "import", "locale": "en", "timezone": "UTC"}
    email = render("winback_1", shop=shop, customer={"first_name": "Eva"}, items=[])
    assert "Picked for you" not in email.html and "Picked for you" not in email.text
    assert not re.search(r'class="product', email.html)


"""Category win-back (issue 16, point 4): off by default; on, it writes to a customer who stopped
buying one category but still shops, about that category and with its products; a customer who lapsed
overall gets the main win-back instead."""
import re

import pytest

from flows.definitions import load_flows, set_enabled
from flows.engine import tick
from flows.render import LOCALES, render
from tests.builders import History, at, ready_to_send
from tests.test_products import catalogue

TEA = [{"product": "T1", "title": "Earl Grey", "category": "Tea"}]
MUG = [{"product": "M1", "title": "Mug", "category": "Mugs"}]


@pytest.fixture(autouse=True)
def _delivery(smtp):
    """Email delivery configured (the flows run live)."""


def tea_shop(db):
    """A bought tea on days 0 and 20 and still buys mugs (day 40, 50): on day 60 tea is 40 days
    overdue against its 20-day rhythm, and A is active overall. B bought tea on days 0 and 10 only:
    lapsed overall on day 60. Nine richer customers keep both off VIP."""
    h = History(db).order("A", 0, lines=TEA).order("A", 20, lines=TEA).order("A", 40, lines=MUG)
    h.order("A", 50, lines=MUG)
    h.order("B", 0, lines=TEA).order("B", 10, lines=TEA)
    for i in range(9):
        h.repeat(f"R{i}", [0, 40, 55], total="100")
    shop = ready_to_send(db, h.write())
    catalogue(db, shop, ("T1", "Earl Grey", "Tea", "Leaf", True, True), ("T2", "Sencha", "Tea", "Leaf", True, True),
              ("T3", "Hidden oolong", "Tea", "Leaf", False, True), ("M1", "Mug", "Mugs", "Clay", True, True))
    return shop


def flows_of(db, customer):
    return [r[0] for r in db.execute("SELECT e.flow FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                                     " WHERE c.external_id = ? ORDER BY e.id", [customer])]


def mail_to(smtp, address):
    return [m for m in smtp.messages if m["To"] == address]


def test_off_by_default_so_nobody_gets_it(app, db, smtp):
    shop = tea_shop(db)
    assert load_flows(db, shop["id"])["category_winback"]["enabled"] is False
    tick(app, db, shop, at(60))
    assert flows_of(db, "A") == [] and mail_to(smtp, "a@example.com") == []
    assert flows_of(db, "B") == ["winback"]


def test_on_it_writes_about_the_category_with_its_products(app, db, smtp):
    shop = tea_shop(db)
    set_enabled(db, shop["id"], "category_winback", True)
    tick(app, db, shop, at(60))
    assert flows_of(db, "A") == ["category_winback"]
    e = dict(next(db.query("SELECT e.* FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                           " WHERE c.external_id = 'A'")))
    assert e["segment"] == "category_lapsed:Tea" and "40 days since the last order in it" in e["reason"]
    [mail] = mail_to(smtp, "a@example.com")
    assert mail["Subject"] == "Time for more Tea?"
    html = mail.get_body(preferencelist=("html",)).get_content()
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "You used to pick up something from Tea regularly" in text
    assert "Earl Grey" in html and "Sencha" in html and "Earl Grey" in text
    shown = re.findall(r"^- ([^,\n]+),", text, re.M)  # the text part's product block
    assert shown == ["Earl Grey", "Sencha"]  # the category's products only: not the mug they still buy
    assert "Hidden oolong" not in html  # unpublished: never shown
    assert re.search(r"WB-[A-Z0-9]+", text)  # its offer: a personal code
    # Overall lapsed: the main win-back, never the category one.
    assert flows_of(db, "B") == ["winback"]
    [b_mail] = mail_to(smtp, "b@example.com")
    assert b_mail["Subject"] == "We miss you at s"


def test_the_reminder_speaks_of_the_same_category(app, db, smtp):
    shop = tea_shop(db)
    set_enabled(db, shop["id"], "category_winback", True)
    tick(app, db, shop, at(60))
    tick(app, db, shop, at(65))
    subjects = [m["Subject"] for m in mail_to(smtp, "a@example.com")]
    assert len(subjects) == 2 and subjects[1].endswith("on Tea")


def test_a_purchase_ends_it_and_one_flow_at_a_time(app, db, smtp):
    shop = tea_shop(db)
    set_enabled(db, shop["id"], "category_winback", True)
    tick(app, db, shop, at(60))
    History(db, shop=shop).order("A", 61, lines=MUG).write()
    tick(app, db, shop, at(65))
    assert len(mail_to(smtp, "a@example.com")) == 1
    status = db.execute("SELECT status, exit_reason FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                        " WHERE c.external_id = 'A'").fetchone()
    assert tuple(status) == ("converted", "purchased")
    running = db.execute("SELECT COUNT(*) FROM enrolments e JOIN customers c ON c.id = e.customer_id"
                         " WHERE c.external_id = 'A' AND e.status IN ('active', 'held_out')").fetchone()[0]
    assert running <= 1


@pytest.mark.parametrize("locale,words", [("en", "Time for more Thee?"), ("nl", "Tijd voor nieuwe Thee?"),
                                          ("pl", "Czas uzupełnić zapasy z kategorii „Thee”?")])
def test_the_copy_names_the_category_in_each_language(locale, words):
    shop = {"id": None, "name": "Bean", "locale": "en", "timezone": "UTC", "currency": "EUR"}
    email = render("category_winback_1", shop=shop, customer={"first_name": "Ann", "locale": locale},
                   category="Thee")
    assert email.subject == words
    assert "Thee" in email.text and email.locale == locale
    assert set(LOCALES) == {"en", "nl", "pl"}


def test_the_flows_page_shows_it_and_switches_it(app, db, client, login):
    shop = tea_shop(db)
    login()
    page = client.get("/shops/s/flows").get_data(as_text=True)
    assert 'data-flow="category_winback"' in page and "Category win-back" in page
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    assert client.post("/shops/s/flows/category_winback/toggle", data={"csrf_token": token}).status_code == 302
    assert load_flows(db, shop["id"])["category_winback"]["enabled"] is True
    assert client.get("/shops/s/flows/category_winback").status_code == 200

"""`winback preview`: one flow step's email as a customer would get it, with the links it carries.

The links are made exactly as at delivery (flows.delivery.email_links), through the click redirect,
but for a message that does not exist yet: such a token is marked by its empty message, so
following it redirects to the target and records nothing. The step's code is a sample, WB-PREVIEW,
with the step's offer and an expiry counted from now; nothing is reserved or created.
"""
import html as htmllib
import re
from datetime import timedelta

from app.settings import get_settings
from app.timeutil import to_db, utcnow

from .category_winback import sample_category
from .clicks import read_token
from .definitions import load_flows
from .delivery import email_links, replenish_products
from .explain import find_customer
from .journey import CARE, bought_titles
from .products import CATEGORY_TEMPLATES, blocks, picks_for
from .render import LOCALES, product_items, products_wanted, render

PREVIEW_CODE = "WB-PREVIEW"
_PREHEADER = re.compile(r'<div class="preheader"[^>]*>(.*?)</div>', re.S)
_KINDS = {"shop_url": "shop", "keep_url": "keep", "unsubscribe_url": "unsubscribe"}


class PreviewError(ValueError):
    """A flow, step, customer or language that does not exist."""


def _offer_for(flow, index):
    """The offer of a step, following "reuse" back to the step whose code it reuses."""
    for step in reversed(flow["steps"][:index + 1]):
        offer = step.get("offer")
        if not offer or not offer.get("reuse"):
            return offer
    return None


def _sample_customer(db, shop, flow):
    rows = list(db.query(
        "SELECT c.* FROM customers c WHERE c.shop_id = :s AND c.email IS NOT NULL"
        " ORDER BY c.id IN (SELECT customer_id FROM customer_segments WHERE shop_id = :s AND segment = :seg) DESC,"
        " c.first_name IS NULL, c.id LIMIT 1", {"s": shop["id"], "seg": flow["entry"]}))
    return rows[0] if rows else {"id": None, "first_name": None, "locale": None}


def preview(app, db, shop, flow_name, step_no, customer_ref=None, lang=None, now=None) -> dict:
    """{"subject", "preheader", "text", "html", "links": [{"url", "kind", "target"}],
    "products": [{"title", "url", "image", "price"}]} (the products' `url` the tracked link)
    of step `step_no` (1-based) of `flow_name` for the customer `customer_ref` (platform id or email;
    default: one in the flow's segment) in `lang` (default: the customer's language)."""
    flows = load_flows(db, shop["id"])
    flow = flows.get(flow_name)
    if flow is None:
        raise PreviewError(f"no flow {flow_name!r} (flows: {', '.join(sorted(flows))})")
    if not 1 <= step_no <= len(flow["steps"]):
        raise PreviewError(f"{flow_name} has steps 1 to {len(flow['steps'])}")
    if lang is not None and lang not in LOCALES:
        raise PreviewError(f"no language {lang!r} (languages: {', '.join(LOCALES)})")
    if customer_ref:
        customer = find_customer(db, shop["id"], customer_ref)
        if customer is None:
            raise PreviewError(f"no customer {customer_ref!r} in shop {shop['handle']!r}")
    else:
        customer = _sample_customer(db, shop, flow)
    customer = dict(customer)
    if lang:
        customer["locale"] = lang
    now = now or utcnow()
    step = flow["steps"][step_no - 1]
    offer = _offer_for(flow, step_no - 1)
    code = None
    if offer and flow["kind"] == "promotional":
        code = {"id": None, "code": PREVIEW_CODE, "kind": "free_shipping" if offer.get("free_shipping") else "percent",
                "percent": None if offer.get("free_shipping") else offer.get("percent"),
                "expires_at": to_db(now + timedelta(days=offer.get("valid_days", 3)))}
    settings = get_settings(db, shop["id"])
    wanted = products_wanted(db, shop, customer, step["template"])
    category = (sample_category(db, shop["id"], customer.get("id")) if step["template"] in CATEGORY_TEMPLATES
                else None)
    items = blocks(picks_for(db, shop["id"], customer.get("id"), step["template"], wanted, category=category),
                   shop, settings,
                   app.config["APP_URL"], code["code"] if code else None)
    links = email_links(app, shop, settings, None, customer.get("id"), flow_name, code, items)
    products = (replenish_products(db, customer["id"]) if flow_name == "replenish" and customer.get("id")
                else bought_titles(db, customer["id"]) if step["template"] == CARE and customer.get("id") else None)
    email = render(step["template"], shop=shop, customer=customer, code=code, products=products,
                   items=items, links=links, db=db, now=now, category=category)
    found = _PREHEADER.search(email.html)
    preheader = " ".join(htmllib.unescape(re.sub(r"<[^>]+>", "", found.group(1))).split()) if found else ""
    shown = [{"url": url, "kind": _KINDS.get(key) or key.partition("_")[0], "target": _target(app, url)}
             for key, url in links.items() if url in email.html or url in email.text]
    return {"subject": email.subject, "preheader": preheader, "text": email.text, "html": email.html,
            "links": shown,
            "products": [{"title": p["title"], "url": p["url"], "image": p["image"], "price": p["price"]}
                         for p in product_items(items, links, email.locale)]}


def _target(app, url):
    """Where a tracked link leads (the URL itself when it is not one)."""
    prefix = f"{app.config['APP_URL']}/c/"
    if not url.startswith(prefix):
        return url
    found = read_token(app, url[len(prefix):])
    return found[2] if found else None

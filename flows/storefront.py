"""Where an email's button leads: the shop's storefront, with the step's code applied where the
platform can apply one from a link.

The storefront is the `store_url` setting when the owner set one, else what the platform knows:
WooCommerce's store address (shops.base_url, from its connection), Shopify's primary domain (the
shop query's `primaryDomain { url }`, stored in shops.base_url at install; else the `*.myshopify.com`
handle, which Shopify sends on to the primary domain), and for the demo shop a
small page of this installation (`/demo-store`). An import shop without `store_url` has no button.

Shopify applies a code from its shareable discount link `https://{storefront}/discount/{CODE}?redirect={path}`
(the code in the cart, then on to `path`). WooCommerce core has no apply-by-URL, so its email
shows the code beside a copy hint and the button goes to the store.

A reorder link fills the cart: Shopify's cart permalink `https://{storefront}/cart/{variant}:{qty}`
(with `?discount={CODE}` when the step carries a code), WooCommerce's `{store}/?add-to-cart={id}&quantity={qty}`.
"""
import re
from urllib.parse import quote, urlencode

_URL = re.compile(r"^https?://[^\s\"'<>\\]+$", re.I)


def store_url(shop, settings, app_url=None) -> str | None:
    """The shop's storefront address without a trailing slash, or None when it has none."""
    url = (settings.get("store_url") or "").strip()
    if not url:
        if shop.get("platform") == "demo" and app_url:
            url = f"{app_url.rstrip('/')}/demo-store"
        elif shop.get("platform") == "shopify" and not shop.get("base_url") and shop.get("handle"):
            url = f"https://{shop['handle']}"
        else:
            url = (shop.get("base_url") or "").strip()
    if url and not re.match(r"^https?://", url, re.I):
        url = "https://" + url
    url = url.rstrip("/")
    return url if url and _URL.match(url) else None


def applies_code(shop) -> bool:
    """Whether following the button applies the step's code (Shopify's discount links)."""
    return shop.get("platform") == "shopify"


def shop_target(shop, settings, code=None, app_url=None, path="/") -> str | None:
    """Where the email's shop button leads: the storefront, through Shopify's discount link when the
    step carries a `code` (the code URL-encoded); None when the shop has no storefront address."""
    store = store_url(shop, settings, app_url)
    if store is None:
        return None
    if code and applies_code(shop):
        return f"{store}/discount/{quote(code, safe='')}?redirect={quote(path, safe='')}"
    return store + ("" if path == "/" else path)


def reorder_url(shop, settings, product_ref, quantity, code=None, app_url=None) -> str | None:
    """A link that puts `quantity` of the product in the cart: Shopify's cart permalink for the
    variant `product_ref` (with the code), WooCommerce's add-to-cart for the product id; None for
    other shops or without a storefront address (the email then links to the product)."""
    store = store_url(shop, settings, app_url)
    quantity = max(1, int(quantity or 1))
    if store is None or not product_ref:
        return None
    if shop.get("platform") == "shopify":
        url = f"{store}/cart/{quote(str(product_ref), safe='')}:{quantity}"
        return url + (f"?discount={quote(code, safe='')}" if code else "")
    if shop.get("platform") == "woocommerce":
        return f"{store}/?{urlencode({'add-to-cart': product_ref, 'quantity': quantity})}"
    return None

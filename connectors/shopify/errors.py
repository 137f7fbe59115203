"""Errors of the Shopify connector."""


class ShopifyError(RuntimeError):
    """Shopify refused a request or answered with user errors; the message says why."""


class AuthError(ShopifyError):
    """An OAuth request or token that fails verification."""

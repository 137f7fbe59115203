"""Shopify connector (issue #6): OAuth install, bulk sync, webhooks, discount codes, privacy topics.

Modules: `oauth` (signatures, state, grants), `graphql` (throttled client), `bulk` (bulk exports),
`mapping` (Shopify shapes → records), `connector` (the Connector), `webhooks` (delivery handling),
`privacy` (compliance topics), `install` (shop registration and webhook subscriptions).
"""
from .connector import ShopifyConnector  # noqa: F401  (registers the "shopify" factory)
from . import webhooks  # noqa: F401  (registers the webhook handlers)

"""Shopify connector (issue #6): OAuth install, bulk sync, webhooks, discount codes, privacy topics.

Modules: `oauth` (signatures, state, grants), `graphql` (throttled client), `bulk` (bulk exports),
`mapping` (Shopify shapes → records), `connector` (the Connector), `webhooks` (delivery handling),
`privacy` (compliance topics), `install` (shop registration and webhook subscriptions).

Nothing registers itself on import: connectors/platforms.py names the factory and the handlers,
and the app factory hands them to the app. The package imports none of its modules, so that
`connectors.shopify.privacy` (which every app registers) does not bring the HTTP client along.
"""

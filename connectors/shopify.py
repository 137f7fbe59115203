"""Shopify connector (issue #6): OAuth install, bulk sync, webhooks, discount codes, privacy topics."""

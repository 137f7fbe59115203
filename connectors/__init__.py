"""Sources of shop data (demo, CSV import, Shopify, WooCommerce), all speaking one record model."""

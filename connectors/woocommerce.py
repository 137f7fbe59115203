"""WooCommerce connector (issue #7): key flow, REST sync, webhooks, coupons."""

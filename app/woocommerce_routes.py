"""WooCommerce's routes: connect, key callback, webhooks (issue #7)."""
from flask import Blueprint

bp = Blueprint("woocommerce", __name__)

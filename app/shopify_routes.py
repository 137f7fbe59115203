"""Shopify's routes: install, OAuth callback, webhooks (issue #6)."""
from flask import Blueprint

bp = Blueprint("shopify", __name__)

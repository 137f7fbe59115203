"""When the owner changes where a WooCommerce shop's marketing consent comes from."""
from ..store import forget_consent
from ..sync import CURSOR, set_state


def consent_source_changed(db, shop_id, old, new):
    """Consent read under the old source is no evidence under the new one: forget it, and make the
    next sync a full one so that every customer is judged again (runs in the saving transaction)."""
    forget_consent(db, shop_id)
    set_state(db, shop_id, CURSOR, None)

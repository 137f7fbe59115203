"""Placeholder: the demo shop generator is being written (see seed_demo's contract below)."""


def seed_demo(db, *, customers=5000, seed=1, now=None, progress=False) -> dict:
    """Create or refresh shop `demo`; returns {"customers", "orders", "products", ...}."""
    raise NotImplementedError("demo generator not written yet")

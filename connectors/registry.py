"""Which connector serves which platform."""
FACTORIES = {}


def register(platform):
    """Register a factory(app, shop) -> Connector for `platform`."""
    def deco(factory):
        FACTORIES[platform] = factory
        return factory
    return deco


def connector_for(app, shop):
    """The connector of this shop's platform; LookupError for platforms without one."""
    # Importing the platform modules registers their factories.
    from . import shopify, woocommerce  # noqa: F401
    factory = FACTORIES.get(shop["platform"])
    if factory is None:
        raise LookupError(f"shop {shop['handle']!r} ({shop['platform']}) has no platform to sync from")
    return factory(app, shop)

"""Which connector serves which platform: told by the app factory, looked up per app."""
EXTENSION = "winback_connectors"


def init_app(app, factories: dict) -> dict:
    """Give the app its connector factories: {platform: factory(app, shop) -> Connector}."""
    app.extensions[EXTENSION] = dict(factories)
    return app.extensions[EXTENSION]


def connector_for(app, shop):
    """The connector of this shop's platform; LookupError for platforms without one."""
    factory = app.extensions.get(EXTENSION, {}).get(shop["platform"])
    if factory is None:
        raise LookupError(f"shop {shop['handle']!r} ({shop['platform']}) has no platform to sync from")
    return factory(app, shop)


def live_connector(app, shop):
    """The shop's connector when its platform has one (codes, live order checks, sync), else None
    (demo and import shops)."""
    if shop["platform"] in ("demo", "import"):
        return None
    try:
        return connector_for(app, shop)
    except LookupError:
        return None

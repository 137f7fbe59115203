"""A sync's or import's counters as one sentence in the owner's language ("Orders: 327 (327 new, 0 changed);
customers: 120 (120 new, 0 changed); products: 40; rows skipped: 2; 0.06 s."), not a dump of counter names."""
from flask_babel import gettext as _

from .formatting import num

_KINDS = ("orders", "customers", "products")
RUN_KINDS = {"sync": "sync", "import": "import", "demo": "demo", "tick": "tick"}


def _count(kind, n):
    # "orders: 327" rather than "327 orders": no plural forms to get wrong (Polish has three).
    if kind == "orders":
        return _("orders: %(n)s", n=num(n))
    if kind == "customers":
        return _("customers: %(n)s", n=num(n))
    return _("products: %(n)s", n=num(n))


def run_kind(kind) -> str:
    """What ran ("sync", "import", "demo data", "flows round"), translated."""
    return {"sync": _("sync"), "import": _("import"), "demo": _("demo data"), "tick": _("flows round")}.get(kind, kind)


def summary(stats: dict) -> str:
    """The counters of a run in words ('' when it has none)."""
    stats = {k: v for k, v in (stats or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    parts = []
    for kind in _KINDS:
        total = stats.get(kind)
        new, changed = stats.get(f"{kind}_new"), stats.get(f"{kind}_updated")
        if total is None and new is None:
            continue
        text = _count(kind, total if total is not None else (new or 0) + (changed or 0))
        if new is not None or changed is not None:
            text = _("%(count)s (%(new)s new, %(changed)s changed)", count=text, new=num(new or 0),
                     changed=num(changed or 0))
        removed = stats.get(f"{kind}_removed")
        if removed:
            text = _("%(count)s, %(removed)s removed", count=text, removed=num(removed))
        parts.append(text)
    out = "; ".join(parts)
    if stats.get("skipped"):
        out += "; " + _("rows skipped: %(n)s", n=num(stats["skipped"]))
    if stats.get("products_marked"):
        out += "; " + _("products marked for reorder reminders: %(n)s", n=num(stats["products_marked"]))
    if stats.get("seconds") is not None:
        out += "; " + _("%(s)s s", s=num(stats["seconds"], 2))
    return (out[0].upper() + out[1:] + ".") if out else ""


def init_app(app):
    """The template filters `run_summary` and `run_kind`."""
    app.jinja_env.filters.update(run_summary=summary, run_kind=run_kind)

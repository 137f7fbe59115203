"""The owner's own flows: a flow whose entry is one of their saved segments ("VIPs 40 days after their
last order: running low?").

Such a flow is a flow like the built-in ones (flows/definitions.py; stored the same way under
`flow:<name>` with "custom": true) and runs through the same engine with the same rules: promotional,
so only to customers with marketing consent; one flow at a time; the holdout; the caps, the send
window and the check at the moment of sending; exits on a purchase, an unsubscribe or a used code;
its codes. It comes after the built-in flows in priority unless "before" names the built-in flow it
goes ahead of. A customer enters once they have been in the segment for `days_since_last_order`
days after their last order (0: at once); customers who never bought never enter (re-entry follows a
new purchase, as in every flow).

Its emails are the generic first win-back email (flows/copy.py OWNER_LAYOUT) with the owner's
words per step and language, under the step's own name "<flow>.<n>", so they never change the
built-in flows' texts.
"""
import re

from app import settings
from app.db import write_transaction
from app.settings import N_, Message

from . import copy as email_copy, owner_segments
from .definitions import DEFAULT_FLOWS, PRIORITY, FlowError, load_flows, save_flow, withdraw_flow

ENTRY_TIMING = "\n  AND sn.days_since_last >= :since_last"
NAME_MAX = 40
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_STEPS = 5
MAX_DAYS = 3650


def template_for(name, step_no) -> str:
    """The email template (and copy key) of step `step_no` (from 1) of the owner's flow `name`."""
    return f"{name}.{step_no}"


def check_name(db, shop_id, name) -> str:
    """A new flow's name: lower-case letters, digits and _, not a flow that exists; FlowError otherwise."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > NAME_MAX:
        raise FlowError(Message(N_("%(name)s: a flow's name is lower-case letters, digits and _ (at most %(n)s),"
                                   " starting with a letter"), name=repr(name), n=NAME_MAX))
    if name in DEFAULT_FLOWS:
        raise FlowError(Message(N_("%(name)s is a built-in flow; choose another name"), name=repr(name)))
    if name in load_flows(db, shop_id):
        raise FlowError(Message(N_("a flow named %(name)s exists already"), name=repr(name)))
    return name


# What `_days` checks, each with its refusal.
BETWEEN_EMAILS = N_("the time between two emails is a whole number of days from 0 to %(max)s")
AFTER_LAST_ORDER = N_("the time after the last order is a whole number of days from 0 to %(max)s")


def _days(value, refusal) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not 0 <= value <= MAX_DAYS:
        raise FlowError(Message(refusal, max=MAX_DAYS))
    return int(value)


def build(name, segment, *, offers=(None,), gaps=(), days_since_last_order=0, before=None, holdout=0.10,
          enabled=True) -> dict:
    """The definition of an owner's flow on `segment`: one email per offer (None: no code; a dict as in
    flows/definitions.py, {"reuse": true} for a reminder of the earlier code), the emails after the
    first `gaps` days apart (3 each by default)."""
    if not 1 <= len(offers) <= MAX_STEPS:
        raise FlowError(Message(N_("a flow has 1 to %(n)s emails"), n=MAX_STEPS))
    if before is not None and before not in PRIORITY:
        raise FlowError(Message(N_("%(name)s is not a built-in flow (one of %(flows)s)"), name=repr(before),
                                flows=", ".join(PRIORITY)))
    gaps = list(gaps) + [3] * (len(offers) - 1 - len(gaps))
    steps, day = [], 0
    for i, offer in enumerate(offers):
        if i:
            day += _days(gaps[i - 1], BETWEEN_EMAILS)
        steps.append({"delay_days": day, "template": template_for(name, i + 1), "offer": offer})
    return {"custom": True, "entry": segment, "kind": "promotional", "enabled": bool(enabled), "holdout": holdout,
            "days_since_last_order": _days(days_since_last_order, AFTER_LAST_ORDER),
            "before": before, "steps": steps}


def create_flow(db, shop, name, segment, *, words=None, locale=None, now=None, **definition) -> dict:
    """Create the owner's flow `name` on their saved segment `segment` (see `build` for the rest of the
    definition); `words` ({"subject", "intro", ...} of flows.copy) are the first email's, in `locale`
    (default: the shop's language). Nothing is saved when anything is refused (FlowError,
    owner_segments.SegmentError or flows.copy.CopyError). Returns the flow as saved."""
    name = check_name(db, shop["id"], name)
    entry = owner_segments.get_segment(db, shop["id"], segment)["name"]
    flow = build(name, entry, **definition)
    shop_locale = shop.get("locale") if shop.get("locale") in email_copy.LOCALES else email_copy.DEFAULT_LOCALE
    locale = locale or shop_locale
    if words:
        email_copy.clean_copy(**words)  # refused before anything is stored
    with write_transaction(db):
        saved = save_flow(db, shop["id"], name, flow, now=now)
        if words:
            email_copy.save_copy(db, shop["id"], template_for(name, 1), locale, **words)
    return {**saved, "name": name}


def owner_flows(db, shop_id) -> dict:
    """{name: flow} of the owner's own flows, in priority order."""
    return {name: flow for name, flow in load_flows(db, shop_id).items() if flow.get("custom")}


def remove_flow(db, shop, name, now=None) -> dict:
    """Remove the owner's flow: its running enrolments end and what it had not delivered is withheld
    (as when a flow is turned off), then its definition and words go. What it sent stays in the log."""
    flows = owner_flows(db, shop["id"])
    if name not in flows:
        raise FlowError(Message(N_("no flow of yours named %(name)s (a built-in flow can only be turned off)")
                                if name in DEFAULT_FLOWS else N_("no flow of yours named %(name)s"), name=repr(name)))
    with write_transaction(db):
        ended = withdraw_flow(db, shop["id"], name, now)
        settings.remove(db, shop["id"], f"flow:{name}")
        for step in flows[name]["steps"]:
            for locale in email_copy.LOCALES:
                settings.remove(db, shop["id"], email_copy.copy_key(step["template"], locale))
    return ended

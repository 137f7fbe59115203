"""Names the flows store (segments, flows, statuses, exit reasons, stored reasons) as words a shop owner
reads in their language. Each is a `Value`: its English is the stored name as the CLI has always shown
it (`winback`, `vip_at_risk`); said on a page, it is the translated label ("VIP in gevaar")."""
import re

from app.words import N_, Num, Text, Value

SEGMENTS = {"new": N_("new"), "one_time": N_("one-time buyers"), "active": N_("active"), "lapsed": N_("lapsed"),
            "lost": N_("lost"), "vip": N_("VIP"), "vip_at_risk": N_("VIP at risk"),
            "replenish_due": N_("due to reorder")}
FLOWS = {"replenish": N_("Reorder reminder"), "vip_winback": N_("VIP win-back"), "winback": N_("Win-back"),
         "second_order": N_("Second order"), "sunset": N_("Sunset")}
STATUSES = {"paid": N_("paid"), "pending": N_("pending"), "refunded": N_("refunded"), "cancelled": N_("cancelled"),
            "running": N_("running"), "ok": N_("ok"), "failed": N_("failed"), "active": N_("active"),
            "held_out": N_("control group"), "completed": N_("completed"), "exited": N_("left the flow"),
            "converted": N_("converted"), "outbox": N_("waiting to be sent"), "sending": N_("sending"),
            "sent": N_("sent"), "withheld": N_("withheld"), "unknown": N_("unknown"), "retrying": N_("retrying")}
STAGES = {"champions": N_("champions"), "loyal": N_("loyal"), "potential": N_("potential"),
          "at_risk": N_("at risk"), "hibernating": N_("hibernating"), "lost": N_("lost")}
EXITS = {"code_used": N_("code used"), "purchased": N_("purchased"), "unsubscribed": N_("unsubscribed"),
         "no_consent": N_("no consent"), "confirmed": N_("confirmed"), "no_response": N_("no response"),
         "message could not be built": N_("message could not be built"),
         "undeliverable address": N_("undeliverable address"), "delivery failed": N_("delivery failed"),
         "delivery unknown": N_("delivery unknown")}
# Reasons stored in English by the engine and the delivery (enrolments.reason, deferred_reason, ...).
STORED = {"send window": N_("send window"), "frequency cap": N_("frequency cap"),
          "the customer unsubscribed": N_("the customer unsubscribed"),
          "no postal address in the shop's settings (required in marketing email)":
              N_("no postal address in the shop's settings (required in marketing email)"),
          "the customer has no email address": N_("the customer has no email address"),
          "no marketing consent": N_("no marketing consent"),
          "marked inactive by the sunset flow": N_("marked inactive by the sunset flow"),
          "the customer ordered again": N_("the customer ordered again"),
          "turned off": N_("turned off"), "no postal address": N_("no postal address")}
_FEW = re.compile(r"^not enough history: only ([\d,]+) customers? \(need at least (\d+)\)$")
_FEW_REPEAT = re.compile(r"^not enough history: only ([\d,]+) customers? bought more than once"
                         r" \(need at least (\d+)\)$")
_LATE = re.compile(r"^could not leave within (\d+) h of its planned time$")
_ENDED = re.compile(r"^the enrolment ended \((.+)\)$")
_UNDELIVERABLE = re.compile(r"^the address is undeliverable \((.+)\)$")
_ENTRY = re.compile(r"^(.+?): (\d+) days since the last order$")


class Label(Value):
    """A stored name whose English stays the name and which a page says as `said` (a Text)."""

    def __init__(self, name, said: Text, english: str | None = None):
        super().__init__(name, name if english is None else english)
        self.said = said

    def format(self, locale, translate):
        return self.said.say(locale, translate)


def _label(table, name, english=None) -> Value:
    if name in table:
        return Label(name, table[name], english)
    return Value(name, english)


def segment_text(name: str) -> Text:
    """A segment's label, also for the prefixed ones (`brand_loyal:<brand>`, `category_lapsed:<category>`)."""
    if name.startswith("brand_loyal:"):
        return N_("loyal to %(brand)s", brand=name.split(":", 1)[1])
    if name.startswith("category_lapsed:"):
        return N_("stopped buying %(category)s", category=name.split(":", 1)[1])
    return SEGMENTS.get(name) or Text(name.replace("_", " ").replace("%", "%%"))


def segment_label(name) -> Value:
    """A segment as a value in a sentence."""
    return Label(name, segment_text(name))


def flow_label(name) -> Value:
    """A flow as a value in a sentence."""
    return _label(FLOWS, name)


def status_label(name) -> Value:
    """A status (of an order, a run, an enrolment or a message) as a value in a sentence."""
    return _label(STATUSES, name)


def stage_label(name) -> Value:
    """An RFM stage (`at_risk`) as a value in a sentence; its English is 'at risk'."""
    return _label(STAGES, name, name.replace("_", " "))


def exit_label(name) -> Value:
    """Why an enrolment ended, as a value in a sentence; its English is the name without underscores."""
    return _label(EXITS, name, name.replace("_", " "))


def stored_reason(text) -> Value:
    """A reason the engine stored in English ("vip_at_risk: 96 days since the last order", "send window")."""
    if text is None:
        return Value("")
    found = _ENTRY.match(text)
    if found:
        return Label(text, N_("%(segment)s: %(days)s days since the last order",
                              segment=segment_label(found.group(1)), days=Num(int(found.group(2)))))
    few, few_repeat = _FEW.match(text), _FEW_REPEAT.match(text)
    if few:
        return Label(text, N_("not enough history: only %(n)s customers (need at least %(min)s)",
                              n=Num(int(few.group(1).replace(",", ""))), min=Num(int(few.group(2)))))
    if few_repeat:
        return Label(text, N_("not enough history: only %(n)s customers bought more than once (need at least "
                              "%(min)s)", n=Num(int(few_repeat.group(1).replace(",", ""))),
                              min=Num(int(few_repeat.group(2)))))
    late, ended, bounced = _LATE.match(text), _ENDED.match(text), _UNDELIVERABLE.match(text)
    if late:
        return Label(text, N_("could not leave within %(hours)s h of its planned time", hours=Num(late.group(1))))
    if ended:
        why = ended.group(1)
        return Label(text, N_("the enrolment ended (%(why)s)",
                              why=exit_label(why) if why in EXITS else status_label(why)))
    if bounced:
        return Label(text, N_("the address is undeliverable (%(why)s)", why=bounced.group(1)))
    if text in STORED:
        return _label(STORED, text)
    if text in EXITS:
        return _label(EXITS, text)
    # Any other stored English sentence that is a msgid of the catalogue (the purchase model's reasons).
    return Label(text, Text(text.replace("%", "%%")))

"""The WTForms classes of every page form (CSRF protected through FlaskForm), with their validators.

Messages are translated when they are raised: the validators here use flask_babel's lazy_gettext,
and a setting's own validator (app/settings.py, the one judge of a value) raises a `Message` that
`translated` turns into the owner's language. Nothing translates English text after the fact.
"""
import math
from datetime import UTC, datetime, timedelta

from flask_babel import gettext, lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    FieldList,
    Form,
    FormField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, ValidationError

from flows.copy import (
    BUTTON_MAX,
    HEADING_MAX,
    INTRO_MAX,
    PREHEADER_MAX,
    PRODUCTS_MAX,
    REASON_MAX,
    SUBJECT_MAX,
    check_placeholders,
)
from flows.definitions import MAX_AMOUNT, MAX_MIN_ORDER, MAX_PERCENT, PRIORITY, offer_kind
from flows.rules import (
    FIELDS as RULE_FIELDS,
    MAX_COUNT as RULE_MAX_COUNT,
    MAX_MONEY as RULE_MAX_MONEY,
    OPS as RULE_OPS,
)

from ..money import exponent
from ..settings import SETTINGS, Message, email_address, refusal, text
from ..timeutil import zone


def translated(message):
    """A validator's message in the page's language (a settings `Message` by its msgid)."""
    if isinstance(message, Message):
        return gettext(message.msgid, **message.params)
    return message


class Parsed:
    """Run a core validator (a `parse` from app/settings.py) on the field: its refusal, translated,
    is the field's error; its parsed value is kept as `field.parsed`."""

    def __init__(self, parse, skip_blank=False):
        self.parse, self.skip_blank = parse, skip_blank

    def __call__(self, form, field):
        if self.skip_blank and not (field.data or "").strip():
            field.parsed = None
            return
        try:
            field.parsed = self.parse(field.data)
        except ValueError as exc:
            raise ValidationError(translated(refusal(exc))) from None


class Number:
    """A number in [lo, hi] (a comma counts as the decimal point); `field.parsed` is int or float."""

    def __init__(self, lo=-math.inf, hi=math.inf, integer=True, message=None):
        self.lo, self.hi, self.integer, self.message = lo, hi, integer, message

    def __call__(self, form, field):
        raw = (field.data or "").strip().replace(",", ".")
        try:
            value = float(raw)
        except ValueError:
            raise ValidationError(self.message or _l("enter a number")) from None
        if not math.isfinite(value):
            raise ValidationError(self.message or _l("enter a number"))
        if self.integer and value != int(value):
            raise ValidationError(self.message or _l("enter a whole number"))
        if value < self.lo or value > self.hi:
            raise ValidationError(self.message or _l("must be between %(lo)s and %(hi)s", lo=self.lo, hi=self.hi))
        field.parsed = int(value) if self.integer else value


def _timezone(form, field):
    name = (field.data or "").strip()
    try:
        zone(name)
    except ValueError:
        raise ValidationError(_l("unknown time zone %(name)s", name=repr(name))) from None


# --- The rules page: one field per settings declaration ---

_WIDGET_ATTRS = {"number": {"inputmode": "decimal"}, "integer": {"inputmode": "numeric"},
                 "multiline": {"rows": 3}, "secret": {"autocomplete": "new-password"},
                 "url": {"inputmode": "url"}}


def setting_field(setting, label):
    """The form field of a declared setting, from its kind; its validator is the setting's parse.

    A secret's field never shows a value back, and empty means "keep the saved one" (so blank
    is not judged here)."""
    field_class = {"multiline": TextAreaField, "secret": PasswordField, "email": EmailField,
                   "flag": BooleanField}.get(setting.kind, StringField)
    return field_class(label, validators=[Parsed(setting.parse, skip_blank=setting.secret)],
                       render_kw=dict(_WIDGET_ATTRS.get(setting.kind, {})))


def rules_form(keys, labels):
    """A RulesForm class with a field for each of `keys` (setting keys, and "timezone", the shop's
    column), labelled from `labels`, and a box that clears the saved SMTP server."""
    attrs = {}
    for key in keys:
        if key == "timezone":
            attrs[key] = StringField(labels.get(key), validators=[_timezone],
                                     render_kw={"list": "zones", "autocomplete": "off"})
        else:
            attrs[key] = setting_field(SETTINGS[key], labels.get(key, SETTINGS[key].label))
    attrs["smtp_url_clear"] = BooleanField(_l("Remove the saved SMTP server"))
    return type("RulesForm", (FlaskForm,), attrs)


# --- The flow editor ---

OFFER_KINDS = ("none", "percent", "amount", "free_shipping", "reuse")
# NEEDED[kind]: the step's fields an offer of that kind reads (a minimum order is optional).
NEEDED = {"percent": ["valid_days", "percent", "min_order"], "amount": ["valid_days", "amount", "min_order"],
          "free_shipping": ["valid_days", "min_order"]}


def _whole(value):
    return int(value) if value == int(value) else value


class FlowForm(FlaskForm):
    """A flow's settings: on/off, holdout, and per step its day and offer. Build one with `flow_form`."""

    enabled = BooleanField()
    holdout = StringField(validators=[Number(0, 50, integer=False)])
    currency = None  # the shop's: how many decimals an amount may have

    def _check_money(self, field, hi):
        """An amount in the shop's currency: more than 0, at most `hi`, no finer than its cents."""
        Number(integer=False)(self, field)
        if not 0 < field.parsed <= hi:
            raise ValidationError(gettext("must be more than 0 and at most %(max)s", max=f"{hi:,}"))
        if self.currency:
            digits = exponent(self.currency)
            if round(field.parsed, digits) != field.parsed:
                raise ValidationError(gettext("at most %(n)s decimals in %(currency)s", n=digits,
                                              currency=self.currency))

    def _check_step_field(self, i, name):
        """Check one number of step `i`'s offer; True when it is fine."""
        field = self[f"step{i}_{name}"]
        field.parsed = None
        if name == "min_order" and not (field.data or "").strip():
            return True  # no minimum
        try:
            if name == "valid_days":
                Number(1, 365)(self, field)
            elif name == "percent":
                Number(integer=False)(self, field)
                if not 0 < field.parsed <= MAX_PERCENT:
                    raise ValidationError(gettext("a discount must be more than 0 %% and at most %(max)s %%",
                                                  max=MAX_PERCENT))
            else:
                self._check_money(field, MAX_AMOUNT if name == "amount" else MAX_MIN_ORDER)
        except ValidationError as exc:
            field.errors = [*field.errors, str(exc.args[0])]
            return False
        return True

    def validate(self, extra_validators=None):
        """The fields one by one, then what ties the steps together (days in order, the offer's
        numbers only when the offer needs them, a minimum above the amount off)."""
        ok = super().validate(extra_validators)
        last = 0
        for i in range(self.step_count):
            delay = self[f"step{i}_delay"]
            if not delay.errors:
                if delay.parsed < last:
                    delay.errors.append(gettext("cannot come before the previous email (day %(day)s)", day=last))
                    ok = False
                else:
                    last = delay.parsed
            if not self.promotional:
                continue
            kind = self[f"step{i}_offer"].data
            if kind not in OFFER_KINDS or (kind == "reuse" and i == 0):
                self[f"step{i}_offer"].errors.append(gettext("choose an offer"))
                ok = False
            checked = [self._check_step_field(i, name) for name in NEEDED.get(kind, [])]
            ok = all(checked) and ok
            if kind == "amount" and all(checked):
                amount, minimum = self[f"step{i}_amount"], self[f"step{i}_min_order"]
                if minimum.parsed is not None and minimum.parsed <= amount.parsed:
                    minimum.errors = [*minimum.errors, gettext("must be more than the amount off")]
                    ok = False
        return ok

    def errors_by_field(self) -> dict:
        """{field name: first message}, as the templates show them."""
        return {name: str(errors[0]) for name, errors in self.errors.items() if errors and name != "csrf_token"}

    def to_flow(self, flow) -> dict:
        """The flow with this form's values (call after validate())."""
        new = {k: v for k, v in flow.items() if k != "name"}
        new["steps"] = [dict(step) for step in flow["steps"]]
        new["enabled"] = self.enabled.data
        new["holdout"] = self.holdout.parsed / 100
        for i, step in enumerate(new["steps"]):
            step["delay_days"] = self[f"step{i}_delay"].parsed
            if not self.promotional:
                continue
            kind = self[f"step{i}_offer"].data
            if kind == "none":
                step["offer"] = None
            elif kind == "reuse":
                step["offer"] = {"reuse": True}
            else:
                offer = {"valid_days": self[f"step{i}_valid_days"].parsed}
                if kind == "free_shipping":
                    offer["free_shipping"] = True
                else:
                    offer[kind] = _whole(self[f"step{i}_{kind}"].parsed)
                if self[f"step{i}_min_order"].parsed is not None:
                    offer["min_order"] = _whole(self[f"step{i}_min_order"].parsed)
                step["offer"] = offer
        return new


def flow_form(flow, formdata=None, currency=None):
    """A FlowForm for `flow`'s steps, filled from `formdata` (a POST) or from the saved flow;
    `currency` is the shop's (amounts are checked against its decimals)."""
    promotional = flow["kind"] == "promotional"
    attrs = {"step_count": len(flow["steps"]), "promotional": promotional, "currency": currency}
    data = {"enabled": flow["enabled"], "holdout": f"{flow['holdout'] * 100:g}"}
    for i, step in enumerate(flow["steps"]):
        attrs[f"step{i}_delay"] = StringField(validators=[Number(0, 365)])
        data[f"step{i}_delay"] = str(step["delay_days"])
        if promotional:
            offer = step.get("offer") or {}
            attrs[f"step{i}_offer"] = SelectField(choices=list(OFFER_KINDS), validate_choice=False)
            for name in ("percent", "amount", "valid_days", "min_order"):
                attrs[f"step{i}_{name}"] = StringField()
                data[f"step{i}_{name}"] = f"{offer[name]:g}" if offer.get(name) else ""
            data[f"step{i}_offer"] = offer_kind(offer) or "none"
    form_class = type("StepsForm", (FlowForm,), attrs)
    return form_class(formdata=formdata) if formdata is not None else form_class(formdata=None, data=data)


def _placeholders(form, field):
    """Only the placeholders flows.copy knows ({first_name}, {shop_name}, {code}, {expires})."""
    try:
        check_placeholders(field.data or "")
    except ValueError as exc:
        raise ValidationError(translated(refusal(exc))) from None


class _Count(Number):
    """A product count from 0 to PRODUCTS_MAX; empty: the default (`field.parsed` None)."""

    def __call__(self, form, field):
        if not (field.data or "").strip():
            field.parsed = None
            return
        super().__call__(form, field)


class CopyForm(FlaskForm):
    """One step's copy in one language (empty: the default text): subject, preheader, heading, intro,
    reason block, button label and product count; the same checks as flows.copy, with messages in the
    owner's language."""

    subject = StringField(validators=[Parsed(text(SUBJECT_MAX)), _placeholders])
    preheader = StringField(validators=[Parsed(text(PREHEADER_MAX)), _placeholders])
    heading = StringField(validators=[Parsed(text(HEADING_MAX)), _placeholders])
    intro = TextAreaField(validators=[Parsed(text(INTRO_MAX, multiline=True)), _placeholders])
    reason = TextAreaField(validators=[Parsed(text(REASON_MAX, multiline=True)), _placeholders])
    button = StringField(validators=[Parsed(text(BUTTON_MAX)), _placeholders])
    products = StringField(validators=[_Count(0, PRODUCTS_MAX, message=_l(
        "enter a whole number from %(lo)s to %(hi)s", lo=0, hi=PRODUCTS_MAX))])

    def copy(self) -> dict:
        """The parsed values as flows.copy.save_copy takes them (None: the default)."""
        return {name: getattr(self, name).parsed or None
                for name in ("subject", "preheader", "heading", "intro", "reason", "button")} | {
            "products": self.products.parsed}


class TestSendForm(FlaskForm):
    """Where to send a test email (the owner's own address)."""

    email = EmailField(validators=[Parsed(email_address(optional=False))])


class ProductForm(FlaskForm):
    """A product marked replenishable, with its cycle in days (empty: learned)."""

    replenishable = BooleanField()
    days = StringField()

    def validate(self, extra_validators=None):
        """The cycle is checked only for a product being marked."""
        ok = super().validate(extra_validators)
        self.days.parsed = None
        if ok and self.replenishable.data and (self.days.data or "").strip():
            try:
                Number(1, 3650, message=_l("enter a whole number of days from 1 to 3650"))(self, self.days)
            except ValidationError as exc:
                self.days.errors = [str(exc.args[0])]
                return False
        return ok


class SettleForm(FlaskForm):
    """Settle a message whose sending was interrupted: delivered ("yes") or not ("no"), the value of
    the button pressed (so not a hidden field: hidden_tag() renders only the CSRF token)."""

    delivered = StringField(validators=[AnyOf(["yes", "no"])])


_NEEDED = _l("Store URL, consumer key and consumer secret are all needed.")


class WooConnectForm(FlaskForm):
    """Connect a WooCommerce store through its grant screen."""

    store_url = StringField(_l("Store URL"), validators=[DataRequired(_l("Enter the store's URL."))])


class WooManualForm(FlaskForm):
    """Connect a WooCommerce store with keys made by hand in the store."""

    store_url = StringField(_l("Store URL"), validators=[DataRequired(_NEEDED)])
    consumer_key = StringField(_l("Consumer key"), validators=[DataRequired(_NEEDED)])
    consumer_secret = PasswordField(_l("Consumer secret"), validators=[DataRequired(_NEEDED)])


class CampaignForm(FlaskForm):
    """A new campaign (flows/campaigns.py): segment, template, subject, offer, time in the shop's time
    zone (empty: now) and holdout; the segment's choices are set by the page. The same checks as
    flows.campaigns.create, with messages in the owner's language."""

    segment = SelectField(validate_choice=True)
    template = SelectField(choices=[SelectChoice("vip_early_access", _l("VIP evening / early access")),
                                    SelectChoice("brand_launch", _l("Brand launch")),
                                    SelectChoice("thank_you", _l("Thank you (no sales pitch, no offer)"))])
    subject = StringField(validators=[Parsed(text(SUBJECT_MAX)), _placeholders])
    offer = SelectField(choices=[SelectChoice("none", _l("no offer")), SelectChoice("percent", _l("a percentage off")),
                                 SelectChoice("amount", _l("an amount off")),
                                 SelectChoice("free_shipping", _l("free shipping"))])
    value = StringField()
    at = StringField()
    holdout = StringField(default="10", validators=[Number(0, 50, message=_l(
        "enter a whole number from %(lo)s to %(hi)s", lo=0, hi=50))])

    def validate(self, extra_validators=None, timezone="UTC", now=None):
        """Field checks, then the offer's value (by its kind) and the time (in `timezone`, not past)."""
        ok = super().validate(extra_validators)
        kind = self.offer.data
        self.value.parsed = None
        if kind != "none" and self.template.data == "thank_you":
            self.offer.errors = [_l("a thank-you carries no offer")]
            ok = False
        elif kind in ("percent", "amount"):
            hi = MAX_PERCENT if kind == "percent" else MAX_AMOUNT
            try:
                Number(0, hi, integer=False)(self, self.value)
                if self.value.parsed <= 0:
                    raise ValidationError(_l("must be between %(lo)s and %(hi)s", lo=0, hi=hi))
            except ValidationError as exc:
                self.value.errors = [str(exc.args[0])]
                ok = False
        self.at.parsed = None
        raw = (self.at.data or "").strip()
        if raw:
            try:
                when = datetime.strptime(raw, "%Y-%m-%dT%H:%M").replace(tzinfo=zone(timezone))
            except ValueError:
                self.at.errors = [_l("enter a date and time")]
                return False
            self.at.parsed = when.astimezone(UTC)
            if now is not None and self.at.parsed < now - timedelta(minutes=5):
                self.at.errors = [_l("this moment has passed")]
                ok = False
            elif now is not None and self.at.parsed > now + timedelta(days=365):
                self.at.errors = [_l("at most a year ahead")]
                ok = False
        return ok

    def offer_text(self) -> str:
        """The offer as flows.campaigns.parse_offer takes it."""
        kind = self.offer.data
        return f"{kind}:{self.value.parsed:g}" if kind in ("percent", "amount") else kind


# --- Offer tests (flows/offer_arms.py): a step's offers to test, and ending a test ---

ARM_ROWS = 4  # rows the flow page shows for one test (flows.definitions allows up to MAX_ARMS)
ARM_KINDS = ("", "none", "percent", "amount", "free_shipping")  # "": the row is not used


class ArmsForm(FlaskForm):
    """The offers one step tests, a row each (kind, value, code validity); two or more rows used
    start or change the test, none ends it. Build one with `arms_form`."""

    currency = None
    _check_money = FlowForm._check_money

    def _check_row(self, j) -> bool:
        kind = self[f"arm{j}_kind"].data or ""
        value, days = self[f"arm{j}_value"], self[f"arm{j}_valid_days"]
        value.parsed = days.parsed = None
        try:
            if kind not in ARM_KINDS:
                raise ValidationError(gettext("choose an offer"))
            if kind in ("percent", "amount"):
                if kind == "percent":
                    Number(integer=False)(self, value)
                    if not 0 < value.parsed <= MAX_PERCENT:
                        raise ValidationError(gettext("a discount must be more than 0 %% and at most %(max)s %%",
                                                      max=MAX_PERCENT))
                else:
                    self._check_money(value, MAX_AMOUNT)
        except ValidationError as exc:
            value.errors = [*value.errors, str(exc.args[0])]
            return False
        if kind in ("percent", "amount", "free_shipping"):
            try:
                Number(1, 365)(self, days)
            except ValidationError as exc:
                days.errors = [*days.errors, str(exc.args[0])]
                return False
        minimum = self[f"arm{j}_min_order"]
        minimum.parsed = None
        if kind in ("percent", "amount", "free_shipping") and (minimum.data or "").strip():
            try:
                self._check_money(minimum, MAX_MIN_ORDER)
                if kind == "amount" and minimum.parsed <= value.parsed:
                    raise ValidationError(gettext("must be more than the amount off"))
            except ValidationError as exc:
                minimum.errors = [*minimum.errors, str(exc.args[0])]
                return False
        return True

    def validate(self, extra_validators=None):
        """Each used row on its own, then: none, or at least two offers."""
        ok = super().validate(extra_validators)
        ok = all([self._check_row(j) for j in range(ARM_ROWS)]) and ok
        used = [j for j in range(ARM_ROWS) if self[f"arm{j}_kind"].data]
        if ok and len(used) == 1:
            self["arm0_kind"].errors = [*self["arm0_kind"].errors,
                                        gettext("a test needs at least two offers (or none, to end it)")]
            ok = False
        return ok

    def arms(self) -> list | None:
        """The offers to test (None: no test), after validate()."""
        out = []
        for j in range(ARM_ROWS):
            kind = self[f"arm{j}_kind"].data
            if not kind:
                continue
            if kind == "none":
                out.append(None)
                continue
            offer = {"valid_days": self[f"arm{j}_valid_days"].parsed}
            offer[kind] = True if kind == "free_shipping" else _whole(self[f"arm{j}_value"].parsed)
            if self[f"arm{j}_min_order"].parsed is not None:
                offer["min_order"] = _whole(self[f"arm{j}_min_order"].parsed)
            out.append(offer)
        return out or None

    def errors_by_field(self) -> dict:
        """{field name: first message}, as the templates show them."""
        return {name: str(errors[0]) for name, errors in self.errors.items() if errors and name != "csrf_token"}


def arms_form(currency, formdata=None, arms=None):
    """An ArmsForm for the shop's `currency`, filled from `formdata` (a POST) or from saved `arms`."""
    attrs = {"currency": currency}
    data = {}
    for j in range(ARM_ROWS):
        attrs[f"arm{j}_kind"] = SelectField(choices=list(ARM_KINDS), validate_choice=False)
        attrs[f"arm{j}_value"] = StringField()
        attrs[f"arm{j}_valid_days"] = StringField()
        attrs[f"arm{j}_min_order"] = StringField()
        arm = (arms or [])[j] if j < len(arms or []) else "unused"
        if arm == "unused":
            continue
        kind = offer_kind(arm) or "none"
        data[f"arm{j}_kind"] = kind
        value = arm.get(kind) if arm and kind in ("percent", "amount") else None
        data[f"arm{j}_value"] = f"{value:g}" if value else ""
        data[f"arm{j}_valid_days"] = f"{arm['valid_days']:g}" if arm else ""
        data[f"arm{j}_min_order"] = f"{arm['min_order']:g}" if arm and arm.get("min_order") else ""
    form_class = type("ArmsStepForm", (ArmsForm,), attrs)
    return form_class(formdata=formdata) if formdata is not None else form_class(formdata=None, data=data)


class PromoteForm(FlaskForm):
    """Make one arm of an offer test the step's offer: the arm and the key of the test shown."""

    arm = StringField(validators=[DataRequired()])
    test = StringField(validators=[DataRequired()])


class AutoPromoteForm(FlaskForm):
    """The shop's `offer_test_auto_promote` setting."""

    auto = BooleanField()


# --- The owner's own segments (flows/rules.py) and a flow on one ---

# The fields of a segment rule, labelled for the condition rows (flows/rules.py FIELDS has them all).
SEGMENT_FIELDS = (
    ("clv", _l("Lifetime value")), ("orders", _l("Orders")), ("aov", _l("Average order value")),
    ("days_since_first", _l("Days since the first order")), ("days_since_last", _l("Days since the last order")),
    ("brand", _l("Bought the brand")), ("brand_every_order", _l("Every order held the brand")),
    ("category", _l("Bought in the category")), ("product", _l("Bought the product (id, SKU or title)")),
    ("segment", _l("Is in the built-in segment")), ("p_alive", _l("Chance still a customer (0–1)")),
    ("p_purchase_30d", _l("Chance of an order in 30 days (0–1)")),
    ("predicted_clv_12m", _l("Predicted value, 12 months")), ("rfm_stage", _l("RFM stage")),
    ("locale", _l("Language (en, nl, pl, …)")), ("accepts_marketing", _l("Accepts marketing email (yes/no)")),
)
_TRUE, _FALSE = ("true", "yes", "1", "ja", "tak"), ("false", "no", "0", "nee", "nie")
CONDITION_ROWS = 6


class ConditionForm(Form):
    """One condition row of the segment editor: field, operator, value (a list for `in`: comma-separated)."""

    field = SelectField(choices=[SelectChoice("", "—"), *(SelectChoice(*f) for f in SEGMENT_FIELDS)],
                        validate_choice=False)
    op = SelectField(choices=[SelectChoice(op) for op in RULE_OPS], validate_choice=False)
    value = StringField()

    def condition(self):
        """{"field", "op", "value"} with the value typed for its field; None for an empty row."""
        field, op, raw = self.field.data, self.op.data, (self.value.data or "").strip()
        if not field:
            return None
        parts = [p.strip() for p in raw.split(",")] if op == "in" else [raw]
        values = [_rule_value(RULE_FIELDS.get(field, ("text",))[0], p) for p in parts if p or op != "in"]
        return {"field": field, "op": op, "value": values if op == "in" else values[0]}

    def check_value(self) -> bool:
        """The typed value(s) checked for the row's field, the error in the page's language next to
        the value (the rule's own check, in flows/rules.py, speaks English with the rule's internal
        names); True when the row is empty or fine."""
        field, op, raw = self.field.data, self.op.data, (self.value.data or "").strip()
        if field not in RULE_FIELDS:
            return True  # empty row (or a field no form offers: the rule's check refuses it)
        kind, _sql, ops = RULE_FIELDS[field]
        if op not in ops:
            self.value.errors = [gettext("this field takes %(ops)s", ops=" ".join(ops))]
            return False
        parts = [p.strip() for p in raw.split(",") if p.strip()] if op == "in" else [raw]
        if not parts or not all(parts):
            self.value.errors = [gettext("a value is required")]
            return False
        number = _ROW_NUMBERS.get(kind)
        for part in parts:
            try:
                if number:
                    number(self, _Typed(part))
                elif kind == "bool" and part.lower() not in _TRUE + _FALSE:
                    raise ValidationError(_l("enter yes or no"))
            except ValidationError as exc:
                self.value.errors = [str(exc.args[0])]
                return False
        return True


class _Typed:
    """One typed value, as a field for a validator."""

    def __init__(self, data):
        self.data = data


_ROW_NUMBERS = {"money": Number(0, RULE_MAX_MONEY, integer=False), "count": Number(0, RULE_MAX_COUNT),
                "probability": Number(0, 1, integer=False)}


def _rule_value(kind, text):
    """What the owner typed, as the rule's JSON holds it (the rule's checks judge it)."""
    if kind in ("money", "count", "probability"):
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            return text  # refused by the rule's check, with the reason
        return int(number) if math.isfinite(number) and number == int(number) else number
    if kind == "bool":
        lowered = text.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    return text


class SegmentForm(FlaskForm):
    """A segment: its name and rule, as condition rows joined by all or any, or (advanced) the rule's JSON."""

    name = StringField(validators=[DataRequired(message=_l("a segment needs a name"))])
    match = SelectField(choices=[SelectChoice("all", _l("all of these")), SelectChoice("any", _l("any of these"))],
                        default="all")
    conditions = FieldList(FormField(ConditionForm), min_entries=CONDITION_ROWS)
    rule_json = TextAreaField()

    def validate(self, extra_validators=None):
        """The fields, and each condition row's value for its field (unless the JSON is given)."""
        ok = super().validate(extra_validators)
        if not (self.rule_json.data or "").strip():
            ok = all([row.form.check_value() for row in self.conditions]) and ok
        return ok

    def rule(self):
        """The rule: the JSON when given, else the condition rows (flows.rules checks either)."""
        if (self.rule_json.data or "").strip():
            return self.rule_json.data.strip()
        return {self.match.data if self.match.data in ("all", "any") else "all":
                [c for c in (row.form.condition() for row in self.conditions) if c]}


class OwnerFlowForm(FlaskForm):
    """A new flow on a saved segment: its name, when a customer enters, the first email's offer and words."""

    name = StringField(validators=[DataRequired(message=_l("a flow needs a name"))])
    days = StringField(default="0", validators=[Number(0, 3650)])
    offer = SelectField(choices=[SelectChoice("none", _l("no offer")), SelectChoice("percent", _l("a percentage off")),
                                 SelectChoice("free_shipping", _l("free shipping"))], default="none")
    percent = StringField(default="10")
    valid_days = StringField(default="7")
    reminder = BooleanField()
    before = SelectField(choices=[SelectChoice(""), *(SelectChoice(name) for name in PRIORITY)], default="")
    subject = StringField(validators=[Parsed(text(SUBJECT_MAX)), _placeholders])
    intro = TextAreaField(validators=[Parsed(text(INTRO_MAX, multiline=True)), _placeholders])

    def validate(self, extra_validators=None):
        """The offer's numbers only when the offer needs them."""
        ok = super().validate(extra_validators)
        if self.offer.data != "none":
            try:
                Number(1, 365)(self, self.valid_days)
            except ValidationError as exc:
                self.valid_days.errors = [str(exc.args[0])]
                ok = False
        if self.offer.data == "percent":
            try:
                Number(1, MAX_PERCENT, integer=False)(self, self.percent)
            except ValidationError as exc:
                self.percent.errors = [str(exc.args[0])]
                ok = False
        return ok

    def definition(self) -> dict:
        """owner_flows.create_flow's arguments (call after validate())."""
        offer = None
        if self.offer.data == "percent":
            offer = {"percent": _whole(self.percent.parsed), "valid_days": self.valid_days.parsed}
        elif self.offer.data == "free_shipping":
            offer = {"free_shipping": True, "valid_days": self.valid_days.parsed}
        offers = [offer, {"reuse": True}] if offer and self.reminder.data else [offer]
        words = {k: getattr(self, k).parsed or None for k in ("subject", "intro")}
        return {"days_since_last_order": self.days.parsed, "offers": offers, "before": self.before.data or None,
                "words": words if any(words.values()) else None}

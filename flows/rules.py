"""The owner's segment rules (SPEC "JSON shapes"), checked and compiled to one parameterised SQL condition.

A rule is {"all": [...]} or {"any": [...]}, whose items are conditions {"field", "op", "value"} or
rules again. The condition reads `sn` (the customer's row of customer_snapshots) and `c` (the
customer); what they bought is an uncorrelated IN (SELECT ...) over paid orders before the
snapshot's `now`, which SQLite computes once per statement, so a rule costs one pass over the shop's
customers. Values are never put into the SQL text: each becomes a named parameter (:r0, :r1, ...).

Values are checked per field: money (clv, aov, predicted_clv_12m) in the shop's currency, as the
owner writes it (50 or 49.95), compiled to minor units; counts and days as whole numbers;
probabilities from 0 to 1; the RFM stage one of its names; a language code; accepts_marketing
true or false; brand, category and product as text (product: its id, SKU or title); segment a
built-in segment's name. A customer without a value (p_alive of a one-time buyer, aov of someone
who never bought) matches no comparison of it, `!=` included. For the bought-something fields `!=`
means "never bought" and `in` "bought any of".

Hand-written rather than a library: the language is SPEC's own and small, and the compiler must
bind every value as a parameter and keep each field's SQL set-based; a generic query builder
(SQLAlchemy, pypika) would add a dependency for ~200 lines and still need the field table below.
"""
import json
import math
import re
from decimal import Decimal

from app.db import CASEFOLD
from app.money import exponent, to_minor
from app.settings import N_, Message

OPS = ("=", "!=", "<", "<=", ">", ">=", "in")
EQUALITY = ("=", "!=", "in")
MAX_DEPTH = 4           # a rule in a rule in a rule in a rule
MAX_CONDITIONS = 40
MAX_VALUES = 100        # in one `in` list
MAX_TEXT = 200
MAX_RULE_CHARS = 20_000
MAX_MONEY = 1_000_000_000
MAX_COUNT = 1_000_000
# The RFM stages of flows/scores.py (not imported: it loads scipy; tests/test_owner_segments.py checks they agree).
RFM_STAGES = ("champions", "loyal", "potential", "at_risk", "hibernating", "lost")
# Built-in segments an owner segment may name: flows/segments.py BASE_SEGMENTS, and the families
# computed per brand, category, ... (their names hold a ':', which an owner's segment name may not).
BASE_SEGMENTS = ("new", "one_time", "active", "lapsed", "lost", "vip", "vip_at_risk", "replenish_due")

# What was bought: paid orders before the snapshot's now, with the product's brand and category
# where the line has none (as flows/metrics.py's purchase_lines). The lines drive (CROSS JOIN keeps
# them the outer loop): one sequential pass over them beats looking up each order's lines by index.
_BOUGHT = """SELECT o.customer_id FROM order_lines l CROSS JOIN orders o ON o.id = l.order_id
    LEFT JOIN products pr ON pr.id = l.product_id
    WHERE l.shop_id = :shop AND o.status = 'paid' AND o.is_test = 0 AND o.customer_id IS NOT NULL
      AND o.created_at < :now AND {match}"""
# Every paid order before now held the brand (and there was at least one): the orders holding it,
# found in one pass over the lines, counted against all of the customer's orders.
_EVERY_ORDER = """SELECT o.customer_id FROM orders o
    LEFT JOIN (SELECT DISTINCT l.order_id FROM order_lines l LEFT JOIN products pr ON pr.id = l.product_id
               WHERE l.shop_id = :shop AND {match}) AS held ON held.order_id = o.id
    WHERE o.shop_id = :shop AND o.status = 'paid' AND o.is_test = 0 AND o.customer_id IS NOT NULL
      AND +o.created_at < :now
    GROUP BY o.customer_id
    HAVING COUNT(held.order_id) = COUNT(*)"""
# A refresh of the whole shop reads those customers ("parts") on its second connection while it
# computes the snapshot (`compile_rule(..., parts=[])`, flows/owner_segments.py); each comes back
# as one JSON array, bound as :bought<n>.
# The same two, asked of one customer at a time (`compile_rule(..., each=True)`): through the
# customer's own orders, for a refresh of a few changed customers, where reading every line of the
# shop once per condition would cost seconds.
_BOUGHT_EACH = """{neg}EXISTS (SELECT 1 FROM orders o JOIN order_lines l ON l.order_id = o.id
    LEFT JOIN products pr ON pr.id = l.product_id
    WHERE o.customer_id = sn.customer_id AND o.shop_id = :shop AND o.status = 'paid' AND o.is_test = 0
      AND o.created_at < :now AND {match})"""
_EVERY_ORDER_EACH = """(EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = sn.customer_id AND o.shop_id = :shop
        AND o.status = 'paid' AND o.is_test = 0 AND o.created_at < :now)
    AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = sn.customer_id AND o.shop_id = :shop
        AND o.status = 'paid' AND o.is_test = 0 AND o.created_at < :now
        AND NOT EXISTS (SELECT 1 FROM order_lines l LEFT JOIN products pr ON pr.id = l.product_id
                        WHERE l.order_id = o.id AND {match})))"""
_IN_SEGMENT = """sn.customer_id {neg}IN (SELECT g.customer_id FROM customer_segments g
    WHERE g.shop_id = :shop AND g.segment IN ({values}))"""
# The customer's language: "nl-BE", "nl_NL", "NL" -> "nl"; without one, the shop's.
_LANGUAGE = ("lower(substr(replace(COALESCE(NULLIF(c.locale, ''), :shop_locale), '_', '-') || '-', 1,"
             " instr(replace(COALESCE(NULLIF(c.locale, ''), :shop_locale), '_', '-') || '-', '-') - 1))")
_CONSENT = "(c.accepts_marketing = 1 AND c.unsubscribed_at IS NULL AND c.marketing_inactive_at IS NULL)"

# field -> (kind, snapshot column or SQL, ops)
FIELDS = {
    "clv": ("money", "sn.clv_minor", OPS),
    "orders": ("count", "sn.purchases", OPS),
    "aov": ("money", "sn.aov_minor", OPS),
    "days_since_first": ("count", "sn.days_since_first", OPS),
    "days_since_last": ("count", "sn.days_since_last", OPS),
    "brand": ("bought", "COALESCE(l.brand, pr.brand)", EQUALITY),
    "brand_every_order": ("every_order", "COALESCE(l.brand, pr.brand)", EQUALITY),
    "category": ("bought", "COALESCE(l.category, pr.category)", EQUALITY),
    "product": ("product", None, EQUALITY),
    "segment": ("segment", None, EQUALITY),
    "p_alive": ("probability", "sn.p_alive", OPS),
    "p_purchase_30d": ("probability", "sn.p_purchase_30d", OPS),
    "predicted_clv_12m": ("money", "sn.predicted_clv_12m_minor", OPS),
    "rfm_stage": ("stage", "sn.stage", EQUALITY),
    "locale": ("language", _LANGUAGE, EQUALITY),
    "accepts_marketing": ("bool", _CONSENT, ("=", "!=")),
}
# Columns another part of Winback adds to customer_snapshots: until it is there, a rule on it is refused.
OPTIONAL_COLUMNS = {"p_purchase_30d": "p_purchase_30d", "predicted_clv_12m": "predicted_clv_12m_minor"}
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RuleError(ValueError):
    """A rule that cannot be used, with the reason in the owner's terms."""


def parse(rule) -> dict:
    """The rule from JSON text (or an already parsed dict); RuleError when it is not JSON or too large."""
    if isinstance(rule, (bytes, str)):
        if len(rule) > MAX_RULE_CHARS:
            raise RuleError(Message(N_("a rule is at most %(n)s characters"), n=f"{MAX_RULE_CHARS:,}"))
        try:
            rule = json.loads(rule)
        except ValueError as exc:
            raise RuleError(Message(N_("the rule is not JSON: %(error)s"), error=str(exc))) from None
        except RecursionError:  # "[[[[...": deeper than the JSON decoder goes
            raise RuleError(Message(N_("the rule nests too deep (at most %(n)s rules deep)"), n=MAX_DEPTH)) from None
    if not isinstance(rule, dict):
        raise RuleError(Message(N_('a rule is {"all": [...]} or {"any": [...]}')))
    return rule


def snapshot_columns(db) -> set[str]:
    """The columns customer_snapshots has in this database (some fields need a newer one)."""
    return {row[1] for row in db.execute("PRAGMA table_info(customer_snapshots)")}


class _Compiler:
    def __init__(self, currency, columns, each=False, parts=None):
        self.currency = currency
        self.columns = columns
        self.each, self.parts = each, parts
        self.params = {}
        self.conditions = 0

    def bind(self, value) -> str:
        name = f"r{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def rule(self, rule, depth, where) -> str:
        if not isinstance(rule, dict) or len(rule) != 1 or next(iter(rule)) not in ("all", "any"):
            raise RuleError(Message(N_('%(where)s: a rule is {"all": [...]} or {"any": [...]}'), where=where))
        if depth > MAX_DEPTH:
            raise RuleError(Message(N_("%(where)s: rules nest at most %(n)s deep"), where=where, n=MAX_DEPTH))
        joiner, items = next(iter(rule.items()))
        if not isinstance(items, list) or not items:
            raise RuleError(Message(N_('%(where)s: "%(joiner)s" needs a list of at least one condition'), where=where,
                                    joiner=joiner))
        parts = []
        for i, item in enumerate(items, 1):
            here = f"{where}.{joiner}[{i}]"
            if isinstance(item, dict) and "field" in item:
                parts.append(self.condition(item, here))
            else:
                parts.append(self.rule(item, depth + 1, here))
        return "(" + (" AND " if joiner == "all" else " OR ").join(parts) + ")"

    def condition(self, cond, where) -> str:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise RuleError(Message(N_("a rule has at most %(n)s conditions"), n=MAX_CONDITIONS))
        if set(cond) != {"field", "op", "value"}:
            raise RuleError(Message(N_('%(where)s: a condition is {"field", "op", "value"}'), where=where))
        field, op, value = cond["field"], cond["op"], cond["value"]
        if not isinstance(field, str):
            raise RuleError(Message(N_("%(where)s: a field is a name such as clv (the fields are %(fields)s)"),
                                    where=where, fields=", ".join(FIELDS)))
        if field not in FIELDS:
            raise RuleError(Message(N_("%(where)s: unknown field %(field)s (the fields are %(fields)s)"),
                                    where=where, field=repr(field), fields=", ".join(FIELDS)))
        kind, sql, ops = FIELDS[field]
        if op not in ops:
            raise RuleError(Message(N_("%(where)s: %(field)s takes the operators %(ops)s, not %(op)s"),
                                    where=where, field=field, ops=" ".join(ops), op=repr(op)))
        column = OPTIONAL_COLUMNS.get(field)
        if column and column not in self.columns:
            raise RuleError(Message(N_("%(where)s: %(field)s is not available yet (no scores of that kind in this"
                                       " installation)"), where=where, field=field))
        if op == "in":
            if not isinstance(value, list) or not value:
                raise RuleError(Message(N_("%(where)s: 'in' takes a list of values"), where=where))
            if len(value) > MAX_VALUES:
                raise RuleError(Message(N_("%(where)s: 'in' takes at most %(n)s values"), where=where, n=MAX_VALUES))
            values = [self.value(field, kind, v, where) for v in value]
        else:
            values = [self.value(field, kind, value, where)]
        return self.sql(kind, sql, op, values)

    def value(self, field, kind, value, where):
        """The checked value, as the SQL compares it."""
        if kind in ("money", "count", "probability"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RuleError(Message(N_("%(where)s: %(field)s takes a number, not %(value)s"), where=where,
                                        field=field, value=json.dumps(value)))
            if kind == "money":
                if not 0 <= value <= MAX_MONEY:
                    raise RuleError(Message(N_("%(where)s: %(field)s is an amount from 0 to %(max)s %(currency)s"),
                                            where=where, field=field, max=f"{MAX_MONEY:,}", currency=self.currency))
                amount = Decimal(str(value))
                if amount != round(amount, exponent(self.currency)):
                    raise RuleError(Message(N_("%(where)s: %(field)s: %(currency)s has %(n)s decimals"), where=where,
                                            field=field, currency=self.currency, n=exponent(self.currency)))
                return to_minor(amount, self.currency)
            if kind == "count":
                if value != int(value) or not 0 <= value <= MAX_COUNT:
                    raise RuleError(Message(N_("%(where)s: %(field)s takes a whole number from 0 to %(max)s"),
                                            where=where, field=field, max=f"{MAX_COUNT:,}"))
                return int(value)
            if not 0 <= value <= 1:
                raise RuleError(Message(N_("%(where)s: %(field)s is a probability from 0 to 1"), where=where, field=field))
            return float(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise RuleError(Message(N_("%(where)s: %(field)s takes true or false"), where=where, field=field))
            return value
        if not isinstance(value, str) or not value.strip():
            raise RuleError(Message(N_("%(where)s: %(field)s takes text"), where=where, field=field))
        value = value.strip()
        if len(value) > MAX_TEXT or _CONTROL.search(value):
            raise RuleError(Message(N_("%(where)s: %(field)s: at most %(n)s characters, on one line"), where=where,
                                    field=field, n=MAX_TEXT))
        if kind == "stage" and value not in RFM_STAGES:
            raise RuleError(Message(N_("%(where)s: rfm_stage is one of %(stages)s"), where=where,
                                    stages=", ".join(RFM_STAGES)))
        if kind == "language":
            value = value.lower()
            if not _LANGUAGE_CODE.match(value):
                raise RuleError(Message(N_("%(where)s: locale takes a language code such as en, nl or pl"), where=where))
        if kind == "segment" and value not in BASE_SEGMENTS and ":" not in value:
            raise RuleError(Message(N_("%(where)s: segment takes a built-in segment (%(segments)s, "
                                       "brand_loyal:<brand>, category_lapsed:<category>, ...)"),
                                    where=where, segments=", ".join(BASE_SEGMENTS)))
        return value

    def bought(self, select, neg=""):
        """`sn` among the customers `select` (_BOUGHT or _EVERY_ORDER, formatted) gives; with parts, read
        elsewhere and bound as the JSON array :bought<n>."""
        if self.parts is None:
            return f"sn.customer_id {neg}IN ({select})"
        self.parts.append((select, self.params))
        return f"sn.customer_id {neg}IN (SELECT value FROM json_each(:bought{len(self.parts) - 1}))"

    def text_in(self, sql, values) -> str:
        """`sql` equal to one of the texts `values` whatever their case: SQLite's NOCASE while the values
        are ASCII (it folds A-Z only), else Python's casefold (CASEFOLD, which the connection must
        have: app.db.casefold_function): "ŁĄKA" is the brand "Łąka". (An ASCII value still misses the few stored
        spellings whose letters fold to ASCII ones, "STRAßE" for "strasse": the price of keeping the common
        case on SQLite's own comparison, with no Python call per order line.)"""
        if all(v.isascii() for v in values):
            return f"{sql} COLLATE NOCASE IN ({', '.join(self.bind(v) for v in values)})"
        return f"{CASEFOLD}({sql}) IN ({', '.join(self.bind(v.casefold()) for v in values)})"

    def sql(self, kind, sql, op, values) -> str:
        negate = op == "!="
        neg = "NOT " if negate else ""
        if kind == "bool":
            return f"({neg}{sql})" if values[0] else f"({'' if negate else 'NOT '}{sql})"
        if kind == "every_order":  # `in`: for one of the brands, every order held it
            # Each brand is a pass over the shop's orders of its own: it counts as a condition.
            self.conditions += len(values) - 1
            if self.conditions > MAX_CONDITIONS:
                raise RuleError(Message(N_("a rule has at most %(n)s conditions (each brand of a"
                                           " brand_every_order list counts as one)"), n=MAX_CONDITIONS))
            each = [_EVERY_ORDER_EACH.format(match=self.text_in(sql, [v])) if self.each
                    else self.bought(_EVERY_ORDER.format(match=self.text_in(sql, [v]))) for v in values]
            return f"({neg}(" + " OR ".join(each) + "))"
        if kind == "bought":
            match = self.text_in(sql, values)
            return _BOUGHT_EACH.format(neg=neg, match=match) if self.each else self.bought(_BOUGHT.format(match=match), neg)
        names = ", ".join(self.bind(v) for v in values)
        if kind == "product":
            match = (f"(pr.external_id IN ({names}) OR l.sku IN ({names})"
                     f" OR {self.text_in('COALESCE(l.title, pr.title)', values)})")
            return _BOUGHT_EACH.format(neg=neg, match=match) if self.each else self.bought(_BOUGHT.format(match=match), neg)
        if kind == "segment":
            return _IN_SEGMENT.format(neg=neg, values=names)
        if op == "in":
            return f"{sql} IN ({names})"
        return f"{sql} {'<>' if negate else op} {names}"


def compile_rule(rule, currency, columns, each=False, parts=None) -> tuple[str, dict]:
    """(SQL condition over `sn` and `c`, its parameters :r0, :r1, ...) for a checked rule; RuleError
    with the reason otherwise. The caller binds :shop, :now (the snapshot's) and :shop_locale too.
    `columns`: customer_snapshots' columns (snapshot_columns). `each`: what was bought is asked of
    each customer's own orders (for a few customers) rather than read for the whole shop at once.
    `parts` (a list): each read of what was bought is appended to it as (SELECT, its parameters), and
    the condition reads its customers from the parameter :bought<index> (a JSON array of ids)."""
    compiler = _Compiler(currency, columns, each, parts)
    sql = compiler.rule(parse(rule), 1, "rule")
    return sql, compiler.params


"""The owner's own segments: the rule language (every field and operator, all/any), bad rules refused
with nothing saved, members refreshed with the snapshot, and the commands."""
import json

import pytest

from flows import owner_segments, rules, scores
from flows.owner_segments import SegmentError, save_segment
from flows.refresh import refresh
from flows.rules import RuleError
from tests.builders import History, at

WELLA = {"product": "p1", "title": "Wella shampoo", "brand": "Wella", "category": "Hair"}


def build(db):
    """A: two Wella orders (day 0 and 40, €20 each), Dutch; B: a €500 order of another brand (day
    10) and a Wella one (day 90, €50), no consent, no language (the shop's: en); C: one €30
    order on day 95 (product p3 "Shampoo", Wella), Polish. As of day 100."""
    h = History(db)
    h.repeat("A", [0, 40], total="20", lines=[WELLA], locale="nl-NL")
    h.order("B", 10, total="500", lines=[{"product": "p2", "title": "Dryer", "brand": "Other", "category": "Tools"}],
            consent=False)
    h.order("B", 90, total="50", lines=[WELLA], consent=False)
    h.order("C", 95, total="30", lines=[{"product": "p3", "title": "Shampoo", "brand": "Wella", "category": "Hair"}],
            locale="pl")
    shop = h.write()
    refresh(db, shop, at(100))
    return shop


def scored(db):
    """Known model scores on the snapshot (the tiny shop has no model): A 0.2 / at_risk, B 0.9 /
    champions, C none / potential; and the scores another part of Winback adds, as the merge will."""
    columns = rules.snapshot_columns(db)
    for column in rules.OPTIONAL_COLUMNS.values():
        if column not in columns:
            db.execute(f"ALTER TABLE customer_snapshots ADD COLUMN {column} REAL")
    for ext, alive, stage, p30, clv12 in (("A", 0.2, "at_risk", 0.05, 10000), ("B", 0.9, "champions", 0.6, 90000),
                                          ("C", None, "potential", None, None)):
        db.execute("UPDATE customer_snapshots SET p_alive = ?, stage = ?, p_purchase_30d = ?, predicted_clv_12m_minor = ?"
                   " WHERE customer_id = (SELECT id FROM customers WHERE external_id = ?)",
                   [alive, stage, p30, clv12, ext])
    db.conn.commit()


@pytest.fixture
def shop(db):
    shop = build(db)
    scored(db)
    return shop


def who(db, shop, rule):
    doc = owner_segments.preview(db, shop, rule, limit=100)
    members = {row["customer"] for row in doc["sample"]}
    assert doc["count"] == len(members)
    return members


def cond(field, op, value):
    return {"all": [{"field": field, "op": op, "value": value}]}


CASES = [
    ("clv", "=", 40, {"A"}), ("clv", "!=", 40, {"B", "C"}), ("clv", "<", 40, {"C"}), ("clv", "<=", 40, {"A", "C"}),
    ("clv", ">", 40, {"B"}), ("clv", ">=", 30, {"A", "B", "C"}), ("clv", "in", [30, 550], {"B", "C"}),
    ("clv", ">=", 39.99, {"A", "B"}),
    ("orders", "=", 1, {"C"}), ("orders", ">", 1, {"A", "B"}),
    ("aov", ">=", 100, {"B"}), ("aov", "<", 25, {"A"}),
    ("days_since_first", ">=", 90, {"A", "B"}), ("days_since_first", "<=", 5, {"C"}),
    ("days_since_last", "<", 30, {"B", "C"}), ("days_since_last", "=", 60, {"A"}),
    ("brand", "=", "wella", {"A", "B", "C"}), ("brand", "!=", "Other", {"A", "C"}),
    ("brand", "in", ["Other", "x"], {"B"}),
    ("brand_every_order", "=", "Wella", {"A", "C"}), ("brand_every_order", "!=", "Wella", {"B"}),
    ("brand_every_order", "in", ["Other", "WELLA"], {"A", "C"}),
    ("category", "=", "Tools", {"B"}), ("category", "!=", "Tools", {"A", "C"}),
    ("category", "in", ["hair"], {"A", "B", "C"}),
    ("product", "=", "p2", {"B"}), ("product", "=", "shampoo", {"C"}), ("product", "!=", "p1", {"C"}),
    ("product", "in", ["Dryer", "p3"], {"B", "C"}),
    ("segment", "=", "vip", {"B"}), ("segment", "=", "one_time", {"C"}), ("segment", "!=", "one_time", {"A", "B"}),
    ("segment", "in", ["new", "vip"], {"B", "C"}), ("segment", "=", "brand_loyal:Wella", {"A"}),
    ("p_alive", "<", 0.5, {"A"}), ("p_alive", "!=", 0.2, {"B"}), ("p_alive", ">=", 0, {"A", "B"}),
    ("p_purchase_30d", ">=", 0.5, {"B"}), ("p_purchase_30d", "<=", 0.5, {"A"}),
    ("predicted_clv_12m", ">", 100, {"B"}), ("predicted_clv_12m", ">=", 100, {"A", "B"}),
    ("rfm_stage", "=", "champions", {"B"}), ("rfm_stage", "!=", "champions", {"A", "C"}),
    ("rfm_stage", "in", ["at_risk", "potential"], {"A", "C"}),
    ("locale", "=", "nl", {"A"}), ("locale", "=", "EN", {"B"}), ("locale", "!=", "en", {"A", "C"}),
    ("locale", "in", ["pl", "nl"], {"A", "C"}),
    ("accepts_marketing", "=", True, {"A", "C"}), ("accepts_marketing", "=", False, {"B"}),
    ("accepts_marketing", "!=", True, {"B"}),
]


def test_every_field_and_operator_is_covered():
    assert {c[0] for c in CASES} == set(rules.FIELDS)
    assert {c[1] for c in CASES} == set(rules.OPS)
    assert rules.RFM_STAGES == scores.STAGES  # the stages a rule may name are the ones the scores write


@pytest.mark.parametrize("field, op, value, expected", CASES, ids=[f"{c[0]} {c[1]} {c[2]}" for c in CASES])
def test_each_condition_selects_the_customers_it_describes(db, shop, field, op, value, expected):
    assert who(db, shop, cond(field, op, value)) == expected


def test_text_other_than_ascii_matches_whatever_its_case(db):
    """SQLite folds only A-Z: a brand, category or title with other letters matches in any case too."""
    h = History(db)
    h.repeat("Z", [0, 20], lines=[{"product": "z1", "title": "Żel ŁĄKA", "brand": "ŁĄKA", "category": "Ülke"}])
    h.order("Y", 5, lines=[{"product": "y1", "title": "Other", "brand": "Łąkowa", "category": "Tools"}])
    shop = h.write()
    refresh(db, shop, at(30))
    assert who(db, shop, cond("brand", "=", "łąka")) == {"Z"}
    assert who(db, shop, cond("brand", "!=", "Łąka")) == {"Y"}
    assert who(db, shop, cond("brand_every_order", "=", "łĄka")) == {"Z"}
    assert who(db, shop, cond("category", "in", ["ülke", "nothing"])) == {"Z"}
    assert who(db, shop, cond("product", "=", "żel łąka")) == {"Z"}
    assert who(db, shop, cond("brand", "=", "ŁĄKOWA")) == {"Y"}


def test_all_and_any_nest(db, shop):
    rule = {"all": [{"field": "brand", "op": "=", "value": "Wella"},
                    {"any": [{"field": "orders", "op": "=", "value": 1}, {"field": "clv", "op": ">", "value": 500}]}]}
    assert who(db, shop, rule) == {"B", "C"}
    anyone = {"any": [{"field": "locale", "op": "=", "value": "nl"}, {"all": [
        {"field": "accepts_marketing", "op": "=", "value": False},
        {"field": "days_since_last", "op": "<", "value": 11}]}]}
    assert who(db, shop, anyone) == {"A", "B"}
    deep = {"all": [{"any": [{"all": [{"field": "orders", "op": ">=", "value": 2}]}]}]}  # four levels
    assert who(db, shop, deep) == {"A", "B"}


def test_values_are_bound_never_written_into_the_sql(db, shop):
    sneaky = "x') OR 1=1 --"
    sql, params = owner_segments.compile_for(db, shop, cond("brand", "=", sneaky))
    assert sneaky not in sql and sneaky in params.values()
    assert who(db, shop, cond("brand", "=", sneaky)) == set()


BAD = [
    ("unknown field", {"all": [{"field": "height", "op": "=", "value": 1}]}, "unknown field 'height'"),
    ("bad op", cond("clv", "like", 3), "clv takes the operators"),
    ("order op on text", cond("brand", ">", "Wella"), "brand takes the operators = != in"),
    ("money as text", cond("clv", ">=", "100"), "clv takes a number"),
    ("bool as number", cond("orders", "=", True), "orders takes a number"),
    ("fraction of an order", cond("orders", ">=", 1.5), "whole number"),
    ("negative amount", cond("clv", ">=", -1), "amount from 0"),
    ("too fine an amount", cond("clv", ">=", 10.001), "EUR has 2 decimals"),
    ("probability over 1", cond("p_alive", ">", 2), "probability from 0 to 1"),
    ("consent as text", cond("accepts_marketing", "=", "yes"), "true or false"),
    ("in without a list", cond("clv", "in", 5), "'in' takes a list"),
    ("empty in", cond("brand", "in", []), "'in' takes a list"),
    ("too many values", cond("orders", "in", list(range(101))), "at most 100 values"),
    ("unknown stage", cond("rfm_stage", "=", "sleepy"), "rfm_stage is one of"),
    ("not a language", cond("locale", "=", "dutch"), "language code"),
    ("not a built-in segment", cond("segment", "=", "my friends"), "segment takes a built-in segment"),
    ("empty text", cond("brand", "=", "  "), "brand takes text"),
    ("too deep", {"all": [{"any": [{"all": [{"any": [{"all": [{"field": "orders", "op": ">", "value": 0}]}]}]}]}]},
     "nest at most 4 deep"),
    ("empty rule", {"all": []}, "needs a list of at least one condition"),
    ("two joiners", {"all": [cond("orders", ">", 0)["all"][0]], "any": []}, 'a rule is {"all"'),
    ("extra key", {"all": [{"field": "orders", "op": ">", "value": 0, "or": 1}]}, 'a condition is {"field"'),
    ("too many conditions", {"any": [{"field": "orders", "op": "=", "value": i} for i in range(41)]},
     "at most 40 conditions"),
    ("not JSON", '{"all": [', "not JSON"),
    ("not a rule", "[1, 2]", 'a rule is {"all"'),
    ("field as a list", {"all": [{"field": ["clv"], "op": ">", "value": 1}]}, "a field is a name such as clv"),
    ("field as an object", {"all": [{"field": {"a": 1}, "op": ">", "value": 1}]}, "a field is a name such as clv"),
    ("op as a list", {"all": [{"field": "clv", "op": [">"], "value": 1}]}, "clv takes the operators"),
    ("JSON nested past Python's limit", "[" * 5000 + "]" * 5000, "nests too deep"),
    # each brand of brand_every_order's list is a pass over the orders of its own: 40 in all, as conditions
    ("too many every-order brands", {"any": [{"field": "brand_every_order", "op": "in",
                                              "value": [f"B{i}" for i in range(41)]}]}, "at most 40 conditions"),
    ("every-order brands and conditions", {"all": [cond("orders", ">", 0)["all"][0]] * 39 + [
        {"field": "brand_every_order", "op": "in", "value": ["Wella", "Dyson"]}]}, "at most 40 conditions"),
]


@pytest.mark.parametrize("rule, reason", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_rule_is_refused_with_the_reason_and_nothing_is_saved(db, shop, rule, reason):
    with pytest.raises(RuleError, match=reason.replace("(", r"\(").replace("{", r"\{")):
        save_segment(db, shop, "Mine", rule)
    assert db.execute("SELECT COUNT(*) FROM owner_segments").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM customer_segments WHERE segment = 'Mine'").fetchone()[0] == 0


def test_a_score_column_this_installation_lacks_is_not_available_yet(db):
    shop = build(db)  # no p_purchase_30d / predicted_clv_12m columns unless another part added them
    columns = rules.snapshot_columns(db)
    for field, column in rules.OPTIONAL_COLUMNS.items():
        if column in columns:
            assert who(db, shop, cond(field, ">=", 0)) is not None
        else:
            with pytest.raises(RuleError, match=f"{field} is not available yet"):
                save_segment(db, shop, "Soon", cond(field, ">=", 0))
        # without the column the rule is refused; with it, the same rule compiles
        with pytest.raises(RuleError, match=f"{field} is not available yet"):
            rules.compile_rule(cond(field, ">=", 0), "EUR", columns - {column})
        sql, _ = rules.compile_rule(cond(field, ">=", 0), "EUR", columns | {column})
        assert f"sn.{column} >= :r0" in sql


@pytest.mark.parametrize("name, reason", [
    ("vip", "is a built-in segment"), ("Lapsed", "is a built-in segment"), ("brand_loyal:Wella", "may not contain ':'"),
    ("VIPs: top", "may not contain ':'"), ("", "needs a name"), ("a/b", "letters, digits"), ("x" * 61, "at most 60"),
])
def test_names_that_clash_with_built_in_segments_are_refused(db, shop, name, reason):
    with pytest.raises(SegmentError, match=reason):
        save_segment(db, shop, name, cond("orders", ">", 0))
    assert db.execute("SELECT COUNT(*) FROM owner_segments").fetchone()[0] == 0


def test_a_name_is_unique_whatever_the_case(db, shop):
    save_segment(db, shop, "VIPs", cond("clv", ">=", 100))
    for name in ("VIPs", "vips"):
        with pytest.raises(SegmentError, match="exists already"):
            save_segment(db, shop, name, cond("orders", ">", 0))
    assert owner_segments.get_segment(db, shop["id"], "VIPs")["rule"] == cond("clv", ">=", 100)


def test_members_are_written_when_saved_and_refreshed_with_the_snapshot(db, shop):
    saved = save_segment(db, shop, "Recent buyers", cond("days_since_last", "<", 30))
    assert saved["count"] == 2
    assert owner_segments.members(db, shop["id"], "Recent buyers") == ["B", "C"]
    # Other parts of Winback read the members from customer_segments by the segment's name.
    rows = db.execute("SELECT c.external_id FROM customer_segments s JOIN customers c ON c.id = s.customer_id"
                      " WHERE s.segment = 'Recent buyers' ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == ["B", "C"]

    History(db, shop=shop).order("A", 110, total="20", lines=[WELLA], locale="nl-NL").write()
    refresh(db, shop, at(121))  # B: 31 days, C: 26, A: 11
    assert owner_segments.members(db, shop["id"], "Recent buyers") == ["A", "C"]
    segment = owner_segments.get_segment(db, shop["id"], "Recent buyers")
    assert segment["count"] == 2 and segment["refreshed_for"] == "2026-05-02T10:00:00Z"

    # An order bought after the snapshot's moment does not count for it: a refresh back in time.
    refresh(db, shop, at(100))
    assert who(db, shop, cond("product", "=", "p1")) == {"A", "B"}
    assert owner_segments.members(db, shop["id"], "Recent buyers") == ["B", "C"]


def test_a_segment_saved_before_the_first_refresh_is_counted_by_it(db):
    h = History(db).repeat("A", [0, 40], total="20")
    shop = h.write()
    assert save_segment(db, shop, "Everyone", cond("orders", ">", 0))["count"] is None
    refresh(db, shop, at(50))
    assert owner_segments.members(db, shop["id"], "Everyone") == ["A"]


def test_a_rule_that_no_longer_compiles_keeps_its_reason_and_the_rest_refresh(db, shop, monkeypatch):
    save_segment(db, shop, "Soon", cond("p_purchase_30d", ">=", 0.5))
    save_segment(db, shop, "Big", cond("clv", ">", 100))
    monkeypatch.setattr(rules, "snapshot_columns", lambda db: {"p_alive"})  # an installation without the column
    refresh(db, shop, at(101))
    soon = owner_segments.get_segment(db, shop["id"], "Soon")
    assert soon["count"] == 0 and "not available yet" in soon["error"]
    assert owner_segments.members(db, shop["id"], "Big") == ["B"]


def test_remove_takes_the_members_away(db, shop):
    save_segment(db, shop, "Big", cond("clv", ">", 100))
    owner_segments.remove_segment(db, shop, "Big")
    assert db.execute("SELECT COUNT(*) FROM customer_segments WHERE segment = 'Big'").fetchone()[0] == 0
    with pytest.raises(SegmentError, match="no segment named 'Big'"):
        owner_segments.get_segment(db, shop["id"], "Big")


# ---- the commands ----------------------------------------------------------------------------
def test_segment_commands(runner, db, shop):
    rule = json.dumps({"all": [{"field": "brand_every_order", "op": "=", "value": "Wella"}]})
    added = runner.invoke(args=["segment", "add", "--shop", "s", "Wella fans", "--rule", rule])
    assert added.exit_code == 0, added.output
    assert "Added segment 'Wella fans': 2 customers." in added.output

    listed = json.loads(runner.invoke(args=["segment", "list", "--shop", "s", "--json"]).output)
    assert listed == [{"name": "Wella fans", "rule": json.loads(rule), "count": 2, "error": None}]

    shown = runner.invoke(args=["segment", "show", "--shop", "s", "Wella fans", "--members", "--json"])
    doc = json.loads(shown.output)
    assert {k: doc[k] for k in ("name", "rule", "count", "members")} == {
        "name": "Wella fans", "rule": json.loads(rule), "count": 2, "members": ["A", "C"]}
    assert json.loads(runner.invoke(args=["segment", "show", "--shop", "s", "Wella fans", "--json"]).output)[
        "members"] == []
    text = runner.invoke(args=["segment", "show", "--shop", "s", "Wella fans", "--members"]).output
    assert "Wella fans: 2 customers" in text and "A, C" in text

    removed = runner.invoke(args=["segment", "remove", "--shop", "s", "Wella fans"])
    assert removed.exit_code == 0 and "Removed segment 'Wella fans'." in removed.output
    assert json.loads(runner.invoke(args=["segment", "list", "--shop", "s", "--json"]).output) == []


@pytest.mark.parametrize("args, message", [
    (["segment", "add", "--shop", "s", "X", "--rule", '{"all": [{"field": "height", "op": "=", "value": 1}]}'],
     "unknown field 'height'"),
    (["segment", "add", "--shop", "s", "X", "--rule", "{nope"], "the rule is not JSON"),
    (["segment", "add", "--shop", "s", "vip", "--rule", '{"all": [{"field": "orders", "op": ">", "value": 0}]}'],
     "'vip' is a built-in segment"),
    (["segment", "show", "--shop", "s", "X"], "no segment named 'X'"),
    (["segment", "remove", "--shop", "s", "X"], "no segment named 'X'"),
])
def test_segment_command_errors_are_one_line_and_save_nothing(runner, db, shop, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output and result.output.count("\n") == 1
    assert db.execute("SELECT COUNT(*) FROM owner_segments").fetchone()[0] == 0

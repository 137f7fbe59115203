"""`winback refresh`, `segments`, `model`, `explain`: JSON shapes, stored snapshots, words."""
import json

from tests.builders import History


def invoke(runner, *args):
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_refresh_prints_customers_and_seconds(runner, db):
    History(db).repeat("A", [0, 40]).order("B", 0).write()
    out = invoke(runner, "refresh", "--shop", "s", "--now", "2026-03-01", "--json")
    assert out["customers"] == 2 and out["seconds"] >= 0


def test_segments_json_shape_and_snapshot_reuse(runner, db):
    History(db).repeat("A", [0, 40]).order("B", 0).write()
    doc = invoke(runner, "segments", "--shop", "s", "--now", "2026-04-15", "--json", "--members")
    assert set(doc) >= {"shop", "now", "customers", "retention_days", "one_time_return_days", "counts", "members"}
    assert doc["shop"] == "s" and doc["customers"] == 2 and doc["retention_days"] == 40
    assert doc["one_time_return_days"] == 90
    assert doc["counts"]["lapsed"] == 2  # A: 64 days > 60; B: 104 days > 90
    assert sorted(doc["members"]["lapsed"]) == ["A", "B"]
    computed_at = db.execute("SELECT computed_at FROM shop_snapshots").fetchone()[0]
    again = invoke(runner, "segments", "--shop", "s", "--now", "2026-04-15", "--json")
    assert again["counts"] == doc["counts"]
    assert db.execute("SELECT computed_at FROM shop_snapshots").fetchone()[0] == computed_at  # reused
    later = invoke(runner, "segments", "--shop", "s", "--now", "2027-03-01", "--json")
    assert later["counts"]["lost"] == 2


def test_explain_in_words_and_numbers(runner, db):
    h = History(db).repeat("A", [0, 41], total="10")
    for i in range(9):  # richer customers, so that A is no VIP
        h.repeat(f"R{i}", [0, 41], total="100")
    h.write()
    doc = invoke(runner, "explain", "--shop", "s", "--customer", "A", "--now", "2026-05-18", "--json")
    assert doc["customer"] == "A" and doc["orders"] == 2 and doc["avg_gap_days"] == 41
    assert doc["days_since_last"] == 96 and doc["segments"] == ["lapsed"]
    assert "lapsed: 96 days since the last order, 1.5 × their usual 41 days is 61.5" in doc["reasons"]
    assert set(doc) >= {"customer", "orders", "clv", "avg_gap_days", "days_since_last", "segments",
                        "p_alive", "expected_next_order", "reasons"}


def test_explain_a_guest_by_email_and_unknown_customer(runner, db):
    History(db).order("A", 0).write()
    result = runner.invoke(args=["explain", "--shop", "s", "--customer", "nobody", "--now", "2026-02-01"])
    assert result.exit_code == 1 and "no customer 'nobody'" in result.output


def test_model_on_a_degenerate_shop_says_not_enough_history(runner, db):
    History(db).order("A", 0).order("B", 0).order("C", 0).write()
    doc = invoke(runner, "model", "--shop", "s", "--now", "2026-02-01", "--json")
    assert doc["model"] == "bgnbd" and doc["time_unit"] == "days"
    assert doc["status"] == "not_enough_history" and "not enough history" in doc["reason"]
    seg = invoke(runner, "segments", "--shop", "s", "--now", "2026-02-01", "--json")
    assert seg["counts"]["one_time"] == 3  # the rules still work
    text = runner.invoke(args=["model", "--shop", "s", "--now", "2026-02-01"])
    assert text.exit_code == 0 and "not enough history" in text.output


def test_bad_now_is_one_clear_line(runner, db):
    History(db).order("A", 0).write()
    result = runner.invoke(args=["segments", "--shop", "s", "--now", "yesterday"])
    assert result.exit_code != 0 and "--now" in result.output and "Traceback" not in result.output

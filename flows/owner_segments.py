"""The owner's own segments: a name and a rule (flows/rules.py), members kept in customer_segments.

This module owns the table `owner_segments`. A segment's members are written into
`customer_segments` under its name (through flows/segments.py, that table's owner) when it is saved
and at every refresh (flows/refresh.py calls `refresh_members` right after the built-in segments),
so flows and campaigns read them like any segment. Members are the customers of the stored snapshot
that match the rule, as of the snapshot's `now`.

Names are the owner's words ("VIPs", "Wella fans"), unique per shop whatever the case, and may not be
a built-in segment's name nor hold a ':' (the built-in families brand_loyal:..., category_lapsed:...).
"""
import json
import re

from app.db import CASEFOLD, casefold_function, write_transaction
from app.settings import N_, Message
from app.timeutil import to_db, utcnow

from . import rules, segments
from .definitions import load_flows
from .rules import RuleError

NAME_MAX = 60
_NAME = re.compile(r"^\w[\w .&'()+-]*$")
SAMPLE = 10


class SegmentError(ValueError):
    """A segment that cannot be saved or found, with the reason."""


def check_name(name) -> str:
    """The owner's segment name, stripped; SegmentError when it may not be one."""
    if not isinstance(name, str) or not name.strip():
        raise SegmentError(Message(N_("a segment needs a name")))
    name = name.strip()
    if ":" in name:
        raise SegmentError(Message(N_("%(name)s: a segment name may not contain ':' (built-in segments use it)"),
                                   name=repr(name)))
    if len(name) > NAME_MAX:
        raise SegmentError(Message(N_("a segment name is at most %(n)s characters"), n=NAME_MAX))
    if not _NAME.match(name):
        raise SegmentError(Message(N_("%(name)s: a segment name is letters, digits, spaces and . & ' ( ) + - _"),
                                   name=repr(name)))
    if name.lower() in segments.BASE_SEGMENTS:
        raise SegmentError(Message(N_("%(name)s is a built-in segment; choose another name"), name=repr(name)))
    return name


def _snapshot_now(db, shop_id) -> str | None:
    row = db.execute("SELECT computed_for FROM shop_snapshots WHERE shop_id = ?", [shop_id]).fetchone()
    return row[0] if row else None


def compile_for(db, shop, rule, each=False, parts=None) -> tuple[str, dict]:
    """The rule as SQL and parameters for this shop (its currency and language, the snapshot's
    columns); `each`: for a few customers, `parts`: what was bought read elsewhere (rules.compile_rule)."""
    sql, params = rules.compile_rule(rule, shop["currency"], rules.snapshot_columns(db), each, parts)
    if CASEFOLD in sql:
        casefold_function(db)
    return sql, {**params, "shop": shop["id"], "shop_locale": shop.get("locale") or "en"}


def _fill(db, shop, name, sql, params, now_db) -> int:
    return segments.replace_members(db, shop["id"], name, sql, {**params, "now": now_db})


def save_segment(db, shop, name, rule, *, replace=False, now=None) -> dict:
    """Check and store a segment and write its members for the stored snapshot: {"name", "rule",
    "count"} (count None before the shop's first refresh). A bad name or rule raises SegmentError or
    RuleError and nothing is saved. `replace`: a segment of that name may exist (and is changed)."""
    name = check_name(name)
    rule = rules.parse(rule)
    sql, params = compile_for(db, shop, rule)
    stamp = to_db(now or utcnow())
    with write_transaction(db):
        row = db.execute("SELECT name FROM owner_segments WHERE shop_id = ? AND name = ? COLLATE NOCASE",
                         [shop["id"], name]).fetchone()
        if row and not replace:
            raise SegmentError(Message(N_("a segment named %(name)s exists already"), name=repr(row[0])))
        if row and row[0] != name:
            raise SegmentError(Message(N_("a segment named %(name)s exists already (names are unique whatever the"
                                          " case)"), name=repr(row[0])))
        snapshot_now = _snapshot_now(db, shop["id"])
        count = _fill(db, shop, name, sql, params, snapshot_now) if snapshot_now else None
        text = json.dumps(rule, ensure_ascii=False)
        if row:
            db.execute("UPDATE owner_segments SET rule = ?, updated_at = ?, members = ?, refreshed_for = ?,"
                       " error = NULL WHERE shop_id = ? AND name = ?",
                       [text, stamp, count, snapshot_now, shop["id"], name])
        else:
            db.execute("INSERT INTO owner_segments (shop_id, name, rule, created_at, updated_at, members,"
                       " refreshed_for) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [shop["id"], name, text, stamp, stamp, count, snapshot_now])
    return {"name": name, "rule": rule, "count": count}


def campaigns_on(db, shop_id, name) -> list[int]:
    """The ids of the shop's campaigns still to go out (scheduled or sending) to the segment `name`."""
    return [r[0] for r in db.execute("SELECT id FROM campaigns WHERE shop_id = ? AND segment = ?"
                                     " AND status IN ('scheduled', 'sending') ORDER BY id", [shop_id, name])]


def remove_segment(db, shop, name) -> None:
    """Remove a segment and its members. While a flow enters from it, or a campaign still to go
    out goes to it, SegmentError says so and nothing changes."""
    row = get_segment(db, shop["id"], name)
    in_use = [flow for flow, f in load_flows(db, shop["id"]).items() if f["entry"] == row["name"]]
    if in_use:
        raise SegmentError(Message(N_("%(name)s is the segment of the flow %(flows)s: remove the flow first"),
                                   name=repr(name), flows=", ".join(in_use)))
    campaigns = campaigns_on(db, shop["id"], row["name"])
    if campaigns:
        raise SegmentError(Message(N_("%(name)s is the segment of campaign %(campaigns)s: cancel the campaign first"),
                                   name=repr(name), campaigns=", ".join(map(str, campaigns))))
    with write_transaction(db):
        segments.drop_members(db, shop["id"], row["name"])
        db.execute("DELETE FROM owner_segments WHERE shop_id = ? AND name = ?", [shop["id"], row["name"]])


def get_segment(db, shop_id, name) -> dict:
    """{"name", "rule", "count", "created_at", "updated_at", "refreshed_for", "error"}; SegmentError
    when the shop has no segment of that name."""
    rows = list(db.query("SELECT * FROM owner_segments WHERE shop_id = ? AND name = ?", [shop_id, name]))
    if not rows:
        raise SegmentError(Message(N_("no segment named %(name)s"), name=repr(name)))
    return _public(db, rows[0])


def _public(db, row) -> dict:
    count = db.execute("SELECT COUNT(*) FROM customer_segments WHERE shop_id = ? AND segment = ?",
                       [row["shop_id"], row["name"]]).fetchone()[0]
    return {"name": row["name"], "rule": json.loads(row["rule"]), "count": count if row["refreshed_for"] else None,
            "created_at": row["created_at"], "updated_at": row["updated_at"],
            "refreshed_for": row["refreshed_for"], "error": row["error"]}


def list_segments(db, shop_id) -> list[dict]:
    """The shop's segments by name, each with its member count (as get_segment)."""
    return [_public(db, row) for row in db.query(
        "SELECT * FROM owner_segments WHERE shop_id = ? ORDER BY name COLLATE NOCASE", [shop_id])]


def members(db, shop_id, name, limit=None) -> list[str]:
    """The members' customer ids (the platform's id, or the lower-cased email of a guest), sorted."""
    sql = ("SELECT c.external_id FROM customer_segments s JOIN customers c ON c.id = s.customer_id"
           " WHERE s.shop_id = ? AND s.segment = ? ORDER BY c.external_id")
    args = [shop_id, name]
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return [r[0] for r in db.execute(sql, args)]


def preview(db, shop, rule, limit=SAMPLE) -> dict:
    """What a rule would hold now, without saving anything: {"count", "sample": [{"customer",
    "first_name", "clv_minor", "orders", "days_since_last"}], "snapshot"} (count None and no sample
    before the first refresh). RuleError for a bad rule."""
    sql, params = compile_for(db, shop, rule)
    snapshot_now = _snapshot_now(db, shop["id"])
    if snapshot_now is None:
        return {"count": None, "sample": [], "snapshot": None}
    params = {**params, "now": snapshot_now}
    base = f"FROM customer_snapshots sn JOIN customers c ON c.id = sn.customer_id WHERE sn.shop_id = :shop AND {sql}"
    # The count rides along with the sample (a window over every match): a rule on what was bought
    # reads all of the shop's order lines, and a second statement for the count read them again.
    rows = db.execute(f"SELECT c.external_id, c.first_name, sn.clv_minor, sn.purchases, sn.days_since_last,"
                      f" COUNT(*) OVER () {base} ORDER BY sn.clv_minor DESC, c.external_id LIMIT :limit",
                      {**params, "limit": max(limit, 1)}).fetchall()
    count = rows[0][5] if rows else 0
    sample = [dict(zip(("customer", "first_name", "clv_minor", "orders", "days_since_last"), row[:5]))
              for row in rows[:limit]]
    return {"count": count, "sample": sample, "snapshot": snapshot_now}


def compiled_rules(db, shop) -> tuple[dict, list]:
    """Every segment's rule compiled for a refresh of the whole shop, with what it asks was bought
    read apart: ({name: (sql, params), or the RuleError of a rule that no longer compiles}, the
    parts for `read_bought`). Reading the parts, a pass over the shop's order lines each, is most of
    the segments' time; a refresh does it on its second connection while it computes the snapshot."""
    compiled, parts = {}, []
    for row in db.query("SELECT name, rule FROM owner_segments WHERE shop_id = ?", [shop["id"]]):
        first = len(parts)
        try:
            compiled[row["name"]] = rule = compile_for(db, shop, row["rule"], parts=parts)
        except RuleError as exc:
            compiled[row["name"]] = exc
            del parts[first:]
            continue
        parts[first:] = [(select, rule[1]) for select, _bound in parts[first:]]  # with :shop and the rest
    return compiled, parts


def read_bought(db, parts, now_db) -> dict[str, str]:
    """The customers of each of `compiled_rules`' parts as of `now_db` ({"bought<n>": JSON array}, the
    rules' parameters), on any connection that reads the shop's orders as the refresh's transaction
    does. SQLite writes each array itself: no Python object per customer on either side."""
    if any(CASEFOLD in select for select, _params in parts):
        casefold_function(db)
    return {f"bought{n}": db.execute(f"SELECT json_group_array(customer_id) FROM ({select})",
                                     {**params, "now": now_db}).fetchone()[0]
            for n, (select, params) in enumerate(parts)}


def refresh_members(db, shop, now_db, changed=False, prepared=None) -> dict:
    """Write every segment's members for the snapshot just computed for `now_db` (the refresh holds
    the transaction; `changed`: an incremental refresh, which removed the changed customers'
    memberships, so only they are matched again; `prepared`: (compiled_rules, read_bought) of a
    whole-shop refresh). A rule that no longer compiles (a field this installation lost) keeps its
    reason on the segment and leaves it empty; the others go on. Returns {name: members}."""
    compiled, bought = prepared or (None, {})
    counts = {}
    for row in db.query("SELECT name, rule FROM owner_segments WHERE shop_id = ?", [shop["id"]]):
        try:
            got = compile_for(db, shop, row["rule"], each=changed) if compiled is None else compiled[row["name"]]
            if isinstance(got, RuleError):
                raise got
            sql, params = got
        except RuleError as exc:
            segments.drop_members(db, shop["id"], row["name"])
            db.execute("UPDATE owner_segments SET members = 0, refreshed_for = ?, error = ? WHERE shop_id = ?"
                       " AND name = ?", [now_db, str(exc), shop["id"], row["name"]])
            counts[row["name"]] = 0
            continue
        if changed:
            segments.add_members(db, shop["id"], row["name"], sql, {**params, "now": now_db})
            counts[row["name"]] = segments.count_members(db, shop["id"], row["name"])
        else:
            counts[row["name"]] = _fill(db, shop, row["name"], sql, {**params, **bought}, now_db)
        db.execute("UPDATE owner_segments SET members = ?, refreshed_for = ?, error = NULL WHERE shop_id = ?"
                   " AND name = ?", [counts[row["name"]], now_db, shop["id"], row["name"]])
    return counts

"""The after-purchase journey's 0-10 question ("how likely are you to recommend us?"), answered with
one click. This module owns the `nps_answers` table.

Each number in the email is its own link, `/nps/<token>`: the token carries the shop, the customer,
the message and the number, signed with the installation's key (app/tokens.py) and good for
TOKEN_DAYS, so an answer can be neither forged nor given for someone else. One answer per email: a
later click (another number, or the comment form) updates it. Mail scanners that announce themselves
(flows.clicks.is_scanner) are shown the page but record nothing.

The score is the usual Net Promoter Score: the share of promoters (9-10) minus the share of
detractors (0-6), in points from -100 to 100.
"""
from app import tokens
from app.db import write_transaction
from app.timeutil import to_db

KIND = "nps"
TOKEN_DAYS = 60
SCORES = range(0, 11)
COMMENT_MAX = 2000


def answer_links(app, shop_id, customer_id, message_id) -> dict:
    """{"nps_0": url, ..., "nps_10": url}: the personal answer links of one email."""
    base = app.config["APP_URL"]
    return {f"nps_{score}": f"{base}/nps/{tokens.make_timed(app, KIND, shop_id, customer_id, message_id or 0, score)}"
            for score in SCORES}


def read_token(app, token) -> tuple[str, dict | None]:
    """("ok" | "expired", {"shop_id", "customer_id", "message_id", "score"}) or ("forged", None)."""
    state, payload = tokens.read_timed(app, KIND, token, TOKEN_DAYS * 86400)
    if payload is None or len(payload) != 4 or payload[3] not in SCORES:
        return "forged", None
    shop_id, customer_id, message_id, score = payload
    return state, {"shop_id": shop_id, "customer_id": customer_id, "message_id": message_id, "score": score}


def record(db, answer, now, comment=None) -> str | None:
    """Record (or update) the answer of a token's payload at `now`: "recorded", "updated", or None
    when its email is not a sent message of that customer and shop (nothing recorded)."""
    now_db = to_db(now)
    with write_transaction(db):
        row = db.execute("SELECT flow FROM messages WHERE id = ? AND shop_id = ? AND customer_id = ?"
                         " AND status = 'sent'",
                         [answer["message_id"], answer["shop_id"], answer["customer_id"]]).fetchone()
        if row is None:
            return None
        existing = db.execute("SELECT id FROM nps_answers WHERE message_id = ?", [answer["message_id"]]).fetchone()
        if existing:
            db.execute("UPDATE nps_answers SET score = ?, comment = COALESCE(?, comment), updated_at = ? WHERE id = ?",
                       [answer["score"], comment, now_db, existing[0]])
            return "updated"
        db.execute("INSERT INTO nps_answers (shop_id, customer_id, message_id, flow, score, comment, answered_at,"
                   " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [answer["shop_id"], answer["customer_id"], answer["message_id"], row[0], answer["score"], comment,
                    now_db, now_db])
        return "recorded"


def clean_comment(text) -> str | None:
    """The comment as stored: stripped, None when empty; ValueError when longer than COMMENT_MAX."""
    text = (text or "").replace("\r\n", "\n").strip()
    if len(text) > COMMENT_MAX:
        raise ValueError(f"a comment is at most {COMMENT_MAX} characters")
    return text or None


def summary(db, shop_id, flow, now_db) -> dict:
    """{"responses", "promoters", "passives", "detractors", "score"} of the flow's answers given up
    to `now_db` (score None without answers)."""
    n, promoters, detractors = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(score >= 9), 0), COALESCE(SUM(score <= 6), 0) FROM nps_answers"
        " WHERE shop_id = ? AND flow = ? AND answered_at <= ?", [shop_id, flow, now_db]).fetchone()
    return {"responses": n, "promoters": promoters, "passives": n - promoters - detractors,
            "detractors": detractors,
            "score": round(100 * (promoters - detractors) / n) if n else None}


def for_customer(db, customer_id) -> list[dict]:
    """The customer's answers, newest first: {"flow", "score", "comment", "answered_at", "updated_at"}."""
    return list(db.query("SELECT flow, score, comment, answered_at, updated_at FROM nps_answers"
                         " WHERE customer_id = ? ORDER BY answered_at DESC, id DESC", [customer_id]))

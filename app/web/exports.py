"""CSV downloads of the lists: the customers (as filtered and sorted on the page), the messages (as
filtered on the outbox page) and the report (per flow and per email)."""
import re

from flask import Blueprint, abort, request

from flows import customer_list, list_exports
from flows.attribution import report as flow_report
from flows.messages import STATUSES

from ..db import get_db
from ..timeutil import utcnow
from .auth import login_required, owned_shop_or_404
from .csv_export import csv_response, stamp
from .pages import list_args

bp = Blueprint("exports", __name__)


def _filename(shop, what):
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', shop['handle'])}-{what}-{stamp(utcnow())}.csv"


@bp.get("/shops/<handle>/customers.csv")
@login_required
def customers(handle):
    """Every customer matching the page's search and segment, in its sort order."""
    shop = owned_shop_or_404(handle)
    args = list_args(request.args)
    return csv_response(_filename(shop, "customers"), customer_list.CSV_HEADER, lambda: customer_list.export_rows(
        get_db(), shop, args["q"], args["segment"], args["sort"], args["dir"]))


@bp.get("/shops/<handle>/outbox.csv")
@login_required
def messages(handle):
    """The message log as filtered on the outbox page (status, customer search), newest first."""
    shop = owned_shop_or_404(handle)
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        abort(400)
    search = request.args.get("q", "").strip()[:200] or None
    return csv_response(_filename(shop, "messages"), list_exports.MESSAGE_HEADER,
                        lambda: list_exports.message_rows(get_db(), shop, status, search))


@bp.get("/shops/<handle>/report.csv")
@login_required
def report(handle):
    """The report as a table: one row per flow (email "all") and one per email."""
    shop = owned_shop_or_404(handle)
    doc = flow_report(get_db(), shop, utcnow())
    return csv_response(_filename(shop, "report"), list_exports.REPORT_HEADER,
                        lambda: list_exports.report_rows(doc))

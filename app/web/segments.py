"""The owner's own segments: a list with counts, an editor (condition rows joined by all or any, or
the rule's JSON) with a live count and a sample of members while typing, save and remove, and a
flow on a saved segment (flows/owner_segments.py, flows/owner_flows.py)."""
import json

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from flows import owner_flows, owner_segments
from flows.copy import CopyError
from flows.definitions import PRIORITY, FlowError
from flows.owner_segments import SegmentError
from flows.rules import RuleError

from ..db import get_db
from ..money import format_money
from ..settings import refusal
from .auth import TokenForm, login_required, owned_shop_or_404
from .forms import CONDITION_ROWS, OwnerFlowForm, SegmentForm, translated

bp = Blueprint("segment_pages", __name__)


def _segment_or_404(shop, name):
    try:
        return owner_segments.get_segment(get_db(), shop["id"], name)
    except SegmentError:
        abort(404)


def _form_for(segment):
    """The editor's form filled from a saved segment: rows for a flat rule, else its JSON."""
    rule = segment["rule"]
    (match, items), = rule.items()
    flat = all("field" in item for item in items) and len(items) <= CONDITION_ROWS
    data = {"name": segment["name"], "match": match}
    if flat:
        data["conditions"] = [{"field": c["field"], "op": c["op"],
                               "value": _shown(c["value"])} for c in items]
    else:
        data["rule_json"] = json.dumps(rule, ensure_ascii=False, indent=2)
    return SegmentForm(formdata=None, data=data)


def _shown(value):
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _editor(shop, form, segment=None, error=None, status=200, flow_form=None):
    db = get_db()
    flows = {name: f for name, f in owner_flows.owner_flows(db, shop["id"]).items()
             if segment and f["entry"] == segment["name"]}
    return render_template("segment.html", shop=shop, form=form, segment=segment, error=error, flows=flows,
                           flow_form=flow_form or OwnerFlowForm(formdata=None), token=TokenForm(),
                           priority=PRIORITY), status


@bp.get("/shops/<handle>/segments")
@login_required
def index(handle):
    """The owner's segments with their member counts and the flows that enter from them."""
    shop = owned_shop_or_404(handle)
    db = get_db()
    flows = owner_flows.owner_flows(db, shop["id"])
    segments = [{**s, "flows": [n for n, f in flows.items() if f["entry"] == s["name"]]}
                for s in owner_segments.list_segments(db, shop["id"])]
    return render_template("segments.html", shop=shop, segments=segments)


@bp.route("/shops/<handle>/segments/new", methods=["GET", "POST"])
@login_required
def new(handle):
    """A new segment."""
    shop = owned_shop_or_404(handle)
    if request.method == "GET":
        return _editor(shop, SegmentForm(formdata=None))
    return _save(shop, SegmentForm(), None)


@bp.route("/shops/<handle>/segment/<name>", methods=["GET", "POST"])
@login_required
def edit(handle, name):
    """One segment: its rule, live count and sample, save, remove, and the flows on it."""
    shop = owned_shop_or_404(handle)
    segment = _segment_or_404(shop, name)
    if request.method == "GET":
        return _editor(shop, _form_for(segment), segment)
    return _save(shop, SegmentForm(), segment)


def _save(shop, form, segment):
    valid = form.validate()
    if form.csrf_token.errors:
        abort(400)
    if not valid:
        return _editor(shop, form, segment, _first_error(form), 422)
    if segment and form.name.data.strip() != segment["name"]:
        return _editor(shop, form, segment, _("A saved segment keeps its name: flows and campaigns use it."), 422)
    try:
        saved = owner_segments.save_segment(get_db(), shop, form.name.data, form.rule(), replace=segment is not None)
    except (RuleError, SegmentError) as exc:
        return _editor(shop, form, segment, _("This segment cannot be saved: %(reason)s", reason=translated(refusal(exc))), 422)
    flash(_("Saved the segment %(name)s.", name=saved["name"]))
    return redirect(url_for("segment_pages.edit", handle=shop["handle"], name=saved["name"]))


def _first_error(form):
    for errors in form.errors.values():
        if errors and isinstance(errors[0], str):
            return errors[0]
    return _("Check the fields.")


@bp.post("/shops/<handle>/segments/count")
@login_required
def count(handle):
    """The live count: how many customers the rule being typed holds now, and a sample of them
    (nothing is saved). JSON {"count", "sample": [{"customer", "first_name", "clv", "orders",
    "days_since_last"}], "error"}; a bad rule answers 200 with its reason, a missing token 400."""
    shop = owned_shop_or_404(handle)
    form = SegmentForm()
    form.validate()
    if form.csrf_token.errors:
        abort(400)
    rule = form.rule()
    if isinstance(rule, dict) and not next(iter(rule.values())):
        return jsonify(count=None, sample=[], error=None)  # no condition typed yet: nothing to say
    problems = [_("Condition %(n)s: %(reason)s", n=n, reason=row.form.value.errors[0])
                for n, row in enumerate(form.conditions, 1) if row.form.value.errors]
    if problems:
        return jsonify(count=None, sample=[], error=problems[0])
    try:
        doc = owner_segments.preview(get_db(), shop, rule)
    except RuleError as exc:
        return jsonify(count=None, sample=[], error=translated(refusal(exc)))
    sample = [{"customer": s["customer"], "first_name": s["first_name"],
               "clv": format_money(s["clv_minor"], shop["currency"]), "orders": s["orders"],
               "days_since_last": s["days_since_last"]} for s in doc["sample"]]
    return jsonify(count=doc["count"], sample=sample,
                   error=None if doc["snapshot"] else _("Counted after the first refresh of the shop."))


@bp.post("/shops/<handle>/segment/<name>/remove")
@login_required
def remove(handle, name):
    """Remove a segment (not while a flow enters from it)."""
    shop = owned_shop_or_404(handle)
    segment = _segment_or_404(shop, name)
    if not TokenForm().validate_on_submit():
        abort(400)
    try:
        owner_segments.remove_segment(get_db(), shop, segment["name"])
    except SegmentError:
        if owner_segments.campaigns_on(get_db(), shop["id"], segment["name"]):
            flash(_("%(name)s is the segment of a scheduled campaign: cancel the campaign first.",
                    name=segment["name"]), "error")
        else:
            flash(_("%(name)s is the segment of a flow: remove the flow first.", name=segment["name"]), "error")
        return redirect(url_for("segment_pages.edit", handle=handle, name=segment["name"]))
    flash(_("Removed the segment %(name)s.", name=segment["name"]))
    return redirect(url_for("segment_pages.index", handle=handle))


@bp.post("/shops/<handle>/segment/<name>/flow")
@login_required
def create_flow(handle, name):
    """A new flow on this segment; then its page, to write its emails in every language."""
    shop = owned_shop_or_404(handle)
    segment = _segment_or_404(shop, name)
    form = OwnerFlowForm()
    valid = form.validate()
    if form.csrf_token.errors:
        abort(400)
    error = None if valid else _first_error(form)
    if valid:
        try:
            flow = owner_flows.create_flow(get_db(), shop, form.name.data.strip(), segment["name"], **form.definition())
        except (FlowError, SegmentError) as exc:
            error = _("This flow cannot be created: %(reason)s", reason=translated(refusal(exc)))
        except CopyError as exc:
            error = translated(refusal(exc))
    if error:
        return _editor(shop, _form_for(segment), segment, error, 422, flow_form=form)
    flash(_("Created the flow %(name)s: write its emails below.", name=flow["name"]))
    return redirect(url_for("flow_pages.edit", handle=handle, name=flow["name"]))


@bp.post("/shops/<handle>/own-flows/<name>/remove")
@login_required
def remove_flow(handle, name):
    """Remove one of the owner's own flows (its running enrolments end); back to its segment."""
    shop = owned_shop_or_404(handle)
    flow = owner_flows.owner_flows(get_db(), shop["id"]).get(name)
    if flow is None:
        abort(404)
    if not TokenForm().validate_on_submit():
        abort(400)
    owner_flows.remove_flow(get_db(), shop, name)
    flash(_("Removed the flow %(name)s.", name=name))
    return redirect(url_for("segment_pages.edit", handle=handle, name=flow["entry"]))

"""Offer tests on the owner's pages: the offers a step tests (flow page), making the better offer the
default with one click and letting Winback do it (report page), and the tests decided so far."""
import copy

from flask import Blueprint, abort, flash, g, redirect, request, url_for
from flask_babel import gettext as _

from flows.definitions import FlowError, save_flow
from flows.offer_arms import history
from flows.offer_promotion import PromotionRefused, promote

from ..db import get_db
from ..settings import get_settings, save_settings
from ..timeutil import utcnow
from . import flow_editor
from .auth import login_required, owned_shop_or_404
from .forms import AutoPromoteForm, PromoteForm, arms_form

bp = Blueprint("offer_tests", __name__)


@bp.app_template_global()
def arms_form_for(shop, step, typed=None):
    """The offer-test form of one step: as typed (a refused POST) or as saved."""
    if typed is not None:
        return arms_form(shop["currency"], typed)
    return arms_form(shop["currency"], arms=step.get("offers"))


@bp.app_template_global()
def offer_test_history(shop):
    """The shop's decided offer tests, newest first."""
    return history(get_db(), shop["id"])


@bp.app_template_global()
def offer_test_auto(shop):
    """Whether Winback makes a better offer the default by itself (the shop's setting)."""
    return bool(get_settings(get_db(), shop["id"]).get("offer_test_auto_promote"))


def _promotional_step(shop, name, step):
    flow = flow_editor._flow(shop, name)
    if flow["kind"] != "promotional" or step >= len(flow["steps"]):
        abort(404)
    return flow


@bp.post("/shops/<handle>/flows/<name>/<int:step>/offers")
@login_required
def save_arms(handle, name, step):
    """Start, change or end (no rows) the offer test of one step."""
    shop = owned_shop_or_404(handle)
    flow = _promotional_step(shop, name, step)
    lang = flow_editor._lang()
    form = arms_form(shop["currency"], request.form)
    valid = form.validate()
    if form.csrf_token.errors:
        abort(400)
    typed = {f"arms{step}": request.form}
    if not valid:
        errors = {f"arms{step}_{field}": message for field, message in form.errors_by_field().items()}
        return flow_editor._editor(shop, flow, lang, errors, typed=typed, status=422)
    new = copy.deepcopy({k: v for k, v in flow.items() if k != "name"})
    arms = form.arms()
    if arms:
        new["steps"][step]["offers"] = arms
    else:
        new["steps"][step].pop("offers", None)
    try:
        save_flow(get_db(), shop["id"], name, new)
    except FlowError as exc:  # a rule of flows.definitions the form does not know (two equal offers)
        return flow_editor._editor(shop, flow, lang, {f"arms{step}": str(exc)}, typed=typed, status=422)
    flash(_("Saved the offer test of email %(n)s.", n=step + 1) if arms
          else _("Email %(n)s tests no offers.", n=step + 1))
    return redirect(url_for("flow_pages.edit", handle=handle, name=name, lang=lang) + f"#offers{step}")


@bp.post("/shops/<handle>/flows/<name>/<int:step>/offers/promote")
@login_required
def make_default(handle, name, step):
    """Make the better offer of a test the step's offer (the report page's one click); checked again
    now: the test must be the one shown and the offer still better with confidence."""
    shop = owned_shop_or_404(handle)
    _promotional_step(shop, name, step)
    form = PromoteForm()
    if not form.validate():
        abort(400)
    try:
        arm = int(form.arm.data)
    except ValueError:
        abort(400)
    try:
        promote(get_db(), shop, name, step, arm, utcnow(), test=form.test.data, decided_by="owner",
                user_id=g.user["id"])
    except PromotionRefused:
        flash(_("Nothing was changed: the test has changed or that offer is no longer better with confidence."),
              "error")
        return redirect(url_for("pages.report", handle=handle))
    flash(_("Offer %(arm)s is now the offer of email %(n)s; its test has ended.", arm=arm + 1, n=step + 1))
    return redirect(url_for("pages.report", handle=handle))


@bp.post("/shops/<handle>/offer-tests/auto")
@login_required
def auto(handle):
    """Turn on or off that Winback makes a better offer the default by itself."""
    shop = owned_shop_or_404(handle)
    form = AutoPromoteForm()
    if not form.validate():
        abort(400)
    save_settings(get_db(), shop["id"], {"offer_test_auto_promote": bool(form.auto.data)})
    flash(_("Saved. The changes apply from the next run of the flows."))
    return redirect(url_for("pages.report", handle=handle))

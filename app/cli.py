"""The `winback` commands. They live on the app's CLI group (`app.cli`, registered by the app
factory, as in Flask's tutorial), so that the test runner and `flask --app` see them too; the
`winback` script starts in app/entry.py (the Flask group is app/__main__.py). Importing them loads
no Flask (app/cli_options.py): `winback --help` lists them without it.

Each command imports what it works with inside its function: `winback --help` and `explain` must
answer in a blink, not after loading the platforms' HTTP clients, the mailer and the model fitter.
"""
import json
import sys

import click

from . import answers
from .cli_options import AppGroup, current_app, echo_json, json_option, now_option, shop_now as _shop_now, shop_option
from .db import get_db
from .shops import ShopError, get_or_create_shop, get_shop, list_shops, require_shop


def _require_shop(handle):
    try:
        return require_shop(get_db(), handle)
    except ShopError as exc:
        raise click.ClickException(str(exc)) from None


# The commands live on the app (`app.cli`), as in Flask's tutorial, so that the test runner and
# `flask --app` see them too; `winback` finds them there.
commands = AppGroup("winback")


def init_app(app):
    """Register every `winback` command on the app's CLI."""
    for command in commands.commands.values():
        app.cli.add_command(command)


# ---- database and serving ------------------------------------------------------------------
@commands.command("init-db")
def init_db_command():
    """Create or migrate the database, and create the admin user if there is none."""
    from .migrations import init_db
    from .users import ensure_admin
    applied = init_db()
    click.echo(f"Database ready: {current_app.config['DATABASE']}"
               + (f" (applied {', '.join(applied)})" if applied else " (up to date)"))
    created = ensure_admin(get_db(), current_app.config.get("ADMIN_PASSWORD"),
                           method=current_app.config.get("PASSWORD_HASH_METHOD"))
    if created is not None:
        click.echo("Admin login: user 'admin', password "
                   + ("from WINBACK_ADMIN_PASSWORD" if current_app.config.get("ADMIN_PASSWORD")
                      else f"'{created}' (shown once; keep it)"))




@commands.command("demo")
@click.option("--customers", default=5000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="How many customers the demo shop has.")
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed (same seed, same shop).")
@now_option
@click.option("--if-missing", is_flag=True, help="Do nothing when the demo shop already exists.")
@click.option("--history-days", default=180, show_default=True, type=click.IntRange(0, 730),
              help="Days of flow history to simulate with the real engine (0: none).")
@json_option
def demo_command(customers, seed, now, if_missing, history_days, as_json):
    """Create or refresh shop `demo` with a realistic synthetic history (about 2 years) and, by
    default, 180 days of simulated flow history (emails to a demo transport, never a mail server)."""
    from connectors.demo import seed_demo
    from flows.demo_history import demo_history

    from .migrations import init_db
    db = get_db()
    init_db(db)
    if if_missing and get_shop(db, "demo"):
        if as_json:
            echo_json({"shop": "demo", "skipped": True})
        else:
            click.echo("Demo shop exists; leaving it as it is (run `winback demo` to refresh it).")
        return
    stats = seed_demo(db, customers=customers, seed=seed, now=now, progress=not as_json)
    stats["history"] = demo_history(current_app._get_current_object(), db, get_shop(db, "demo"), history_days,
                                    now, seed, progress=not as_json and sys.stderr.isatty())
    if as_json:
        echo_json(stats)
    else:
        click.echo(f"Demo shop ready: {stats['customers']} customers, {stats['orders']} orders, "
                   f"{stats['products']} products.")
        if stats["history"]["days"]:
            click.echo(f"Simulated {stats['history']['days']} days of flows: {stats['history']['sent']} emails "
                       f"(to the demo transport, none sent), {stats['history']['orders']} orders after them.")


@commands.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-scheduler", is_flag=True, help="Serve the web side only.")
@click.option("--threads", default=8, show_default=True, type=int)
def serve_command(host, port, no_scheduler, threads):
    """Serve the web UI and webhooks (waitress) and, unless told not to, the scheduler, in one process."""
    from waitress import serve

    from . import scheduler
    from .migrations import init_db
    from .web.limits import LARGEST_BYTES
    from .web.public_address import serve_address
    from .webhooks import start_processor
    app = current_app._get_current_object()
    init_db(get_db())
    if not no_scheduler:
        scheduler.start(app)
        start_processor(app)
    public = serve_address(app, host, port)
    click.echo(f"Winback on http://{host}:{port}/ (Ctrl+C stops); links in emails point at {public}")
    # waitress buffers a whole body before the app sees it: it refuses (413) what no route accepts.
    serve(app, host=host, port=port, threads=threads, ident="winback", max_request_body_size=LARGEST_BYTES)


@commands.command("worker")
def worker_command():
    """Run the scheduler alone, for deployments where gunicorn serves the web side."""
    from . import scheduler
    from .migrations import init_db
    from .webhooks import start_processor
    init_db(get_db())
    start_processor(current_app._get_current_object())
    scheduler.run_forever(current_app._get_current_object())


# ---- shops ---------------------------------------------------------------------------------
@commands.group("shop")
def shop_group():
    """Register and list shops."""


@shop_group.command("list")
@json_option
def shop_list_command(as_json):
    """List shops with their id (the number in webhook URLs), platform, last sync and counts."""
    from .migrations import init_db
    db = get_db()
    init_db(db)
    shops = [{k: s[k] for k in ("handle", "id", "platform", "last_sync", "customers", "orders")}
             for s in list_shops(db)]
    if as_json:
        echo_json(shops)
        return
    if not shops:
        click.echo("No shops yet. `winback demo` creates a demo shop; `winback import-orders` loads a CSV.")
        return
    click.echo(f"{'handle':30} {'id':>4} {'platform':12} {'customers':>9} {'orders':>8}  last sync")
    for s in shops:
        click.echo(f"{s['handle']:30} {s['id']:>4} {s['platform']:12} {s['customers']:>9} "
                   f"{s['orders']:>8}  {s['last_sync'] or '-'}")


@shop_group.command("add-shopify")
@click.argument("domain")
@click.option("--token", help="An Admin API access token.")
@click.option("--client-credentials", is_flag=True, help="Use the client-credentials grant (app on your own store).")
@click.option("--offline", is_flag=True, help="Do not contact Shopify now; the next sync checks and registers webhooks.")
def add_shopify_command(domain, token, client_credentials, offline):
    """Register a Shopify store by token or client credentials.

    Unless --offline, checks the credentials (reading the shop's currency and time zone) and
    subscribes the webhooks; with --offline the next sync does both.
    """
    from connectors.shopify.errors import ShopifyError
    from connectors.shopify.install import save_shop
    from connectors.shopify.oauth import client_credentials as cc_grant, valid_shop_domain

    from .migrations import init_db
    shop_domain = valid_shop_domain(domain)
    if shop_domain is None:
        raise click.ClickException(f"{domain!r} is not a shop domain like your-store.myshopify.com")
    if bool(token) == bool(client_credentials):
        raise click.ClickException("give exactly one of --token T or --client-credentials")
    app = current_app._get_current_object()
    db = get_db()
    init_db(db)
    try:
        if token:
            creds = {"grant": "token", "access_token": token}
        elif offline:  # requested on first use
            creds = {"grant": "client_credentials"}
        else:
            creds = cc_grant(app, shop_domain)
        shop = save_shop(app, db, shop_domain, creds, verify=not offline)
    except ShopifyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Added Shopify shop {shop['handle']} (id {shop['id']}, {shop['currency']}, {shop['timezone']})"
               + ("; credentials not checked (--offline)." if offline else "; webhooks registered.")
               + f" Next: winback sync --shop {shop['handle']}")


@shop_group.command("add-woocommerce")
@click.argument("url")
@click.option("--key", required=True, help="Consumer key (ck_…).")
@click.option("--secret", required=True, help="Consumer secret (cs_…).")
@click.option("--webhook-secret", help="Secret to sign webhooks with.")
@click.option("--offline", is_flag=True, help="Do not contact the store now.")
def add_woocommerce_command(url, key, secret, webhook_secret, offline):
    """Register a WooCommerce store by REST API keys (its handle is the store's host name).

    Checks the keys against the store and creates the webhooks, unless --offline (then the next
    reconcile creates them). The keys are stored encrypted.
    """
    from connectors.woocommerce import WooError
    from connectors.woocommerce.connect import add_store

    from .migrations import init_db
    db = get_db()
    init_db(db)
    try:
        shop = add_store(current_app._get_current_object(), db, url, key, secret,
                         webhook_secret=webhook_secret, offline=offline)
    except (WooError, ShopError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Added WooCommerce shop {shop['handle']} (id {shop['id']})"
               + (": keys not checked, webhooks are created on the next reconcile." if offline
                  else f": keys work, webhooks point at {current_app.config['APP_URL']}/webhooks/woocommerce/{shop['id']}."))


# ---- data in -------------------------------------------------------------------------------
@commands.command("sync")
@shop_option
@click.option("--full", is_flag=True, help="Pull everything, not only what changed since the last sync.")
def sync_command(shop_handle, full):
    """Pull customers, orders and products from the shop's platform, with a progress bar."""
    from connectors.sync import sync_shop
    shop = _require_shop(shop_handle)
    if shop["platform"] in ("demo", "import"):
        raise click.ClickException(
            f"shop {shop_handle!r} is a {shop['platform']} shop: it has no platform to sync from"
            + (" (refresh it with `winback demo`)" if shop["platform"] == "demo"
               else " (load more with `winback import-orders`)"))
    result = sync_shop(current_app._get_current_object(), get_db(), shop, full=full,
                       progress=sys.stderr.isatty())
    click.echo(f"Synced {shop_handle}: {result.get('orders_new', 0)} new and {result.get('orders_updated', 0)} "
               f"changed orders, {result.get('customers_new', 0)} new customers.")


@commands.command("import-orders")
@shop_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=False))
@click.option("--format", "fmt", type=click.Choice(["generic", "shopify"]), default="generic",
              show_default=True, help="`generic` (one row per order line) or Shopify's order export.")
@click.option("--currency", default="EUR", show_default=True, help="Currency of a shop created by this import.")
@click.option("--timezone", "tz", default="UTC", show_default=True,
              help="Time zone of a shop created by this import (times without an offset are in it).")
@json_option
def import_orders_command(shop_handle, file, fmt, currency, tz, as_json):
    """Import order history from a CSV file; creates the shop (platform `import`) if missing.

    Bad rows are reported by line number and skipped; good rows are imported; importing the same
    file again changes nothing.
    """
    from connectors.csv_import import import_orders

    from .migrations import init_db
    db = get_db()
    init_db(db)
    try:
        shop, created = get_or_create_shop(db, shop_handle, "import", currency=currency, timezone=tz,
                                           review_flows=True)
    except ShopError as exc:
        raise click.ClickException(str(exc)) from None
    progress = not as_json and sys.stderr.isatty()
    try:
        result = import_orders(db, shop, file, fmt=fmt, progress=progress)
    except ValueError as exc:  # a file-level problem: one clear line, nothing imported
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(result)
        return
    if created:
        click.echo(f"Created shop {shop_handle!r} ({currency}, {tz}).")
    click.echo(f"Imported {result['orders']} orders ({result['orders_new']} new, "
               f"{result['orders_updated']} changed) for {result['customers']} customers "
               f"from {result['lines']} lines; {len(result['skipped'])} rows skipped.")
    for row in result["skipped"][:50]:
        click.echo(f"  line {row['line']}: {row['error']}", err=True)
    if len(result["skipped"]) > 50:
        click.echo(f"  … and {len(result['skipped']) - 50} more (use --json for all)", err=True)


# ---- intelligence, flows, reports (later issues) ---------------------------------------------
@commands.command("refresh")
@shop_option
@now_option
@json_option
def refresh_command(shop_handle, now, as_json):
    """Recompute and store every customer's metrics, segments, model scores and RFM."""
    from flows.refresh import refresh
    shop = _require_shop(shop_handle)
    result = refresh(get_db(), shop, _shop_now(shop, now), full=True)
    if as_json:
        echo_json(result)
    else:
        click.echo(f"Refreshed {result['customers']} customers of {shop_handle} as of {result['now']} "
                   f"in {result['seconds']} s (purchase model: {result['model']}).")


# `segments` and `explain` answer from the stored snapshot; the `winback` script runs them without
# Flask (app/answers.py, app/entry.py).
commands.add_command(answers.segments_command)


@commands.command("model")
@shop_option
@now_option
@json_option
def model_command(shop_handle, now, as_json):
    """Fit the purchase model (BG/NBD) and print its parameters."""
    from flows.refresh import ensure_snapshot
    shop = _require_shop(shop_handle)
    snap = ensure_snapshot(get_db(), shop, _shop_now(shop, now))
    model = {k: v for k, v in snap["model"].items()
             if k not in ("replenish_cycles", "one_time_return_learned", "returners")}
    if as_json:
        echo_json(model)
    elif model["status"] != "fitted":
        click.echo(f"BG/NBD for {shop_handle}: {model['reason']}.")
    else:
        click.echo(f"BG/NBD for {shop_handle} (days, {model['customers']} buyers): r={model['r']:.4g} "
                   f"alpha={model['alpha']:.4g} a={model['a']:.4g} b={model['b']:.4g} loglik={model['loglik']:.2f}")


commands.add_command(answers.explain_command)


@commands.command("run-flows")
@shop_option
@now_option
@click.option("--dry-run", is_flag=True, help="Only show who would enter which flow now, and why.")
@click.option("--by-flow", is_flag=True,
              help="With --dry-run --json: print the per-flow summary ({\"flows\": [...]}) instead of the customers.")
@json_option
def run_flows_command(shop_handle, now, dry_run, by_flow, as_json):
    """One scheduler tick: enrol, exit, send what is due."""
    from connectors.registry import live_connector
    from flows.dry_run import summary as dry_run_summary, summary_lines as dry_run_lines
    from flows.engine import TickBusy, preview, tick
    shop = _require_shop(shop_handle)
    if dry_run:
        moment = _shop_now(shop, now)
        if as_json and by_flow:
            echo_json({"shop": shop_handle, "now": moment.isoformat(),
                       "flows": dry_run_summary(get_db(), shop, moment)})
            return
        rows = preview(get_db(), shop, moment)
        if as_json:
            echo_json(rows)
        else:
            for r in rows:
                click.echo(f"{r['flow']:16} {r['customer']:12} {r['email'] or '':35} {r['reason']}"
                           + ("  [control group]" if r["held_out"] else ""))
            click.echo(f"{len(rows)} customers would enter a flow.")
            for line in dry_run_lines(dry_run_summary(get_db(), shop, moment)):
                click.echo(line)
        return
    try:
        result = tick(current_app._get_current_object(), get_db(), shop, _shop_now(shop, now),
                      connector=live_connector(current_app._get_current_object(), shop))
    except TickBusy as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(result)
    else:
        if result["mode"] == "preview":
            click.echo(f"{shop_handle} at {result['now']}: preview only, no email delivery is configured "
                       "(set WINBACK_SMTP_URL or the shop's SMTP server): nothing was queued or changed. "
                       "`winback run-flows --dry-run` shows who would get what.")
            return
        click.echo(f"{shop_handle} at {result['now']}: {result['enrolled']} enrolled, {result['held_out']} held out, "
                   f"{result['sent']} emails sent, {result['withheld']} withheld, {result['exited']} exited, "
                   f"{result['deferred']} deferred.")
        for flow, why in result["paused"].items():
            click.echo(f"  {flow} enrols nobody: {why}")


@commands.command("messages")
@shop_option
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--status", type=click.Choice(["outbox", "sending", "sent", "failed", "withheld", "unknown"]),
              help="Only messages with this status.")
@json_option
def messages_command(shop_handle, limit, status, as_json):
    """The message log: sent, withheld (and why), failed, waiting, unknown."""
    from flows.messages import count_messages, message_log
    shop = _require_shop(shop_handle)
    rows = message_log(get_db(), shop, limit=limit, status=status)
    more = count_messages(get_db(), shop, status=status) - len(rows)
    if as_json:
        echo_json(rows)
        _more_note(more)
        return
    if not rows:
        click.echo("No messages yet.")
    for m in rows:
        line = (f"{m['sent_at'] or m['scheduled_for']}  {m['status']:8} {m['flow']:16} step {m['step'] + 1}  "
                f"{m['email'] or '':35} {m['subject'] or ''}")
        if m["discount_code"]:
            line += f"  [{m['discount_code']} until {m['code_expires_at']}]"
        if m["withheld_reason"]:
            line += f"  (withheld: {m['withheld_reason']})"
        click.echo(line)
    _more_note(more)


def _more_note(more):
    """A cut list says so on stderr, so that stdout stays the list itself."""
    if more > 0:
        click.echo(f"{more} more (use --limit)", err=True)


@commands.group("flow")
def flow_group():
    """The shop's flows: list them, turn one on or off."""


@flow_group.command("list")
@shop_option
@json_option
def flow_list_command(shop_handle, as_json):
    """Each flow: on or off, who enters, its steps."""
    from flows.definitions import load_flows
    shop = _require_shop(shop_handle)
    flows = load_flows(get_db(), shop["id"])
    doc = [{"name": name, "enabled": flows[name]["enabled"], "kind": flows[name]["kind"],
            "entry": flows[name]["entry"], "holdout": flows[name]["holdout"], "steps": flows[name]["steps"]}
           for name in flows]
    if as_json:
        echo_json(doc)
        return
    for f in doc:
        steps = ", ".join(f"day {s['delay_days']:g}{_offer_text(s.get('offer'), shop['currency'])}"
                          + (", testing" + " |".join(_offer_text(a, shop["currency"]) for a in s["offers"])
                             if s.get("offers") else "") for s in f["steps"])
        click.echo(f"{f['name']:16} {'on ' if f['enabled'] else 'off'}  {f['entry']:15} {steps}")


def _offer_text(offer, currency) -> str:
    """A step's offer in `flow list`: " 15 %", " 10 EUR off from 50 EUR", " free shipping", " same code"."""
    from flows.definitions import offer_kind
    kind = offer_kind(offer)
    if kind is None:
        return " no offer"
    if kind == "reuse":
        return " same code"
    text = {"percent": lambda: f" {offer['percent']:g} %", "amount": lambda: f" {offer['amount']:g} {currency} off",
            "free_shipping": lambda: " free shipping"}[kind]()
    if offer.get("min_order"):
        text += f" from {offer['min_order']:g} {currency}"
    return text + f" ({offer['valid_days']:g} days)"


def _set_flow(shop_handle, name, enabled):
    from flows.definitions import FlowError, set_enabled
    shop = _require_shop(shop_handle)
    try:
        set_enabled(get_db(), shop["id"], name, enabled)
    except FlowError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name} is {'on' if enabled else 'off'} for {shop_handle}."
               + ("" if enabled else " Its running enrolments ended and nothing more of it will be sent."))


@flow_group.command("enable")
@shop_option
@click.argument("name")
def flow_enable_command(shop_handle, name):
    """Turn a flow on (customers enter it from the next tick)."""
    _set_flow(shop_handle, name, True)


@flow_group.command("disable")
@shop_option
@click.argument("name")
def flow_disable_command(shop_handle, name):
    """Turn a flow off: its undelivered steps are withdrawn at once."""
    _set_flow(shop_handle, name, False)


@commands.command("report")
@shop_option
@now_option
@click.option("--from", "first", metavar="DATE", help="Only customers who entered a flow from this day on (shop time).")
@click.option("--to", "last", metavar="DATE", help="... up to and including this day (shop time).")
@json_option
def report_command(shop_handle, now, first, last, as_json):
    """Per flow and step: enrolled, sent, held out, converted, revenue, discount cost, lift vs holdout;
    and week by week: sent, conversions, incremental revenue."""
    from flows.attribution import report
    from flows.campaigns import report as campaign_report
    from flows.offer_tests import arm_lines
    from flows.trend import date_range as report_range, weekly_trend
    shop = _require_shop(shop_handle)
    try:
        since, until = report_range(shop, first, last, _shop_now(shop, now))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    doc = report(get_db(), shop, until, since)
    doc["trend"] = weekly_trend(get_db(), shop, until, since)
    doc["campaigns"] = campaign_report(get_db(), shop, until)
    if as_json:
        echo_json(doc)
        return
    cur = doc["currency"]
    for f in doc["flows"]:
        click.echo(f"{f['flow']}: {f['enrolled']} enrolled ({f['held_out']} held out), {f['sent']} sent"
                   + (f", {f['queued']} waiting in the outbox" if f["queued"] else "")
                   + f", {f['converted']} converted, revenue {f['revenue']:.2f} {cur}, discounts {f['discount_cost']:.2f} {cur}")
        lift = f["lift"]
        if lift["lift"] is not None and lift["enough_data"]:
            click.echo(f"  lift vs holdout: {lift['lift'] * 100:+.1f} points (95 % interval {lift['ci_low'] * 100:+.1f} to "
                       f"{lift['ci_high'] * 100:+.1f}); incremental revenue {lift['incremental_revenue']:.2f} {cur}")
        click.echo(f"  {lift['note']}")
        if f.get("note"):
            click.echo(f"  {f['note']}")
        if f.get("nps"):
            n = f["nps"]
            score = n["score"] if n["responses"] else "—"
            click.echo(f"  recommendation (0-10): {n['responses']} answers, {n['promoters']} promoters, "
                       f"{n['passives']} passives, {n['detractors']} detractors, NPS {score}")
        for line in arm_lines(f["steps"], cur):
            click.echo(f"  {line}")
    for c in doc["campaigns"]:
        click.echo(f"campaign {c['id']} ({c['template']} to {c['segment']}, {c['status']}): {c['recipients']} members"
                   f" ({c['held_out']} held out), {c['sent']} sent, {c['converted']} converted, revenue"
                   f" {c['revenue']:.2f} {cur}\n  {c['lift']['note']}")
    if doc["trend"]:
        click.echo("week of      sent  converted  incremental revenue")
        for w in doc["trend"]:
            extra = "-" if w["incremental_revenue"] is None else f"{w['incremental_revenue']:.2f} {cur}"
            click.echo(f"{w['week']}  {w['sent']:>6}  {w['converted']:>9}  {extra}")


@commands.command("dkim")
@shop_option
@click.option("--domain", metavar="D", help="Sign for this domain (default: the sender address's).")
@click.option("--rotate", is_flag=True, help="Make a new key under a new selector (publish its record first).")
@click.option("--remove", is_flag=True, help="Forget the key: mail goes out unsigned (an ESP that signs for you).")
@json_option
def dkim_command(shop_handle, domain, rotate, remove, as_json):
    """The shop's DKIM key: made once (RSA 2048, kept encrypted), printed as the TXT record to publish."""
    from .dkim import DkimError, ensure_key, remove_key
    shop = _require_shop(shop_handle)
    if remove:
        if rotate or domain:
            raise click.UsageError("--remove goes alone")
        had = remove_key(current_app, get_db(), shop)
        click.echo(f"{shop_handle}: {'DKIM key removed' if had else 'no DKIM key'}; its mail goes out unsigned.")
        return
    try:
        doc = ensure_key(current_app, get_db(), shop, domain=domain, rotate=rotate)
    except DkimError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(doc)
        return
    click.echo(f"Publish this TXT record for {doc['domain']}:\n  name:  {doc['txt_name']}\n  value: {doc['txt_record']}")


@commands.command("preview")
@shop_option
@click.option("--flow", "flow_name", required=True, metavar="F", help="The flow (see `winback flow list`).")
@click.option("--step", "step_no", required=True, type=click.IntRange(1), metavar="N", help="The step, from 1.")
@click.option("--customer", metavar="ID", help="Platform customer id, or email (default: one in the flow's segment).")
@click.option("--lang", metavar="L", help="The email's language: en, nl or pl (default: the customer's).")
@json_option
def preview_command(shop_handle, flow_name, step_no, customer, lang, as_json):
    """One flow step's email as the customer would get it: subject, preheader, text, HTML and its links."""
    from flows.email_preview import PreviewError, preview as preview_email
    shop = _require_shop(shop_handle)
    try:
        doc = preview_email(current_app, get_db(), shop, flow_name, step_no, customer, lang)
    except PreviewError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(doc)
        return
    click.echo(f"Subject: {doc['subject']}" + (f"\nPreheader: {doc['preheader']}" if doc["preheader"] else ""))
    click.echo(f"\n{doc['text']}")
    for link in doc["links"]:
        click.echo(f"[{link['kind']}] {link['url']}\n  -> {link['target']}")



# ---- users (issue 12) ------------------------------------------------------------------------
@commands.group("user")
def user_group():
    """Accounts: add, list, reset a password, remove. A user sees only their shops; admins see all."""


def _users_call(func, *args, **kwargs):
    from .users import UserError
    try:
        return func(*args, **kwargs)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None


@user_group.command("add")
@click.argument("name")
@click.option("--password", help="The password (default: a random one, printed once).")
@click.option("--shop", "shops", multiple=True, metavar="HANDLE", help="A shop the user belongs to (repeatable).")
@click.option("--admin", is_flag=True, help="An admin: sees every shop and manages users.")
def user_add_command(name, password, shops, admin):
    """Add a user who may see the given shops."""
    from .migrations import init_db
    from .users import add_user
    db = get_db()
    init_db(db)
    user, generated = _users_call(add_user, db, name, password, shops, is_admin=admin,
                                  method=current_app.config.get("PASSWORD_HASH_METHOD"))
    click.echo(f"Added user {user['username']}" + (" (admin)" if admin else "")
               + (f" with shops {', '.join(dict.fromkeys(shops))}" if shops else "") + ".")
    if generated:
        click.echo(f"Password: {generated} (shown once; pass it on now)")


@user_group.command("list")
@json_option
def user_list_command(as_json):
    """List users: name, admin or not, and their shops."""
    from .migrations import init_db
    from .users import list_users
    db = get_db()
    init_db(db)
    rows = list_users(db)
    if as_json:
        echo_json(rows)
        return
    for u in rows:
        click.echo(f"{u['name']:30} {'admin' if u['admin'] else '-':6} "
                   + ("(all shops)" if u["admin"] else ", ".join(u["shops"]) or "(no shops)"))


@user_group.command("passwd")
@click.argument("name")
@click.option("--password", help="The new password (default: a random one, printed once).")
def user_passwd_command(name, password):
    """Set a user's password; their sessions are logged out."""
    from .migrations import init_db
    from .users import set_password
    db = get_db()
    init_db(db)
    generated = _users_call(set_password, db, name, password,
                            method=current_app.config.get("PASSWORD_HASH_METHOD"))
    click.echo(f"Password of {name} changed; their sessions are logged out."
               + (f"\nPassword: {generated} (shown once; pass it on now)" if generated else ""))


@user_group.command("remove")
@click.argument("name")
def user_remove_command(name):
    """Remove a user (not the only admin)."""
    from .migrations import init_db
    from .users import remove_user
    db = get_db()
    init_db(db)
    _users_call(remove_user, db, name)
    click.echo(f"Removed user {name}.")


# ---- campaigns (flows/campaigns.py) ---------------------------------------------------------
@commands.group("campaign")
def campaign_group():
    """One-off emails to a segment: create, list, cancel."""


@campaign_group.command("create")
@shop_option
@click.option("--segment", required=True, metavar="NAME", help="Who gets it: a segment (see `winback segments`).")
@click.option("--template", required=True, metavar="T", help="vip_early_access, brand_launch or thank_you.")
@click.option("--subject", metavar="S", help="The subject (default: the template's, in each customer's language).")
@click.option("--offer", default="none", show_default=True, metavar="OFFER",
              help="percent:15, amount:10, free_shipping or none (a personal code, valid 7 days).")
@click.option("--at", "at", metavar="T", help="When it goes out (a date means 00:00 shop time); default: now.")
@click.option("--holdout", default=10.0, show_default=True, type=float, help="Percent of the members held out.")
@now_option
@json_option
def campaign_create_command(shop_handle, segment, template, subject, offer, at, holdout, now, as_json):
    """Schedule a one-off email to a segment; the scheduler (or `run-flows`) sends it when due."""
    from flows.campaigns import CampaignError, create as create_campaign, offer_text
    shop = _require_shop(shop_handle)
    current = _shop_now(shop, now)
    try:
        when = _shop_now(shop, at) if at else current
        doc = create_campaign(get_db(), shop, segment=segment, template=template, subject=subject, offer=offer,
                              at=when, holdout=holdout, now=current)
    except click.ClickException as exc:
        raise click.ClickException(exc.message.replace("--now", "--at")) from None
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(doc)
        return
    click.echo(f"Campaign {doc['id']}: {doc['template']} to {doc['segment']} at {doc['scheduled_for']}"
               f" (offer {offer_text(doc['offer'])}, {doc['holdout'] * 100:g} % held out).")


@campaign_group.command("list")
@shop_option
@json_option
def campaign_list_command(shop_handle, as_json):
    """The shop's campaigns: what goes out when, and how each went."""
    from flows.campaigns import list_campaigns, offer_text
    shop = _require_shop(shop_handle)
    rows = list_campaigns(get_db(), shop)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No campaigns yet. `winback campaign create` schedules one.")
    for c in rows:
        click.echo(f"{c['id']:4} {c['status']:9} {c['scheduled_for']}  {c['template']:16} {c['segment']:20}"
                   f" offer {offer_text(c['offer'])}" + (f"  ({c['note']})" if c["note"] else ""))


@campaign_group.command("cancel")
@shop_option
@click.argument("campaign_id", metavar="ID", type=int)
@now_option
def campaign_cancel_command(shop_handle, campaign_id, now):
    """Cancel a campaign; one that is sending stops, and what it has not delivered is withheld."""
    from flows.campaigns import CampaignError, cancel as cancel_campaign
    shop = _require_shop(shop_handle)
    try:
        cancel_campaign(get_db(), shop, campaign_id, _shop_now(shop, now))
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Campaign {campaign_id} is cancelled; nothing more of it will be sent.")


# ---- the owner's own segments -----------------------------------------------------------------
@commands.group("segment")
def segment_group():
    """The shop's own segments: add one by a rule, list, show (with members), remove."""


def _segments_call(func, *args, **kwargs):
    from flows.definitions import FlowError
    from flows.owner_segments import SegmentError
    from flows.rules import RuleError
    try:
        return func(*args, **kwargs)
    except (RuleError, SegmentError, FlowError) as exc:
        raise click.ClickException(str(exc)) from None


@segment_group.command("add")
@shop_option
@click.argument("name")
@click.option("--rule", required=True, metavar="JSON",
              help='The rule, e.g. {"all": [{"field": "clv", "op": ">=", "value": 1000}]} (see the README).')
def segment_add_command(shop_handle, name, rule):
    """Add a segment; its members are counted on the stored snapshot and refreshed with it."""
    from flows import owner_segments
    shop = _require_shop(shop_handle)
    saved = _segments_call(owner_segments.save_segment, get_db(), shop, name, rule)
    click.echo(f"Added segment {saved['name']!r}: " + (f"{saved['count']} customers." if saved["count"] is not None
               else f"members are counted at the first refresh (winback refresh --shop {shop_handle})."))


@segment_group.command("list")
@shop_option
@json_option
def segment_list_command(shop_handle, as_json):
    """The shop's own segments with their member counts."""
    from flows import owner_segments
    shop = _require_shop(shop_handle)
    rows = [{"name": s["name"], "rule": s["rule"], "count": s["count"], "error": s["error"]}
            for s in owner_segments.list_segments(get_db(), shop["id"])]
    if as_json:
        echo_json(rows)
        return
    for s in rows:
        count = "-" if s["count"] is None else s["count"]
        click.echo(f"{s['name']:30} {count:>7}  {json.dumps(s['rule'], ensure_ascii=False)}"
                   + (f"  ({s['error']})" if s["error"] else ""))


@segment_group.command("show")
@shop_option
@click.argument("name")
@click.option("--members", is_flag=True, help="List the customers too.")
@json_option
def segment_show_command(shop_handle, name, members, as_json):
    """One segment: its rule, how many customers it holds (and who)."""
    from flows import owner_segments
    shop = _require_shop(shop_handle)
    db = get_db()
    segment = _segments_call(owner_segments.get_segment, db, shop["id"], name)
    doc = {"name": segment["name"], "rule": segment["rule"], "count": segment["count"],
           "members": owner_segments.members(db, shop["id"], segment["name"]) if members else [],
           "refreshed_for": segment["refreshed_for"], "error": segment["error"]}
    if as_json:
        echo_json(doc)
        return
    click.echo(f"{doc['name']}: {'-' if doc['count'] is None else doc['count']} customers"
               + (f" (as of {doc['refreshed_for']})" if doc["refreshed_for"] else " (counted at the first refresh)"))
    click.echo(f"  rule: {json.dumps(doc['rule'], ensure_ascii=False)}")
    if doc["error"]:
        click.echo(f"  not refreshed: {doc['error']}")
    if members:
        click.echo("  " + ", ".join(doc["members"]))


@segment_group.command("remove")
@shop_option
@click.argument("name")
def segment_remove_command(shop_handle, name):
    """Remove a segment (not while a flow enters from it)."""
    from flows import owner_segments
    shop = _require_shop(shop_handle)
    _segments_call(owner_segments.remove_segment, get_db(), shop, name)
    click.echo(f"Removed segment {name!r}.")


# ---- bulk scores (issue #15) -------------------------------------------------------------------
@commands.command("scores")
@shop_option
@now_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: a list of customers.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row per customer, the offer flattened.")
def scores_command(shop_handle, now, as_json, as_csv):
    """Every customer's scores and offer decision, from the stored snapshot, in one pass."""
    from flows.refresh import ensure_snapshot
    from flows.score_table import rows as score_rows, write as write_scores
    if as_json == as_csv:
        raise click.UsageError("choose one of --json and --csv")
    shop = _require_shop(shop_handle)
    db = get_db()
    ensure_snapshot(db, shop, _shop_now(shop, now))
    write_scores(sys.stdout, score_rows(db, shop), "json" if as_json else "csv")

"""`winback segments` and `winback explain`: answers from the stored snapshot, with or without Flask.

They sit on the app's CLI group like every command (app/cli.py registers them), so the test runner
and `flask --app` run them in the app's context. The `winback` script runs them without Flask
(app/entry.py: loading Flask would be half of their time): then `answer` names the database.
"""
from functools import update_wrapper

import click

from .cli_options import echo_json, json_option, now_option, one_line_failures, shop_in, shop_now, shop_option
from .db import connect, get_db
from .money import from_minor


class AnswerCommand(click.Command):
    """A command whose every failure is one clear line, with or without the Flask group around it."""

    def invoke(self, ctx):
        return one_line_failures(ctx, lambda: click.Command.invoke(self, ctx))


class Database:
    """The database an answer reads when `winback` runs it without Flask (see `answer`)."""

    def __init__(self, path):
        self.path = path


def with_database(f):
    """Call `f(db, ...)` on the database `answer` names, else in the app's context on its handle (as
    Flask's `with_appcontext` does for the other commands)."""
    @click.pass_context
    def run(ctx, /, *args, **kwargs):
        direct = ctx.find_object(Database)
        if direct is not None:
            db = connect(direct.path)
            ctx.call_on_close(db.close)
            return f(db, *args, **kwargs)
        from flask.cli import with_appcontext
        return ctx.invoke(with_appcontext(lambda: f(get_db(), *args, **kwargs)))
    return update_wrapper(run, f)


@click.command("segments", cls=AnswerCommand)
@shop_option
@now_option
@click.option("--members", is_flag=True, help="List each segment's customers too.")
@json_option
@with_database
def segments_command(db, shop_handle, now, members, as_json):
    """Segment counts (and members), from the stored snapshot for the same --now, else after a refresh."""
    from flows.refresh import ensure_snapshot, segment_counts, segment_members
    shop = shop_in(db, shop_handle)
    snap = ensure_snapshot(db, shop, shop_now(shop, now))
    counts = segment_counts(db, shop["id"])
    doc = {"shop": shop_handle, "now": snap["computed_for"], "customers": snap["customers"],
           "retention_days": snap["retention_days"], "one_time_return_days": snap["one_time_return_days"],
           "vip_threshold": (float(from_minor(snap["vip_threshold_minor"], shop["currency"]))
                             if snap["vip_threshold_minor"] is not None else None),
           "counts": counts, "members": segment_members(db, shop["id"]) if members else {}}
    if as_json:
        echo_json(doc)
        return
    click.echo(f"{shop_handle} as of {doc['now']}: {doc['customers']} customers; usual gap between orders "
               f"{doc['retention_days']} days; one-time buyers lapse after {doc['one_time_return_days']} days.")
    for name, n in counts.items():
        click.echo(f"  {name:40} {n:>7}")
        if members:
            click.echo("    " + ", ".join(doc["members"].get(name, [])))


@click.command("explain", cls=AnswerCommand)
@shop_option
@click.option("--customer", required=True, metavar="ID", help="Platform customer id, or email for guests.")
@now_option
@json_option
@with_database
def explain_command(db, shop_handle, customer, now, as_json):
    """One customer's metrics, segments, scores and the reasons, and what the flows would do."""
    from flows.explain import explain, find_customer
    from flows.messages import message_log
    from flows.refresh import ensure_snapshot
    shop = shop_in(db, shop_handle)
    found = find_customer(db, shop["id"], customer)
    if found is None:
        raise click.ClickException(f"no customer {customer!r} in shop {shop_handle!r}")
    snap = ensure_snapshot(db, shop, shop_now(shop, now))
    doc = explain(db, shop, found, snap)
    if as_json:
        echo_json(doc)
        return
    click.echo(f"{doc['customer']} ({doc['email'] or 'no email'}) as of {doc['now']}: "
               f"{doc['orders']} orders, {doc['clv']} {doc['currency']} in total; segments: "
               f"{', '.join(doc['segments']) or 'none'}")
    for reason in doc["reasons"]:
        click.echo(f"  - {reason}")
    for m in message_log(db, shop, limit=10, customer_id=found["id"]):
        click.echo(f"  · {m['created_at'][:16]} {m['flow']} email {m['step'] + 1}: {m['subject']} ({m['status']})")


COMMANDS = {command.name: command for command in (segments_command, explain_command)}


def answer(name, args, database):
    """Run `winback <name> <args>` (a command of COMMANDS) without Flask, on this database file."""
    return COMMANDS[name].main(args, prog_name=f"winback {name}", obj=Database(database))

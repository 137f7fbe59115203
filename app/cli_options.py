"""What the `winback` commands share, with Flask (app/cli.py) or without it (app/answers.py): their
group, their options, their JSON output, the moment they answer for, and failures said in one line.

Nothing here loads Flask: `winback --help` lists the commands without it (app/entry.py), and a
command loads Flask when it runs in the app's context.
"""
import json
import os
import sys
from functools import update_wrapper

import click

from .shops import ShopError, require_shop
from .timeutil import parse_now


def echo_json(doc):
    """Print one JSON document on stdout."""
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))


def shop_option(f):
    return click.option("--shop", "shop_handle", required=True, metavar="HANDLE",
                        help="The shop's handle (see `winback shop list`).")(f)


def now_option(f):
    return click.option("--now", metavar="ISO",
                        help="Evaluate as of this time (a date means 00:00 shop time); default: now.")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(f)


def shop_now(shop, now):
    """--now as a moment in the shop's time zone (a clear error when it is not one)."""
    try:
        return parse_now(now, shop["timezone"])
    except ValueError as exc:
        raise click.ClickException(f"--now: {exc}") from None


def shop_in(db, handle):
    """The shop with this handle, or a clear error."""
    try:
        return require_shop(db, handle)
    except ShopError as exc:
        raise click.ClickException(str(exc)) from None


def one_line_failures(ctx, call):
    """`call()`, with every failure reported as one clear line on stderr (no traceback)."""
    try:
        return call()
    except BrokenPipeError:
        # The reader went away (`winback messages | head`): that ends the output, not in failure.
        quiet_stdout()
        ctx.exit(0)
    except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - the promise is "never a traceback"
        if current_app_debug():
            raise
        raise click.ClickException(f"{exc}" if str(exc) else type(exc).__name__) from exc


def quiet_stdout():
    """Point stdout at /dev/null after a broken pipe, as Python's documentation of SIGPIPE advises:
    the flush at exit would otherwise fail again and print "Exception ignored ... BrokenPipeError"."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def current_app_debug():
    """WINBACK_DEBUG=1 shows the traceback of a failing command."""
    return os.environ.get("WINBACK_DEBUG") == "1"


WINBACK_HELP = """Winback: win-back, VIP and replenishment flows for Shopify and WooCommerce shops.

Settings come from WINBACK_* environment variables (see README).
"""


class AppGroup(click.Group):
    """Flask's `AppGroup` (each command runs in the app's context, subgroups alike), with Flask loaded
    only when a command runs."""

    def command(self, *args, **kwargs):
        wrap = kwargs.pop("with_appcontext", True)

        def decorator(f):
            return click.Group.command(self, *args, **kwargs)(with_appcontext(f) if wrap else f)
        return decorator

    def group(self, *args, **kwargs):
        kwargs.setdefault("cls", AppGroup)
        return super().group(*args, **kwargs)


def with_appcontext(f):
    """Flask's `with_appcontext`, imported when the command runs."""
    @click.pass_context
    def run(ctx, /, *args, **kwargs):
        from flask.cli import with_appcontext as flask_with_appcontext
        return ctx.invoke(flask_with_appcontext(f), *args, **kwargs)
    return update_wrapper(run, f)


class CurrentApp:
    """Flask's `current_app` for the commands of app/cli.py: the app of the running command, looked
    up when a command uses it."""

    def __getattr__(self, name):
        from flask import current_app as flask_current_app
        return getattr(flask_current_app, name)


current_app = CurrentApp()

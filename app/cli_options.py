"""What the `winback` commands share, with Flask (app/cli.py) or without it (app/answers.py): their
options, their JSON output, the moment they answer for, and failures said in one line."""
import json
import os
import sys

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

"""`winback` (and `python -m app`): the command line's way in, a Flask CLI group bound to the app
factory, which registers the commands of app/cli.py on every app it makes."""
import os
import sys
from functools import partial

import click
from flask.cli import FlaskGroup, ScriptInfo

from . import create_app
from .keys import EncryptionKeyError


SERVING = {"serve"}  # the commands that serve the pages; the others need no web side (and start faster)


def cli_app():
    """The app as a command sees it: no pages, unless the command serves them (see WinbackGroup)."""
    return create_app(web=False)


class WinbackGroup(FlaskGroup):
    """Flask's group, with every failure reported as one clear line on stderr (no traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
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

    def get_command(self, ctx, name):
        """Flask's lookup, on an app with its pages only for the command that serves them."""
        info = ctx.ensure_object(ScriptInfo)
        if info._loaded_app is None:
            info.create_app = partial(create_app, web=name in SERVING)
        return super().get_command(ctx, name)

    def _load_plugin_commands(self):
        """No plugin commands: other packages' `flask.commands` mean nothing to a Winback operator, and
        finding them reads every installed package's metadata at each start of a command."""

    def list_commands(self, ctx):
        """Flask's list; when the app cannot start (e.g. its encryption key is missing), one line
        and a non-zero exit instead of Flask's traceback."""
        try:
            ctx.ensure_object(ScriptInfo).load_app()
        except EncryptionKeyError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        return super().list_commands(ctx)


def quiet_stdout():
    """Point stdout at /dev/null after a broken pipe, as Python's documentation of SIGPIPE advises:
    the flush at exit would otherwise fail again and print "Exception ignored ... BrokenPipeError"."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def current_app_debug():
    """WINBACK_DEBUG=1 shows the traceback of a failing command."""
    return os.environ.get("WINBACK_DEBUG") == "1"


@click.group(cls=WinbackGroup, create_app=cli_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def main():
    """Winback: win-back, VIP and replenishment flows for Shopify and WooCommerce shops.

    Settings come from WINBACK_* environment variables (see README).
    """




# Flask's own --env-file/--app/--debug options mean nothing to a Winback operator.
main.params = [p for p in main.params if p.name not in ("env_file", "app", "debug")]

if __name__ == "__main__":
    main()

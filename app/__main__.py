"""`winback` (and `python -m app`): the command line's way in, a Flask CLI group bound to the app
factory, which registers the commands of app/cli.py on every app it makes. (The `winback` script
starts in app/entry.py, which runs `--help`, `explain` and `segments` without Flask.)"""
from functools import partial

import click
from flask.cli import FlaskGroup, ScriptInfo

from . import create_app
from .cli_options import WINBACK_HELP, one_line_failures
from .keys import EncryptionKeyError

SERVING = {"serve"}  # the commands that serve the pages; the others need no web side (and start faster)


def cli_app():
    """The app as a command sees it: no pages, unless the command serves them (see WinbackGroup)."""
    return create_app(web=False)


class WinbackGroup(FlaskGroup):
    """Flask's group, with every failure reported as one clear line on stderr (no traceback)."""

    def invoke(self, ctx):
        return one_line_failures(ctx, partial(super().invoke, ctx))

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


@click.group(cls=WinbackGroup, create_app=cli_app, help=WINBACK_HELP, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def main():
    """The `winback` group; its help is WINBACK_HELP, which the script's own `--help` shows too (app/entry.py)."""




# Flask's own --env-file/--app/--debug options mean nothing to a Winback operator.
main.params = [p for p in main.params if p.name not in ("env_file", "app", "debug")]

if __name__ == "__main__":
    main()

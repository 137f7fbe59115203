"""The `winback` script: `--help`, `explain` and `segments` without Flask (app/answers.py), every other
command on the Flask group of app/__main__.py.

Loading Flask (werkzeug, jinja2, ...) is half the time of an answer from the stored snapshot, which
needs only the database and the keys; so this reads those settings from the environment exactly as
the app factory does (app/__init__.py: `WINBACK_*` values are JSON when they parse as JSON, as
Flask's `from_prefixed_env` reads them, and kept as strings), and checks the keys as it does.
"""
import json
import os
import sys
from pathlib import Path, PurePath
from types import SimpleNamespace

# Where `import app` found the package, as Flask's find_package sees it (for the default instance folder).
PACKAGE_PATH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANSWERS = ("explain", "segments")
KEYS = ("DATABASE", "SECRET_KEY", "ENCRYPTION_KEY")  # what keys.init_app and an answer read


def main():
    """Run `winback` with the command line's arguments."""
    args = sys.argv[1:]
    app = command_app() if args == ["--help"] or (args and args[0] in ANSWERS) else None
    if app is None:
        from .__main__ import main as group
        return group()
    from . import keys
    os.makedirs(app.instance_path, exist_ok=True)
    try:
        keys.init_app(app)  # as the app factory does: the keys are made, or checked, before any command
    except keys.EncryptionKeyError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if args == ["--help"]:
        return command_list()
    from .answers import answer
    return answer(args[0], args[1:], app.config["DATABASE"])


def command_list():
    """`winback --help`: the group's help and every command of app/cli.py, as the Flask group lists them."""
    import click

    from .cli import commands
    from .cli_options import WINBACK_HELP
    return click.Group("winback", commands=commands.commands, help=WINBACK_HELP).main(["--help"], prog_name="winback")


def command_app():
    """The settings the commands above need (`config`, `instance_path`), as create_app reads them; None
    when the instance folder is Flask's to find (Winback installed into site-packages, not run from
    its folder), and so the command goes the Flask way."""
    given = os.environ.get("WINBACK_INSTANCE_PATH")
    if given:
        instance_path = str(Path(given).resolve())
    elif PurePath(PACKAGE_PATH).is_relative_to(os.path.abspath(sys.prefix)) or \
            os.path.basename(PACKAGE_PATH).lower() == "site-packages":
        return None
    else:  # what Flask takes for a package that is not installed: "instance" beside it (see README)
        instance_path = os.path.join(PACKAGE_PATH, "instance")
    config = {"DATABASE": os.path.join(instance_path, "winback.db")}
    for key in KEYS:
        if f"WINBACK_{key}" in os.environ:
            config[key] = str(_env_value(os.environ[f"WINBACK_{key}"]))
    return SimpleNamespace(config=config, instance_path=instance_path)


def _env_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text

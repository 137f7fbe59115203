"""The `winback` script (app/entry.py) answers `--help`, `explain` and `segments` without Flask: the same
answers, the same errors and the same key checks as the commands on the app, on the database the app
factory would open."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from app.entry import command_app
from tests.builders import lapsed_shop

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-05-01"


def winback(app, *args, flask=False, **env):
    """`winback args` as the script runs it (with `flask`: as the Flask group runs it), in a fresh process,
    on `app`'s database and instance folder: (exit code, stdout, stderr)."""
    code = ("import sys\nfrom app.__main__ import main\nmain(prog_name='winback')" if flask else
            "import sys\nfrom app.entry import main\nsys.exit(main())")
    env = {**os.environ, "WINBACK_DATABASE": app.config["DATABASE"], "WINBACK_INSTANCE_PATH": app.instance_path,
           **env}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_the_script_answers_as_the_app_does(app, db, runner):
    lapsed_shop(db)
    assert runner.invoke(args=["refresh", "--shop", "s", "--now", NOW]).exit_code == 0
    for args in (["explain", "--shop", "s", "--customer", "A", "--now", NOW, "--json"],
                 ["explain", "--shop", "s", "--customer", "A", "--now", NOW],
                 ["segments", "--shop", "s", "--now", NOW, "--json", "--members"],
                 ["segments", "--shop", "s", "--now", NOW]):
        with_flask = runner.invoke(args=args)
        assert with_flask.exit_code == 0, with_flask.output
        assert winback(app, *args) == (0, with_flask.stdout, ""), args
    doc = json.loads(winback(app, "explain", "--shop", "s", "--customer", "A", "--now", NOW, "--json")[1])
    assert doc["segments"] == ["lapsed"] and any("would enter winback" in r for r in doc["reasons"])


def test_a_later_moment_of_another_day_refreshes_first_as_the_app_does(app, db, runner):
    lapsed_shop(db)
    assert runner.invoke(args=["refresh", "--shop", "s", "--now", NOW]).exit_code == 0
    code, out, _ = winback(app, "segments", "--shop", "s", "--now", "2027-03-01", "--json")
    assert code == 0 and json.loads(out)["counts"]["lost"] == 1
    assert db.execute("SELECT computed_for FROM shop_snapshots").fetchone()[0] == "2027-03-01T00:00:00Z"


def test_the_script_fails_as_the_app_does(app, db, runner):
    lapsed_shop(db)
    for args, message in ((["explain", "--shop", "nope", "--customer", "A"], "Error: no shop 'nope'"),
                          (["explain", "--shop", "s", "--customer", "nobody", "--now", NOW],
                           "Error: no customer 'nobody' in shop 's'"),
                          (["segments", "--shop", "s", "--now", "soon"], "Error: --now: 'soon'"),
                          (["segments"], "Error: Missing option '--shop'")):
        with_flask = runner.invoke(args=args)
        code, out, err = winback(app, *args)
        assert (code, out) == (with_flask.exit_code, "") and code in (1, 2), args
        assert message in err and message in with_flask.output, args
        assert "Traceback" not in err


def test_the_script_lists_every_command_as_the_flask_group_does(app):
    code, out, err = winback(app, "--help")
    assert (code, out, err) == winback(app, "--help", flask=True)
    assert "Usage: winback [OPTIONS] COMMAND [ARGS]..." in out and "  explain " in out and "  serve " in out


@pytest.mark.parametrize("args", [["--help"], ["segments", "--shop", "s", "--now", NOW]])
def test_the_script_refuses_an_encryption_key_that_is_no_key_as_every_command_does(app, db, args):
    lapsed_shop(db)
    code, out, err = winback(app, *args, WINBACK_ENCRYPTION_KEY="not-a-key")
    assert (code, out) == (1, "") and err.startswith("Error: WINBACK_ENCRYPTION_KEY is not a valid key")


@pytest.mark.parametrize("env", [{}, {"WINBACK_DATABASE": "elsewhere/shop.db"},
                                 {"WINBACK_DATABASE": '"quoted.db"', "WINBACK_INSTANCE_PATH": "relative"}])
def test_the_script_opens_the_database_the_app_factory_would(monkeypatch, tmp_path, env):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WINBACK_INSTANCE_PATH", str(tmp_path / "instance"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app, direct = create_app(web=False), command_app()
    assert (direct.instance_path, direct.config["DATABASE"]) == (app.instance_path, app.config["DATABASE"])


def test_without_settings_the_instance_folder_is_the_one_flask_finds(monkeypatch):
    from flask import Flask
    flask_finds = Flask("app").instance_path
    assert command_app().instance_path == flask_finds
    assert command_app().config["DATABASE"] == os.path.join(flask_finds, "winback.db")

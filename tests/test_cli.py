"""The `winback` command: every command of the README's table (the product contract's command table)
exists, has help and takes the options named; errors are one clear line."""
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.__main__ import main
from app.shops import create_shop

README = Path(__file__).resolve().parent.parent / "README.md"
COMMAND = r"`winback ((?:shop |flow |user |campaign |segment )?[a-z-]+)([^`]*)`"


def readme_commands():
    """(command, options) of each row of the README's command table ("Command line")."""
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `winback ")]
    found = [m for line in rows for m in re.findall(COMMAND, line.split(" | ")[0])]
    assert found, "README.md has no command table"
    return found


# The contract's commands: the README must document each of them (and may document more).
CONTRACT = {"init-db", "demo", "serve", "worker", "shop add-shopify", "shop add-woocommerce", "shop list", "sync",
            "import-orders", "refresh", "segments", "model", "explain", "run-flows", "messages", "report",
            "flow list", "flow enable", "flow disable", "user add", "user list", "user passwd", "user remove", "dkim",
            "preview", "campaign create", "campaign list", "campaign cancel"}


def spec_commands():
    return sorted({command for command, _ in readme_commands()})


def test_the_readme_documents_every_command_of_the_contract():
    assert CONTRACT <= set(spec_commands())


@pytest.mark.parametrize("command", spec_commands())
def test_every_spec_command_exists_and_has_help(command):
    result = CliRunner().invoke(main, command.split() + ["--help"], prog_name="winback")
    assert result.exit_code == 0, result.output
    assert "Usage: winback " + command in result.output
    # a real description, not just the usage line
    assert len(result.output.split("\n\n")[1].strip()) > 10


def test_top_level_help_lists_every_command():
    output = CliRunner().invoke(main, ["--help"]).output
    for command in {c.split()[0] for c in spec_commands()}:
        assert re.search(rf"^\s+{command}\s", output, flags=re.M), command


def test_options_named_in_the_readme_exist():
    """Each option the README's command table gives a command is accepted by it."""
    for command, rest in readme_commands():
        help_text = CliRunner().invoke(main, command.split() + ["--help"]).output
        for option in re.findall(r"--[a-z-]+", rest):
            assert option in help_text, f"winback {command} lacks {option}"


def test_shop_list_json(runner, db):
    create_shop(db, "acme.example", "import")
    result = runner.invoke(args=["shop", "list", "--json"])
    assert result.exit_code == 0
    shops = json.loads(result.output)
    assert shops == [{"handle": "acme.example", "id": shops[0]["id"], "platform": "import",
                      "last_sync": None, "customers": 0, "orders": 0}]


def test_unknown_shop_is_one_clear_line(runner):
    result = runner.invoke(args=["segments", "--shop", "nope"])
    assert result.exit_code != 0
    assert "no shop 'nope'" in result.output
    assert "Traceback" not in result.output


def test_unexpected_errors_are_one_line_not_a_traceback(tmp_path, monkeypatch):
    # A database path that cannot be opened: the command fails with one line.
    monkeypatch.setenv("WINBACK_INSTANCE_PATH", str(tmp_path / "inst"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("WINBACK_DATABASE", str(blocker / "sub" / "w.db"))
    result = CliRunner().invoke(main, ["shop", "list"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1


def test_unknown_currency_is_refused(runner, tmp_path):
    path = tmp_path / "o.csv"
    path.write_text("created_at,total,email\n2025-01-01,10,a@example.com\n")
    result = runner.invoke(args=["import-orders", "--shop", "s", str(path), "--currency", "XYZ"])
    assert result.exit_code == 1 and "unknown currency 'XYZ'" in result.output


def test_a_bad_file_is_one_line_through_the_app_cli_too(runner, tmp_path):
    path = tmp_path / "o.csv"
    path.write_text("total,email\n10,a@example.com\n")  # no created_at column
    result = runner.invoke(args=["import-orders", "--shop", "s", str(path)])
    assert result.exit_code == 1 and "created_at" in result.output and "Traceback" not in result.output

"""The layers hold: the import-linter contract in pyproject.toml passes, and no module imports in a
circle (both checked on the real source, imports inside functions included)."""
from pathlib import Path

import grimp
from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contract_is_kept(monkeypatch):
    monkeypatch.chdir(ROOT)
    status = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert status == EXIT_STATUS_SUCCESS, "broken: run .venv/bin/lint-imports to see why"


def test_no_import_cycles():
    graph = grimp.build_graph("app", "connectors", "flows")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append(f"{module} <-> {imported}")
    assert cycles == []


def test_each_layer_imports_first_on_its_own():
    """Python runs a package's __init__ before any of its modules, so `app/__init__.py` must not import
    the higher layers at its top: a program that starts with `import flows.engine` (a script, a worker)
    would come back round to a half-loaded module. A module of each layer is imported first, each in a
    fresh interpreter."""
    import subprocess
    import sys
    firsts = ("app.db", "connectors.store", "connectors.platforms", "flows.engine", "flows.delivery", "app.web")
    runs = {m: subprocess.Popen([sys.executable, "-c", f"import {m}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for m in firsts}
    failed = {m: p.communicate(timeout=60)[1].strip().splitlines()[-1:] for m, p in runs.items()}
    assert {m: err for m, err in failed.items() if runs[m].returncode} == {}


def test_the_platform_table_names_real_functions():
    """Every factory, handler and setting hook the platform table names by its path resolves, and the
    WooCommerce setup topic is the one its webhooks module uses."""
    from connectors import platforms
    from connectors.woocommerce.webhooks import SETUP_TOPIC
    refs = list(platforms.connector_factories().values()) + list(platforms.setting_hooks().values())
    for handler in platforms.webhook_handlers().values():
        refs += [f for f in (getattr(handler, "fetch", None), getattr(handler, "write", handler)) if f is not None]
    assert all(callable(ref.target()) for ref in refs)
    assert SETUP_TOPIC == platforms.WOO_SETUP_TOPIC


def test_a_command_starts_without_the_web_side_or_the_http_clients():
    """`winback explain` and the other commands make the app without pages: no Flask-WTF, no requests,
    no dnspython is loaded until a command uses them."""
    import subprocess
    import sys
    code = ("import sys; from app import create_app; create_app({'INSTANCE_PATH': sys.argv[1]}, web=False); "
            "print(sorted(m for m in ('flask_wtf', 'requests', 'urllib3', 'dns', 'scipy', 'app.web') "
            "if m in sys.modules))")
    import tempfile
    with tempfile.TemporaryDirectory() as instance:
        out = subprocess.run([sys.executable, "-c", code, instance], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"



# What `winback --help`, `explain` and `segments` must not load: the model fitter (numpy, scipy), the
# mailer and its DKIM signing, the pages, the HTTP clients, and not even Flask (app/entry.py). Each
# costs a share of their blink (issue 18: < 0.3 s in a fresh process).
NOT_FOR_ANSWERS = ("numpy", "scipy", "app.mailer", "app.dkim", "flows.delivery", "flows.campaigns", "flask_wtf",
                   "requests", "urllib3", "dns", "app.web")
WITHOUT_FLASK = NOT_FOR_ANSWERS + ("flask", "werkzeug", "jinja2")
ANSWER_COMMANDS = {
    "--help": (["--help"], WITHOUT_FLASK),
    "explain": (["explain", "--shop", "s", "--customer", "A", "--now", "2026-05-01", "--json"], WITHOUT_FLASK),
    "segments": (["segments", "--shop", "s", "--now", "2026-05-01", "--json"], WITHOUT_FLASK),
}


def test_help_explain_and_segments_start_without_what_they_do_not_need(app, db, runner):
    """Each command runs as the `winback` script runs it, in a fresh interpreter, on a shop refreshed for
    its --now: it answers (exit 0, its JSON) and has loaded none of what it must not load."""
    import json
    import os
    import subprocess
    import sys

    from tests.builders import lapsed_shop
    lapsed_shop(db)
    assert runner.invoke(args=["refresh", "--shop", "s", "--now", "2026-05-01"]).exit_code == 0
    code = ("import sys\nfrom app.entry import main\n"
            "try:\n    status = main()\nexcept SystemExit as exc:\n    status = exc.code\n"
            "print(status or 0, sorted(m for m in {banned!r} if m in sys.modules), file=sys.stderr)")
    env = {**os.environ, "WINBACK_DATABASE": app.config["DATABASE"], "WINBACK_INSTANCE_PATH": app.instance_path}
    runs = {name: subprocess.Popen([sys.executable, "-c", code.format(banned=banned), *args], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, (args, banned) in ANSWER_COMMANDS.items()}
    outputs = {name: p.communicate(timeout=60) for name, p in runs.items()}
    assert {name: err.strip().splitlines()[-1] for name, (_, err) in outputs.items()} == {
        name: "0 []" for name in ANSWER_COMMANDS}
    assert json.loads(outputs["explain"][0])["segments"] == ["lapsed"]
    assert json.loads(outputs["segments"][0])["counts"]["lapsed"] == 1
    assert "explain" in outputs["--help"][0]

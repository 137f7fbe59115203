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

# Winback: `make run` serves the app with the demo shop; `make test` runs the whole suite.
# Both work on a fresh machine: they create .venv and install what is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install run test bench clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Winback's own modules are compiled to bytecode here: an editable install does not compile them, and
# with PYTHONDONTWRITEBYTECODE set Python would compile them again at every start of a command.
install: $(STAMP)
	$(BIN)/python -m compileall -q app flows connectors

run: install
	$(BIN)/winback init-db
	$(BIN)/winback demo --if-missing
	$(BIN)/winback serve --host $(HOST) --port $(PORT)

# The browser tests drive Debian's chromium (Playwright cannot download browsers here).
chromium:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test: install chromium
	$(BIN)/python -m pytest -q

bench: install
	for b in import refresh line_rules segments cli flows delivery campaign codes_during_intake shopify_jsonl shopify_webhooks webhooks_load scores shrinkage; do \
		$(BIN)/python benchmarks/bench_$$b.py || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info

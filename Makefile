# Two commands: `make run` serves the API with a demo account; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install browser run test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# One stamp per install: serving needs only the package; the suite adds the `test` extra.
# A venv that `make run` made gets the test tools on the first `make test`, and each
# install runs again when pyproject.toml changes.
$(VENV)/.installed-serve: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]' -e clients/python   # the client too: tests/client runs it
	touch $@

# A development environment: the service and the test tools.
install: $(VENV)/.installed-test

# Debian's Chromium for the console's browser tests (scripts/install-browser.sh; apt-get as root)
browser:
	scripts/install-browser.sh

run: $(VENV)/.installed-serve
	$(BIN)/patientpdf db upgrade
	$(BIN)/patientpdf demo --base-url http://$(HOST):$(PORT)
	$(BIN)/patientpdf serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test browser
	$(BIN)/ruff check src tests bench clients
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n auto

clean:
	rm -rf $(VENV) data .pytest_cache

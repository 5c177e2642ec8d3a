# Two commands: `make run` serves the API with a demo account; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install browser run test clean

$(BIN)/patientpdf: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/patientpdf

# Debian's Chromium for the console's browser tests (scripts/install-browser.sh; apt-get as root)
browser:
	scripts/install-browser.sh

run: install
	$(BIN)/patientpdf db upgrade
	$(BIN)/patientpdf demo --base-url http://$(HOST):$(PORT)
	$(BIN)/patientpdf serve --host $(HOST) --port $(PORT)

test: install browser
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) data .pytest_cache

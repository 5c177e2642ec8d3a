# Two commands: `make run` serves the API with a demo account; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test clean

$(BIN)/patientpdf: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e clients/python   # the client too: tests/client runs it
	touch $@

install: $(BIN)/patientpdf

run: install
	$(BIN)/patientpdf db upgrade
	$(BIN)/patientpdf demo --base-url http://$(HOST):$(PORT)
	$(BIN)/patientpdf serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check src tests bench clients
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) data .pytest_cache
